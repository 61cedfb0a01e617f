//! The soak's mix-side traffic: fresh final-hop packets for random clients, built while the
//! run goes on (hours of packets do not fit in memory), written at a steady rate over a few
//! TCP connections to the mix port.
//!
//! Builder threads fill a small bounded queue of batches; one writer thread takes them and
//! writes each packet at its due time, recording the send in the ledger first (so a receipt
//! can never precede its send).

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::RngExt as _;

use super::ledger::Ledger;
use crate::packets::{self, Route};

/// Batches built ahead of the writer: enough to ride out a slow build, little memory.
const QUEUE: usize = 8;
/// A batch is this much of a second of traffic.
const BATCHES_PER_SECOND: f64 = 20.0;

/// What the feed needs.
pub struct FeedPlan {
    /// Where the packets go.
    pub route: Route,
    /// The clients' addresses.
    pub recipients: Vec<[u8; 32]>,
    /// Where their SURB-acks go.
    pub ack_hops: Vec<SocketAddr>,
    /// Packets per second.
    pub rate: f64,
    /// TCP connections to the mix port.
    pub connections: usize,
    /// Threads building packets.
    pub builders: usize,
    /// Clock zero of the ledger's times.
    pub epoch: Instant,
}

/// The running feed; [`Feed::stop`] ends it.
pub struct Feed {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Feed {
    /// Starts the builders and the writer.
    pub fn start(plan: FeedPlan, ledger: Arc<Ledger>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !plan.recipients.is_empty() && !plan.ack_hops.is_empty(),
            "the feed needs recipients and ack hops"
        );
        anyhow::ensure!(plan.rate > 0.0, "the rate must be positive");
        let stop = Arc::new(AtomicBool::new(false));
        let next_id = Arc::new(AtomicU64::new(0));
        let (batches, queue) = sync_channel(QUEUE);
        let batch = ((plan.rate / BATCHES_PER_SECOND).ceil() as usize).max(1);
        let plan = Arc::new(plan);
        let mut threads = Vec::new();
        for n in 0..plan.builders.max(1) {
            let (plan, stop, next_id, batches) =
                (plan.clone(), stop.clone(), next_id.clone(), batches.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("soak-build-{n}"))
                    .spawn(move || build(&plan, batch, &stop, &next_id, &batches))?,
            );
        }
        drop(batches);
        let streams = (0..plan.connections.max(1))
            .map(|_| connect(plan.route.mix_addr))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let writer = Writer {
            plan: plan.clone(),
            ledger,
            streams,
            stop: stop.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name("soak-write".into())
                .spawn(move || writer.run(&queue))?,
        );
        Ok(Self { stop, threads })
    }

    /// Stops sending and waits for the threads.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    // A gateway that stops reading must not hold the writer past the end of the run.
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// Builds batches of `(id, frame)` until stopped or the writer is gone.
fn build(
    plan: &FeedPlan,
    batch: usize,
    stop: &AtomicBool,
    next_id: &AtomicU64,
    batches: &SyncSender<Vec<(u64, Vec<u8>)>>,
) {
    let mut rng = rand::rng();
    while !stop.load(Ordering::Relaxed) {
        let first = next_id.fetch_add(batch as u64, Ordering::Relaxed);
        let frames = (first..first + batch as u64)
            .map(|id| {
                let recipient = plan.recipients[rng.random_range(0..plan.recipients.len())];
                let ack_hop = plan.ack_hops[id as usize % plan.ack_hops.len()];
                (id, packets::build(&plan.route, recipient, ack_hop, id))
            })
            .collect();
        if batches.send(frames).is_err() {
            return;
        }
    }
}

struct Writer {
    plan: Arc<FeedPlan>,
    ledger: Arc<Ledger>,
    streams: Vec<TcpStream>,
    stop: Arc<AtomicBool>,
}

impl Writer {
    /// Writes packet `n` at `start + n / rate`; a late thread catches up without sleeping.
    fn run(mut self, queue: &Receiver<Vec<(u64, Vec<u8>)>>) {
        let start = Instant::now();
        let mut n: u64 = 0;
        while !self.stop.load(Ordering::Relaxed) {
            let batch = match queue.recv_timeout(Duration::from_millis(100)) {
                Ok(batch) => batch,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            for (id, frame) in batch {
                let due = start + Duration::from_secs_f64(n as f64 / self.plan.rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                let connection = n as usize % self.streams.len();
                n += 1;
                self.write(connection, id, &frame);
            }
        }
    }

    fn write(&mut self, connection: usize, id: u64, frame: &[u8]) {
        let ns = u64::try_from(self.plan.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.ledger.sent(id, ns);
        if let Err(e) = self.streams[connection].write_all(frame) {
            self.ledger
                .error(|| format!("writing to the mix port: {e}"));
            // The packet is lost with the connection; the books show it as unfinished.
            match connect(self.plan.route.mix_addr) {
                Ok(stream) => self.streams[connection] = stream,
                Err(e) => self
                    .ledger
                    .error(|| format!("reconnecting to the mix port: {e}")),
            }
        }
    }
}
