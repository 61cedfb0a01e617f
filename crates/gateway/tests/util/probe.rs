//! Watching the gateway from outside during abuse and faults: a well-behaved client measuring
//! its round trips, a next hop collecting SURB-acks, and the process's memory and descriptors.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use gateway_protocol::client::ClientRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::harness::TestGateway;
use super::ws_client::{random, TestClient, WsClient, READ_TIMEOUT};
use super::OutputText;
use gateway_protocol::test_support::sphinx::{final_hop_packet, v7_frame, ACK_PACKET_LEN};

/// A registered client whose socket a task reads (so Pings are answered), measuring how long
/// the gateway takes to answer it.
pub struct Prober {
    pub client: TestClient,
    sink: SplitSink<WebSocketStream<TcpStream>, Message>,
    received: mpsc::UnboundedReceiver<Message>,
    pushed: VecDeque<Vec<u8>>,
    pub round_trips: Vec<Duration>,
    pub push_latencies: Vec<Duration>,
}

impl Prober {
    /// Registers a new client on `port`.
    pub async fn register(port: u16, gateway: &VerifyingKey) -> Self {
        Self::register_at(SocketAddr::from(([127, 0, 0, 1], port)), gateway).await
    }

    /// As [`register`](Self::register), with the client port at `addr`.
    pub async fn register_at(addr: SocketAddr, gateway: &VerifyingKey) -> Self {
        let mut ws = WsClient::connect_to(addr).await;
        let mut client = TestClient::new();
        client.register(&mut ws, gateway).await;
        let (sink, mut stream) = ws.ws.split();
        let (tx, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if (message.is_text() || message.is_binary()) && tx.send(message).is_err() {
                    break;
                }
            }
        });
        Self {
            client,
            sink,
            received,
            pushed: VecDeque::new(),
            round_trips: Vec::new(),
            push_latencies: Vec::new(),
        }
    }

    /// `supportedProtocol` → its answer; panics if none comes within the test timeout.
    pub async fn round_trip(&mut self) -> Duration {
        let start = Instant::now();
        let request = Message::text(ClientRequest::SupportedProtocol.to_text());
        self.sink.send(request).await.expect("the prober can send");
        loop {
            let message = tokio::time::timeout(READ_TIMEOUT, self.received.recv())
                .await
                .expect("the gateway answers the prober in time")
                .expect("the prober's connection stays open");
            match message {
                Message::Text(text) => {
                    assert_eq!(text.as_str(), r#"{"type":"supportedProtocol","version":6}"#);
                    break;
                }
                Message::Binary(frame) => self.pushed.push_back(frame.to_vec()),
                _ => {}
            }
        }
        let elapsed = start.elapsed();
        self.round_trips.push(elapsed);
        elapsed
    }

    /// The next message pushed to the prober (decrypted), if one comes within `wait`.
    pub async fn next_pushed(&mut self, wait: Duration) -> Option<Vec<u8>> {
        if let Some(frame) = self.pushed.pop_front() {
            return Some(self.client.open_pushed(&frame));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.received.recv())
                .await
                .ok()??;
            if let Message::Binary(frame) = message {
                return Some(self.client.open_pushed(&frame));
            }
        }
    }

    /// Sends the prober a message from the mixnet over `mix` and times its arrival.
    pub async fn push_round_trip(
        &mut self,
        gateway: &TestGateway,
        mix: &mut TcpStream,
        ack_hop: SocketAddr,
    ) -> Duration {
        let body = random::<16>().to_vec();
        let frame = v7_frame(&final_hop_packet(
            gateway.sphinx_key,
            gateway.mix_addr(),
            self.client.address(),
            ack_hop,
            &random(),
            &body,
        ));
        let start = Instant::now();
        mix.write_all(&frame)
            .await
            .expect("the probe's mix connection is open");
        loop {
            let message = self
                .next_pushed(READ_TIMEOUT)
                .await
                .expect("the prober's message is pushed in time");
            if message == body {
                break;
            }
        }
        let elapsed = start.elapsed();
        self.push_latencies.push(elapsed);
        elapsed
    }

    /// Prints the measured latencies.
    pub fn report(&self, label: &str) {
        eprintln!(
            "[{label}] prober round trips: {}; pushes: {}",
            summary(&self.round_trips),
            summary(&self.push_latencies)
        );
    }
}

/// `n, min, median, max` of `durations`.
pub fn summary(durations: &[Duration]) -> String {
    if durations.is_empty() {
        return "none".into();
    }
    let mut sorted = durations.to_vec();
    sorted.sort();
    format!(
        "n={} min={:?} median={:?} max={:?}",
        sorted.len(),
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    )
}

/// A loopback next hop that accepts every connection (also after a restart of the gateway)
/// and collects the SURB-acks written to it.
pub struct AckSink {
    addr: SocketAddr,
    acks: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AckSink {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// A sink listening on `addr` (e.g. the test's end of a namespace link).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acks = Arc::new(Mutex::new(Vec::new()));
        let collected = acks.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let collected = collected.clone();
                tokio::spawn(async move {
                    let mut frame = vec![0u8; 4 + ACK_PACKET_LEN];
                    while stream.read_exact(&mut frame).await.is_ok() {
                        collected.lock().unwrap().push(frame[4..].to_vec());
                    }
                });
            }
        });
        Self { addr, acks, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every ack received so far, in order.
    pub fn acks(&self) -> Vec<Vec<u8>> {
        self.acks.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// Waits until `n` acks arrived or `wait` passed; returns the count.
    pub async fn wait_for(&self, n: usize, wait: Duration) -> usize {
        let deadline = Instant::now() + wait;
        while self.count() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.count()
    }

    /// Waits until no ack arrived for `quiet`; returns the count.
    pub async fn settle(&self, quiet: Duration) -> usize {
        let mut last = self.count();
        loop {
            tokio::time::sleep(quiet).await;
            let now = self.count();
            if now == last {
                return now;
            }
            last = now;
        }
    }
}

impl Drop for AckSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Messages for clients, each with its own SURB-ack, so acks can be traced to messages.
#[derive(Default)]
pub struct Traffic {
    /// ack packet → (recipient, message)
    pub by_ack: HashMap<Vec<u8>, ([u8; 32], Vec<u8>)>,
}

impl Traffic {
    /// A v7 frame carrying `message` for `client`, with a fresh SURB-ack to `ack_hop`.
    pub fn frame(
        &mut self,
        gateway: &TestGateway,
        client: [u8; 32],
        ack_hop: SocketAddr,
        message: &[u8],
    ) -> Vec<u8> {
        let ack: [u8; ACK_PACKET_LEN] = random();
        self.by_ack.insert(ack.to_vec(), (client, message.to_vec()));
        v7_frame(&final_hop_packet(
            gateway.sphinx_key,
            gateway.mix_addr(),
            client,
            ack_hop,
            &ack,
            message,
        ))
    }

    /// The (recipient, message) each of `acks` acknowledges; panics on an ack nobody sent.
    pub fn acknowledged(&self, acks: &[Vec<u8>]) -> Vec<([u8; 32], Vec<u8>)> {
        acks.iter()
            .map(|ack| {
                self.by_ack
                    .get(ack)
                    .cloned()
                    .expect("the gateway forwarded an ack that none of our packets carried")
            })
            .collect()
    }
}

/// Resident memory of process `pid`, in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Samples a process's memory and descriptors every 20 ms until finished.
pub struct Sampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, usize)>,
    start_rss: u64,
    start_fds: usize,
}

/// What a [`Sampler`] saw.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub start_rss_kib: u64,
    pub peak_rss_kib: u64,
    pub end_rss_kib: u64,
    pub start_fds: usize,
    pub peak_fds: usize,
}

impl Sampler {
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let start_rss = rss_kib(pid);
        let start_fds = fd_count(pid);
        let thread = std::thread::spawn(move || {
            let (mut rss, mut fds) = (0, 0);
            while !stopped.load(Ordering::Relaxed) {
                rss = rss.max(rss_kib(pid));
                fds = fds.max(fd_count(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            (rss, fds)
        });
        Self {
            pid,
            stop,
            thread,
            start_rss,
            start_fds,
        }
    }

    /// Stops sampling; prints and returns what was seen.
    pub fn finish(self, label: &str) -> Usage {
        self.stop.store(true, Ordering::Relaxed);
        let (peak_rss, peak_fds) = self.thread.join().unwrap();
        let usage = Usage {
            start_rss_kib: self.start_rss,
            peak_rss_kib: peak_rss.max(self.start_rss),
            end_rss_kib: rss_kib(self.pid),
            start_fds: self.start_fds,
            peak_fds: peak_fds.max(self.start_fds),
        };
        eprintln!(
            "[{label}] gateway RSS start {} KiB, peak {} KiB, end {} KiB; fds start {}, peak {}",
            usage.start_rss_kib,
            usage.peak_rss_kib,
            usage.end_rss_kib,
            usage.start_fds,
            usage.peak_fds
        );
        usage
    }
}

impl Usage {
    /// Panics unless the peak stayed within `slack_mib` of the start.
    pub fn assert_rss_within(&self, slack_mib: u64) {
        assert!(
            self.peak_rss_kib <= self.start_rss_kib + slack_mib * 1024,
            "gateway memory grew from {} KiB to {} KiB",
            self.start_rss_kib,
            self.peak_rss_kib
        );
    }
}

/// Lines of a log at level WARN or ERROR.
pub fn warnings(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .collect()
}

/// Stops the gateway with SIGTERM (exit 0 expected) and checks its log was not flooded:
/// returns the log, having printed its warnings.
pub fn stop_and_check_log(mut gateway: TestGateway, label: &str, max_warnings: usize) -> String {
    let out = gateway.stop("TERM");
    let log = out.stderr_text();
    assert_eq!(out.status.code(), Some(0), "{log}");
    let warned = warnings(&log);
    eprintln!("[{label}] {} warnings in the log:", warned.len());
    for line in &warned {
        eprintln!("    {line}");
    }
    assert!(
        warned.len() <= max_warnings,
        "the log has {} warnings (at most {max_warnings} expected)",
        warned.len()
    );
    log
}

/// Reads until the gateway closes `stream` (EOF or reset) and returns how long that took, or
/// `None` if it was still open after `wait`.
pub async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}
