//! The mix relay role (`forward_hop_processing`) against the real binary, over loopback only:
//! forward hops go on to their next hop after their (capped) delay, replays do not, a gateway
//! without the role drops them, and packets still waiting at SIGTERM are sent, not lost.

mod util;

use std::net::SocketAddr;
use std::time::Duration;

use gateway_protocol::final_hop::{self, Hop, SphinxSecret};
use gateway_protocol::framing::KeyRotation;
use gateway_protocol::packet_size::PacketSize;
use gateway_protocol::test_support::sphinx::{v7_frame, HonestPacket, RouteNode};
use tokio::net::TcpStream;
use util::harness::{read_exact, NextHop, TestGateway};

/// v8 header of an ack-size frame: version 8, size id 2, packet type 0, and the unknown key
/// rotation of the v7 frame the packet came in.
const V8_ACK_HEADER: [u8; 4] = [8, 2, 0, 0];
/// The next node's sphinx key (the test plays that node).
const NEXT_KEY: [u8; 32] = [0x66; 32];

/// An ack-size packet through the gateway under test (first hop, asked to wait `delay`) to the
/// test's node at `next`, whose last layer holds `message`.
fn two_hop(gateway: &TestGateway, next: SocketAddr, delay: Duration, message: &[u8]) -> Vec<u8> {
    let next_key = SphinxSecret::from_bytes(NEXT_KEY).public_key();
    let route = vec![
        RouteNode::at(gateway.mix_addr(), gateway.sphinx_key).with_delay(delay),
        RouteNode::at(next, next_key),
    ];
    HonestPacket::new(PacketSize::Ack, route, [5; 32]).build(message)
}

/// Reads one relayed frame and takes off the last layer: the message inside.
async fn receive_relayed(stream: &mut TcpStream) -> Vec<u8> {
    let frame = read_exact(stream, 4 + PacketSize::Ack.size()).await;
    assert_eq!(frame[..4], V8_ACK_HEADER, "relayed as a v8 ack-size frame");
    let last = final_hop::unwrap(
        &SphinxSecret::from_bytes(NEXT_KEY),
        &frame[4..],
        KeyRotation::Unknown,
    )
    .expect("the next node can unwrap what the relay sent");
    let Hop::Final(last) = last.hop else {
        panic!("the next node is the last hop")
    };
    assert_eq!(last.destination, [5; 32]);
    last.message
}

async fn wait_for_metric(gateway: &TestGateway, series: &str, value: f64) {
    for _ in 0..100 {
        if gateway.metric(series).await == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{series} is {}, expected {value}",
        gateway.metric(series).await
    );
}

#[tokio::test]
async fn forward_hops_are_relayed_after_their_capped_delay_and_replays_are_not() {
    let gateway = TestGateway::start(
        "relay",
        &[
            ("forward_hop_processing", "true"),
            ("maximum_forward_delay", "'300ms'"),
        ],
    );
    let next = NextHop::bind().await;
    let soon = two_hop(&gateway, next.addr(), Duration::from_millis(20), b"soon");
    let capped = two_hop(&gateway, next.addr(), Duration::from_secs(3600), b"an hour");
    gateway
        .inject(&[v7_frame(&soon), v7_frame(&soon), v7_frame(&capped)])
        .await;

    let mut stream = next.accept().await;
    let mut messages = vec![
        receive_relayed(&mut stream).await,
        receive_relayed(&mut stream).await,
    ];
    messages.sort();
    assert_eq!(messages, [b"an hour".to_vec(), b"soon".to_vec()]);

    wait_for_metric(&gateway, "gateway_relay_packets_forwarded_total", 2.0).await;
    assert_eq!(
        gateway.metric("gateway_relay_delays_capped_total").await,
        1.0
    );
    assert_eq!(
        gateway
            .metric("gateway_mix_packets_dropped_total{reason=\"replay\"}")
            .await,
        1.0
    );
    assert_eq!(gateway.metric("gateway_relay_queue_depth").await, 0.0);
    assert_eq!(
        gateway.metric("gateway_mix_packets_unwrapped_total").await,
        0.0
    );

    let output = gateway.running.terminate("TERM");
    assert!(output.status.success(), "clean exit after SIGTERM");
}

#[tokio::test]
async fn a_gateway_without_the_relay_role_drops_forward_hops() {
    let gateway = TestGateway::start("no-relay", &[]);
    let next = NextHop::bind().await;
    let packet = two_hop(&gateway, next.addr(), Duration::ZERO, b"dropped");
    gateway.inject(&[v7_frame(&packet)]).await;
    wait_for_metric(
        &gateway,
        "gateway_mix_packets_dropped_total{reason=\"forward_hop\"}",
        1.0,
    )
    .await;
    assert!(!next.has_connection_within(Duration::from_millis(500)).await);
    assert_eq!(
        gateway
            .metric("gateway_relay_packets_forwarded_total")
            .await,
        0.0
    );
    let output = gateway.running.terminate("TERM");
    assert!(output.status.success());
}

#[tokio::test]
async fn packets_waiting_at_sigterm_are_sent_before_exit() {
    let gateway = TestGateway::start("relay-shutdown", &[("forward_hop_processing", "true")]);
    let next = NextHop::bind().await;
    // Asks for an hour, capped at the default 10 s: still waiting when SIGTERM comes.
    let packet = two_hop(&gateway, next.addr(), Duration::from_secs(3600), b"kept");
    gateway.inject(&[v7_frame(&packet)]).await;
    wait_for_metric(&gateway, "gateway_relay_queue_depth", 1.0).await;

    let TestGateway { gw, running, .. } = gateway;
    let stop = tokio::task::spawn_blocking(move || running.terminate("TERM"));
    let mut stream = next.accept().await;
    assert_eq!(receive_relayed(&mut stream).await, b"kept");
    let output = stop.await.unwrap();
    assert!(output.status.success(), "clean exit after SIGTERM");
    drop(gw);
}
