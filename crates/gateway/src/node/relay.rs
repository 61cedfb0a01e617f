//! The mix relay role: a forward-hop packet waits out the delay its sender put in the Sphinx
//! header (capped at `maximum_forward_delay`), then goes to its next hop through egress.
//!
//! Waiting packets sit in one bounded queue ordered by deadline, served by one timer task, so
//! the cost of delaying is a heap entry per packet, never a task or timer per packet. A full
//! queue is a counted drop (`mix_packets_dropped{reason="relay_queue_full"}`): the sender's
//! SURB-ack never comes back and it retransmits, which is how the mixnet handles any loss.
//!
//! # Calling contract
//! [`Relay::new`] → spawn [`Relay::run`] → [`Relay::accept`] from the mix connections, any
//! number of times → after the mix connections have finished, [`Relay::stop`] and await `run`.
//! On stop, packets still waiting are handed to egress at once (their delay cut short) rather
//! than lost, and any later `accept` forwards immediately.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gateway_protocol::final_hop::ForwardHop;
use gateway_protocol::framing::KeyRotation;
use gateway_protocol::mix_packet::MixPacket;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::egress::{Egress, EgressError};
use super::metrics::{Metrics, MixDrop};
use crate::config::Tuning;

/// The relay of a node whose `forward_hop_processing` is on, with its timer task running and
/// forwarding through `egress`; `None` for a gateway only.
pub fn start(debug: &Tuning, egress: Egress, metrics: Metrics) -> Option<RelayHandle> {
    if !debug.forward_hop_processing {
        return None;
    }
    let config = RelayConfig {
        maximum_delay: debug.maximum_forward_delay,
        queue_capacity: debug.forward_queue_capacity.get(),
    };
    info!(
        maximum_delay = %humantime::format_duration(config.maximum_delay),
        queue_capacity = config.queue_capacity,
        "mix relay role on: forward-hop packets are passed on after their delay"
    );
    let forward: Forward = Arc::new(move |packet| egress.send(packet));
    let relay = Relay::new(config, forward, metrics);
    let task = tokio::spawn(relay.clone().run());
    Some(RelayHandle { relay, task })
}

/// A running relay.
pub struct RelayHandle {
    /// What the mix connections hand forward hops to.
    pub relay: Relay,
    task: JoinHandle<()>,
}

impl RelayHandle {
    /// Stops the timer task once it has forwarded every waiting packet.
    pub async fn stop(self) {
        self.relay.stop();
        let _ = self.task.await;
    }
}

/// Relay limits (from `[debug]`).
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Longest a packet is held, whatever its header asks for.
    pub maximum_delay: Duration,
    /// Packets waiting for their delay at once; more are dropped and counted.
    pub queue_capacity: usize,
}

/// Hands a packet to egress; `Egress::send` in the gateway, a recorder in tests.
pub type Forward = Arc<dyn Fn(&MixPacket) -> Result<(), EgressError> + Send + Sync>;

/// Why a forward-hop packet was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The delay queue is at capacity.
    #[error("the relay's delay queue is full")]
    QueueFull,
    /// The re-wrapped packet has no Sphinx size (cannot happen: Sphinx keeps the size).
    #[error("the forward-hop packet has no valid Sphinx size")]
    InvalidPacket,
    /// Egress refused the packet (full queue, too many next hops, shutting down).
    #[error("egress refused the packet: {0}")]
    Egress(EgressError),
}

impl RelayError {
    /// The `mix_packets_dropped` reason.
    pub fn reason(self) -> MixDrop {
        match self {
            Self::QueueFull => MixDrop::RelayQueueFull,
            Self::InvalidPacket => MixDrop::RelayInvalidPacket,
            Self::Egress(_) => MixDrop::RelayEgressRefused,
        }
    }
}

/// The relay; cloning shares it.
#[derive(Clone)]
pub struct Relay {
    shared: Arc<Shared>,
}

struct Shared {
    config: RelayConfig,
    queue: Mutex<Queue>,
    /// Woken when a packet becomes the earliest deadline.
    wake: Notify,
    stop: CancellationToken,
    forward: Forward,
    metrics: Metrics,
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Waiting>,
    /// Ties between equal deadlines go to the packet that came first.
    next_seq: u64,
    /// Set once the timer task has stopped: later packets are forwarded at once.
    stopped: bool,
}

/// A packet and when it is due.
struct Waiting {
    due: Instant,
    seq: u64,
    packet: MixPacket,
}

// `BinaryHeap` is a max-heap: the earliest deadline must compare greatest.
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Waiting {}

/// What [`Relay::accept`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// No delay: handed to egress.
    Forwarded,
    /// Waiting for this long.
    Delayed(Duration),
}

impl Relay {
    /// A relay that hands packets to `forward` once due.
    pub fn new(config: RelayConfig, forward: Forward, metrics: Metrics) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                queue: Mutex::new(Queue::default()),
                wake: Notify::new(),
                stop: CancellationToken::new(),
                forward,
                metrics,
            }),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Schedules a forward hop that arrived in a frame with `key_rotation` (the outgoing
    /// packet keeps it). Never waits. Every refusal is counted as a dropped mix packet.
    pub fn accept(
        &self,
        hop: ForwardHop,
        key_rotation: KeyRotation,
        now: Instant,
    ) -> Result<Accepted, RelayError> {
        let result = self.try_accept(hop, key_rotation, now);
        if let Err(e) = result {
            self.shared.metrics.mix_drop(e.reason());
            debug!(error = %e, "forward-hop packet dropped");
        }
        result
    }

    fn try_accept(
        &self,
        hop: ForwardHop,
        key_rotation: KeyRotation,
        now: Instant,
    ) -> Result<Accepted, RelayError> {
        let ForwardHop {
            next_hop,
            delay,
            packet,
        } = hop;
        let packet = MixPacket::new(next_hop, key_rotation, packet)
            .map_err(|_| RelayError::InvalidPacket)?;
        let metrics = &self.shared.metrics;
        let delay = if delay > self.shared.config.maximum_delay {
            metrics.relay_delays_capped.inc();
            self.shared.config.maximum_delay
        } else {
            delay
        };
        if !delay.is_zero() {
            let mut queue = self.queue();
            if !queue.stopped {
                if queue.heap.len() >= self.shared.config.queue_capacity {
                    return Err(RelayError::QueueFull);
                }
                let due = now + delay;
                let earliest = queue.heap.peek().is_none_or(|head| due < head.due);
                let seq = queue.next_seq;
                queue.next_seq += 1;
                queue.heap.push(Waiting { due, seq, packet });
                metrics.relay_queue_depth.inc();
                drop(queue);
                if earliest {
                    self.shared.wake.notify_one();
                }
                return Ok(Accepted::Delayed(delay));
            }
        }
        self.forward(&packet)?;
        Ok(Accepted::Forwarded)
    }

    fn forward(&self, packet: &MixPacket) -> Result<(), RelayError> {
        (self.shared.forward)(packet).map_err(RelayError::Egress)?;
        self.shared.metrics.relay_packets_forwarded.inc();
        Ok(())
    }

    /// Packets waiting for their delay.
    pub fn waiting(&self) -> usize {
        self.queue().heap.len()
    }

    /// The timer task: forwards each packet when it is due, until [`stop`](Self::stop); then
    /// forwards whatever still waits.
    pub async fn run(self) {
        loop {
            let next_due = self.forward_due(Instant::now());
            tokio::select! {
                _ = self.shared.stop.cancelled() => break,
                _ = self.shared.wake.notified() => {}
                _ = sleep_until(next_due) => {}
            }
        }
        let rest: Vec<Waiting> = {
            let mut queue = self.queue();
            queue.stopped = true;
            std::mem::take(&mut queue.heap).into_vec()
        };
        if !rest.is_empty() {
            debug!(
                packets = rest.len(),
                "shutting down: forwarding delayed packets now"
            );
        }
        self.send_all(rest);
    }

    /// Asks [`run`](Self::run) to finish.
    pub fn stop(&self) {
        self.shared.stop.cancel();
    }

    /// Forwards every packet due by `now`; returns the next deadline, if any.
    fn forward_due(&self, now: Instant) -> Option<Instant> {
        let (due, next) = {
            let mut queue = self.queue();
            let mut due = Vec::new();
            while queue.heap.peek().is_some_and(|head| head.due <= now) {
                due.extend(queue.heap.pop());
            }
            (due, queue.heap.peek().map(|head| head.due))
        };
        self.send_all(due);
        next
    }

    fn send_all(&self, packets: Vec<Waiting>) {
        for waiting in packets {
            self.shared.metrics.relay_queue_depth.dec();
            if let Err(e) = self.forward(&waiting.packet) {
                self.shared.metrics.mix_drop(e.reason());
                debug!(next_hop = %waiting.packet.next_hop, error = %e, "delayed packet dropped");
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
