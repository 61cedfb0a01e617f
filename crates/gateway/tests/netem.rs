//! Faults on real links: the gateway runs in its own network namespace, reached over veth
//! links on which a test switches on packet loss, a stall (every packet dropped for a while),
//! a rate limit, a reset mid-frame, or a next hop that black-holes its traffic or never reads.
//! (How the faults are made, with nftables and `tbf` rather than `netem`: `util/netns.rs`.)
//! Each test also shows its fault happened (packets dropped, the rate limit hit, writes held
//! up), so a fault that silently failed to apply cannot pass for a gateway that coped.
//!
//! The promise checked throughout: every message whose SURB-ack reached the ack next hop was
//! delivered to its client or is in the store, exactly once; the gateway's memory stays
//! bounded; and a well-behaved peer on a clean link is served in time while another
//! misbehaves. The bounds are for correctness (a stalled peer must not hold others up), not
//! speed: they are many times what a healthy run takes.
//!
//! Creating namespaces needs root, so the tests are `#[ignore]`d: nextest reports them as
//! skipped, and `.ci/run` (as root) runs them with `--run-ignored only`. Run without root,
//! they fail, saying so.

mod util;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_protocol::client::binary::decrypt_pushed_message;
use gateway_protocol::client::SharedKey;
use gateway_protocol::test_support::sphinx::ACK_PACKET_LEN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use util::harness::{NextHop, TestGateway};
use util::netns::{Link, Netns};
use util::probe::{AckSink, Prober, Sampler, Traffic};
use util::ws_client::{TestClient, WsClient};
use util::Gateway;

/// How long a push to the well-behaved client may take while another peer misbehaves.
const WELL_BEHAVED_BOUND: Duration = Duration::from_secs(2);
/// How much the gateway's resident memory may grow over a test.
const MEMORY_BOUND_MIB: u64 = 64;
/// How long a test waits for the traffic it sent to be acknowledged once its fault is over.
const SETTLE: Duration = Duration::from_secs(30);

/// The gateway in a namespace with three links: `good` (a well-behaved mix peer and client),
/// `faulty` (the link a test breaks) and `hops` (the next hops the SURB-acks go to).
struct Lab {
    // Fields drop in order: the gateway stops before its namespace is deleted.
    gateway: TestGateway,
    sink: AckSink,
    probe_sink: AckSink,
    good: Link,
    faulty: Link,
    hops: Link,
    netns: Netns,
}

impl Lab {
    async fn start(label: &str, debug: &[(&str, &str)]) -> Self {
        let mut netns = Netns::create();
        let good = netns.link();
        let faulty = netns.link();
        let hops = netns.link();
        let gw = Gateway::in_netns(label, netns.name(), IpAddr::V4(good.inside));
        let gateway = TestGateway::start_prepared(gw, debug, &[]);
        Self {
            gateway,
            sink: AckSink::start_on(hops.outside_at(0)).await,
            probe_sink: AckSink::start_on(hops.outside_at(0)).await,
            good,
            faulty,
            hops,
            netns,
        }
    }

    /// The mix port as reached over `link`.
    fn mix_over(&self, link: &Link) -> SocketAddr {
        link.inside_at(self.gateway.gw.mix_port)
    }

    /// The client port as reached over `link`.
    fn clients_over(&self, link: &Link) -> SocketAddr {
        link.inside_at(self.gateway.gw.clients_port)
    }

    /// A client registered over `link`, reading its pushes.
    async fn receiver(&self, link: &Link) -> (TestClient, Receiver) {
        let mut ws = WsClient::connect_to(self.clients_over(link)).await;
        let mut client = TestClient::new();
        client.register(&mut ws, &self.gateway.identity).await;
        let receiver = Receiver::start(ws, client.key().clone());
        (client, receiver)
    }

    /// The well-behaved peer: a client registered over the good link, and a mix connection
    /// over it that sends that client messages (acknowledged to their own sink).
    async fn prober(&self) -> Probe {
        let prober =
            Prober::register_at(self.clients_over(&self.good), &self.gateway.identity).await;
        let mix = TcpStream::connect(self.mix_over(&self.good)).await.unwrap();
        Probe { prober, mix }
    }
}

/// A well-behaved client and mix peer, both on the clean link.
struct Probe {
    prober: Prober,
    mix: TcpStream,
}

impl Probe {
    /// Pushes a message to the prober every 100 ms until `done` (at least `min` times), each
    /// within [`WELL_BEHAVED_BOUND`]; returns how many were pushed.
    async fn until(
        &mut self,
        lab: &Lab,
        min: usize,
        mut done: impl FnMut() -> bool,
        label: &str,
    ) -> usize {
        let mut pushes = 0;
        while pushes < min || !done() {
            let took = self
                .prober
                .push_round_trip(&lab.gateway, &mut self.mix, lab.probe_sink.addr())
                .await;
            assert!(
                took < WELL_BEHAVED_BOUND,
                "[{label}] a well-behaved client waited {took:?} for a push (bound {WELL_BEHAVED_BOUND:?})"
            );
            pushes += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.prober.report(label);
        pushes
    }
}

/// A client connection read by a task, which answers the gateway's Pings (so the gateway
/// confirms the pushes and sends their acks) and keeps every pushed message, decrypted.
struct Receiver {
    messages: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Receiver {
    fn start(mut ws: WsClient, key: SharedKey) -> Self {
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (kept, stopped) = (messages.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !stopped.load(Ordering::Relaxed) {
                match ws.read(Duration::from_millis(100)).await {
                    Ok(Some(Ok(Message::Binary(frame)))) => kept
                        .lock()
                        .unwrap()
                        .push(decrypt_pushed_message(&frame, &key).expect("pushed frame decrypts")),
                    Err(_) | Ok(Some(Ok(_))) => {}
                    Ok(None | Some(Err(_))) => break,
                }
            }
        });
        Self {
            messages,
            stop,
            task,
        }
    }

    /// Stops reading; returns every message received.
    async fn finish(self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        std::mem::take(&mut self.messages.lock().unwrap())
    }
}

/// Writes `frames` to a new mix connection to `mix`, `per_write` at a time, 20 ms apart;
/// returns the connection.
async fn send_frames(mix: SocketAddr, frames: Vec<Vec<u8>>, per_write: usize) -> TcpStream {
    let mut stream = TcpStream::connect(mix).await.unwrap();
    for batch in frames.chunks(per_write) {
        stream.write_all(&batch.concat()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stream
}

/// Panics unless `items` has no duplicates; returns them as a set.
fn distinct(items: Vec<Vec<u8>>, what: &str) -> HashSet<Vec<u8>> {
    let count = items.len();
    let set: HashSet<Vec<u8>> = items.into_iter().collect();
    assert_eq!(set.len(), count, "{what} holds duplicates");
    set
}

/// The promise: each of `acks` arrived once, and acknowledges a message that was delivered
/// or stored. Returns how many acks there were.
fn check_acknowledged(
    traffic: &Traffic,
    acks: Vec<Vec<u8>>,
    delivered: &HashSet<Vec<u8>>,
    stored: &HashSet<Vec<u8>>,
    label: &str,
) -> usize {
    let acks: Vec<Vec<u8>> = distinct(acks, "the acks").into_iter().collect();
    for (_, message) in traffic.acknowledged(&acks) {
        assert!(
            delivered.contains(&message) || stored.contains(&message),
            "[{label}] acknowledged, but neither delivered nor stored: {:?}",
            String::from_utf8_lossy(&message)
        );
    }
    eprintln!(
        "[{label}] {} acks, {} delivered, {} stored",
        acks.len(),
        delivered.len(),
        stored.len()
    );
    acks.len()
}

/// The messages sent to one client.
fn texts(label: &str, indices: impl Iterator<Item = usize>) -> HashSet<Vec<u8>> {
    indices
        .map(|i| format!("{label} {i}").into_bytes())
        .collect()
}

/// `true` once `deadline` passed (the closures given to [`Probe::until`] end on it too, so a
/// fault that is never overcome fails the count assertions after it rather than hanging).
fn past(deadline: tokio::time::Instant) -> bool {
    tokio::time::Instant::now() >= deadline
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: network namespaces and nftables; .ci/run runs it (cargo nextest run --run-ignored only ...)"]
async fn a_lossy_mix_link_loses_nothing_acknowledged() {
    const LABEL: &str = "lossy";
    const MESSAGES: usize = 120;
    let lab = Lab::start("netem-lossy", &[]).await;
    let (online, receiver) = lab.receiver(&lab.good).await;
    let offline = TestClient::new();
    let mut probe = lab.prober().await;
    let mut traffic = Traffic::default();
    let frames = (0..MESSAGES)
        .map(|i| {
            let to = if i % 2 == 0 { &online } else { &offline };
            let text = format!("{LABEL} {i}");
            traffic.frame(&lab.gateway, to.address(), lab.sink.addr(), text.as_bytes())
        })
        .collect();
    let sampler = Sampler::start(lab.gateway.pid());

    // One packet in ten lost each way: TCP resends until every frame is through. One frame
    // per write, so a few hundred packets cross and some are always lost.
    lab.netns.set_loss(&lab.faulty, 10);
    let sender = tokio::spawn(send_frames(lab.mix_over(&lab.faulty), frames, 1));
    let deadline = tokio::time::Instant::now() + SETTLE;
    let sink = &lab.sink;
    probe
        .until(
            &lab,
            5,
            || sink.count() >= MESSAGES || past(deadline),
            LABEL,
        )
        .await;
    let _mix = sender.await.unwrap();
    let dropped = lab.netns.dropped(&lab.faulty);
    eprintln!("[{LABEL}] the lossy link dropped {dropped} packets");
    assert!(dropped > 0, "the lossy link dropped nothing");
    lab.netns.set_loss(&lab.faulty, 0);

    let acks = lab.sink.settle(Duration::from_millis(300)).await;
    let usage = sampler.finish(LABEL);
    let delivered = distinct(receiver.finish().await, "the pushed messages");
    let stored = distinct(
        lab.gateway.stored_contents(&offline.address_bs58()),
        "the store",
    );
    assert_eq!(
        acks, MESSAGES,
        "every frame got through and was acknowledged"
    );
    assert_eq!(delivered, texts(LABEL, (0..MESSAGES).step_by(2)));
    assert_eq!(stored, texts(LABEL, (1..MESSAGES).step_by(2)));
    let acked = check_acknowledged(&traffic, lab.sink.acks(), &delivered, &stored, LABEL);
    assert_eq!(acked, MESSAGES);
    usage.assert_rss_within(MEMORY_BOUND_MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: network namespaces and nftables; .ci/run runs it (cargo nextest run --run-ignored only ...)"]
async fn a_stalled_mix_link_and_a_reset_mid_frame_lose_nothing_acknowledged() {
    const LABEL: &str = "stall";
    const BATCH: usize = 40;
    let lab = Lab::start("netem-stall", &[]).await;
    let offline = TestClient::new();
    let mut probe = lab.prober().await;
    let mut traffic = Traffic::default();
    let mut frames = |range: std::ops::Range<usize>| -> Vec<Vec<u8>> {
        range
            .map(|i| {
                let text = format!("{LABEL} {i}");
                traffic.frame(
                    &lab.gateway,
                    offline.address(),
                    lab.sink.addr(),
                    text.as_bytes(),
                )
            })
            .collect()
    };
    let before = frames(0..BATCH);
    let during = frames(BATCH..2 * BATCH);
    let cut = frames(2 * BATCH..2 * BATCH + 1).remove(0);
    let sampler = Sampler::start(lab.gateway.pid());

    let mut mix = send_frames(lab.mix_over(&lab.faulty), before, 10).await;
    assert_eq!(lab.sink.wait_for(BATCH, SETTLE).await, BATCH);

    // The link stalls for 3 s: what the peer writes meanwhile waits in its socket (written
    // from a task: the peer's send buffer may fill), and the well-behaved peer is served.
    lab.netns.set_loss(&lab.faulty, 100);
    let writer = tokio::spawn(async move {
        mix.write_all(&during.concat()).await.unwrap();
        mix
    });
    let stall_ends = tokio::time::Instant::now() + Duration::from_secs(3);
    probe.until(&lab, 1, || past(stall_ends), LABEL).await;
    assert_eq!(lab.sink.count(), BATCH, "nothing crossed the stalled link");
    assert!(
        lab.netns.dropped(&lab.faulty) > 0,
        "the stall dropped nothing"
    );
    lab.netns.set_loss(&lab.faulty, 0);
    let deadline = tokio::time::Instant::now() + SETTLE;
    let sink = &lab.sink;
    probe
        .until(
            &lab,
            1,
            || sink.count() >= 2 * BATCH || past(deadline),
            LABEL,
        )
        .await;
    assert_eq!(lab.sink.count(), 2 * BATCH, "the stalled frames arrived");
    drop(writer.await.unwrap());

    // Half a frame, then a reset (SO_LINGER 0): the half is dropped, unacknowledged, and the
    // gateway goes on serving the others.
    let mut peer = TcpStream::connect(lab.mix_over(&lab.faulty)).await.unwrap();
    peer.write_all(&cut[..cut.len() / 2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    peer.set_zero_linger().unwrap();
    drop(peer);
    probe.until(&lab, 3, || true, LABEL).await;
    assert_eq!(
        lab.sink.settle(Duration::from_millis(300)).await,
        2 * BATCH,
        "a half frame is not acknowledged"
    );
    assert_eq!(
        lab.gateway.stored_count(&offline.address_bs58()),
        2 * BATCH as i64
    );

    // The same frame, whole, is taken: the half of it left no trace (not in the replay filter).
    lab.gateway
        .inject_at(lab.mix_over(&lab.faulty), std::slice::from_ref(&cut))
        .await;
    assert_eq!(
        lab.sink.wait_for(2 * BATCH + 1, SETTLE).await,
        2 * BATCH + 1
    );
    let usage = sampler.finish(LABEL);
    let stored = distinct(
        lab.gateway.stored_contents(&offline.address_bs58()),
        "the store",
    );
    assert_eq!(stored, texts(LABEL, 0..2 * BATCH + 1));
    let acked = check_acknowledged(&traffic, lab.sink.acks(), &HashSet::new(), &stored, LABEL);
    assert_eq!(acked, 2 * BATCH + 1);
    usage.assert_rss_within(MEMORY_BOUND_MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: network namespaces and nftables; .ci/run runs it (cargo nextest run --run-ignored only ...)"]
async fn next_hops_that_black_hole_or_never_read_hold_up_nothing_else() {
    const LABEL: &str = "next-hops";
    const MESSAGES: usize = 900;
    const QUEUE: usize = 50;
    let lab = Lab::start(
        "netem-hops",
        &[
            ("maximum_connection_buffer_size", &QUEUE.to_string()),
            ("packet_forwarding_maximum_backoff", "'2s'"),
        ],
    )
    .await;
    // One next hop behind a link that drops every packet, one that accepts and never reads
    // (with a small receive window, so the gateway's writes to it soon block), and the sink.
    lab.netns.set_loss(&lab.faulty, 100);
    let dark = AckSink::start_on(lab.faulty.outside_at(0)).await;
    let silent = NextHop::bind_with_receive_buffer(lab.hops.outside_at(0), 1024).await;
    let silent_addr = silent.addr();
    let held = tokio::spawn(async move {
        let stream = silent.accept().await;
        (silent, stream)
    });
    let (online, receiver) = lab.receiver(&lab.good).await;
    let offline = TestClient::new();
    let mut probe = lab.prober().await;
    let mut traffic = Traffic::default();
    let frames = (0..MESSAGES)
        .map(|i| {
            let to = if i % 2 == 0 { &online } else { &offline };
            let hop = [lab.sink.addr(), dark.addr(), silent_addr][i % 3];
            let text = format!("{LABEL} {i}");
            traffic.frame(&lab.gateway, to.address(), hop, text.as_bytes())
        })
        .collect();
    let sampler = Sampler::start(lab.gateway.pid());

    let sender = tokio::spawn(send_frames(lab.mix_over(&lab.good), frames, 10));
    let deadline = tokio::time::Instant::now() + SETTLE;
    let (sink, messages) = (&lab.sink, receiver.messages.clone());
    probe
        .until(
            &lab,
            5,
            || {
                sink.count() >= MESSAGES / 3 && messages.lock().unwrap().len() >= MESSAGES / 2
                    || past(deadline)
            },
            LABEL,
        )
        .await;
    let _mix = sender.await.unwrap();
    assert_eq!(
        lab.sink.settle(Duration::from_millis(300)).await,
        MESSAGES / 3,
        "the acks for the healthy next hop all went out"
    );
    lab.gateway
        .wait_stored(&offline.address_bs58(), (MESSAGES / 2) as i64)
        .await;
    assert_eq!(dark.count(), 0, "nothing crossed the black hole");
    assert!(
        lab.netns.dropped(&lab.faulty) > 0,
        "the black hole dropped nothing"
    );

    // The black hole ends: the gateway reconnects and sends what its bounded queue kept.
    lab.netns.set_loss(&lab.faulty, 0);
    let recovered = dark.wait_for(1, SETTLE).await;
    let recovered = dark.settle(Duration::from_millis(500)).await.max(recovered);
    eprintln!("[{LABEL}] {recovered} acks reached the next hop after its black hole");
    assert!(
        (1..=MESSAGES / 3).contains(&recovered),
        "acks after the black hole: {recovered}"
    );

    let usage = sampler.finish(LABEL);
    let delivered = distinct(receiver.finish().await, "the pushed messages");
    let stored = distinct(
        lab.gateway.stored_contents(&offline.address_bs58()),
        "the store",
    );
    assert_eq!(delivered, texts(LABEL, (0..MESSAGES).step_by(2)));
    assert_eq!(stored, texts(LABEL, (1..MESSAGES).step_by(2)));
    let mut acks = lab.sink.acks();
    acks.extend(dark.acks());
    check_acknowledged(&traffic, acks, &delivered, &stored, LABEL);
    usage.assert_rss_within(MEMORY_BOUND_MIB);

    // What the silent next hop finally reads: the gateway could not write all of its acks
    // (its window closed), so the bounded queue dropped the rest instead of growing.
    let (_silent, mut stream) = held.await.unwrap();
    let mut frame = vec![0u8; 4 + ACK_PACKET_LEN];
    let mut read = 0;
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(500), stream.read_exact(&mut frame)).await
    {
        read += 1;
    }
    eprintln!("[{LABEL}] the silent next hop had {read} acks waiting");
    assert!(
        read < MESSAGES / 3,
        "all {read} acks fit in the socket buffers: the silent next hop never held a write up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: network namespaces and nftables; .ci/run runs it (cargo nextest run --run-ignored only ...)"]
async fn a_client_on_a_slow_link_gets_everything_and_holds_up_no_one() {
    const LABEL: &str = "slow-client";
    const MESSAGES: usize = 100;
    let lab = Lab::start("netem-slow", &[]).await;
    // 1 Mbit/s each way: the 140 KiB of pushes take a second or two; the mix peer sends
    // eight times faster.
    lab.netns.set_rate(&lab.faulty, "1mbit");
    let (slow, receiver) = lab.receiver(&lab.faulty).await;
    let mut probe = lab.prober().await;
    let mut traffic = Traffic::default();
    // Near a packet's payload each, so the pushes are as large as the mix frames.
    let text = |i: usize| format!("{LABEL} {i} {}", ".".repeat(1400)).into_bytes();
    let frames = (0..MESSAGES)
        .map(|i| traffic.frame(&lab.gateway, slow.address(), lab.sink.addr(), &text(i)))
        .collect();
    let sampler = Sampler::start(lab.gateway.pid());

    let sender = tokio::spawn(send_frames(lab.mix_over(&lab.good), frames, 10));
    let deadline = tokio::time::Instant::now() + SETTLE;
    let sink = &lab.sink;
    probe
        .until(
            &lab,
            5,
            || sink.count() >= MESSAGES || past(deadline),
            LABEL,
        )
        .await;
    let _mix = sender.await.unwrap();
    let limited = lab.netns.rate_limited(&lab.faulty);
    eprintln!("[{LABEL}] {limited} packets waited for the slow link");
    assert!(limited > 0, "the rate limit never bit");

    let acks = lab.sink.settle(Duration::from_millis(300)).await;
    let usage = sampler.finish(LABEL);
    let delivered = distinct(receiver.finish().await, "the pushed messages");
    let stored = distinct(
        lab.gateway.stored_contents(&slow.address_bs58()),
        "the store",
    );
    // Pushed, or stored if its push queue was full: either way each exactly once.
    assert!(delivered.is_disjoint(&stored), "both pushed and stored");
    let all: HashSet<Vec<u8>> = delivered.union(&stored).cloned().collect();
    assert_eq!(all, (0..MESSAGES).map(text).collect());
    assert_eq!(acks, MESSAGES);
    let acked = check_acknowledged(&traffic, lab.sink.acks(), &delivered, &stored, LABEL);
    assert_eq!(acked, MESSAGES);
    usage.assert_rss_within(MEMORY_BOUND_MIB);
}
