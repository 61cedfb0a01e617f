//! Egress: packets to next hops (SURB-acks, client packets). One TCP connection per next hop,
//! each with a bounded queue, v8 frames (v7 if configured), connect timeout and capped exponential backoff.
//!
//! `send` never waits: a full queue or too many hops is a counted, logged drop, because a
//! slow or dead next hop must not stall the packets for every other hop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gateway_protocol::framing::FrameVersion;
use gateway_protocol::mix_packet::MixPacket;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::metrics::{EgressDrop, GaugeGuard, Metrics, Outcome};
use super::noise::{self, Noise};
use crate::logging::{RateLimit, WARNING_PERIOD};
use crate::warn_rate_limited;

/// Next hops are chosen by senders (a client's packets, a SURB-ack's first hop), so failures
/// to reach them can come from any number of hops at once: one warning per period.
static NEXT_HOP_FAILURES: RateLimit = RateLimit::new(WARNING_PERIOD);

/// Egress limits (from `[debug]`).
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// Packets queued per next hop.
    pub queue_capacity: usize,
    /// Next hops with an open connection or queue at once.
    pub max_connections: usize,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// First reconnect delay.
    pub initial_backoff: Duration,
    /// Largest reconnect delay.
    pub maximum_backoff: Duration,
    /// Close a connection idle for this long.
    pub idle_timeout: Duration,
    /// v8 (the packet's key rotation travels with it) or v7.
    pub frame_version: FrameVersion,
}

/// Why a packet was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The next hop's queue is full.
    #[error("the queue to this next hop is full")]
    QueueFull,
    /// Too many distinct next hops.
    #[error("too many next hops are in use")]
    TooManyConnections,
    /// The gateway is shutting down.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// The packet's length is not a Sphinx packet size (cannot happen for a decoded packet).
    #[error("the packet has no valid Sphinx size")]
    InvalidPacket,
    /// Noise is required and the directory lists no Noise key for the next hop.
    #[error("the next hop announces no Noise key and mix_noise is required")]
    NoNoiseKey,
}

impl EgressError {
    fn reason(self) -> EgressDrop {
        match self {
            Self::QueueFull => EgressDrop::QueueFull,
            Self::TooManyConnections => EgressDrop::TooManyConnections,
            Self::ShuttingDown => EgressDrop::ShuttingDown,
            Self::InvalidPacket => EgressDrop::InvalidPacket,
            Self::NoNoiseKey => EgressDrop::NoNoiseKey,
        }
    }
}

/// Handle to the egress; cloning shares it.
#[derive(Clone)]
pub struct Egress {
    shared: Arc<Shared>,
}

struct Shared {
    config: EgressConfig,
    hops: Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>,
    noise: Noise,
    metrics: Metrics,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Egress {
    /// An egress whose connection tasks stop when `shutdown` is cancelled (after flushing
    /// what they hold, best effort) and are tracked by `tasks`.
    pub fn new(
        config: EgressConfig,
        noise: Noise,
        metrics: Metrics,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                hops: Mutex::new(HashMap::new()),
                noise,
                metrics,
                shutdown,
                tasks,
            }),
        }
    }

    /// Queues `packet` for its next hop, framed with the configured version (v8 carries its
    /// key rotation). Never waits.
    pub fn send(&self, packet: &MixPacket) -> Result<(), EgressError> {
        let result = self.try_send(packet);
        if let Err(e) = result {
            self.shared.metrics.egress_drop(e.reason());
            debug!(next_hop = %packet.next_hop, error = %e, "packet not forwarded");
        }
        result
    }

    fn try_send(&self, packet: &MixPacket) -> Result<(), EgressError> {
        let shared = &self.shared;
        if shared.shutdown.is_cancelled() {
            return Err(EgressError::ShuttingDown);
        }
        if shared.noise.refuses(packet.next_hop) {
            return Err(EgressError::NoNoiseKey);
        }
        let mut frame = Vec::with_capacity(packet.packet.len() + 4);
        // The packet's length always maps to a size: MixPacket is only built from valid sizes.
        if packet
            .encode_frame(shared.config.frame_version, &mut frame)
            .is_err()
        {
            return Err(EgressError::InvalidPacket);
        }
        let mut hops = shared.hops.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(queue) = hops.get(&packet.next_hop) {
            match queue.try_send(frame) {
                Ok(()) => {
                    shared.metrics.egress_queue_depth.inc();
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Full(_)) => return Err(EgressError::QueueFull),
                // The connection task ended (idle); start a new one below.
                Err(mpsc::error::TrySendError::Closed(returned)) => {
                    hops.remove(&packet.next_hop);
                    frame = returned;
                }
            }
        }
        if hops.len() >= shared.config.max_connections {
            hops.retain(|_, queue| !queue.is_closed());
            if hops.len() >= shared.config.max_connections {
                return Err(EgressError::TooManyConnections);
            }
        }
        let (queue, rx) = mpsc::channel(shared.config.queue_capacity);
        // A fresh queue has room for one frame.
        let _ = queue.try_send(frame);
        shared.metrics.egress_queue_depth.inc();
        hops.insert(packet.next_hop, queue);
        drop(hops);
        let connection = Connection {
            addr: packet.next_hop,
            shared: self.shared.clone(),
        };
        shared.tasks.spawn(connection.run(rx));
        Ok(())
    }
}

/// Bytes of frames written to a next hop with one write at most. What is already queued when
/// the connection gets to write goes out together (~13 regular packets), so a busy hop costs
/// one syscall per batch instead of one per packet; the buffer is kept for the connection's
/// life, so this also bounds its memory.
const WRITE_BATCH_BYTES: usize = 32 * 1024;

struct Connection {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Connection {
    async fn run(self, mut rx: mpsc::Receiver<Vec<u8>>) {
        let config = &self.shared.config;
        let metrics = &self.shared.metrics;
        let mut backoff = config.initial_backoff;
        let mut pending = Batch::default();
        loop {
            if self.shared.shutdown.is_cancelled() && pending.is_empty() && rx.is_empty() {
                break;
            }
            let stream = tokio::select! {
                result = tokio::time::timeout(config.connect_timeout, TcpStream::connect(self.addr)) => result,
                _ = self.shared.shutdown.cancelled(), if pending.is_empty() && rx.is_empty() => break,
            };
            let mut stream = match stream {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    metrics.egress_connect_failures.inc();
                    warn_rate_limited!(NEXT_HOP_FAILURES, next_hop = %self.addr, error = %e, retry_in = ?backoff, "could not connect to next hop");
                    if !self.wait_backoff(&mut backoff).await {
                        break;
                    }
                    continue;
                }
                Err(_) => {
                    metrics.egress_connect_failures.inc();
                    warn_rate_limited!(NEXT_HOP_FAILURES, next_hop = %self.addr, retry_in = ?backoff, "timed out connecting to next hop");
                    if !self.wait_backoff(&mut backoff).await {
                        break;
                    }
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let outcome = match self.shared.noise.egress(self.addr) {
                noise::Egress::Plain => {
                    backoff = config.initial_backoff;
                    let _open = GaugeGuard::hold(&metrics.egress_connections);
                    self.write_loop(&mut stream, &mut rx, &mut pending).await
                }
                noise::Egress::Noise(key) => match self.shared.noise.connect(stream, &key).await {
                    Ok(mut stream) => {
                        metrics
                            .noise_handshakes_initiated
                            .get_or_create(&Outcome::Ok)
                            .inc();
                        backoff = config.initial_backoff;
                        let _open = GaugeGuard::hold(&metrics.egress_connections);
                        self.write_loop(&mut stream, &mut rx, &mut pending).await
                    }
                    Err(e) => {
                        metrics
                            .noise_handshakes_initiated
                            .get_or_create(&Outcome::Failed)
                            .inc();
                        metrics.egress_connect_failures.inc();
                        warn_rate_limited!(NEXT_HOP_FAILURES, next_hop = %self.addr, error = %e, retry_in = ?backoff, "Noise handshake with next hop failed");
                        if !self.wait_backoff(&mut backoff).await {
                            break;
                        }
                        continue;
                    }
                },
                // The directory dropped the hop's key since the packet was queued.
                noise::Egress::NoKey => {
                    metrics.egress_connect_failures.inc();
                    warn_rate_limited!(NEXT_HOP_FAILURES, next_hop = %self.addr, retry_in = ?backoff, "next hop no longer announces a Noise key and mix_noise is required");
                    if !self.wait_backoff(&mut backoff).await {
                        break;
                    }
                    continue;
                }
            };
            match outcome {
                WriteOutcome::Finished => break,
                WriteOutcome::Broken(e) => {
                    warn_rate_limited!(NEXT_HOP_FAILURES, next_hop = %self.addr, error = %e, "connection to next hop failed; reconnecting");
                }
            }
        }
        // Whatever is left is lost: count it so it is never silent.
        rx.close();
        let mut lost = pending.frames;
        while rx.try_recv().is_ok() {
            metrics.egress_queue_depth.dec();
            lost += 1;
        }
        if lost > 0 {
            metrics
                .egress_packets_dropped
                .get_or_create(&EgressDrop::Unreachable)
                .inc_by(lost);
            warn_rate_limited!(NEXT_HOP_FAILURES, next_hop = %self.addr, lost, "dropped packets for an unreachable next hop at shutdown");
        }
    }

    /// Sleeps for the backoff (doubling it up to the maximum); false if shutting down.
    async fn wait_backoff(&self, backoff: &mut Duration) -> bool {
        let delay = *backoff;
        *backoff = (*backoff * 2).min(self.shared.config.maximum_backoff);
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = self.shared.shutdown.cancelled() => false,
        }
    }

    async fn write_loop<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        rx: &mut mpsc::Receiver<Vec<u8>>,
        pending: &mut Batch,
    ) -> WriteOutcome {
        let metrics = &self.shared.metrics;
        let idle_timeout = self.shared.config.idle_timeout;
        // One timer reset per write instead of a new timer per frame.
        let idle = tokio::time::sleep(idle_timeout);
        tokio::pin!(idle);
        let mut closing = false;
        loop {
            if pending.is_empty() {
                let next = tokio::select! {
                    biased;
                    frame = rx.recv() => frame,
                    () = &mut idle, if !closing => {
                        // Idle: stop taking new frames (senders start a fresh connection),
                        // write whatever raced in, then finish.
                        rx.close();
                        closing = true;
                        continue;
                    }
                    _ = self.shared.shutdown.cancelled(), if rx.is_empty() => return WriteOutcome::Finished,
                };
                let Some(frame) = next else {
                    return WriteOutcome::Finished;
                };
                metrics.egress_queue_depth.dec();
                pending.push(&frame);
                // Whatever else is already queued goes out in the same write.
                while pending.bytes.len() < WRITE_BATCH_BYTES {
                    let Ok(frame) = rx.try_recv() else { break };
                    metrics.egress_queue_depth.dec();
                    pending.push(&frame);
                }
            }
            // Flushed: a Noise stream seals into a buffer (plain TCP's flush does nothing).
            let written = match stream.write_all(&pending.bytes).await {
                Ok(()) => stream.flush().await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                // The whole batch is written again after reconnecting: the next hop may see a
                // packet twice (its replay filter drops it), but none is lost here.
                return WriteOutcome::Broken(e);
            }
            metrics.egress_packets_sent.inc_by(pending.frames);
            pending.clear();
            if !closing {
                idle.as_mut()
                    .reset(tokio::time::Instant::now() + idle_timeout);
            }
        }
    }
}

/// Frames taken from a next hop's queue and not yet written, kept across reconnects.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    frames: u64,
}

impl Batch {
    fn push(&mut self, frame: &[u8]) {
        self.bytes.extend_from_slice(frame);
        self.frames += 1;
    }

    fn is_empty(&self) -> bool {
        self.frames == 0
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.frames = 0;
    }
}

enum WriteOutcome {
    Finished,
    Broken(std::io::Error),
}

#[cfg(test)]
mod tests;
