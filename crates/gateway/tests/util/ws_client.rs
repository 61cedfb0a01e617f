//! A test client for the client port: raw websocket plus the client side of the protocol
//! (registration handshake, `authenticateV2`, binary frames), built on `gateway_protocol`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use futures_util::{SinkExt, StreamExt};
use gateway_protocol::client::binary::{decrypt_pushed_message, encrypt_request};
use gateway_protocol::client::handshake::derive_shared_key;
use gateway_protocol::client::{
    AuthenticateV2Request, ClientRequest, RequestKind, ServerResponse, SharedKey, TypedError,
};
use gateway_protocol::framing::KeyRotation;
use gateway_protocol::mix_packet::MixPacket;
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};

/// How long any single read may take before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

pub fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A raw websocket connection to the gateway's client port (TCP), or to a session served
/// in-process over any byte stream.
///
/// Like a real client, which reads all the time, it answers the gateway's Pings as soon as it
/// has read the frames before them: the gateway counts pushed messages as delivered (and
/// forwards their SURB-acks) only on that Pong.
pub struct WsClient<S = TcpStream> {
    pub ws: WebSocketStream<S>,
    /// Data frames read while looking for Pings, not yet returned.
    pending: std::collections::VecDeque<Message>,
}

/// What a test client's websocket can run over.
pub trait Transport: AsyncRead + AsyncWrite + Unpin {}

impl<T: AsyncRead + AsyncWrite + Unpin> Transport for T {}

impl WsClient {
    pub async fn connect(port: u16) -> Self {
        Self::connect_to(SocketAddr::from(([127, 0, 0, 1], port))).await
    }

    /// As [`connect`](Self::connect), to any address (e.g. `[::1]:port`).
    pub async fn connect_to(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}"), tcp)
            .await
            .expect("websocket upgrade");
        Self {
            ws,
            pending: Default::default(),
        }
    }
}

/// A client's TLS stream to the gateway's wss port.
pub type TlsTransport = tokio_rustls::client::TlsStream<TcpStream>;

impl WsClient<TlsTransport> {
    /// A `wss://host:port` connection to `addr` that trusts only `root` and checks that the
    /// gateway's certificate is valid for `host`, as a Nym client does with its roots. An error
    /// when the TLS handshake fails.
    pub async fn connect_wss(
        addr: SocketAddr,
        host: &str,
        root: &CertificateDer<'static>,
    ) -> std::io::Result<Self> {
        let mut roots = RootCertStore::empty();
        roots.add(root.clone()).unwrap();
        let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from(host.to_owned()).unwrap();
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        let url = format!("wss://{host}:{}", addr.port());
        let (ws, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .expect("websocket upgrade over TLS");
        Ok(Self {
            ws,
            pending: Default::default(),
        })
    }

    /// The leaf certificate the gateway presented.
    pub fn server_certificate(&self) -> CertificateDer<'static> {
        let (_, connection) = self.ws.get_ref().get_ref();
        connection.peer_certificates().expect("a certificate")[0].clone()
    }
}

impl<S: Transport> WsClient<S> {
    /// The client side of a websocket over `stream` (an in-memory pipe to an in-process
    /// session, say).
    pub async fn over(stream: S) -> Self {
        let (ws, _) = tokio_tungstenite::client_async("ws://gateway.test", stream)
            .await
            .expect("websocket upgrade");
        Self {
            ws,
            pending: Default::default(),
        }
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::text(text.into())).await.unwrap();
    }

    pub async fn send_request(&mut self, request: &ClientRequest) {
        self.send_text(request.to_text()).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.unwrap();
    }

    /// The next frame of any kind: one read ahead while answering Pings, else from the
    /// socket (a data frame's Pings are answered). Tests that read frames themselves use this,
    /// never `ws.next()`, so frames read ahead are not skipped.
    pub async fn read(
        &mut self,
        wait: Duration,
    ) -> Result<
        Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        tokio::time::error::Elapsed,
    > {
        if let Some(message) = self.pending.pop_front() {
            return Ok(Some(Ok(message)));
        }
        let read = tokio::time::timeout(wait, self.ws.next()).await;
        if let Ok(Some(Ok(Message::Ping(_)))) = &read {
            // tungstenite queued the Pong; a client that keeps reading sends it now.
            let _ = self.ws.flush().await;
        }
        if let Ok(Some(Ok(Message::Binary(_) | Message::Text(_)))) = &read {
            self.answer_pings().await;
        }
        read
    }

    /// Reads whatever has already arrived (keeping data frames for later) so the Pings among
    /// it are answered, as a client's read loop does.
    async fn answer_pings(&mut self) {
        use futures_util::FutureExt as _;
        let mut pinged = false;
        while let Some(Some(Ok(message))) = self.ws.next().now_or_never() {
            match message {
                Message::Ping(_) => pinged = true,
                Message::Pong(_) => {}
                other => self.pending.push_back(other),
            }
        }
        if pinged {
            let _ = self.ws.flush().await;
        }
    }

    /// The next data frame (Pings and Pongs are skipped; Pings are answered); panics on
    /// timeout, close or error.
    pub async fn next_message(&mut self) -> Message {
        loop {
            match self.read(READ_TIMEOUT).await {
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(Some(Ok(message))) => return message,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// The next binary frame, or `None` once the connection ends or nothing comes for `wait`;
    /// text frames in between are skipped.
    pub async fn try_next_binary(&mut self, wait: Duration) -> Option<Vec<u8>> {
        loop {
            match self.read(wait).await {
                Ok(Some(Ok(Message::Binary(bytes)))) => return Some(bytes.to_vec()),
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => {
                    return None
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The next text frame, parsed; panics on anything else.
    pub async fn next_response(&mut self) -> ServerResponse {
        match self.next_message().await {
            Message::Text(text) => ServerResponse::parse(&text)
                .unwrap_or_else(|e| panic!("unparsable response {text}: {e}")),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next binary frame; panics on anything else.
    pub async fn next_binary(&mut self) -> Vec<u8> {
        match self.next_message().await {
            Message::Binary(bytes) => bytes.to_vec(),
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }

    /// The text of the next frame, which must be `{"type":"error",...}`.
    pub async fn next_error(&mut self) -> String {
        match self.next_response().await {
            ServerResponse::Error { message } => message,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// Claims the free testnet bandwidth and expects it granted.
    pub async fn claim_free_bandwidth(&mut self) {
        self.send_request(&ClientRequest::ClaimFreeTestnetBandwidth)
            .await;
        assert!(matches!(
            self.next_response().await,
            ServerResponse::Bandwidth { .. }
        ));
    }

    /// Expects the error `expected`, then the end of the connection.
    pub async fn expect_error_and_close(&mut self, expected: &str) {
        assert_eq!(self.next_error().await, expected);
        self.expect_closed().await;
    }

    /// Expects the gateway to close the connection (a Close frame, EOF or a reset) with no
    /// further data frame.
    pub async fn expect_closed(&mut self) {
        loop {
            match self.read(READ_TIMEOUT).await {
                Err(_) => panic!("connection still open"),
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(Some(Ok(other))) => panic!("expected the connection to close, got {other:?}"),
            }
        }
    }

    /// Closes from our side and waits for the gateway to finish the close.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(READ_TIMEOUT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// A client identity and, once registered, its shared key.
pub struct TestClient {
    pub identity: SigningKey,
    pub key: Option<SharedKey>,
    last_timestamp: u64,
}

impl Default for TestClient {
    fn default() -> Self {
        Self::new()
    }
}

impl TestClient {
    pub fn new() -> Self {
        Self {
            identity: SigningKey::from_bytes(&random()),
            key: None,
            last_timestamp: 0,
        }
    }

    /// The client's address (its identity public key).
    pub fn address(&self) -> [u8; 32] {
        self.identity.verifying_key().to_bytes()
    }

    /// The address as the store and the router take it.
    pub fn client_address(&self) -> gateway_store::ClientAddress {
        gateway_store::ClientAddress::from_bytes(self.address())
    }

    pub fn address_bs58(&self) -> String {
        bs58::encode(self.address()).into_string()
    }

    pub fn key(&self) -> &SharedKey {
        self.key.as_ref().expect("registered")
    }

    /// Handshake message 1: identity, a fresh x25519 key, a fresh salt.
    pub fn handshake_init(&self) -> (StaticSecret, Vec<u8>) {
        let ephemeral = StaticSecret::from(random::<32>());
        let salt: [u8; 16] = random();
        let mut init = self.address().to_vec();
        init.extend_from_slice(X25519Public::from(&ephemeral).as_bytes());
        init.extend_from_slice(&salt);
        (ephemeral, init)
    }

    pub fn init_request(init: Vec<u8>) -> ClientRequest {
        ClientRequest::RegisterHandshakeInitRequest {
            protocol_version: 6,
            data: init,
        }
    }

    /// Runs the registration handshake up to (not including) the gateway's final answer:
    /// checks the gateway's signature, sends message 3 and expects message 4.
    pub async fn handshake<S: Transport>(&mut self, ws: &mut WsClient<S>, gateway: &VerifyingKey) {
        let (ephemeral, init) = self.handshake_init();
        // The wire form real clients use is the `handshakePayload` alias.
        ws.send_text(
            serde_json::json!({"type": "handshakePayload", "protocol_version": 6, "data": init})
                .to_string(),
        )
        .await;
        let ServerResponse::HandshakePayload {
            protocol_version,
            data,
        } = ws.next_response().await
        else {
            panic!("expected handshake message 2");
        };
        assert_eq!(protocol_version, 6);
        assert_eq!(data.len(), 124);
        let gateway_ephemeral: [u8; 32] = data[..32].try_into().unwrap();
        let client_ephemeral = X25519Public::from(&ephemeral).to_bytes();
        let dh = ephemeral.diffie_hellman(&X25519Public::from(gateway_ephemeral));
        let key = derive_shared_key(dh.as_bytes(), &init[64..80]);

        let nonce: [u8; 12] = data[112..].try_into().unwrap();
        let signature: [u8; 64] = key
            .decrypt(&nonce, &data[32..112])
            .expect("gateway signature decrypts")
            .try_into()
            .unwrap();
        gateway
            .verify(
                &[gateway_ephemeral, client_ephemeral].concat(),
                &ed25519_dalek::Signature::from_bytes(&signature),
            )
            .expect("gateway signature verifies");

        let ours = self
            .identity
            .sign(&[client_ephemeral, gateway_ephemeral].concat());
        let nonce: [u8; 12] = random();
        let mut finish = key.encrypt(&nonce, &ours.to_bytes()).unwrap();
        finish.extend_from_slice(&nonce);
        ws.send_text(
            ServerResponse::HandshakePayload {
                protocol_version: 6,
                data: finish,
            }
            .to_text(),
        )
        .await;
        assert_eq!(
            ws.next_response().await,
            ServerResponse::HandshakePayload {
                protocol_version: 6,
                data: vec![1]
            }
        );
        self.key = Some(key);
    }

    /// Registers and expects the `register` response right away (no stored messages).
    pub async fn register<S: Transport>(&mut self, ws: &mut WsClient<S>, gateway: &VerifyingKey) {
        self.handshake(ws, gateway).await;
        assert_eq!(
            ws.next_response().await,
            ServerResponse::Register {
                protocol_version: 6,
                status: true,
                upgrade_mode: false
            }
        );
    }

    /// A timestamp later than any this client used, near now.
    pub fn next_timestamp(&mut self) -> u64 {
        let ts = (now_unix() + 1).max(self.last_timestamp + 1);
        self.last_timestamp = ts;
        ts
    }

    /// An `authenticateV2` request for `timestamp`.
    pub fn authenticate_request(&self, timestamp: u64) -> ClientRequest {
        let key = self.key();
        let nonce: [u8; 12] = random();
        let mut request = AuthenticateV2Request {
            protocol_version: 6,
            client_identity: self.address(),
            address_ciphertext: key.encrypt(&nonce, &self.address()).unwrap(),
            nonce: nonce.to_vec(),
            request_unix_timestamp: timestamp,
            request_signature: [0; 64],
            debug_trace_id: None,
        };
        request.request_signature = self.identity.sign(&request.signed_message()).to_bytes();
        ClientRequest::AuthenticateV2(Box::new(request))
    }

    /// Sends `authenticateV2` with a fresh timestamp (the response is the caller's to read,
    /// after any stored messages).
    pub async fn send_authenticate<S: Transport>(&mut self, ws: &mut WsClient<S>) {
        let ts = self.next_timestamp();
        ws.send_request(&self.authenticate_request(ts)).await;
    }

    /// A binary forward request for `packet`.
    pub fn forward_frame(&self, kind: RequestKind, packet: &MixPacket) -> Vec<u8> {
        let plaintext = match kind {
            RequestKind::ForwardSphinx => packet.to_v1_bytes(),
            RequestKind::ForwardSphinxV2 => packet.to_v2_bytes(),
        };
        encrypt_request(kind, &plaintext, self.key(), &random()).unwrap()
    }

    /// Forwards a random regular-size (2413-byte) packet for `next_hop` as `ForwardSphinxV2`
    /// and reads the answer: the `Send` response's `(remaining_bandwidth, upgrade_mode)`, or
    /// the typed error the packet was refused with; panics on anything else.
    pub async fn send_forward<S: Transport>(
        &self,
        ws: &mut WsClient<S>,
        next_hop: SocketAddr,
    ) -> Result<(i64, bool), TypedError> {
        let bytes: Vec<u8> = (0..2413).map(|_| random::<1>()[0]).collect();
        let packet = MixPacket::new(next_hop, KeyRotation::Odd, bytes).unwrap();
        ws.send_binary(self.forward_frame(RequestKind::ForwardSphinxV2, &packet))
            .await;
        match ws.next_response().await {
            ServerResponse::Send {
                remaining_bandwidth,
                upgrade_mode,
            } => Ok((remaining_bandwidth, upgrade_mode)),
            ServerResponse::TypedError { error } => Err(error),
            other => panic!("expected send, got {other:?}"),
        }
    }

    /// Opens a pushed-message frame.
    pub fn open_pushed(&self, frame: &[u8]) -> Vec<u8> {
        decrypt_pushed_message(frame, self.key()).expect("pushed frame decrypts")
    }
}
