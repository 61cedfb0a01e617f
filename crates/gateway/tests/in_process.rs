//! A whole node inside the test's process: `node::run` on listeners bound to port 0 (no port
//! races), driven by a client and a mix peer over loopback, stopped with its token.

mod util;

use std::time::Duration;

use gateway_protocol::test_support::sphinx::{final_hop_packet, v7_frame, ACK_PACKET_LEN};
use nym_gateway::keys::NodeKeys;
use nym_gateway::network::Network;
use nym_gateway::node::{self, Listeners};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use util::harness::{read_exact, NextHop};
use util::in_process::{http_get, loopback_config};
use util::ws_client::{random, TestClient, WsClient};

/// The value of `name` in the node's Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_in_process_serves_a_client_and_a_mix_peer_and_stops_on_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let network = Network::mainnet();
    let config = loopback_config("in-process", dir.path(), &network);
    let db_path = config.gateway.persistent_storage.clone();
    let keys = NodeKeys::generate().unwrap();
    let identity = keys.identity.verifying_key();
    let sphinx_key = x25519_dalek::PublicKey::from(&keys.sphinx).to_bytes();

    let listeners = Listeners::bind(&config).await.unwrap();
    let mix = listeners.mix_address().unwrap();
    let clients = listeners.clients_address().unwrap();
    let http = listeners.http_address().unwrap();
    assert!([mix, clients, http].iter().all(|a| a.port() != 0));
    let shutdown = CancellationToken::new();
    let node = tokio::spawn(node::run(
        config,
        keys,
        network,
        listeners,
        shutdown.clone(),
        Default::default(),
    ));

    // The listeners were bound before `run`: a client can connect at once.
    let mut client = TestClient::new();
    let mut ws = WsClient::connect(clients.port()).await;
    client.register(&mut ws, &identity).await;
    ws.claim_free_bandwidth().await;

    // A mix peer delivers a message for the client; it is pushed, then its SURB-ack leaves.
    let ack_hop = NextHop::bind().await;
    let ack_packet: [u8; ACK_PACKET_LEN] = random();
    let message = b"through an in-process node".to_vec();
    let packet = final_hop_packet(
        sphinx_key,
        mix,
        client.address(),
        ack_hop.addr(),
        &ack_packet,
        &message,
    );
    let mut peer = TcpStream::connect(mix).await.unwrap();
    peer.write_all(&v7_frame(&packet)).await.unwrap();
    assert_eq!(client.open_pushed(&ws.next_binary().await), message);
    let mut acks = ack_hop.accept().await;
    assert_eq!(
        read_exact(&mut acks, 4 + ACK_PACKET_LEN).await[..],
        [&[8, 2, 0, 0][..], &ack_packet[..]].concat(),
        "a v8 ack frame with the unknown rotation of the v7 frame it came in"
    );

    assert_eq!(http_get(http, "/health").await.1, r#"{"status":"ok"}"#);
    let (_, metrics) = http_get(http, "/metrics").await;
    assert_eq!(metric(&metrics, "gateway_messages_pushed_total"), Some(1.0));
    assert_eq!(metric(&metrics, "gateway_clients_connected"), Some(1.0));

    // The token stops the node: run returns Ok, sessions and listeners close, the store is
    // closed and can be opened again.
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(30), node)
        .await
        .expect("the node stops in time")
        .unwrap();
    stopped.unwrap();
    ws.expect_closed().await;
    assert!(TcpStream::connect(clients).await.is_err());
    assert!(TcpStream::connect(mix).await.is_err());
    let reopened = gateway_store::Store::open(gateway_store::StoreConfig::new(&db_path)).unwrap();
    assert!(reopened
        .fetch_messages(client.client_address(), None, 10)
        .await
        .unwrap()
        .is_empty());
}
