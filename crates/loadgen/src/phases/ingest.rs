//! Mix-side ingest to connected clients: pre-built packets over several TCP connections to
//! the mix port, as fast as the gateway takes them (peak), then paced at half the peak for
//! the latency from mix ingress (our write to the socket) to client receipt (the pushed
//! frame decrypted by the client).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::AsyncWriteExt as _;
use tokio::task::JoinSet;

use super::{source_ip, Context, CpuMeter, CpuUse};
use crate::client::{open_pushed, Connection, Identity, Incoming};
use crate::mix_link::MixLink;
use crate::packets::{self, message_id, Packet, FRAME_LEN};
use crate::stats::{per_second, Latency};
use crate::target::Software;

/// Frames written to a mix connection at once when not pacing.
const WRITE_BATCH: usize = 16;

/// Send and receive times of a range of packet ids, in ns since the epoch (0 = not yet).
pub struct Timeline {
    first_id: u64,
    sent_ns: Vec<AtomicU64>,
    received_ns: Vec<AtomicU64>,
    received: AtomicU64,
    unexpected: AtomicU64,
}

impl Timeline {
    /// Room for ids `first_id .. first_id + len`.
    pub fn new(first_id: u64, len: usize) -> Self {
        Self {
            first_id,
            sent_ns: (0..len).map(|_| AtomicU64::new(0)).collect(),
            received_ns: (0..len).map(|_| AtomicU64::new(0)).collect(),
            received: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
        }
    }

    fn slot(&self, id: u64) -> Option<usize> {
        let slot = usize::try_from(id.checked_sub(self.first_id)?).ok()?;
        (slot < self.sent_ns.len()).then_some(slot)
    }

    fn mark_sent(&self, id: u64, ns: u64) {
        if let Some(slot) = self.slot(id) {
            self.sent_ns[slot].store(ns.max(1), Ordering::Relaxed);
        }
    }

    /// `id`'s send and receipt times (0 = not yet), if it is in this timeline.
    fn times(&self, id: u64) -> Option<(u64, u64)> {
        let slot = self.slot(id)?;
        Some((
            self.sent_ns[slot].load(Ordering::Relaxed),
            self.received_ns[slot].load(Ordering::Relaxed),
        ))
    }

    /// Records a receipt; an unknown id or a second receipt is counted as unexpected.
    pub fn mark_received(&self, id: u64, ns: u64) {
        let fresh = self
            .slot(id)
            .is_some_and(|slot| self.received_ns[slot].swap(ns.max(1), Ordering::Relaxed) == 0);
        if fresh {
            self.received.fetch_add(1, Ordering::Relaxed);
        } else {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Packets received once.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Receipts of unknown or repeated ids.
    pub fn unexpected(&self) -> u64 {
        self.unexpected.load(Ordering::Relaxed)
    }

    /// Writes `id,sent_ns,received_ns` for every id in `range` to `path` (0 = never), times in
    /// ns since the run's epoch: where a tail came from (a burst, a stall, a slow client) shows
    /// in the order of the packets, which the percentiles lose.
    pub fn write_trace(&self, range: std::ops::Range<u64>, path: &Path) -> anyhow::Result<()> {
        use std::io::Write as _;
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create the latency trace {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        writeln!(out, "id,sent_ns,received_ns")?;
        for id in range {
            let Some((sent, received)) = self.times(id) else {
                continue;
            };
            writeln!(out, "{id},{sent},{received}")?;
        }
        out.flush()
            .with_context(|| format!("cannot write the latency trace {}", path.display()))
    }

    /// For the ids in `range`: the first send, the last receipt, and every latency in µs.
    pub fn summarise(&self, range: std::ops::Range<u64>) -> (u64, u64, Vec<u64>) {
        let (mut first_sent, mut last_received) = (u64::MAX, 0);
        let mut latencies = Vec::with_capacity((range.end - range.start) as usize);
        for id in range {
            let Some((sent, received)) = self.times(id) else {
                continue;
            };
            if sent > 0 {
                first_sent = first_sent.min(sent);
            }
            if sent > 0 && received > 0 {
                last_received = last_received.max(received);
                latencies.push(received.saturating_sub(sent) / 1000);
            }
        }
        (first_sent, last_received, latencies)
    }
}

/// One ingest run's figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestRun {
    /// Packets sent.
    pub packets: usize,
    /// Send rate asked for (0 = as fast as the gateway takes them).
    pub paced_packets_per_s: f64,
    /// Packets per second from the first write to the last receipt (or last ack).
    pub packets_per_s: f64,
    /// Packets the clients received (online) or acks that came back (offline).
    pub completed: u64,
    /// SURB-acks that reached the sinks.
    pub acks: u64,
    /// Latency from our write on the mix connection to the client's receipt (online only).
    pub latency: Option<Latency>,
    /// CPU use during the run.
    pub cpu: CpuUse,
}

/// Mix connections kept open after their packets were written: a gateway may drop what it
/// read but has not yet processed when the connection closes (nym-node drops packets still
/// waiting for its batched replay check), so they are closed (dropped) only once everything
/// written was counted at the sinks or the clients.
pub struct OpenLinks(#[allow(dead_code)] Vec<Box<dyn std::any::Any + Send>>);

/// Writes `packets` over `connections` TCP connections to the mix port, packet `i` on
/// connection `i % connections`; `rate` > 0 paces the total to that many packets per second.
/// The connections stay open until the returned [`OpenLinks`] is dropped.
pub async fn send_packets(
    ctx: &Context,
    packets: &[Packet],
    connections: usize,
    rate: f64,
    timeline: Option<Arc<Timeline>>,
) -> anyhow::Result<OpenLinks> {
    let connections = connections.clamp(1, packets.len().max(1));
    let noise_key = if ctx.settings.mix_noise {
        Some(ctx.target.noise_key()?)
    } else {
        None
    };
    let mut links = Vec::with_capacity(connections);
    for _ in 0..connections {
        links.push(MixLink::connect(ctx.target.mix_addr, noise_key).await?);
    }
    let epoch = ctx.epoch;
    if rate > 0.0 && noise_key.is_none() {
        // tokio's timers tick in whole milliseconds: paced with them, each connection would
        // send its share of a millisecond in one burst, and the latency measured would be
        // mostly the wait behind that burst. One thread sleeping to each packet's due time
        // sends them spread out, as a mix node's stream arrives, and costs us little CPU.
        let mut streams = Vec::with_capacity(connections);
        for link in links {
            let MixLink::Plain(stream) = link else {
                anyhow::bail!("a plain mix connection was expected");
            };
            let stream = stream.into_std()?;
            stream.set_nonblocking(false)?;
            stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
            streams.push(stream);
        }
        let mut bytes = Vec::with_capacity(packets.len() * FRAME_LEN);
        for packet in packets {
            bytes.extend_from_slice(&packet.frame);
        }
        let sent = SentMarks {
            ids: packets.iter().map(|p| p.id).collect(),
            timeline,
            epoch,
        };
        // `write_paced` starts the schedule when its thread is ready.
        let pace = Pace {
            rate,
            start: Instant::now(),
        };
        let deadline = ctx.deadline;
        let streams = tokio::task::spawn_blocking(move || {
            write_paced(streams, &bytes, &sent, pace, deadline)
        })
        .await??;
        return Ok(OpenLinks(
            streams
                .into_iter()
                .map(|s| Box::new(s) as Box<dyn std::any::Any + Send>)
                .collect(),
        ));
    }
    let mut senders = JoinSet::new();
    let deadline = tokio::time::Instant::from_std(ctx.deadline);
    let shares: Vec<(Vec<u64>, Vec<u8>)> = (0..connections)
        .map(|c| {
            let mine: Vec<&Packet> = packets.iter().skip(c).step_by(connections).collect();
            let ids = mine.iter().map(|p| p.id).collect();
            let mut bytes = Vec::with_capacity(mine.len() * FRAME_LEN);
            for packet in mine {
                bytes.extend_from_slice(&packet.frame);
            }
            (ids, bytes)
        })
        .collect();
    // Room to spawn the senders before the first paced packet is due; the frames are copied
    // already, so none starts overdue.
    let start = Instant::now() + Duration::from_millis(5);
    for (c, (stream, (ids, bytes))) in links.into_iter().zip(shares).enumerate() {
        let timeline = timeline.clone();
        // Paced connections start a fraction of an interval apart, so their packets interleave.
        let pace = (rate > 0.0).then(|| Pace {
            rate: rate / connections as f64,
            start: start + Duration::from_secs_f64(c as f64 / rate),
        });
        senders.spawn(async move {
            tokio::time::timeout_at(
                deadline,
                write_frames(stream, bytes, ids, pace, timeline, epoch),
            )
            .await
            .context("out of time while sending")?
        });
    }
    let mut open = Vec::with_capacity(connections);
    while let Some(joined) = senders.join_next().await {
        open.push(Box::new(joined??) as Box<dyn std::any::Any + Send>);
    }
    Ok(OpenLinks(open))
}

/// How long one write may block (the gateway not reading at all).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes one connection's frames: as fast as the gateway reads them, or (`pace`, over Noise)
/// on tokio's timers. Returns the connection, still open.
async fn write_frames(
    mut stream: MixLink,
    bytes: Vec<u8>,
    ids: Vec<u64>,
    pace: Option<Pace>,
    timeline: Option<Arc<Timeline>>,
    epoch: Instant,
) -> anyhow::Result<MixLink> {
    let sent = SentMarks {
        ids,
        timeline,
        epoch,
    };
    let Some(pace) = pace else {
        let mut done = 0;
        while done < sent.ids.len() {
            let end = (done + WRITE_BATCH).min(sent.ids.len());
            sent.mark(done, end);
            stream
                .write_all(&bytes[done * FRAME_LEN..end * FRAME_LEN])
                .await?;
            done = end;
        }
        stream.flush().await?;
        return Ok(stream);
    };
    // Sealing needs the async stream: paced by tokio's timers, so up to a millisecond's
    // packets of a connection leave together.
    write_paced_async(&mut stream, &bytes, &sent, pace).await?;
    Ok(stream)
}

/// Paced writes on tokio's timers (Noise connections).
async fn write_paced_async(
    stream: &mut MixLink,
    bytes: &[u8],
    sent: &SentMarks,
    pace: Pace,
) -> anyhow::Result<()> {
    let total = sent.ids.len();
    let mut done = 0;
    while done < total {
        let next = pace.start + Duration::from_secs_f64(done as f64 / pace.rate);
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        let due = pace.due_by(Instant::now(), done, total);
        sent.mark(done, due);
        stream
            .write_all(&bytes[done * FRAME_LEN..due * FRAME_LEN])
            .await?;
        stream.flush().await?;
        done = due;
    }
    Ok(())
}

/// When packets are due: `rate` packets per second, the first at `start`.
#[derive(Debug, Clone, Copy)]
struct Pace {
    rate: f64,
    start: Instant,
}

impl Pace {
    /// How many of `total` packets are due at `now`, `done` being sent: every packet due by
    /// then, so one more unless the sender woke late.
    fn due_by(self, now: Instant, done: usize, total: usize) -> usize {
        let elapsed = now.duration_since(self.start).as_secs_f64();
        ((elapsed * self.rate) as usize + 1).clamp(done + 1, total)
    }
}

/// Packet ids in sending order, and where their send times are recorded.
struct SentMarks {
    ids: Vec<u64>,
    timeline: Option<Arc<Timeline>>,
    epoch: Instant,
}

impl SentMarks {
    fn mark(&self, from: usize, to: usize) {
        if let Some(timeline) = &self.timeline {
            let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            for &id in &self.ids[from..to] {
                timeline.mark_sent(id, now);
            }
        }
    }
}

/// Writes frame `i` to `streams[i % streams.len()]` at its due time (several at once only
/// when the thread woke late), from this one thread; returns the streams, still open.
fn write_paced(
    mut streams: Vec<std::net::TcpStream>,
    bytes: &[u8],
    sent: &SentMarks,
    pace: Pace,
    deadline: Instant,
) -> anyhow::Result<Vec<std::net::TcpStream>> {
    use std::io::Write as _;
    // The schedule starts when this thread is ready to write: counted from before the frames
    // were copied and the thread spawned, the first packets would be overdue and go out in one
    // burst, and the latency measured would be the wait behind it, not the gateway's.
    let pace = Pace {
        start: Instant::now(),
        ..pace
    };
    let total = sent.ids.len();
    let connections = streams.len().max(1);
    let mut done = 0;
    while done < total {
        let now = Instant::now();
        anyhow::ensure!(now < deadline, "out of time while sending");
        let next = pace.start + Duration::from_secs_f64(done as f64 / pace.rate);
        if now < next {
            std::thread::sleep(next - now);
            continue;
        }
        let due = pace.due_by(now, done, total);
        sent.mark(done, due);
        for i in done..due {
            streams[i % connections].write_all(&bytes[i * FRAME_LEN..(i + 1) * FRAME_LEN])?;
        }
        done = due;
    }
    for stream in &mut streams {
        stream.flush()?;
    }
    Ok(streams)
}

/// Connected, authenticated clients reading their pushed messages into a timeline.
pub struct OnlineClients {
    /// Their identities, in the order packets address them.
    pub identities: Vec<Identity>,
    /// Where receipts go.
    pub timeline: Arc<Timeline>,
    stop: Arc<AtomicBool>,
    readers: JoinSet<()>,
}

impl OnlineClients {
    /// Connects and authenticates `identities` (registered), then starts one reader each.
    pub async fn connect(
        ctx: &Context,
        identities: Vec<Identity>,
        timeline: Arc<Timeline>,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = JoinSet::new();
        for (n, identity) in identities.iter().enumerate() {
            let mut connection =
                Connection::open(ctx.target.clients_addr, Some(source_ip(n))).await?;
            connection.authenticate(identity).await?;
            let (identity, timeline, stop) = (identity.clone(), timeline.clone(), stop.clone());
            let epoch = ctx.epoch;
            readers.spawn(async move {
                read_pushed(connection, identity, timeline, stop, epoch).await;
            });
        }
        Ok(Self {
            identities,
            timeline,
            stop,
            readers,
        })
    }

    /// Stops the readers and closes the connections.
    pub async fn close(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        while self.readers.join_next().await.is_some() {}
    }
}

async fn read_pushed(
    mut connection: Connection,
    identity: Identity,
    timeline: Arc<Timeline>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
) {
    // Bounded by `stop`, which the owner sets at the end of the phase.
    while !stop.load(Ordering::Relaxed) {
        match connection.next_within(Duration::from_millis(100)).await {
            Ok(Some(Incoming::Binary(frame))) => {
                let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                match open_pushed(&identity, &frame)
                    .ok()
                    .as_deref()
                    .and_then(message_id)
                {
                    Some(id) => timeline.mark_received(id, now),
                    None => {
                        timeline.unexpected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(Some(Incoming::Response(_)) | None) => {}
            Err(_) => return,
        }
    }
    connection.close().await;
}

/// One run to the online clients: sends `packets` (ids in `ids`), waits until every one was
/// received (or `wait` passed) and its ack came back.
pub async fn online_run(
    ctx: &Context,
    online: &OnlineClients,
    packets: &[Packet],
    rate: f64,
    wait: Duration,
) -> anyhow::Result<IngestRun> {
    let ids = packets.first().map_or(0, |p| p.id)..packets.last().map_or(0, |p| p.id + 1);
    let received_before = online.timeline.received();
    let acks_before = ctx.acks.frames();
    let meter = CpuMeter::start(ctx);
    let links = send_packets(
        ctx,
        packets,
        ctx.settings.mix_connections,
        rate,
        Some(online.timeline.clone()),
    )
    .await?;
    let target = received_before + packets.len() as u64;
    let deadline = Instant::now() + ctx.bounded(wait);
    while online.timeline.received() < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu = meter.stop(ctx);
    let acks = ctx
        .acks
        .wait_for(
            acks_before + packets.len() as u64,
            ctx.bounded(Duration::from_secs(10)),
        )
        .await
        - acks_before;
    drop(links);
    if let Some(dir) = &ctx.settings.latency_trace {
        // Named by target too: `compare` runs the same phases against two gateways.
        let target = match ctx.target.software {
            Software::NymGateway => "nym-gateway",
            Software::NymNode => "nym-node",
            Software::Unknown => "target",
        };
        let run = if rate > 0.0 {
            format!("paced-{}", rate.round())
        } else {
            "peak".to_owned()
        };
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let name = format!("{target}-{run}-from-{}.csv", ids.start);
        online.timeline.write_trace(ids.clone(), &dir.join(name))?;
    }
    let (first_sent, last_received, mut latencies) = online.timeline.summarise(ids);
    let elapsed = Duration::from_nanos(last_received.saturating_sub(first_sent));
    Ok(IngestRun {
        packets: packets.len(),
        paced_packets_per_s: rate,
        packets_per_s: per_second(latencies.len() as u64, elapsed),
        completed: latencies.len() as u64,
        acks,
        latency: Some(Latency::from_micros(&mut latencies)),
        cpu,
    })
}

/// Builds `count` packets with ids from `first_id` for `recipients`, acks to our sinks.
pub fn build(ctx: &Context, recipients: &[[u8; 32]], first_id: u64, count: usize) -> Vec<Packet> {
    packets::build_many(
        &ctx.route,
        recipients,
        ctx.acks.addrs(),
        first_id,
        count,
        ctx.threads,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_has_every_packet_with_its_send_and_receipt_times() {
        let timeline = Timeline::new(100, 3);
        timeline.mark_sent(100, 5_000);
        timeline.mark_sent(101, 6_000);
        timeline.mark_sent(102, 7_000);
        timeline.mark_received(100, 9_500);
        timeline.mark_received(102, 8_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.csv");
        timeline.write_trace(100..103, &path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "id,sent_ns,received_ns\n100,5000,9500\n101,6000,0\n102,7000,8000\n"
        );
        let missing = dir.path().join("no-such-dir").join("trace.csv");
        let e = timeline.write_trace(100..103, &missing).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot create the latency trace "),
            "{e}"
        );
    }

    /// A schedule whose start passed while the frames were being prepared still sends at its
    /// rate from the first write: overdue packets sent in one burst would measure the wait
    /// behind the burst as the gateway's latency.
    #[test]
    fn paced_writes_start_on_time_even_when_the_schedule_is_overdue() {
        const PACKETS: usize = 40;
        const RATE: f64 = 1000.0;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let reader = std::thread::spawn(move || {
            let mut sink = Vec::new();
            std::io::Read::read_to_end(&mut peer, &mut sink).map(|_| sink.len())
        });
        let timeline = Arc::new(Timeline::new(0, PACKETS));
        let sent = SentMarks {
            ids: (0..PACKETS as u64).collect(),
            timeline: Some(timeline.clone()),
            epoch: Instant::now(),
        };
        let overdue = Pace {
            rate: RATE,
            start: Instant::now() - Duration::from_secs(1),
        };
        let bytes = vec![0u8; PACKETS * FRAME_LEN];
        let deadline = Instant::now() + Duration::from_secs(30);
        let streams = write_paced(vec![stream], &bytes, &sent, overdue, deadline).unwrap();
        drop(streams);
        assert_eq!(reader.join().unwrap().unwrap(), PACKETS * FRAME_LEN);
        let marks: Vec<u64> = (0..PACKETS)
            .map(|i| timeline.sent_ns[i].load(Ordering::Relaxed))
            .collect();
        let spread = Duration::from_nanos(marks[PACKETS - 1] - marks[0]);
        let scheduled = Duration::from_secs_f64((PACKETS - 1) as f64 / RATE);
        assert!(
            spread >= scheduled.mul_f64(0.9),
            "{PACKETS} packets at {RATE}/s went out within {spread:?}, not over ~{scheduled:?}"
        );
    }
}
