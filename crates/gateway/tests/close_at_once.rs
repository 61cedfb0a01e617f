//! A mix peer that writes a burst of packets and closes its connection at once loses none of
//! them: the gateway processes every frame it read (many still waiting for an unwrap thread
//! when the close arrives) before it lets the connection go. (nym-node 1.31.0 drops the packets
//! still waiting for its batched replay check in that case.)

mod util;

use std::time::Duration;

use gateway_protocol::test_support::sphinx::{final_hop_packet, v7_frame, ACK_PACKET_LEN};
use nym_gateway::keys::NodeKeys;
use nym_gateway::network::Network;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use util::in_process::{discarding_sink, http_get, loopback_config, metric, RunningNode};

/// Packets per burst: several times what one connection may have in unwrapping at once.
const BURST: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_written_then_closed_at_once_is_processed_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let config = loopback_config("close-at-once", dir.path(), &Network::mainnet());
    let keys = NodeKeys::generate().unwrap();
    let sphinx_key = x25519_dalek::PublicKey::from(&keys.sphinx).to_bytes();
    let node = RunningNode::start(&config, keys).await;
    let (mix, http) = (node.mix, node.http);
    let acks = discarding_sink().await;

    // Built before connecting, so the whole burst goes out in as few writes as the kernel takes.
    let mut burst = Vec::new();
    for i in 0..BURST {
        let message = format!("burst message {i}").into_bytes();
        let packet = final_hop_packet(
            sphinx_key,
            mix,
            [0x3c; 32],
            acks,
            &[9; ACK_PACKET_LEN],
            &message,
        );
        burst.extend_from_slice(&v7_frame(&packet));
    }
    let mut peer = TcpStream::connect(mix).await.unwrap();
    peer.write_all(&burst).await.unwrap();
    // The close follows the last byte at once.
    peer.shutdown().await.unwrap();
    drop(peer);

    let mut stored = 0.0;
    for _ in 0..600 {
        let (_, text) = http_get(http, "/metrics").await;
        stored = metric(&text, "gateway_messages_stored_total");
        if stored >= BURST as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, text) = http_get(http, "/metrics").await;
    assert_eq!(stored, BURST as f64, "every packet of the burst is stored");
    assert_eq!(
        metric(&text, "gateway_mix_packets_received_total"),
        BURST as f64
    );
    assert!(
        !text.contains("gateway_mix_packets_dropped_total{") || {
            text.lines()
                .filter(|l| l.starts_with("gateway_mix_packets_dropped_total{"))
                .all(|l| l.ends_with(" 0"))
        },
        "nothing dropped:\n{text}"
    );
    node.stop().await;
}
