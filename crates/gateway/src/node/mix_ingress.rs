//! The mix port (1789): accepts TCP connections from mix nodes, decodes v7/v8 frames, unwraps
//! each Sphinx packet on the CPU pool, drops replays, and hands final-hop messages to the router
//! — in the order the packets arrived on each connection. Forward hops go to the [`Relay`] when
//! this node has the relay role (`forward_hop_processing`), and are dropped otherwise.
//!
//! A framing error closes the connection (the stream is out of sync); a bad packet only drops
//! that packet. A frame must arrive in full within `frame_timeout` of its first byte and a
//! connection that sends nothing for `idle_timeout` is closed, so a stalled peer cannot hold a
//! connection slot forever.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use gateway_protocol::final_hop::{Hop, UnwrapError, Unwrapped};
use gateway_protocol::framing::{self, Frame, KeyRotation};
use gateway_store::ClientAddress;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use super::address_limit::AddressLimit;
use super::cpu_pool::{CpuPool, JobPanicked, JobResult, QueueId, Runner};
use super::metrics::{GaugeGuard, Metrics, MixClose, MixDrop, Outcome};
use super::noise::{self, Noise};
use super::relay::Relay;
use super::rotation::key_ring::{KeyRing, KeySet, RotationKey};
use super::router::{Delivery, Router};
use super::unwrapper::UnwrapKey as _;

/// Read buffer per connection: a few regular frames, grown as needed for extended ones.
const READ_CHUNK: usize = 16 * 1024;

/// Frames unwrapped by one job at most, and packets an unwrap thread takes at once. The
/// frames of one read go to the pool in a few jobs instead of one each: a job costs a hand-off
/// to an unwrap thread and a wake-up back, which per packet were a third of the async workers'
/// time. A thread takes waiting jobs, of any connections, until they hold this many packets and
/// computes their X25519 together: eight lanes of AVX-512 IFMA.
pub const UNWRAP_BATCH: usize = 8;

/// Numbers the connections, for their queues in the unwrap pool.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(0);

/// Unwrap jobs of one connection, oldest first, with the packets each holds.
type InFlight = VecDeque<(usize, oneshot::Receiver<JobResult<Vec<UnwrapOutcome>>>)>;

/// The unwrap threads.
pub type UnwrapPool = CpuPool<UnwrapJob>;

/// Frames of one connection for the unwrap threads, with the keys to try and where their
/// outcomes go, in the frames' order.
pub struct UnwrapJob {
    frames: Vec<Frame>,
    keys: Arc<KeySet>,
    reply: oneshot::Sender<JobResult<Vec<UnwrapOutcome>>>,
}

/// Starts `workers` unwrap threads (0 = one per core) with room for `capacity` packets.
pub fn unwrap_pool(workers: usize, capacity: usize) -> std::io::Result<UnwrapPool> {
    let runner: Runner<UnwrapJob> = Box::new(unwrap_jobs);
    CpuPool::new("unwrap", workers, capacity, UNWRAP_BATCH, runner)
}

/// Unwraps the frames of every job together (a batch of the pool: jobs of one or several
/// connections) and answers each job with its frames' outcomes. A panic (a bug) costs the
/// batch's packets, each job told so; the thread goes on.
fn unwrap_jobs(jobs: Vec<UnwrapJob>) {
    let outcomes = catch_unwind(AssertUnwindSafe(|| {
        let frames: Vec<(&KeySet, &Frame)> = jobs
            .iter()
            .flat_map(|job| job.frames.iter().map(|frame| (&*job.keys, frame)))
            .collect();
        // A lone packet: the single-packet path; several: their X25519 together.
        match frames.as_slice() {
            [(keys, frame)] => vec![unwrap(keys, frame)],
            _ => unwrap_many(&frames),
        }
    }));
    match outcomes {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for job in jobs {
                let mine = outcomes.by_ref().take(job.frames.len()).collect();
                let _ = job.reply.send(Ok(mine));
            }
        }
        Err(_panicked) => {
            for job in jobs {
                let _ = job.reply.send(Err(JobPanicked));
            }
        }
    }
}

/// What the mix listener needs.
#[derive(Clone)]
pub struct MixIngress {
    /// The gateway's sphinx keys, each with its replay filter.
    pub keys: KeyRing,
    /// Unwrapping threads.
    pub pool: Arc<UnwrapPool>,
    /// Where messages go.
    pub router: Router,
    /// Counters.
    pub metrics: Metrics,
    /// Open connections allowed.
    pub connection_limit: Arc<Semaphore>,
    /// Open connections allowed per source address.
    pub address_limit: AddressLimit,
    /// Packets one connection may have in unwrapping.
    pub max_in_flight: usize,
    /// Reads completing at most this many frames, with nothing of the connection in the pool,
    /// are unwrapped in the connection's task.
    pub inline_max_frames: usize,
    /// A frame must be complete within this of its first byte.
    pub frame_timeout: Duration,
    /// A connection silent for this long is closed.
    pub idle_timeout: Duration,
    /// The relay role: where forward hops go; `None` drops them (a pure gateway).
    pub relay: Option<Relay>,
    /// Whether a connection speaks Noise, and the handshake.
    pub noise: Noise,
}

impl MixIngress {
    /// Accepts connections until `shutdown`; each connection is a task tracked by `tasks`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) {
        let metrics = self.metrics.clone();
        while let Some((stream, peer)) = super::listeners::accept(&listener, &shutdown, "mix").await
        {
            let Ok(permit) = self.connection_limit.clone().try_acquire_owned() else {
                metrics
                    .mix_connections_closed
                    .get_or_create(&MixClose::ConnectionLimit)
                    .inc();
                debug!(%peer, "mix connection refused: limit reached");
                continue;
            };
            let Some(slot) = self.address_limit.try_acquire(peer.ip()) else {
                metrics
                    .mix_connections_closed
                    .get_or_create(&MixClose::AddressLimit)
                    .inc();
                debug!(%peer, "mix connection refused: its address holds the most allowed");
                continue;
            };
            let ingress = self.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                let _open = GaugeGuard::hold(&ingress.metrics.mix_connections_active);
                ingress.start(stream, peer, shutdown).await;
                drop((permit, slot));
            });
        }
        info!("mix listener stopped");
    }

    /// Tells Noise from plain TCP by the first byte, runs the handshake if it is Noise, then
    /// reads frames until the connection ends.
    async fn start(&self, stream: TcpStream, peer: SocketAddr, shutdown: CancellationToken) {
        let metrics = &self.metrics;
        let mut first = [0u8; 1];
        let peeked = tokio::select! {
            peeked = tokio::time::timeout(self.idle_timeout, stream.peek(&mut first)) => peeked,
            _ = shutdown.cancelled() => return,
        };
        match peeked {
            Ok(Ok(1..)) => {}
            // Closed or failed before sending anything.
            Ok(_) => return,
            Err(_) => {
                metrics
                    .mix_connections_closed
                    .get_or_create(&MixClose::IdleTimeout)
                    .inc();
                debug!(%peer, "mix connection sent nothing in time; closing");
                return;
            }
        }
        match self.noise.ingress(peer.ip(), first[0]) {
            noise::Ingress::Plain => self.handle(stream, peer, shutdown).await,
            noise::Ingress::NoiseRequired => {
                metrics
                    .mix_connections_closed
                    .get_or_create(&MixClose::NoiseRequired)
                    .inc();
                debug!(%peer, "mix peer must speak Noise and sent plain TCP; closing");
            }
            noise::Ingress::Noise => {
                let accepted = tokio::select! {
                    accepted = self.noise.accept(stream) => accepted,
                    _ = shutdown.cancelled() => return,
                };
                match accepted {
                    Ok(stream) => {
                        metrics
                            .noise_handshakes_accepted
                            .get_or_create(&Outcome::Ok)
                            .inc();
                        self.handle(stream, peer, shutdown).await;
                    }
                    Err(e) => {
                        metrics
                            .noise_handshakes_accepted
                            .get_or_create(&Outcome::Failed)
                            .inc();
                        metrics
                            .mix_connections_closed
                            .get_or_create(&MixClose::NoiseHandshake)
                            .inc();
                        debug!(%peer, error = %e, "mix connection's Noise handshake failed; closing");
                    }
                }
            }
        }
    }

    async fn handle<S: AsyncRead + Unpin>(
        &self,
        mut stream: S,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) {
        let metrics = self.metrics.clone();
        // This connection's queue in the unwrap pool, where connections take turns.
        let connection: QueueId = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        let mut in_flight = InFlight::new();
        // Packets in `in_flight`, which `max_in_flight` bounds.
        let mut packets_in_flight = 0usize;
        let mut open = true;
        // When the peer must have sent more: a whole frame, or anything at all.
        let mut deadline = tokio::time::Instant::now() + self.idle_timeout;
        while open || !in_flight.is_empty() {
            let may_read = open && packets_in_flight < self.max_in_flight;
            tokio::select! {
                biased;
                result = async { (&mut in_flight.front_mut().expect("guarded").1).await }, if !in_flight.is_empty() => {
                    let (packets, _) = in_flight.pop_front().expect("guarded");
                    packets_in_flight -= packets;
                    match result {
                        Ok(Ok(outcomes)) => {
                            for outcome in outcomes {
                                self.finish(outcome).await;
                            }
                        }
                        Ok(Err(_panicked)) => metrics.mix_drops(MixDrop::UnwrapFailed, packets),
                        Err(_) => metrics.mix_drops(MixDrop::ShuttingDown, packets),
                    }
                }
                _ = shutdown.cancelled(), if open => {
                    // Stop reading; packets already read are still processed.
                    open = false;
                }
                read = stream.read_buf(&mut buf), if may_read => {
                    match read {
                        Ok(0) => open = false,
                        Ok(read) => {
                            let frame_started = buf.len() == read;
                            let buffered = buf.len();
                            if let Err(reason) = self.decode_available(connection, &mut buf, &mut in_flight, &mut packets_in_flight).await {
                                metrics.mix_connections_closed.get_or_create(&MixClose::CodecError).inc();
                                debug!(%peer, error = %reason, "mix connection stream corrupted; closing");
                                open = false;
                            }
                            if buf.capacity() - buf.len() < 1024 {
                                buf.reserve(READ_CHUNK);
                            }
                            let now = tokio::time::Instant::now();
                            if buf.is_empty() {
                                deadline = now + self.idle_timeout;
                            } else if frame_started || buf.len() < buffered {
                                // A new frame began in this read.
                                deadline = now + self.frame_timeout;
                            }
                        }
                        Err(e) => {
                            // Plain TCP reports only I/O errors; Noise also reports frames
                            // that do not open (corrupt, forged or out of order).
                            if e.kind() == std::io::ErrorKind::InvalidData {
                                metrics.mix_connections_closed.get_or_create(&MixClose::NoiseStream).inc();
                            }
                            debug!(%peer, error = %e, "mix connection read failed");
                            open = false;
                        }
                    }
                }
                // Only while we wait for the peer: not while our own unwrapping holds reads back.
                () = tokio::time::sleep_until(deadline), if may_read => {
                    let (reason, what) = if buf.is_empty() {
                        (MixClose::IdleTimeout, "sent nothing")
                    } else {
                        (MixClose::FrameTimeout, "did not complete its frame")
                    };
                    metrics.mix_connections_closed.get_or_create(&reason).inc();
                    debug!(%peer, "mix connection {what} in time; closing");
                    open = false;
                }
            }
        }
    }

    /// Submits every complete frame in `buf` for unwrapping, in order, a few per job.
    async fn decode_available(
        &self,
        connection: QueueId,
        buf: &mut Vec<u8>,
        in_flight: &mut InFlight,
        packets_in_flight: &mut usize,
    ) -> Result<(), framing::FramingError> {
        let mut consumed = 0;
        let mut frames = Vec::new();
        let result = loop {
            match framing::decode(&buf[consumed..]) {
                Ok(Some((frame, used))) => {
                    consumed += used;
                    frames.push(frame);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        buf.drain(..consumed);
        let metrics = &self.metrics;
        metrics.mix_packets_received.inc_by(frames.len() as u64);
        if in_flight.is_empty() && frames.len() <= self.inline_max_frames {
            // A packet that arrived on its own, with none of this connection's before it in
            // the pool (so order is kept): unwrapping it here (~35 µs) costs less than handing
            // it to an unwrap thread and being woken with the result, which for packets
            // arriving one at a time was as much again. Bursts still go to the pool, which
            // spreads them over the cores.
            let keys = self.keys.current();
            for frame in frames {
                match catch_unwind(AssertUnwindSafe(|| unwrap(&keys, &frame))) {
                    Ok(outcome) => self.finish(outcome).await,
                    Err(_panicked) => metrics.mix_drop(MixDrop::UnwrapFailed),
                }
            }
            return result;
        }
        // At most UNWRAP_BATCH frames per job: a long read keeps several threads busy, and
        // the threads gather short jobs of several connections into batches of their own.
        let mut frames = frames.into_iter().peekable();
        let keys = self.keys.current();
        while frames.peek().is_some() {
            let job: Vec<Frame> = frames.by_ref().take(UNWRAP_BATCH).collect();
            let packets = job.len();
            let (reply, rx) = oneshot::channel();
            let job = UnwrapJob {
                frames: job,
                keys: keys.clone(),
                reply,
            };
            match self.pool.submit(connection, packets, job).await {
                Ok(()) => {
                    in_flight.push_back((packets, rx));
                    *packets_in_flight += packets;
                }
                Err(_) => metrics.mix_drops(MixDrop::ShuttingDown, packets),
            }
        }
        metrics
            .unwrap_connections_waiting
            .set(i64::try_from(self.pool.queues_waiting()).unwrap_or(i64::MAX));
        result
    }

    /// Replay check, then route the message (final hop), relay it (forward hop) or drop it.
    async fn finish(&self, outcome: UnwrapOutcome) {
        let decided = dispatch(
            outcome,
            self.relay.as_ref(),
            &self.metrics,
            tokio::time::Instant::now(),
        );
        if let Some((destination, delivery)) = decided {
            self.router.deliver(destination, delivery).await;
        }
    }
}

/// Everything after unwrapping that needs no I/O: count, check the replay tag, hand a forward
/// hop to the relay (or drop it), and return a final hop's message for the router.
fn dispatch(
    outcome: UnwrapOutcome,
    relay: Option<&Relay>,
    metrics: &Metrics,
    now: tokio::time::Instant,
) -> Option<(ClientAddress, Delivery)> {
    metrics.unwrap_seconds.observe(outcome.elapsed_seconds);
    let Some(key) = outcome.key else {
        metrics.mix_drop(MixDrop::NoKeyForRotation);
        debug!(rotation = ?outcome.key_rotation, "mix packet dropped: no sphinx key of its rotation is held");
        return None;
    };
    let unwrapped = match outcome.result {
        Ok(u) => u,
        Err(e) => {
            metrics.mix_drop(match e {
                UnwrapError::MissingSurbAck { .. } | UnwrapError::MalformedSurbAck(_) => {
                    MixDrop::MalformedSurbAck
                }
                UnwrapError::MalformedNextHop(_) => MixDrop::MalformedNextHop,
                UnwrapError::Replayed => MixDrop::Replay,
                _ => MixDrop::UnwrapFailed,
            });
            debug!(error = %e, "mix packet dropped");
            return None;
        }
    };
    let fresh = {
        let mut filter = key.replay.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = filter.check_and_insert_at(&unwrapped.replay_tag, now.into_std());
        metrics.replay_filter(&filter);
        fresh
    };
    if !fresh {
        metrics.mix_drop(MixDrop::Replay);
        debug!("replayed mix packet dropped");
        return None;
    }
    match unwrapped.hop {
        Hop::Forward(hop) => {
            match relay {
                // The relay counts its own refusals.
                Some(relay) => {
                    let _ = relay.accept(hop, outcome.key_rotation, now);
                }
                None => {
                    metrics.mix_drop(MixDrop::ForwardHop);
                    debug!("forward-hop packet dropped: this node is a gateway only");
                }
            }
            None
        }
        Hop::Final(final_hop) => {
            metrics.mix_packets_unwrapped.inc();
            let delivery = Delivery {
                message: final_hop.message,
                ack: final_hop.ack,
                unwrapped_at: now.into_std(),
            };
            Some((ClientAddress::from_bytes(final_hop.destination), delivery))
        }
    }
}

/// What an unwrap job returns.
struct UnwrapOutcome {
    result: Result<Unwrapped, UnwrapError>,
    /// The key that unwrapped it (or last failed to); `None` when no key of the frame's
    /// rotation is held.
    key: Option<Arc<RotationKey>>,
    /// The frame's key rotation, which a relayed packet keeps.
    key_rotation: KeyRotation,
    elapsed_seconds: f64,
}

/// Unwraps `frame` with the key of its rotation (unmarked: the primary, then the secondary
/// if the header does not verify under the primary), skipping the payload of a packet whose
/// replay tag that key's filter already holds (about a fifth of a final hop's unwrap, three
/// fifths of a forward hop's). Only looked up here: `dispatch` records the tag once the
/// packet has unwrapped, and is the check that counts for two copies unwrapped at the same
/// time.
fn unwrap(keys: &KeySet, frame: &Frame) -> UnwrapOutcome {
    let start = Instant::now();
    let mut outcome = UnwrapOutcome {
        result: Err(UnwrapError::Replayed),
        key: None,
        key_rotation: frame.header.key_rotation,
        elapsed_seconds: 0.0,
    };
    for key in keys.candidates(frame.header.key_rotation) {
        outcome.result = key.unwrapper.unwrap_frame_checked(frame, |tag| {
            !key.replay
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(tag)
        });
        outcome.key = Some(key.clone());
        // Only a header that does not verify says "another key"; any other failure is the
        // packet's.
        if !matches!(outcome.result, Err(UnwrapError::HeaderIntegrity(_))) {
            break;
        }
    }
    outcome.elapsed_seconds = start.elapsed().as_secs_f64();
    outcome
}

/// [`unwrap`] of each frame with its keys, with the frames that try the same key unwrapped
/// together (on the fast path, the X25519 of all their α at once): the results, keys and
/// rotations of `unwrap` on each frame, frame by frame. A frame whose header does not verify
/// under its first key tries its next one in a second round, as in `unwrap`. Each outcome's
/// `elapsed_seconds` is the batch's time shared out equally.
fn unwrap_many(frames: &[(&KeySet, &Frame)]) -> Vec<UnwrapOutcome> {
    let start = Instant::now();
    let mut outcomes: Vec<UnwrapOutcome> = frames
        .iter()
        .map(|(_, frame)| UnwrapOutcome {
            result: Err(UnwrapError::Replayed),
            key: None,
            key_rotation: frame.header.key_rotation,
            elapsed_seconds: 0.0,
        })
        .collect();
    let mut candidates: Vec<_> = frames
        .iter()
        .map(|(keys, frame)| keys.candidates(frame.header.key_rotation))
        .collect();
    let mut pending: Vec<usize> = (0..frames.len()).collect();
    while !pending.is_empty() {
        // the pending frames by the next key they try (a frame with none left is done)
        let mut groups: Vec<(&Arc<RotationKey>, Vec<usize>)> = Vec::new();
        for i in pending.drain(..) {
            let Some(key) = candidates[i].next() else {
                continue;
            };
            match groups.iter_mut().find(|(k, _)| Arc::ptr_eq(k, key)) {
                Some((_, members)) => members.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        for (key, members) in groups {
            let batch: Vec<&Frame> = members.iter().map(|&i| frames[i].1).collect();
            let results = key.unwrapper.unwrap_frames_checked(&batch, |tag| {
                !key.replay
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .contains(tag)
            });
            for (i, result) in members.into_iter().zip(results) {
                // only a header that does not verify says "another key"
                if matches!(result, Err(UnwrapError::HeaderIntegrity(_))) {
                    pending.push(i);
                }
                outcomes[i].result = result;
                outcomes[i].key = Some(key.clone());
            }
        }
    }
    let elapsed_seconds = start.elapsed().as_secs_f64() / frames.len().max(1) as f64;
    for outcome in &mut outcomes {
        outcome.elapsed_seconds = elapsed_seconds;
    }
    outcomes
}

#[cfg(test)]
mod tests;
