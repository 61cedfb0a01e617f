//! Connections per source address, on a whole node started in-process: one address holds at
//! most its share of each port, the next connection is closed at once and counted, other
//! connections carry on, and a closed connection frees its slot.

mod util;

use std::num::NonZeroUsize;
use std::time::Duration;

use nym_gateway::keys::NodeKeys;
use nym_gateway::network::Network;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use util::in_process::{loopback_config, RunningNode};
use util::ws_client::WsClient;

/// Whether the gateway closes `stream` within a second (it reads EOF or a reset).
async fn closed_by_gateway(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_each_port() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = loopback_config("per-address", dir.path(), &Network::mainnet());
    config.debug.maximum_mix_connections_per_address = NonZeroUsize::new(2).unwrap();
    config.debug.maximum_client_connections_per_address = NonZeroUsize::new(2).unwrap();
    // The test's connections all come from loopback.
    config.debug.per_address_limits_include_loopback = true;
    let node = RunningNode::start(&config, NodeKeys::generate().unwrap()).await;
    let (mix, clients) = (node.mix, node.clients);

    // Mix port: two connections stay open, the third is closed at once.
    let mut first = TcpStream::connect(mix).await.unwrap();
    let mut second = TcpStream::connect(mix).await.unwrap();
    let mut third = TcpStream::connect(mix).await.unwrap();
    assert!(closed_by_gateway(&mut third).await, "over the share");
    assert!(!closed_by_gateway(&mut first).await);
    assert!(!closed_by_gateway(&mut second).await);
    // A closed connection frees its slot.
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(mix).await.unwrap();
    assert!(
        !closed_by_gateway(&mut again).await,
        "the freed slot is usable"
    );

    // Client port: the same, and the refused one never gets its websocket.
    let mut a = WsClient::connect(clients.port()).await;
    let mut b = WsClient::connect(clients.port()).await;
    let mut over = TcpStream::connect(clients).await.unwrap();
    assert!(closed_by_gateway(&mut over).await, "over the share");
    for ws in [&mut a, &mut b] {
        ws.send_request(&gateway_protocol::client::ClientRequest::SupportedProtocol)
            .await;
        assert!(matches!(
            ws.next_response().await,
            gateway_protocol::client::ServerResponse::SupportedProtocol { .. }
        ));
    }

    assert_eq!(
        node.metric("gateway_mix_connections_closed_total{reason=\"address_limit\"}")
            .await,
        1.0
    );
    assert_eq!(
        node.metric("gateway_client_connections_rejected_total{reason=\"address_limit\"}")
            .await,
        1.0
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_not_limited_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = loopback_config("loopback-free", dir.path(), &Network::mainnet());
    config.debug.maximum_mix_connections_per_address = NonZeroUsize::new(1).unwrap();
    let node = RunningNode::start(&config, NodeKeys::generate().unwrap()).await;
    let mut streams = Vec::new();
    for _ in 0..4 {
        streams.push(TcpStream::connect(node.mix).await.unwrap());
    }
    for stream in &mut streams {
        assert!(!closed_by_gateway(stream).await);
    }
    node.stop().await;
}
