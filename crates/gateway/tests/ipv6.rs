//! IPv6, against the real binary over `::1`: a client and a mix peer served on an IPv6
//! listening address, packets forwarded to IPv6 next hops, and the IPv6 twin of the listeners
//! that `listening_address = '0.0.0.0'` binds as well (`node/listeners.rs`).

mod util;

use std::net::{Ipv6Addr, SocketAddr};

use gateway_protocol::client::{ClientRequest, RequestKind, ServerResponse};
use gateway_protocol::framing::KeyRotation;
use gateway_protocol::mix_packet::MixPacket;
use gateway_protocol::test_support::sphinx::{final_hop_packet, v7_frame, ACK_PACKET_LEN};
use tokio::net::TcpStream;
use util::harness::{read_exact, NextHop, TestGateway};
use util::probe::Traffic;
use util::ws_client::{random, TestClient, WsClient};

/// Length of a regular Sphinx packet.
const REGULAR: usize = 2413;

fn v6(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, port))
}

fn v4(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_and_a_mix_peer_are_served_over_ipv6_and_packets_go_to_ipv6_hops() {
    let gateway = TestGateway::start("ipv6", &[("listening_address", "'::1'")]);
    let (mix, clients) = (gateway.mix_addr_v6(), v6(gateway.clients_port()));
    // Only IPv6 is bound: the test cannot be passing over IPv4.
    assert!(TcpStream::connect(gateway.mix_addr()).await.is_err());
    assert!(TcpStream::connect(v4(gateway.clients_port()))
        .await
        .is_err());

    // A client registers over IPv6 and gets bandwidth.
    let mut ws = WsClient::connect_to(clients).await;
    let mut client = TestClient::new();
    client.register(&mut ws, &gateway.identity).await;
    ws.claim_free_bandwidth().await;

    // Its packet goes to an IPv6 next hop (the first mix of its route), v8-framed.
    let hop = NextHop::bind_on(v6(0)).await;
    let bytes: Vec<u8> = (0..REGULAR).map(|_| random::<1>()[0]).collect();
    let packet = MixPacket::new(hop.addr(), KeyRotation::Odd, bytes).unwrap();
    ws.send_binary(client.forward_frame(RequestKind::ForwardSphinxV2, &packet))
        .await;
    assert!(matches!(
        ws.next_response().await,
        ServerResponse::Send { .. }
    ));
    let mut to_hop = hop.accept().await;
    assert!(to_hop.peer_addr().unwrap().is_ipv6());
    let frame = read_exact(&mut to_hop, 4 + REGULAR).await;
    assert_eq!(frame[..4], [8, 1, 0, 1]);
    assert_eq!(frame[4..], packet.packet[..]);

    // A final-hop packet arrives over an IPv6 mix connection: pushed to the client, and its
    // SURB-ack goes to the IPv6 first hop it names.
    let ack_hop = NextHop::bind_on(v6(0)).await;
    let ack: [u8; ACK_PACKET_LEN] = random();
    let message = b"hello over IPv6".to_vec();
    let sphinx = final_hop_packet(
        gateway.sphinx_key,
        mix,
        client.address(),
        ack_hop.addr(),
        &ack,
        &message,
    );
    gateway.inject_at(mix, &[v7_frame(&sphinx)]).await;
    assert_eq!(client.open_pushed(&ws.next_binary().await), message);
    let mut acks = ack_hop.accept().await;
    let ack_frame = read_exact(&mut acks, 4 + ACK_PACKET_LEN).await;
    assert_eq!(ack_frame[..4], [8, 2, 0, 0]);
    assert_eq!(ack_frame[4..], ack[..]);
    assert_eq!(gateway.metric("gateway_messages_pushed_total").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unspecified_ipv4_address_listens_on_ipv6_too() {
    let gateway = TestGateway::start("twin", &[("listening_address", "'0.0.0.0'")]);
    let offline = TestClient::new();
    let ack_hop = NextHop::bind().await;
    let mut traffic = Traffic::default();
    for (n, (mix, clients)) in [
        (gateway.mix_addr(), v4(gateway.clients_port())),
        (gateway.mix_addr_v6(), v6(gateway.clients_port())),
    ]
    .into_iter()
    .enumerate()
    {
        let mut ws = WsClient::connect_to(clients).await;
        ws.send_request(&ClientRequest::SupportedProtocol).await;
        assert_eq!(
            ws.next_response().await,
            ServerResponse::SupportedProtocol { version: 6 },
            "client port at {clients}"
        );
        let frame = traffic.frame(&gateway, offline.address(), ack_hop.addr(), b"stored");
        gateway.inject_at(mix, &[frame]).await;
        gateway
            .wait_stored(&offline.address_bs58(), n as i64 + 1)
            .await;
    }
}
