//! The client side of the gateway's websocket protocol, as much as the load needs: connect
//! from a chosen loopback source address, register (key-agreement handshake), authenticate
//! again later (`authenticateV2`), claim free bandwidth, send forward requests, and read
//! pushed messages.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context as _};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use futures_util::{SinkExt as _, StreamExt as _};
use gateway_protocol::client::binary::{decrypt_pushed_message, encrypt_request};
use gateway_protocol::client::handshake::derive_shared_key;
use gateway_protocol::client::{
    AuthenticateV2Request, ClientRequest, RequestKind, ServerResponse, SharedKey,
};
use gateway_protocol::mix_packet::MixPacket;
use rand::Rng as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};

/// The protocol version we speak.
const PROTOCOL_VERSION: u8 = 6;

/// How long one response may take before the client gives up.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(20);

/// Read buffer of each websocket: clients are many and frames small.
const READ_BUFFER: usize = 4 * 1024;

/// Random bytes from the thread's generator.
pub fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A client identity and the key it shares with the gateway once registered. Clones share
/// the last authentication timestamp.
#[derive(Clone)]
pub struct Identity {
    signing: SigningKey,
    key: Option<SharedKey>,
    last_timestamp: Arc<AtomicU64>,
}

impl Default for Identity {
    fn default() -> Self {
        Self::new()
    }
}

impl Identity {
    /// A fresh random identity.
    pub fn new() -> Self {
        Self {
            signing: SigningKey::from_bytes(&random()),
            key: None,
            last_timestamp: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The client's address: its ed25519 public key.
    pub fn address(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The shared key, once registered.
    pub fn key(&self) -> Option<&SharedKey> {
        self.key.as_ref()
    }

    /// A timestamp later than any this client used: the gateway refuses an `authenticateV2`
    /// whose timestamp is not newer than the last one it accepted.
    fn next_timestamp(&self) -> u64 {
        let now = now_unix();
        let previous = self
            .last_timestamp
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(last.max(now) + 1)
            })
            .unwrap_or(now);
        previous.max(now) + 1
    }

    fn require_key(&self) -> anyhow::Result<&SharedKey> {
        self.key.as_ref().context("the client is not registered")
    }
}

/// A websocket connection to the gateway's client port.
pub struct Connection {
    ws: WebSocketStream<TcpStream>,
}

impl Connection {
    /// Connects to `gateway` from `source` (any port), then upgrades to a websocket.
    pub async fn open(gateway: SocketAddr, source: Option<IpAddr>) -> anyhow::Result<Self> {
        let socket = match gateway {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }?;
        if let Some(source) = source {
            // Ports of closed connections in TIME_WAIT may be reused: every connection goes
            // to the same gateway port, so thousands of them would otherwise run out.
            socket.set_reuseaddr(true)?;
            socket
                .bind(SocketAddr::new(source, 0))
                .with_context(|| format!("binding a client socket to {source}"))?;
        }
        let tcp = tokio::time::timeout(RESPONSE_TIMEOUT, socket.connect(gateway))
            .await
            .context("connect timed out")?
            .with_context(|| format!("connecting to {gateway}"))?;
        tcp.set_nodelay(true)?;
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        let url = format!("ws://{gateway}");
        let (ws, _) = tokio::time::timeout(
            RESPONSE_TIMEOUT,
            tokio_tungstenite::client_async_with_config(url, tcp, Some(config)),
        )
        .await
        .context("websocket upgrade timed out")?
        .context("websocket upgrade")?;
        Ok(Self { ws })
    }

    async fn send_text(&mut self, text: String) -> anyhow::Result<()> {
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// Sends binary frames with one flush at the end.
    pub async fn send_binaries(&mut self, frames: &[Vec<u8>]) -> anyhow::Result<()> {
        for frame in frames {
            self.ws.feed(Message::binary(frame.clone())).await?;
        }
        self.ws.flush().await?;
        Ok(())
    }

    /// The next text or binary frame (control frames are skipped), within `RESPONSE_TIMEOUT`.
    pub async fn next(&mut self) -> anyhow::Result<Incoming> {
        self.next_within(RESPONSE_TIMEOUT)
            .await?
            .context("no frame from the gateway in time")
    }

    /// The next text or binary frame, or `None` if nothing came within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> anyhow::Result<Option<Incoming>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => bail!("the gateway closed the connection"),
                Ok(Some(frame)) => frame?,
            };
            match frame {
                Message::Text(text) => {
                    let response = ServerResponse::parse(&text)
                        .with_context(|| format!("unparsable response {text}"))?;
                    return Ok(Some(Incoming::Response(response)));
                }
                Message::Binary(bytes) => return Ok(Some(Incoming::Binary(bytes.to_vec()))),
                Message::Close(_) => bail!("the gateway closed the connection"),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// The next text response; binary frames before it are counted into `binaries`.
    pub async fn next_response(&mut self, binaries: &mut u64) -> anyhow::Result<ServerResponse> {
        self.next_response_with(&mut |_| *binaries += 1).await
    }

    /// The next text response; binary frames before it go to `on_binary`.
    async fn next_response_with(
        &mut self,
        on_binary: &mut impl FnMut(Vec<u8>),
    ) -> anyhow::Result<ServerResponse> {
        loop {
            match self.next().await? {
                Incoming::Response(response) => return Ok(response),
                Incoming::Binary(frame) => on_binary(frame),
            }
        }
    }

    /// Closes politely, without waiting long for the gateway's answer.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }

    /// Closes politely and hands every binary frame that still arrives before the gateway's
    /// close (or within `wait`) to `on_binary`: a message pushed while we were closing was
    /// still written to us, and a client that drops it would look like a lost message.
    pub async fn close_reading(mut self, wait: Duration, on_binary: &mut impl FnMut(Vec<u8>)) {
        let deadline = tokio::time::Instant::now() + wait;
        if tokio::time::timeout_at(deadline, self.ws.close(None))
            .await
            .is_err()
        {
            return;
        }
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            match frame {
                Message::Binary(bytes) => on_binary(bytes.to_vec()),
                Message::Close(_) => return,
                _ => {}
            }
        }
    }

    /// Registers `identity` (handshake, then the `register` response) and stores its key.
    pub async fn register(
        &mut self,
        identity: &mut Identity,
        gateway: &VerifyingKey,
    ) -> anyhow::Result<()> {
        let ephemeral = StaticSecret::from(random::<32>());
        let client_ephemeral = X25519Public::from(&ephemeral).to_bytes();
        let salt: [u8; 16] = random();
        let mut init = identity.address().to_vec();
        init.extend_from_slice(&client_ephemeral);
        init.extend_from_slice(&salt);
        // Real clients send the first message under the `handshakePayload` name.
        self.send_text(
            serde_json::json!({"type": "handshakePayload", "protocol_version": PROTOCOL_VERSION, "data": init})
                .to_string(),
        )
        .await?;
        let ServerResponse::HandshakePayload { data, .. } = self.next_response(&mut 0).await?
        else {
            bail!("expected the gateway's handshake message");
        };
        ensure!(
            data.len() == 124,
            "handshake message of {} bytes",
            data.len()
        );
        let gateway_ephemeral: [u8; 32] = data[..32].try_into()?;
        let dh = ephemeral.diffie_hellman(&X25519Public::from(gateway_ephemeral));
        let key = derive_shared_key(dh.as_bytes(), &salt);
        let nonce: [u8; 12] = data[112..].try_into()?;
        let signature: [u8; 64] = key
            .decrypt(&nonce, &data[32..112])
            .map_err(|e| anyhow!("gateway signature does not decrypt: {e}"))?
            .try_into()
            .map_err(|_| anyhow!("gateway signature has the wrong length"))?;
        gateway
            .verify(
                &[gateway_ephemeral, client_ephemeral].concat(),
                &ed25519_dalek::Signature::from_bytes(&signature),
            )
            .context("the gateway's handshake signature does not verify")?;

        let ours = identity
            .signing
            .sign(&[client_ephemeral, gateway_ephemeral].concat());
        let nonce: [u8; 12] = random();
        let mut finish = key
            .encrypt(&nonce, &ours.to_bytes())
            .map_err(|e| anyhow!("{e}"))?;
        finish.extend_from_slice(&nonce);
        self.send_text(
            ServerResponse::HandshakePayload {
                protocol_version: PROTOCOL_VERSION,
                data: finish,
            }
            .to_text(),
        )
        .await?;
        match self.next_response(&mut 0).await? {
            ServerResponse::HandshakePayload { data, .. } if data == [1] => {}
            other => bail!("expected the handshake's final message, got {other:?}"),
        }
        match self.next_response(&mut 0).await? {
            ServerResponse::Register { status: true, .. } => {}
            other => bail!("expected the register response, got {other:?}"),
        }
        identity.key = Some(key);
        Ok(())
    }

    /// Sends `authenticateV2` for a registered `identity` and reads up to the `authenticate`
    /// response; returns how many stored messages (binary frames) came before it.
    pub async fn authenticate(&mut self, identity: &Identity) -> anyhow::Result<u64> {
        let mut stored = 0;
        self.authenticate_with(identity, &mut |_| stored += 1)
            .await?;
        Ok(stored)
    }

    /// [`Self::authenticate`], handing each stored message (binary frame) to `on_binary`.
    pub async fn authenticate_with(
        &mut self,
        identity: &Identity,
        on_binary: &mut impl FnMut(Vec<u8>),
    ) -> anyhow::Result<()> {
        self.send_authenticate(identity).await?;
        match self.next_response_with(on_binary).await? {
            ServerResponse::Authenticate { status: true, .. } => Ok(()),
            other => bail!("expected the authenticate response, got {other:?}"),
        }
    }

    /// Sends `authenticateV2` without reading the answer.
    pub async fn send_authenticate(&mut self, identity: &Identity) -> anyhow::Result<()> {
        let key = identity.require_key()?;
        let nonce: [u8; 12] = random();
        let mut request = AuthenticateV2Request {
            protocol_version: PROTOCOL_VERSION,
            client_identity: identity.address(),
            address_ciphertext: key
                .encrypt(&nonce, &identity.address())
                .map_err(|e| anyhow!("{e}"))?,
            nonce: nonce.to_vec(),
            request_unix_timestamp: identity.next_timestamp(),
            request_signature: [0; 64],
            debug_trace_id: None,
        };
        request.request_signature = identity.signing.sign(&request.signed_message()).to_bytes();
        self.send_text(ClientRequest::AuthenticateV2(Box::new(request)).to_text())
            .await
    }

    /// Sends forward-request `frames` with at most `window` unanswered, reading one text
    /// response per request; returns the outcome.
    pub async fn forward_pipelined(
        &mut self,
        frames: Vec<Vec<u8>>,
        window: usize,
    ) -> anyhow::Result<ForwardOutcome> {
        let total = frames.len();
        let mut frames = frames.into_iter();
        let mut outcome = ForwardOutcome::default();
        let (mut sent, mut answered) = (0usize, 0usize);
        while answered < total {
            let room = window.max(1) - (sent - answered);
            let mut fed = 0;
            for frame in frames.by_ref().take(room) {
                self.ws.feed(Message::binary(frame)).await?;
                fed += 1;
            }
            if fed > 0 {
                self.ws.flush().await?;
                sent += fed;
            }
            match self.next().await? {
                Incoming::Response(ServerResponse::Send { .. }) => outcome.accepted += 1,
                Incoming::Response(other) => {
                    outcome.refused += 1;
                    outcome
                        .first_refusal
                        .get_or_insert_with(|| format!("{other:?}"));
                }
                // A pushed message is not an answer to a request.
                Incoming::Binary(_) => continue,
            }
            answered += 1;
        }
        Ok(outcome)
    }

    /// Claims free bandwidth; returns the total available.
    pub async fn claim_bandwidth(&mut self) -> anyhow::Result<i64> {
        self.send_text(ClientRequest::ClaimFreeTestnetBandwidth.to_text())
            .await?;
        match self.next_response(&mut 0).await? {
            ServerResponse::Bandwidth {
                available_total, ..
            } => Ok(available_total),
            other => bail!("expected the bandwidth response, got {other:?}"),
        }
    }
}

/// What the gateway answered to a run of forward requests.
#[derive(Debug, Default)]
pub struct ForwardOutcome {
    /// Answered with `send`.
    pub accepted: u64,
    /// Answered with anything else.
    pub refused: u64,
    /// The first such answer.
    pub first_refusal: Option<String>,
}

/// A frame from the gateway.
#[derive(Debug)]
pub enum Incoming {
    /// A JSON text response.
    Response(ServerResponse),
    /// A binary frame (a pushed message).
    Binary(Vec<u8>),
}

/// The binary forward request (`ForwardSphinxV2`) for `packet`, encrypted for `identity`.
pub fn forward_frame(identity: &Identity, packet: &MixPacket) -> anyhow::Result<Vec<u8>> {
    let key = identity.require_key()?;
    encrypt_request(
        RequestKind::ForwardSphinxV2,
        &packet.to_v2_bytes(),
        key,
        &random(),
    )
    .map_err(|e| anyhow!("{e}"))
}

/// Opens a pushed-message frame.
pub fn open_pushed(identity: &Identity, frame: &[u8]) -> anyhow::Result<Vec<u8>> {
    let key = identity.require_key()?;
    decrypt_pushed_message(frame, key).map_err(|e| anyhow!("pushed frame: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_increase_across_clones() {
        let identity = Identity::new();
        let clone = identity.clone();
        let first = identity.next_timestamp();
        let second = clone.next_timestamp();
        let third = identity.next_timestamp();
        assert!(first > now_unix() - 5);
        assert!(second > first && third > second);
        assert!(Identity::new().next_timestamp() >= now_unix());
    }
}
