//! Delay, jitter and reordering on both mix links, without root: this machine's kernel has no
//! `sch_netem` (nor `fq`, which could delay by departure time), so the faults are made where
//! the application sees them. IP-level delay and reordering reach a TCP reader only as bytes
//! arriving late, in irregular pieces; a relay between the mix peer and the gateway, and one
//! between the gateway and its ack next hop, forward each stream in random pieces (1 byte to
//! 1.5 KB), each after a random wait (0 to 15 ms). Frames therefore arrive split anywhere,
//! headers included, and stall mid-frame.
//!
//! Asserted: every message is stored exactly once, every SURB-ack arrives exactly once and
//! acknowledges one of the messages sent, and nothing is dropped.

mod util;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use util::harness::TestGateway;
use util::probe::{AckSink, Traffic};
use util::ws_client::random;

const MESSAGES: usize = 150;
const WAIT: Duration = Duration::from_secs(60);

/// A relay to `to` that forwards each accepted stream in random pieces after random waits.
async fn jitter_relay(to: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut from, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut onward) = TcpStream::connect(to).await else {
                    return;
                };
                let _ = onward.set_nodelay(true);
                let mut buf = vec![0u8; 64 * 1024];
                let mut pending: Vec<u8> = Vec::new();
                loop {
                    if pending.is_empty() {
                        match from.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    }
                    let [a, b, c, d]: [u8; 4] = random();
                    let (size, wait) = (u16::from_le_bytes([a, b]), u16::from_le_bytes([c, d]));
                    let piece = (usize::from(size) % 1500 + 1).min(pending.len());
                    tokio::time::sleep(Duration::from_micros(u64::from(wait) % 15_000)).await;
                    if onward.write_all(&pending[..piece]).await.is_err() {
                        return;
                    }
                    pending.drain(..piece);
                }
                let _ = onward.write_all(&pending).await;
                let _ = onward.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_and_fragmented_mix_links_lose_and_repeat_nothing() {
    let gw = TestGateway::start("jitter", &[]);
    let sink = AckSink::start().await;
    let acks_via = jitter_relay(sink.addr()).await;
    let mix_via = jitter_relay(gw.mix_addr()).await;

    // An offline client: every message is stored, and its ack leaves after the commit.
    let client: [u8; 32] = random();
    let client_bs58 = bs58::encode(client).into_string();
    let mut traffic = Traffic::default();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut sent = BTreeSet::new();
    for i in 0..MESSAGES {
        let message = format!("jittered message {i}").into_bytes();
        frames.push(traffic.frame(&gw, client, acks_via, &message));
        sent.insert(message);
    }
    // Two mix connections through the relay, each with half the frames.
    let (first, second) = frames.split_at(MESSAGES / 2);
    let mut peers = Vec::new();
    for part in [first.concat(), second.concat()] {
        peers.push(tokio::spawn(async move {
            let mut peer = TcpStream::connect(mix_via).await.unwrap();
            peer.write_all(&part).await.unwrap();
            // Keep the connection open while the relay trickles the rest through.
            tokio::time::sleep(Duration::from_secs(1)).await;
            peer
        }));
    }

    gw.wait_stored(&client_bs58, MESSAGES as i64).await;
    let stored: Vec<Vec<u8>> = gw.stored_contents(&client_bs58);
    let stored_set: BTreeSet<Vec<u8>> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), MESSAGES, "each message stored once");
    assert_eq!(stored_set, sent, "exactly the messages sent are stored");

    assert_eq!(sink.wait_for(MESSAGES, WAIT).await, MESSAGES);
    let acks = sink.acks();
    let distinct: BTreeSet<&Vec<u8>> = acks.iter().collect();
    assert_eq!(distinct.len(), MESSAGES, "no ack arrives twice");
    let acknowledged: BTreeSet<Vec<u8>> = traffic
        .acknowledged(&acks)
        .into_iter()
        .map(|(_, message)| message)
        .collect();
    assert_eq!(
        acknowledged, sent,
        "each ack acknowledges a message that was stored"
    );

    let metrics = gw.metrics().await;
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("gateway_mix_packets_dropped_total{") && !l.ends_with(" 0")),
        "nothing dropped:\n{metrics}"
    );
    assert_eq!(
        util::in_process::metric(
            &metrics,
            "gateway_mix_connections_closed_total{reason=\"frame_timeout\"}"
        ),
        0.0
    );
    for peer in peers {
        drop(peer.await.unwrap());
    }
}
