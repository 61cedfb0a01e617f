//! Noise on the mix port, as nym-node speaks it (`Noise_XKpsk3_25519_AESGCM_SHA256`).
//!
//! - [`frame`]: the 8-byte header of every Noise message.
//! - [`handshake`]: the three-message handshake, initiator and responder.
//! - [`stream`]: the connection after it, sealing and opening data frames.
//! - [`directory`]: which nodes announce a Noise key, read from nym-api.
//!
//! # Who speaks Noise with whom (`mix_noise`)
//! nym-node's rule, which `auto` follows: an initiator uses Noise when the directory lists a
//! Noise key for the responder's address and mix port; a responder requires Noise from
//! addresses the directory lists with a key and takes plain TCP from the others. Where
//! nym-node would refuse a Noise handshake from an address it does not list (its directory is
//! older than the peer's), we accept one: Noise frames start with byte 1 and plain mix frames
//! with their version (7 or 8), so the first byte says which it is. `required` takes and makes
//! only Noise connections; `off` announces no key and speaks only plain TCP.

pub mod directory;
pub mod frame;
pub mod handshake;
pub mod stream;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use x25519_dalek::StaticSecret;

pub use self::directory::NoisePeers;
use crate::config::NoiseMode;
use crate::keys::NoiseKey;

/// How an accepted mix connection continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// Plain v7/v8 frames.
    Plain,
    /// A Noise handshake, then frames inside Noise.
    Noise,
    /// Closed: this peer must use Noise and did not start with it.
    NoiseRequired,
}

/// How the egress reaches a next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// Plain TCP.
    Plain,
    /// Noise, to the responder with this static key.
    Noise([u8; 32]),
    /// Nothing: Noise is required and the directory lists no key for this hop.
    NoKey,
}

/// The gateway's Noise settings, key and view of the directory; cloning shares them.
#[derive(Clone)]
pub struct Noise {
    inner: Arc<Inner>,
}

struct Inner {
    mode: NoiseMode,
    secret: StaticSecret,
    public: [u8; 32],
    timeout: Duration,
    peers: RwLock<Arc<NoisePeers>>,
}

impl Noise {
    /// Settings for `mode` with `key`; handshakes must finish within `timeout`. The directory
    /// starts empty.
    pub fn new(mode: NoiseMode, key: NoiseKey, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                mode,
                secret: key.secret,
                public: key.public,
                timeout,
                peers: RwLock::new(Arc::new(NoisePeers::default())),
            }),
        }
    }

    /// The mode.
    pub fn mode(&self) -> NoiseMode {
        self.inner.mode
    }

    /// The key to announce, unless Noise is off.
    pub fn announced_key(&self) -> Option<[u8; 32]> {
        (self.inner.mode != NoiseMode::Off).then_some(self.inner.public)
    }

    /// Replaces the view of the directory.
    pub fn set_peers(&self, peers: NoisePeers) {
        *self
            .inner
            .peers
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(peers);
    }

    fn peers(&self) -> Arc<NoisePeers> {
        self.inner
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How a connection from `peer` whose first byte is `first` continues.
    pub fn ingress(&self, peer: IpAddr, first: u8) -> Ingress {
        let starts_noise = first == frame::VERSION;
        match self.inner.mode {
            NoiseMode::Off => Ingress::Plain,
            _ if starts_noise => Ingress::Noise,
            NoiseMode::Required => Ingress::NoiseRequired,
            NoiseMode::Auto if self.peers().announces(peer) => Ingress::NoiseRequired,
            NoiseMode::Auto => Ingress::Plain,
        }
    }

    /// How to reach the next hop at `addr`.
    pub fn egress(&self, addr: SocketAddr) -> Egress {
        if self.inner.mode == NoiseMode::Off {
            return Egress::Plain;
        }
        match (self.peers().key_of(addr), self.inner.mode) {
            (Some(key), _) => Egress::Noise(key),
            (None, NoiseMode::Required) => Egress::NoKey,
            (None, _) => Egress::Plain,
        }
    }

    /// Whether a packet for the next hop at `addr` must be refused: Noise is required and the
    /// directory lists no key for it. Cheap unless Noise is required, as every packet asks.
    pub fn refuses(&self, addr: SocketAddr) -> bool {
        self.inner.mode == NoiseMode::Required && self.egress(addr) == Egress::NoKey
    }

    /// Runs the responder's handshake on `stream`.
    pub async fn accept<S>(
        &self,
        stream: S,
    ) -> Result<stream::NoiseStream<S>, handshake::HandshakeError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let i = &self.inner;
        handshake::respond(stream, i.secret.as_bytes(), &i.public, i.timeout).await
    }

    /// Runs the initiator's handshake on `stream` to the responder with key `remote`.
    pub async fn connect<S>(
        &self,
        stream: S,
        remote: &[u8; 32],
    ) -> Result<stream::NoiseStream<S>, handshake::HandshakeError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let i = &self.inner;
        handshake::initiate(stream, i.secret.as_bytes(), remote, i.timeout).await
    }
}

#[cfg(test)]
mod tests;
