//! A loopback "mix node": accepts the gateway's outbound TCP connections and records every frame,
//! byte for byte, so tests can check what was forwarded (SURB-acks) and when.

use anyhow::bail;
use nym_sphinx::params::PacketSize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One frame as received.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    /// Which accepted connection it came on (0, 1, …).
    pub connection: usize,
    /// The frame header (3 bytes for v7, 4 for v8).
    pub header: Vec<u8>,
    /// The Sphinx packet after the header.
    pub packet: Vec<u8>,
    pub received_at: Instant,
}

impl ReceivedFrame {
    /// Header and packet, exactly as they were on the wire.
    pub fn raw(&self) -> Vec<u8> {
        [self.header.as_slice(), self.packet.as_slice()].concat()
    }
}

#[derive(Default)]
struct State {
    frames: Vec<ReceivedFrame>,
    /// Framing errors: each one ends its connection.
    errors: Vec<String>,
    connections: usize,
    noise_connections: usize,
}

pub struct AckSink {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
    task: JoinHandle<()>,
}

impl AckSink {
    pub async fn bind() -> anyhow::Result<Self> {
        Self::bind_with(None).await
    }

    /// A sink that answers as a nym-node does with `noise` (the published `nym-noise`
    /// responder: Noise from addresses its view lists, plain TCP from the others).
    pub async fn bind_noise(noise: nym_noise::config::NoiseConfig) -> anyhow::Result<Self> {
        Self::bind_with(Some(noise)).await
    }

    async fn bind_with(noise: Option<nym_noise::config::NoiseConfig>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let notify = Arc::new(Notify::new());
        let task = tokio::spawn(accept_loop(listener, noise, state.clone(), notify.clone()));
        Ok(AckSink {
            addr,
            state,
            notify,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every frame received so far, in arrival order.
    pub fn frames(&self) -> Vec<ReceivedFrame> {
        self.state.lock().expect("sink lock").frames.clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.state.lock().expect("sink lock").errors.clone()
    }

    pub fn connections(&self) -> usize {
        self.state.lock().expect("sink lock").connections
    }

    /// Accepted connections that completed a Noise handshake.
    pub fn noise_connections(&self) -> usize {
        self.state.lock().expect("sink lock").noise_connections
    }

    /// Waits until at least `n` frames have arrived.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> anyhow::Result<Vec<ReceivedFrame>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.notify.notified();
            let frames = self.frames();
            if frames.len() >= n {
                return Ok(frames);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let errors = self.errors();
                bail!(
                    "expected {n} frames at {} within {limit:?}, got {} (connections: {}, \
                     framing errors: {errors:?})",
                    self.addr,
                    frames.len(),
                    self.connections()
                );
            }
        }
    }
}

impl Drop for AckSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    noise: Option<nym_noise::config::NoiseConfig>,
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        let connection = {
            let mut s = state.lock().expect("sink lock");
            s.connections += 1;
            s.connections - 1
        };
        let (state, notify, noise) = (state.clone(), notify.clone(), noise.clone());
        tokio::spawn(async move {
            let Some(noise) = noise else {
                return read_frames(stream, connection, state, notify).await;
            };
            match nym_noise::upgrade_noise_responder(stream, &noise).await {
                Ok(upgraded) => {
                    if upgraded.is_noise() {
                        state.lock().expect("sink lock").noise_connections += 1;
                    }
                    read_frames(upgraded, connection, state, notify).await
                }
                Err(e) => {
                    let mut s = state.lock().expect("sink lock");
                    s.errors
                        .push(format!("connection {connection}: Noise: {e}"));
                    drop(s);
                    notify.notify_waiters();
                }
            }
        });
    }
}

async fn read_frames<S: AsyncRead + Unpin>(
    mut stream: S,
    connection: usize,
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
) {
    loop {
        match read_frame(&mut stream).await {
            Ok(Some((header, packet))) => {
                state.lock().expect("sink lock").frames.push(ReceivedFrame {
                    connection,
                    header,
                    packet,
                    received_at: Instant::now(),
                });
                notify.notify_waiters();
            }
            Ok(None) => return,
            Err(err) => {
                state
                    .lock()
                    .expect("sink lock")
                    .errors
                    .push(format!("connection {connection}: {err}"));
                notify.notify_waiters();
                return;
            }
        }
    }
}

/// Reads one frame: version byte 7 (3-byte header) or 8 (4-byte header), then as many bytes as
/// the size tag says. `Ok(None)` on a clean end of stream between frames.
async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> anyhow::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut version = [0u8; 1];
    match stream.read(&mut version).await {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let header_len = match version[0] {
        7 => 3,
        8 => 4,
        v => bail!("frame with unsupported version byte {v}"),
    };
    let mut header = vec![version[0]; header_len];
    stream.read_exact(&mut header[1..]).await?;
    let size = PacketSize::try_from(header[1])
        .map_err(|e| anyhow::anyhow!("frame with a bad size tag: {e}"))?;
    let mut packet = vec![0u8; size.size()];
    stream.read_exact(&mut packet).await?;
    Ok(Some((header, packet)))
}
