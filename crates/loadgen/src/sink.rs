//! Loopback listeners standing in for the mix nodes the gateway forwards to: SURB-acks and
//! client packets end here. They read the gateway's frames and count them; asked to, they also
//! keep the id each SURB-ack starts with (see [`crate::packets::build`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_protocol::framing::FrameHeader;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Largest read at once.
const READ_CHUNK: usize = 256 * 1024;

/// A set of sink listeners sharing one counter.
pub struct Sinks {
    addrs: Vec<SocketAddr>,
    counts: Arc<Counts>,
    tasks: JoinSet<()>,
}

#[derive(Default)]
struct Counts {
    frames: AtomicU64,
    /// Nanoseconds after `epoch` of the newest frame.
    last_frame_ns: AtomicU64,
    /// The ids of the frames since the last [`Sinks::take_ids`], when recording.
    ids: Option<Mutex<Vec<u64>>>,
}

impl Sinks {
    /// Starts `count` listeners on 127.0.0.1; `epoch` is the clock zero of `last_frame`.
    pub async fn start(count: usize, epoch: Instant) -> anyhow::Result<Self> {
        Self::start_with(count, epoch, Counts::default()).await
    }

    /// [`Self::start`], also keeping the id of every frame for [`Self::take_ids`] (whose
    /// caller must take them often: they are kept until then).
    pub async fn start_recording(count: usize, epoch: Instant) -> anyhow::Result<Self> {
        let counts = Counts {
            ids: Some(Mutex::new(Vec::new())),
            ..Counts::default()
        };
        Self::start_with(count, epoch, counts).await
    }

    async fn start_with(count: usize, epoch: Instant, counts: Counts) -> anyhow::Result<Self> {
        let counts = Arc::new(counts);
        let mut tasks = JoinSet::new();
        let mut addrs = Vec::with_capacity(count);
        for _ in 0..count {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            addrs.push(listener.local_addr()?);
            let counts = counts.clone();
            tasks.spawn(async move {
                // The gateway opens one connection per next hop, and a new one after a failure.
                let mut connections = JoinSet::new();
                while let Ok((stream, _)) = listener.accept().await {
                    connections.spawn(read_frames(stream, counts.clone(), epoch));
                }
            });
        }
        Ok(Self {
            addrs,
            counts,
            tasks,
        })
    }

    /// The listening addresses.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Frames received so far.
    pub fn frames(&self) -> u64 {
        self.counts.frames.load(Ordering::Relaxed)
    }

    /// When the newest frame arrived, as time after the epoch.
    pub fn last_frame(&self) -> Duration {
        Duration::from_nanos(self.counts.last_frame_ns.load(Ordering::Relaxed))
    }

    /// The ids of the frames received since the last call (empty unless recording).
    pub fn take_ids(&self) -> Vec<u64> {
        self.counts
            .ids
            .as_ref()
            .and_then(|ids| ids.lock().ok().map(|mut ids| std::mem::take(&mut *ids)))
            .unwrap_or_default()
    }

    /// Waits until `target` frames arrived in total, or `timeout` passed; returns the count.
    pub async fn wait_for(&self, target: u64, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.frames() < target && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.frames()
    }
}

impl Drop for Sinks {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

async fn read_frames(mut stream: TcpStream, counts: Arc<Counts>, epoch: Instant) {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut used = 0;
        let mut frames = 0;
        let mut ids = Vec::new();
        // Only the headers are parsed: the packets are not ours to open.
        while let Ok(Some(header)) = FrameHeader::check(&buf[used..]) {
            if buf.len() - used < header.frame_len() {
                break;
            }
            if counts.ids.is_some() {
                let packet = &buf[used + header.version.header_len()..];
                ids.extend(crate::packets::message_id(packet));
            }
            used += header.frame_len();
            frames += 1;
        }
        if let Some(Ok(mut kept)) = counts.ids.as_ref().map(Mutex::lock) {
            kept.extend(ids);
        }
        if FrameHeader::check(&buf[used..]).is_err() {
            // Out of sync: the gateway sent something that is not a frame.
            return;
        }
        buf.drain(..used);
        if frames > 0 {
            counts.frames.fetch_add(frames, Ordering::Relaxed);
            let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            counts.last_frame_ns.fetch_max(now, Ordering::Relaxed);
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
    }
}
