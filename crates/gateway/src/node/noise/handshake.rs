//! The Noise handshake on the mix port: `Noise_XKpsk3_25519_AESGCM_SHA256`, the initiator
//! knowing the responder's static key from the directory, the pre-shared key derived from that
//! key (so any node that knows it can connect: the PSK binds the version, not a secret).
//!
//! Three messages, each one handshake frame: initiator → responder (48 bytes), responder →
//! initiator (48), initiator → responder (64). Frames are read exactly, so nothing the peer
//! sends after the handshake is consumed here.

use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{Header, HeaderError, Kind, HEADER_LEN};
use super::stream::NoiseStream;

/// The handshake pattern.
const PARAMS: &str = "Noise_XKpsk3_25519_AESGCM_SHA256";
/// Where the pre-shared key is mixed in (`psk3`).
const PSK_POSITION: u8 = 3;
/// Hashed in front of the responder's key to make the pre-shared key.
const PSK_PREFIX: &[u8] = b"NYMTECH_NOISE_dQw4w9WgXcQ";
/// Largest handshake message accepted; XKpsk3's are at most 64 bytes.
const MAX_HANDSHAKE_MESSAGE: usize = 1024;

/// Why a handshake did not complete.
#[derive(Debug, Error)]
pub enum HandshakeError {
    /// The peer did not finish in time.
    #[error("the Noise handshake did not complete within {0:?}")]
    Timeout(Duration),
    /// Reading or writing failed (including the peer closing).
    #[error("the connection failed during the Noise handshake: {0}")]
    Io(#[from] std::io::Error),
    /// A frame header that is not Noise.
    #[error("not a Noise handshake: {0}")]
    Header(#[from] HeaderError),
    /// A data frame before the handshake finished.
    #[error("a data frame before the Noise handshake finished")]
    DataDuringHandshake,
    /// A handshake message longer than any this pattern has.
    #[error("a Noise handshake message of {0} bytes")]
    TooLong(usize),
    /// The cryptography refused the message (wrong key, wrong PSK, corrupt).
    #[error("the Noise handshake failed: {0}")]
    Crypto(#[from] snow::Error),
}

/// nym-node's pre-shared key for a responder whose static key is `responder_public`.
pub fn psk(responder_public: &[u8; 32]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(PSK_PREFIX);
    hash.update(responder_public);
    hash.finalize().into()
}

/// Connects as the initiator to a responder whose static key is `remote`, within `timeout`.
pub async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    local: &[u8; 32],
    remote: &[u8; 32],
    timeout: Duration,
) -> Result<NoiseStream<S>, HandshakeError> {
    let psk = psk(remote);
    let state = snow::Builder::new(params())
        .local_private_key(local)?
        .remote_public_key(remote)?
        .psk(PSK_POSITION, &psk)?
        .build_initiator()?;
    within(timeout, run(stream, state)).await
}

/// Accepts as the responder with static key `local` (public half `local_public`), within
/// `timeout`.
pub async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    local: &[u8; 32],
    local_public: &[u8; 32],
    timeout: Duration,
) -> Result<NoiseStream<S>, HandshakeError> {
    let psk = psk(local_public);
    let state = snow::Builder::new(params())
        .local_private_key(local)?
        .psk(PSK_POSITION, &psk)?
        .build_responder()?;
    within(timeout, run(stream, state)).await
}

fn params() -> snow::params::NoiseParams {
    // A constant that parses; the unit test below proves it.
    PARAMS
        .parse()
        .unwrap_or_else(|_| unreachable!("{PARAMS} is a valid Noise pattern"))
}

async fn within<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| HandshakeError::Timeout(timeout))?
}

/// Exchanges handshake messages until the pattern is complete.
async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mut state: snow::HandshakeState,
) -> Result<NoiseStream<S>, HandshakeError> {
    let mut message = [0u8; MAX_HANDSHAKE_MESSAGE];
    let mut payload = [0u8; MAX_HANDSHAKE_MESSAGE];
    while !state.is_handshake_finished() {
        if state.is_my_turn() {
            let len = state.write_message(&[], &mut message)?;
            // Bounded by MAX_HANDSHAKE_MESSAGE.
            let header = Header::new(Kind::Handshake, len as u16).encode();
            let mut frame = Vec::with_capacity(HEADER_LEN + len);
            frame.extend_from_slice(&header);
            frame.extend_from_slice(&message[..len]);
            stream.write_all(&frame).await?;
            stream.flush().await?;
        } else {
            let mut header = [0u8; HEADER_LEN];
            stream.read_exact(&mut header).await?;
            let header = Header::decode(&header)?;
            if header.kind != Kind::Handshake {
                return Err(HandshakeError::DataDuringHandshake);
            }
            let len = usize::from(header.len);
            if len > MAX_HANDSHAKE_MESSAGE {
                return Err(HandshakeError::TooLong(len));
            }
            stream.read_exact(&mut message[..len]).await?;
            state.read_message(&message[..len], &mut payload)?;
        }
    }
    Ok(NoiseStream::new(stream, state.into_transport_mode()?))
}

#[cfg(test)]
mod tests;
