//! A mix connection to the gateway: plain TCP, or (`--mix-noise`) Noise with the key the
//! gateway announces, as today's mix nodes connect. The handshake is the gateway's own
//! initiator; the published crate and real nym-node speak it with the gateway in the interop
//! suites.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use nym_gateway::keys::NoiseKey;
use nym_gateway::node::noise::handshake;
use nym_gateway::node::noise::stream::NoiseStream;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

/// The gateway's handshake must complete within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An open mix connection.
pub enum MixLink {
    /// Frames as they are.
    Plain(TcpStream),
    /// Frames inside Noise data frames.
    Noise(Box<NoiseStream<TcpStream>>),
}

impl MixLink {
    /// Connects to `addr`, with a Noise handshake when `noise_key` (the gateway's) is given.
    pub async fn connect(addr: SocketAddr, noise_key: Option<[u8; 32]>) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to the mix port {addr}"))?;
        stream.set_nodelay(true)?;
        let Some(key) = noise_key else {
            return Ok(Self::Plain(stream));
        };
        // A fresh static key per connection: the gateway learns it and does nothing with it.
        let ours = NoiseKey::generate().context("making a Noise key")?;
        let noise = handshake::initiate(stream, ours.secret.as_bytes(), &key, HANDSHAKE_TIMEOUT)
            .await
            .with_context(|| format!("Noise handshake with the mix port {addr}"))?;
        Ok(Self::Noise(Box::new(noise)))
    }
}

impl AsyncWrite for MixLink {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Noise(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Noise(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Noise(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
