//! Client sessions in-process: the gateway's session code (`node::client::serve_connection`)
//! over in-memory pipes, with a real SQLite store, router and egress, and no listener. Each
//! table of cases runs every case as its own task and reports every failing case by name, so
//! one failure does not hide the rest.
//!
//! Behaviour that needs a process (signals, the listener, the connection limit) stays in
//! `client_protocol.rs`.

mod util;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use futures_util::SinkExt;
use gateway_protocol::client::{ClientRequest, RequestKind, ServerResponse};
use gateway_protocol::framing::{FrameVersion, KeyRotation};
use gateway_protocol::mix_packet::MixPacket;
use nym_gateway::config::{NoiseMode, Tuning};
use nym_gateway::keys::NoiseKey;
use nym_gateway::node::client::{
    serve_connection, ClientContext, ClientLimits, SignerQueue, TicketSettings, Tickets,
};
use nym_gateway::node::egress::{Egress, EgressConfig};
use nym_gateway::node::metrics::Metrics;
use nym_gateway::node::noise::Noise;
use nym_gateway::node::router::{Delivery, Router};
use tokio::io::DuplexStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use util::harness::{read_exact, NextHop};
use util::ws_client::{now_unix, random, TestClient, WsClient};

/// Length of a regular Sphinx packet.
const REGULAR: usize = 2413;
/// What every failure before authentication says for a request it does not accept.
const ONLY: &str = "Only 'Register' or 'Authenticate' requests are allowed";

/// A gateway's client side without its listener: sessions are served over in-memory pipes.
struct Sessions {
    ctx: ClientContext,
    identity: VerifyingKey,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Sessions {
    /// The default limits, changed by `tune`.
    fn new(tune: impl FnOnce(&mut ClientLimits)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store_config = gateway_store::StoreConfig::new(dir.path().join("db.sqlite"));
        let store = gateway_store::Store::open(store_config).unwrap();
        let metrics = Metrics::new();
        let egress = Egress::new(
            EgressConfig {
                queue_capacity: 64,
                max_connections: 4,
                connect_timeout: Duration::from_secs(5),
                initial_backoff: Duration::from_millis(100),
                maximum_backoff: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(60),
                frame_version: FrameVersion::V8,
            },
            Noise::new(
                NoiseMode::Off,
                NoiseKey::generate().unwrap(),
                Duration::from_secs(5),
            ),
            metrics.clone(),
            CancellationToken::new(),
            TaskTracker::new(),
        );
        let router = Router::new(
            store.clone(),
            egress.clone(),
            metrics.clone(),
            TaskTracker::new(),
        );
        let mut limits = ClientLimits::from_config(&Tuning::default());
        tune(&mut limits);
        let identity = SigningKey::from_bytes(&random());
        let tickets = Tickets::new(
            identity.verifying_key().to_bytes(),
            &TicketSettings::from_config(false, &[], &Tuning::default()),
            SignerQueue::disabled(),
        );
        Self {
            identity: identity.verifying_key(),
            ctx: ClientContext {
                router,
                store,
                egress,
                metrics,
                identity: Arc::new(identity),
                limits: Arc::new(limits),
                connection_limit: Arc::new(Semaphore::new(16)),
                address_limit: nym_gateway::node::address_limit::AddressLimit::unlimited(),
                tickets,
                upgrade_mode: nym_gateway::node::upgrade_mode::UpgradeMode::off(),
            },
            shutdown: CancellationToken::new(),
            _dir: dir,
        }
    }

    /// A new connection, served in a task of its own.
    async fn connect(&self) -> WsClient<DuplexStream> {
        let (client, gateway) = tokio::io::duplex(256 * 1024);
        tokio::spawn(serve_connection(
            gateway,
            self.ctx.clone(),
            self.shutdown.clone(),
        ));
        WsClient::over(client).await
    }

    /// A registered client with its session, bandwidth claimed.
    async fn registered(&self) -> (TestClient, WsClient<DuplexStream>) {
        let mut client = TestClient::new();
        let mut ws = self.connect().await;
        client.register(&mut ws, &self.identity).await;
        ws.claim_free_bandwidth().await;
        (client, ws)
    }

    fn handshakes_failed(&self) -> f64 {
        metric(
            &self.ctx.metrics,
            "gateway_handshakes_total{outcome=\"failed\"}",
        )
    }
}

/// A value from the metrics' Prometheus text.
fn metric(metrics: &Metrics, name: &str) -> f64 {
    metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

type Case = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs every case as a task and fails naming each case that panicked.
async fn check_all(cases: Vec<(&'static str, Case)>) {
    let tasks: Vec<_> = cases
        .into_iter()
        .map(|(name, case)| (name, tokio::spawn(case)))
        .collect();
    let mut failed = Vec::new();
    for (name, task) in tasks {
        if let Err(e) = task.await {
            failed.push(name);
            eprintln!("case {name:?} failed: {e}");
        }
    }
    assert!(failed.is_empty(), "failed cases: {failed:?}");
}

/// Handshake failures say `handshakeError`, then the wrapped error, then close.
async fn expect_handshake_failure(ws: &mut WsClient<DuplexStream>, reason: &str) {
    assert_eq!(
        ws.next_response().await,
        ServerResponse::HandshakeError {
            message: reason.to_owned()
        }
    );
    ws.expect_error_and_close(&format!(
        "Failed to perform registration handshake: {reason}"
    ))
    .await;
}

#[tokio::test]
async fn before_authentication_a_refused_request_gets_its_error_then_the_close() {
    let sessions = Arc::new(Sessions::new(|_| {}));
    let fresh = |name, message: Message, expected: &'static str| -> (&'static str, Case) {
        let sessions = sessions.clone();
        let case = async move {
            let mut ws = sessions.connect().await;
            ws.ws.send(message).await.unwrap();
            ws.expect_error_and_close(expected).await;
        };
        (name, Box::pin(case))
    };
    check_all(vec![
        fresh("malformed json", Message::text("{not json"), ONLY),
        fresh(
            "bandwidth claim",
            Message::text(r#"{"type":"claimFreeTestnetBandwidth"}"#),
            ONLY,
        ),
        fresh(
            "legacy authenticate",
            Message::text(
                r#"{"type":"authenticate","protocol_version":3,"address":"a","enc_address":"b","iv":"c"}"#,
            ),
            "the legacy authentication method is no longer supported. please update your client",
        ),
        fresh(
            "binary frame",
            Message::binary(vec![2u8; 100]),
            "possibly received a sphinx packet without prior authentication. Request is going to be ignored",
        ),
        fresh(
            "ping",
            Message::Ping(vec![1u8, 2].into()),
            "received a Message of type ping which was not expected in this context",
        ),
    ])
    .await;
    let rejected = metric(
        &sessions.ctx.metrics,
        "gateway_client_connections_rejected_total{reason=\"unexpected_request\"}",
    );
    assert_eq!(rejected, 5.0);
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_times_out() {
    let sessions = Sessions::new(|limits| limits.initial_message_timeout = Duration::from_secs(2));
    let mut ws = sessions.connect().await;
    let started = tokio::time::Instant::now();
    ws.expect_error_and_close("timed out while waiting for initial data")
        .await;
    assert_eq!(started.elapsed().as_secs(), 2);
}

#[tokio::test(start_paused = true)]
async fn asking_for_the_protocol_version_does_not_extend_the_pre_authentication_deadline() {
    let sessions = Sessions::new(|limits| {
        limits.initial_message_timeout = Duration::from_secs(2);
        limits.pre_authentication_timeout = Duration::from_secs(5);
    });
    let mut ws = sessions.connect().await;
    let started = tokio::time::Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ws.send_request(&ClientRequest::SupportedProtocol).await;
        assert!(matches!(
            ws.next_response().await,
            ServerResponse::SupportedProtocol { version: 6 }
        ));
    }
    ws.expect_error_and_close("timed out while waiting for initial data")
        .await;
    assert_eq!(started.elapsed().as_secs(), 5);
}

#[tokio::test]
async fn authenticate_v2_is_checked_in_order() {
    let sessions = Arc::new(Sessions::new(|_| {}));
    let (good, _session) = sessions.registered().await;
    let good = Arc::new(good);
    let refused = |name, request: ClientRequest, expected: &'static str| -> (&'static str, Case) {
        let sessions = sessions.clone();
        let case = async move {
            let mut ws = sessions.connect().await;
            ws.send_request(&request).await;
            let error = ws.next_error().await;
            assert!(error.starts_with(expected), "{error}");
            ws.expect_closed().await;
        };
        (name, Box::pin(case))
    };
    let mut stranger = TestClient::new();
    stranger.key = Some(good.key().clone());
    let ClientRequest::AuthenticateV2(mut old_version) = good.authenticate_request(now_unix() + 1)
    else {
        unreachable!()
    };
    old_version.protocol_version = 3;
    check_all(vec![
        refused(
            "not registered",
            stranger.authenticate_request(now_unix() + 1),
            "the client is not registered",
        ),
        refused(
            "old protocol version",
            ClientRequest::AuthenticateV2(old_version),
            "Attempted to negotiate connection with client using incompatible protocol version. Ours is 6 and the client reports 3",
        ),
        refused(
            "skewed timestamp",
            good.authenticate_request(now_unix() - 1000),
            "the provided request timestamp is excessively skewed. got ",
        ),
    ])
    .await;
}

#[tokio::test]
async fn a_failed_registration_handshake_says_why_and_closes() {
    let sessions = Arc::new(Sessions::new(|limits| {
        limits.handshake_message_timeout = Duration::from_secs(1);
    }));
    let case = |name, message_3: Option<Vec<u8>>, reason: &'static str| -> (&'static str, Case) {
        let sessions = sessions.clone();
        let case = async move {
            let mut ws = sessions.connect().await;
            let (_, init) = TestClient::new().handshake_init();
            ws.send_request(&TestClient::init_request(init)).await;
            assert!(matches!(
                ws.next_response().await,
                ServerResponse::HandshakePayload { .. }
            ));
            if let Some(data) = message_3 {
                let frame = ServerResponse::HandshakePayload {
                    protocol_version: 6,
                    data,
                };
                ws.send_text(frame.to_text()).await;
            }
            expect_handshake_failure(&mut ws, reason).await;
        };
        (name, Box::pin(case))
    };
    let malformed = {
        let sessions = sessions.clone();
        let case = async move {
            let mut ws = sessions.connect().await;
            ws.send_request(&TestClient::init_request(vec![7; 10]))
                .await;
            expect_handshake_failure(&mut ws, "sent request was malformed").await;
        };
        ("malformed message 1", Box::pin(case) as Case)
    };
    check_all(vec![
        malformed,
        case(
            "no message 3 in time",
            None,
            "timed out waiting for a handshake message",
        ),
        case(
            "undecryptable message 3",
            Some(vec![0; 92]),
            "failed to either encrypt or decrypt provided message",
        ),
    ])
    .await;
    assert_eq!(sessions.handshakes_failed(), 3.0);
}

#[tokio::test]
async fn an_authenticated_client_gets_an_error_per_bad_request_and_keeps_its_session() {
    let sessions = Sessions::new(|_| {});
    let (good, mut session) = sessions.registered().await;
    let illegal = "The received request is not valid in the current context: received illegal message of type";
    let text_cases = [
        ("malformed json", "{not json".to_owned(), "Provided text request was malformed - "),
        (
            "registration",
            ClientRequest::RegisterHandshakeInitRequest {
                protocol_version: 6,
                data: vec![1],
            }
            .to_text(),
            illegal,
        ),
        (
            "authenticate again",
            good.authenticate_request(now_unix()).to_text(),
            "received a text request of an unknown type",
        ),
        (
            "undecryptable ticket",
            r#"{"type":"ecashCredential","enc_credential":[1],"iv":[0,0,0,0,0,0,0,0,0,0,0,0]}"#
                .to_owned(),
            "Provided binary request was malformed - failed to either encrypt or decrypt provided message",
        ),
        (
            "ticket with a short iv",
            r#"{"type":"ecashCredential","enc_credential":[1],"iv":[0,0,0]}"#.to_owned(),
            "Provided binary request was malformed - the provided nonce (or legacy IV) did not have the expected length",
        ),
        (
            "upgrade mode",
            r#"{"type":"upgradeModeJWT","token":"x"}"#.to_owned(),
            "provided upgrade mode JWT is invalid: failed to decode jwt metadata: JWT compact encoding error",
        ),
        (
            "coconut credential",
            r#"{"type":"bandwidthCredential","enc_credential":[1],"iv":[2]}"#.to_owned(),
            "The received request is not valid in the current context: coconut credential are not longer supported",
        ),
        (
            "undecryptable encrypted request",
            r#"{"type":"encryptedRequest","ciphertext":[1,2,3],"nonce":[1]}"#.to_owned(),
            "failed to decrypt provided text request",
        ),
    ];
    // One connection answers in order, so these run one after the other; every mismatch is
    // collected before failing.
    let mut failed = Vec::new();
    for (name, text, expected) in text_cases {
        session.send_text(text).await;
        let error = session.next_error().await;
        if !error.starts_with(expected) {
            failed.push(format!("{name}: {error}"));
        }
    }

    let hop = NextHop::bind().await;
    let mut tampered = good.forward_frame(RequestKind::ForwardSphinxV2, &forward_packet(&hop));
    *tampered.last_mut().unwrap() ^= 1;
    session.send_binary(tampered).await;
    let error = session.next_error().await;
    if error != "Provided binary request was malformed - failed to either encrypt or decrypt provided message" {
        failed.push(format!("tampered forward request: {error}"));
    }
    let garbage = gateway_protocol::client::binary::encrypt_request(
        RequestKind::ForwardSphinx,
        &[0, 4, 0x06, 0xfd, 127, 0, 0, 1, 9, 9, 9],
        good.key(),
        &random(),
    )
    .unwrap();
    session.send_binary(garbage).await;
    let error = session.next_error().await;
    if error != "Provided binary request was malformed - failed to serialise created sphinx packet: received request had an invalid packet size: 3 does not correspond with any known packet size" {
        failed.push(format!("unknown packet size: {error}"));
    }
    assert!(failed.is_empty(), "wrong replies: {failed:#?}");

    // The session still forwards, and the packet reaches its next hop intact.
    let packet = forward_packet(&hop);
    session
        .send_binary(good.forward_frame(RequestKind::ForwardSphinxV2, &packet))
        .await;
    assert!(matches!(
        session.next_response().await,
        ServerResponse::Send { .. }
    ));
    let mut mix = hop.accept().await;
    assert_eq!(
        read_exact(&mut mix, 4 + REGULAR).await[..],
        [&[8, 1, 0, 1][..], &packet.packet[..]].concat()
    );
}

#[tokio::test]
async fn a_frame_over_the_size_limit_ends_only_its_own_connection() {
    let sessions = Sessions::new(|limits| limits.maximum_client_message_size = 8 * 1024);
    let (_, mut other) = sessions.registered().await;
    let (_, mut big) = sessions.registered().await;
    big.send_binary(vec![0; 9 * 1024]).await;
    big.expect_closed().await;
    other.send_request(&ClientRequest::SupportedProtocol).await;
    assert!(matches!(
        other.next_response().await,
        ServerResponse::SupportedProtocol { .. }
    ));
}

#[tokio::test]
async fn a_live_message_is_pushed_and_one_for_an_absent_client_waits_in_the_store() {
    let sessions = Sessions::new(|_| {});
    let (mut client, mut ws) = sessions.registered().await;
    let router = &sessions.ctx.router;

    let live = random::<64>().to_vec();
    router
        .deliver(client.client_address(), delivery(live.clone()))
        .await;
    assert_eq!(client.open_pushed(&ws.next_binary().await), live);
    // Counted once the client's pong confirms it.
    wait_until(|| metric(&sessions.ctx.metrics, "gateway_messages_pushed_total") == 1.0).await;

    ws.close().await;
    wait_until(|| !router.is_live(&client.client_address())).await;
    let stored = random::<64>().to_vec();
    router
        .deliver(client.client_address(), delivery(stored.clone()))
        .await;
    wait_until(|| metric(&sessions.ctx.metrics, "gateway_messages_stored_total") == 1.0).await;

    // Stored messages come before the authenticate response.
    let mut ws = sessions.connect().await;
    client.send_authenticate(&mut ws).await;
    assert_eq!(client.open_pushed(&ws.next_binary().await), stored);
    assert!(matches!(
        ws.next_response().await,
        ServerResponse::Authenticate { status: true, .. }
    ));
}

#[tokio::test]
async fn shutdown_ends_a_session_and_a_message_queued_behind_it_is_stored() {
    let sessions = Sessions::new(|_| {});
    let (client, mut ws) = sessions.registered().await;
    sessions.shutdown.cancel();
    ws.expect_closed().await;
    let router = &sessions.ctx.router;
    wait_until(|| !router.is_live(&client.client_address())).await;
    router
        .deliver(client.client_address(), delivery(vec![5; 32]))
        .await;
    wait_until(|| metric(&sessions.ctx.metrics, "gateway_messages_stored_total") == 1.0).await;
    let kept = sessions
        .ctx
        .store
        .fetch_messages(client.client_address(), None, 10)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].content, vec![5; 32]);
}

fn delivery(message: Vec<u8>) -> Delivery {
    Delivery {
        message,
        ack: None,
        unwrapped_at: std::time::Instant::now(),
    }
}

fn forward_packet(hop: &NextHop) -> MixPacket {
    let bytes: Vec<u8> = (0..REGULAR).map(|_| random::<1>()[0]).collect();
    MixPacket::new(hop.addr(), KeyRotation::Odd, bytes).unwrap()
}

/// Polls `done` every few milliseconds for up to 10 s.
async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 10 s");
}

/// The next frame read straight from the socket: a Ping read this way has its Pong queued by
/// the websocket layer, which sends it only at the next read or write (so the test decides
/// when the client answers).
async fn raw_next(ws: &mut WsClient<DuplexStream>) -> Message {
    use futures_util::StreamExt as _;
    tokio::time::timeout(Duration::from_secs(10), ws.ws.next())
        .await
        .expect("a frame in time")
        .expect("the connection is open")
        .expect("a valid frame")
}

/// A message pushed with a SURB-ack whose next hop is `hop`.
fn delivery_acked_to(message: Vec<u8>, hop: &NextHop) -> Delivery {
    Delivery {
        message,
        ack: Some(forward_packet(hop)),
        unwrapped_at: std::time::Instant::now(),
    }
}

#[tokio::test]
async fn a_pushed_messages_ack_leaves_only_after_the_clients_pong() {
    let sessions = Sessions::new(|_| {});
    let (client, mut ws) = sessions.registered().await;
    let hop = NextHop::bind().await;
    let message = random::<64>().to_vec();
    sessions
        .ctx
        .router
        .deliver(
            client.client_address(),
            delivery_acked_to(message.clone(), &hop),
        )
        .await;
    let Message::Binary(frame) = raw_next(&mut ws).await else {
        panic!("the message first")
    };
    assert_eq!(client.open_pushed(&frame), message);
    let Message::Ping(payload) = raw_next(&mut ws).await else {
        panic!("then a ping")
    };
    // Written and read, not yet confirmed: no ack, not counted as pushed.
    assert!(!hop.has_connection_within(Duration::from_millis(300)).await);
    assert_eq!(
        metric(&sessions.ctx.metrics, "gateway_messages_pushed_total"),
        0.0
    );

    ws.ws.send(Message::Pong(payload)).await.unwrap();
    let mut acks = hop.accept().await;
    read_exact(&mut acks, 4 + REGULAR).await;
    wait_until(|| metric(&sessions.ctx.metrics, "gateway_messages_pushed_total") == 1.0).await;
    assert_eq!(
        metric(
            &sessions.ctx.metrics,
            "gateway_client_delivery_confirmation_seconds_count"
        ),
        1.0
    );
}

#[tokio::test]
async fn a_client_that_resets_after_the_write_gets_the_message_again_on_reconnect() {
    let sessions = Sessions::new(|_| {});
    let (mut client, mut ws) = sessions.registered().await;
    let hop = NextHop::bind().await;
    let message = random::<64>().to_vec();
    let router = &sessions.ctx.router;
    router
        .deliver(
            client.client_address(),
            delivery_acked_to(message.clone(), &hop),
        )
        .await;
    // The gateway's write returned (the frame is in the pipe) and the client is gone before
    // answering: as if its socket buffer was lost with the connection.
    let Message::Binary(_) = raw_next(&mut ws).await else {
        panic!("the message")
    };
    assert!(!hop.has_connection_within(Duration::from_millis(200)).await);
    drop(ws);

    // No ack on the strength of that write: the message goes back to the store, and its ack
    // leaves only once it is committed there, as for any client that is offline.
    wait_until(|| {
        metric(
            &sessions.ctx.metrics,
            "gateway_messages_unconfirmed_returned_total",
        ) == 1.0
    })
    .await;
    wait_until(|| metric(&sessions.ctx.metrics, "gateway_messages_stored_total") == 1.0).await;
    assert_eq!(
        metric(&sessions.ctx.metrics, "gateway_messages_pushed_total"),
        0.0
    );
    let stored = sessions
        .ctx
        .store
        .fetch_messages(client.client_address(), None, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    read_exact(&mut hop.accept().await, 4 + REGULAR).await;

    let mut ws = sessions.connect().await;
    client.send_authenticate(&mut ws).await;
    assert_eq!(client.open_pushed(&ws.next_binary().await), message);
    assert!(matches!(
        ws.next_response().await,
        ServerResponse::Authenticate { status: true, .. }
    ));
}

#[tokio::test]
async fn a_client_that_never_confirms_is_disconnected_and_its_messages_stored() {
    let sessions = Sessions::new(|limits| {
        limits.delivery_confirmation_timeout = Duration::from_millis(300);
    });
    let (client, mut ws) = sessions.registered().await;
    let router = &sessions.ctx.router;
    router
        .deliver(client.client_address(), delivery(vec![1; 32]))
        .await;
    let Message::Binary(_) = raw_next(&mut ws).await else {
        panic!("the message")
    };
    let Message::Ping(_) = raw_next(&mut ws).await else {
        panic!("the ping")
    };
    // Reading on would send the queued Pong; the client stays silent instead.
    wait_until(|| !router.is_live(&client.client_address())).await;
    wait_until(|| metric(&sessions.ctx.metrics, "gateway_messages_stored_total") == 1.0).await;
    assert_eq!(
        metric(
            &sessions.ctx.metrics,
            "gateway_messages_unconfirmed_returned_total"
        ),
        1.0
    );
}

#[tokio::test]
async fn stored_messages_are_deleted_only_once_confirmed() {
    let sessions = Sessions::new(|_| {});
    let (mut client, ws) = sessions.registered().await;
    let router = &sessions.ctx.router;
    ws.close().await;
    wait_until(|| !router.is_live(&client.client_address())).await;
    let message = random::<48>().to_vec();
    router
        .deliver(client.client_address(), delivery(message.clone()))
        .await;
    wait_until(|| metric(&sessions.ctx.metrics, "gateway_messages_stored_total") == 1.0).await;
    let address = client.client_address();
    let stored = |sessions: &Sessions| {
        let store = sessions.ctx.store.clone();
        async move { store.fetch_messages(address, None, 10).await.unwrap().len() }
    };

    let mut ws = sessions.connect().await;
    client.send_authenticate(&mut ws).await;
    let Message::Binary(frame) = raw_next(&mut ws).await else {
        panic!("the stored message first")
    };
    assert_eq!(client.open_pushed(&frame), message);
    let Message::Ping(_) = raw_next(&mut ws).await else {
        panic!("then a ping")
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stored(&sessions).await, 1, "kept until confirmed");
    // Reading on sends the Pong the websocket layer queued.
    assert!(matches!(
        ws.next_response().await,
        ServerResponse::Authenticate { status: true, .. }
    ));
    for _ in 0..100 {
        if stored(&sessions).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stored(&sessions).await, 0, "deleted once confirmed");
    assert_eq!(
        metric(
            &sessions.ctx.metrics,
            "gateway_messages_delivered_from_store_total"
        ),
        1.0
    );
}

#[tokio::test]
async fn with_confirmation_off_a_write_is_a_delivery() {
    let sessions = Sessions::new(|limits| limits.delivery_confirmation = false);
    let (client, mut ws) = sessions.registered().await;
    let hop = NextHop::bind().await;
    let message = random::<64>().to_vec();
    sessions
        .ctx
        .router
        .deliver(
            client.client_address(),
            delivery_acked_to(message.clone(), &hop),
        )
        .await;
    let Message::Binary(frame) = raw_next(&mut ws).await else {
        panic!("the message")
    };
    assert_eq!(client.open_pushed(&frame), message);
    // No ping follows, and the ack leaves without one.
    read_exact(&mut hop.accept().await, 4 + REGULAR).await;
    assert!(ws
        .try_next_binary(Duration::from_millis(200))
        .await
        .is_none());
}
