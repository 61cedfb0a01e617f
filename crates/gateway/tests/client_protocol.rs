//! The client port (PROTOCOL §2, §3) against the real binary, over loopback: registration,
//! bandwidth, forwarding, pushed and stored messages, duplicate connections, the connection
//! limit. The replies to malformed input are checked in-process, in `sessions.rs`.

mod util;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gateway_protocol::client::encrypted::{open_response, seal_request};
use gateway_protocol::client::request::SessionType;
use gateway_protocol::client::{
    ClientRequest, RequestKind, SensitiveRequest, SensitiveResponse, ServerResponse, TypedError,
};
use gateway_protocol::framing::KeyRotation;
use gateway_protocol::mix_packet::MixPacket;
use gateway_protocol::test_support::sphinx::{final_hop_packet, v7_frame, ACK_PACKET_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use util::harness::{read_exact, NextHop, TestGateway};
use util::probe::{AckSink, Traffic};
use util::ws_client::{now_unix, random, TestClient, WsClient, READ_TIMEOUT};

/// Length of a regular Sphinx packet, which is also what forwarding one costs.
const REGULAR: usize = 2413;
/// The default free claim: 64 GiB.
const FREE_CLAIM: i64 = 64 * 1024 * 1024 * 1024;
/// v7 frame headers: version 7, size id, packet type 0.
/// v8 frame headers: version 8, size id, packet type 0, then the packet's key rotation (0
/// unknown, 1 odd, 2 even): a client packet keeps the rotation of its forward request, an ack
/// that of the packet it came in.
const V8_REGULAR_ODD: [u8; 4] = [8, 1, 0, 1];
const V8_REGULAR_UNKNOWN: [u8; 4] = [8, 1, 0, 0];
const V8_ACK_UNKNOWN: [u8; 4] = [8, 2, 0, 0];

fn forward_packet(hop: &NextHop) -> MixPacket {
    let bytes: Vec<u8> = (0..REGULAR).map(|_| random::<1>()[0]).collect();
    MixPacket::new(hop.addr(), KeyRotation::Odd, bytes).unwrap()
}

fn bandwidth_sql() -> &'static str {
    "SELECT b.available FROM available_bandwidth b JOIN clients c ON c.id = b.client_id \
     WHERE c.client_address_bs58 = ?1"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_claim_forward_and_receive_a_pushed_message() {
    let gateway = TestGateway::start("pushes", &[]);
    let mut ws = WsClient::connect(gateway.clients_port()).await;
    ws.send_request(&ClientRequest::SupportedProtocol).await;
    assert_eq!(
        ws.next_response().await,
        ServerResponse::SupportedProtocol { version: 6 }
    );
    let mut client = TestClient::new();
    client.register(&mut ws, &gateway.identity).await;

    // Without bandwidth the packet is refused and never leaves.
    let refused_hop = NextHop::bind().await;
    let packet = forward_packet(&refused_hop);
    ws.send_binary(client.forward_frame(RequestKind::ForwardSphinxV2, &packet))
        .await;
    assert_eq!(
        ws.next_response().await,
        ServerResponse::TypedError {
            error: TypedError::OutOfBandwidth {
                required: REGULAR as i64,
                available: 0
            }
        }
    );

    ws.send_request(&ClientRequest::ClaimFreeTestnetBandwidth)
        .await;
    assert_eq!(
        ws.next_response().await,
        ServerResponse::Bandwidth {
            available_total: FREE_CLAIM,
            upgrade_mode: false
        }
    );
    // A claim is saved at once.
    assert_eq!(
        gateway.query_i64(bandwidth_sql(), &client.address_bs58()),
        FREE_CLAIM
    );

    // Both request kinds are forwarded as v8 frames, byte for byte, each answered by `send`;
    // the v2 request's key rotation travels on, the v1 request has none (unknown).
    let hop = NextHop::bind().await;
    let first = forward_packet(&hop);
    ws.send_binary(client.forward_frame(RequestKind::ForwardSphinxV2, &first))
        .await;
    assert_eq!(
        ws.next_response().await,
        ServerResponse::Send {
            remaining_bandwidth: FREE_CLAIM - REGULAR as i64,
            upgrade_mode: false
        }
    );
    let second = forward_packet(&hop);
    ws.send_binary(client.forward_frame(RequestKind::ForwardSphinx, &second))
        .await;
    assert_eq!(
        ws.next_response().await,
        ServerResponse::Send {
            remaining_bandwidth: FREE_CLAIM - 2 * REGULAR as i64,
            upgrade_mode: false
        }
    );
    let mut mix = hop.accept().await;
    for (packet, header) in [(&first, V8_REGULAR_ODD), (&second, V8_REGULAR_UNKNOWN)] {
        let frame = read_exact(&mut mix, 4 + REGULAR).await;
        assert_eq!(frame[..4], header);
        assert_eq!(frame[4..], packet.packet[..]);
    }
    assert!(
        !refused_hop
            .has_connection_within(Duration::from_millis(200))
            .await
    );

    // A message from the mixnet is pushed; its SURB-ack goes out only once the client's pong
    // confirms it read the message: when the ack arrives, the gateway has counted it pushed.
    let ack_hop = NextHop::bind().await;
    let ack_packet: [u8; ACK_PACKET_LEN] = random();
    let message = b"hello from the mixnet".to_vec();
    let sphinx = final_hop_packet(
        gateway.sphinx_key,
        gateway.mix_addr(),
        client.address(),
        ack_hop.addr(),
        &ack_packet,
        &message,
    );
    gateway.inject(&[v7_frame(&sphinx)]).await;
    let frame = ws.next_binary().await;
    assert_eq!(client.open_pushed(&frame), message);
    let mut acks = ack_hop.accept().await;
    let ack_frame = read_exact(&mut acks, 4 + ACK_PACKET_LEN).await;
    assert_eq!(ack_frame[..4], V8_ACK_UNKNOWN);
    assert_eq!(ack_frame[4..], ack_packet[..]);
    assert_eq!(gateway.metric("gateway_messages_pushed_total").await, 1.0);

    assert_eq!(
        gateway
            .metric("gateway_client_packets_forwarded_total")
            .await,
        2.0
    );
    assert_eq!(
        gateway
            .metric("gateway_handshakes_total{outcome=\"ok\"}")
            .await,
        1.0
    );
    assert_eq!(gateway.metric("gateway_clients_connected").await, 1.0);

    // Shutdown with a session open is clean, and the session saves what it used.
    let TestGateway { gw, running, .. } = gateway;
    let output = running.terminate("TERM");
    assert_eq!(output.status.code(), Some(0));
    ws.expect_closed().await;
    let db = rusqlite::Connection::open(gw.dir().join("data/db.sqlite")).unwrap();
    let available: i64 = db
        .query_row(bandwidth_sql(), [client.address_bs58()], |row| row.get(0))
        .unwrap();
    assert_eq!(available, FREE_CLAIM - 2 * REGULAR as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_messages_arrive_in_order_before_the_authenticate_response() {
    let gateway = TestGateway::start("stores", &[]);
    let mut client = TestClient::new();
    let mut ws = WsClient::connect(gateway.clients_port()).await;
    client.register(&mut ws, &gateway.identity).await;
    ws.claim_free_bandwidth().await;
    ws.close().await;

    // Offline: the messages are stored, and their acks go out once committed.
    let ack_hop = NextHop::bind().await;
    let ack_packets: Vec<[u8; ACK_PACKET_LEN]> = (0..3).map(|_| random()).collect();
    let messages: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("stored message {i}").into_bytes())
        .collect();
    let frames: Vec<Vec<u8>> = messages
        .iter()
        .zip(&ack_packets)
        .map(|(message, ack)| {
            v7_frame(&final_hop_packet(
                gateway.sphinx_key,
                gateway.mix_addr(),
                client.address(),
                ack_hop.addr(),
                ack,
                message,
            ))
        })
        .collect();
    gateway.inject(&frames).await;
    gateway.wait_stored(&client.address_bs58(), 3).await;
    // Acks of one commit batch may leave in any order.
    let mut acks = ack_hop.accept().await;
    let mut received = Vec::new();
    for _ in &ack_packets {
        let frame = read_exact(&mut acks, 4 + ACK_PACKET_LEN).await;
        assert_eq!(frame[..4], V8_ACK_UNKNOWN);
        received.push(frame[4..].to_vec());
    }
    let mut expected: Vec<Vec<u8>> = ack_packets.iter().map(|a| a.to_vec()).collect();
    expected.sort();
    received.sort();
    assert_eq!(received, expected);

    let mut ws = WsClient::connect(gateway.clients_port()).await;
    let timestamp = client.next_timestamp();
    let request = client.authenticate_request(timestamp);
    ws.send_request(&request).await;
    for message in &messages {
        let frame = ws.next_binary().await;
        assert_eq!(&client.open_pushed(&frame), message);
    }
    assert_eq!(
        ws.next_response().await,
        ServerResponse::Authenticate {
            protocol_version: 6,
            status: true,
            bandwidth_remaining: FREE_CLAIM,
            upgrade_mode: false
        }
    );
    // Deleted once the client's pong confirms them (it answers as it reads on).
    gateway.wait_stored(&client.address_bs58(), 0).await;
    assert_eq!(
        gateway
            .wait_metric("gateway_messages_delivered_from_store_total", 3.0)
            .await,
        3.0
    );

    // The same request again is a replay, refused before the live session is considered.
    let mut replay = WsClient::connect(gateway.clients_port()).await;
    replay.send_request(&request).await;
    replay
        .expect_error_and_close(
            "the provided request timestamp is smaller or equal to one previously used",
        )
        .await;

    // Encrypted requests: RememberMe, then ForgetMe deletes the client; the session goes on.
    let remember = SensitiveRequest::RememberMe {
        session_type: SessionType::Native,
    };
    ws.send_request(&seal_request(client.key(), remember, random()).unwrap())
        .await;
    let forget = SensitiveRequest::ForgetMe {
        client: true,
        stats: false,
    };
    ws.send_request(&seal_request(client.key(), forget, random()).unwrap())
        .await;
    for expected in [
        SensitiveResponse::RememberMeAck {},
        SensitiveResponse::ForgetMeAck {},
    ] {
        let ServerResponse::EncryptedResponse { ciphertext, nonce } = ws.next_response().await
        else {
            panic!("expected an encrypted response");
        };
        assert_eq!(
            open_response(client.key(), &ciphertext, &nonce).unwrap(),
            expected
        );
    }
    let shared_keys = "SELECT COUNT(*) FROM shared_keys WHERE client_address_bs58 = ?1";
    assert_eq!(gateway.query_i64(shared_keys, &client.address_bs58()), 0);
    ws.send_request(&ClientRequest::SupportedProtocol).await;
    assert_eq!(
        ws.next_response().await,
        ServerResponse::SupportedProtocol { version: 6 }
    );
}

/// A registered client whose socket is read by a task (so Pings are answered), with the
/// sending half kept for the test.
struct LiveClient {
    sink: futures_util::stream::SplitSink<tokio_tungstenite::WebSocketStream<TcpStream>, Message>,
    received: mpsc::UnboundedReceiver<Message>,
}

impl LiveClient {
    fn spawn(ws: WsClient) -> Self {
        let (sink, mut stream) = ws.ws.split();
        let (tx, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if message.is_text() || message.is_binary() {
                    let _ = tx.send(message);
                }
            }
        });
        Self { sink, received }
    }

    async fn still_works(&mut self) {
        let request = ClientRequest::SupportedProtocol.to_text();
        self.sink.send(Message::text(request)).await.unwrap();
        let reply = tokio::time::timeout(READ_TIMEOUT, self.received.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            reply.to_text().unwrap(),
            r#"{"type":"supportedProtocol","version":6}"#
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_connections_follow_the_liveness_rules() {
    let gateway = TestGateway::start("duplicates", &[]);
    let duplicate = "There is already an open connection to this client";

    let mut client = TestClient::new();
    let mut ws = WsClient::connect(gateway.clients_port()).await;
    client.register(&mut ws, &gateway.identity).await;
    let mut live = LiveClient::spawn(ws);

    // Registering again while connected is refused before any handshake work.
    let mut second = WsClient::connect(gateway.clients_port()).await;
    let (_, init) = client.handshake_init();
    second.send_request(&TestClient::init_request(init)).await;
    second.expect_error_and_close(duplicate).await;

    // An authentication older than the live session cannot replace it.
    let mut stale = WsClient::connect(gateway.clients_port()).await;
    stale
        .send_request(&client.authenticate_request(now_unix() - 10))
        .await;
    stale
        .expect_error_and_close("attempted to overwrite client session with a stale authentication")
        .await;

    // A newer one is refused while the live client answers the gateway's ping.
    let mut newer = WsClient::connect(gateway.clients_port()).await;
    client.send_authenticate(&mut newer).await;
    newer.expect_error_and_close(duplicate).await;
    live.still_works().await;

    // A connection whose client stopped reading is replaced by a newer authentication.
    let mut other = TestClient::new();
    let mut silent = WsClient::connect(gateway.clients_port()).await;
    other.register(&mut silent, &gateway.identity).await;
    let mut replacement = WsClient::connect(gateway.clients_port()).await;
    other.send_authenticate(&mut replacement).await;
    assert!(matches!(
        replacement.next_response().await,
        ServerResponse::Authenticate { status: true, .. }
    ));
    // The replaced session ends; the replacement gets the client's messages.
    silent.expect_closed().await;
    let message = b"for the replacement".to_vec();
    let sphinx = final_hop_packet(
        gateway.sphinx_key,
        gateway.mix_addr(),
        other.address(),
        "127.0.0.1:9".parse().unwrap(),
        &random(),
        &message,
    );
    gateway.inject(&[v7_frame(&sphinx)]).await;
    let frame = replacement.next_binary().await;
    assert_eq!(other.open_pushed(&frame), message);
    live.still_works().await;
}

/// Reads until the gateway closes the connection; panics if it stays open.
async fn expect_tcp_closed(stream: &mut TcpStream) {
    let mut sink = Vec::new();
    match tokio::time::timeout(READ_TIMEOUT, stream.read_to_end(&mut sink)).await {
        Ok(_) => {}
        Err(_) => panic!("connection still open"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_and_non_websocket_peers() {
    let gateway = TestGateway::start(
        "limits",
        &[
            ("maximum_client_connections", "2"),
            ("websocket_upgrade_timeout", "'1s'"),
        ],
    );
    let port = gateway.clients_port();

    // Two idle TCP connections take both places; the third is closed at once.
    let mut idle: Vec<TcpStream> = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    // Give the gateway time to accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    expect_tcp_closed(&mut over).await;
    assert_eq!(
        gateway
            .wait_metric(
                "gateway_client_connections_rejected_total{reason=\"connection_limit\"}",
                1.0
            )
            .await,
        1.0
    );
    // The idle ones never upgrade and are closed after websocket_upgrade_timeout.
    for stream in &mut idle {
        expect_tcp_closed(stream).await;
    }

    // Plain HTTP and garbage are closed too.
    for request in [
        &b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        &b"\x16\x03\x01\x02\x00garbage\r\n\r\n"[..],
    ] {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(request).await.unwrap();
        expect_tcp_closed(&mut stream).await;
    }
    // Counted once the failed upgrade returns, which is after the socket was dropped.
    assert_eq!(
        gateway
            .wait_metric(
                "gateway_client_connections_rejected_total{reason=\"websocket_upgrade\"}",
                4.0
            )
            .await,
        4.0
    );

    // Places are free again.
    let mut ws = WsClient::connect(port).await;
    TestClient::new().register(&mut ws, &gateway.identity).await;
}

/// Sends `burst` packets for one connected client in a single write (whole reads of several
/// frames: the unwrap pool, a few frames per job), then `trickle` more one at a time (single
/// frames: unwrapped inline by default). Returns the messages sent and those the client
/// received, in order, and the acks sent and those forwarded (in any order), once no more came.
async fn burst_then_trickle(
    debug: &[(&str, &str)],
    burst: usize,
    trickle: usize,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let gateway = TestGateway::start("burst", debug);
    let mut client = TestClient::new();
    let mut ws = WsClient::connect(gateway.clients_port()).await;
    client.register(&mut ws, &gateway.identity).await;
    let sink = AckSink::start().await;
    let total = burst + trickle;
    let mut traffic = Traffic::default();
    let messages: Vec<Vec<u8>> = (0..total)
        .map(|i| format!("message {i}").into_bytes())
        .collect();
    let frames: Vec<Vec<u8>> = messages
        .iter()
        .map(|message| traffic.frame(&gateway, client.address(), sink.addr(), message))
        .collect();
    let mut mix = TcpStream::connect(gateway.mix_addr()).await.unwrap();
    mix.write_all(&frames[..burst].concat()).await.unwrap();
    for frame in &frames[burst..] {
        mix.write_all(frame).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut received = Vec::new();
    while received.len() < total {
        let Some(frame) = ws.try_next_binary(READ_TIMEOUT).await else {
            break;
        };
        received.push(client.open_pushed(&frame));
    }
    sink.wait_for(total, READ_TIMEOUT).await;
    sink.settle(Duration::from_millis(500)).await;
    let acks = traffic.by_ack.keys().cloned().collect();
    (messages, received, acks, sink.acks())
}

#[tokio::test]
async fn a_burst_and_a_trickle_arrive_in_order_each_acked_once() {
    // The default: bursts through the pool, single frames inline; then the pool only, then
    // everything inline. The order a mix node sent in is kept either way.
    for debug in [
        vec![],
        vec![("unwrap_inline_max_frames", "0")],
        vec![("unwrap_inline_max_frames", "1000")],
    ] {
        let (sent, received, acks, mut acked) = burst_then_trickle(&debug, 300, 20).await;
        assert_eq!(
            received, sent,
            "{debug:?}: every message, in the order sent"
        );
        let mut acks = acks;
        acks.sort();
        acked.sort();
        assert_eq!(
            acked, acks,
            "{debug:?}: each SURB-ack forwarded exactly once"
        );
    }
}
