//! Final-hop Sphinx packets for the gateway, as the last mix node would deliver them.

use std::net::SocketAddr;

use gateway_protocol::framing::{self, FrameVersion, KeyRotation};
use gateway_protocol::packet_size::PacketSize;
use gateway_protocol::routing_address;
use sphinx_packet::crypto::PublicKey;
use sphinx_packet::header::delays::Delay;
use sphinx_packet::route::{Destination, DestinationAddressBytes, Node, NodeAddressBytes};
use sphinx_packet::SphinxPacketBuilder;

/// Length of the ack-size Sphinx packet inside a SURB-ack.
pub const ACK_PACKET_LEN: usize = 386;

/// A regular-size Sphinx packet whose only hop is the gateway (`gateway_sphinx_key`, at
/// `gateway_mix`), for `client`, carrying a SURB-ack (`ack_packet` to `ack_first_hop`) and
/// `message`.
pub fn final_hop_packet(
    gateway_sphinx_key: [u8; 32],
    gateway_mix: SocketAddr,
    client: [u8; 32],
    ack_first_hop: SocketAddr,
    ack_packet: &[u8; ACK_PACKET_LEN],
    message: &[u8],
) -> Vec<u8> {
    final_hop_packet_sized(
        PacketSize::Regular,
        gateway_sphinx_key,
        gateway_mix,
        client,
        ack_first_hop,
        ack_packet,
        message,
    )
}

/// As [`final_hop_packet`], of another (non-ack) size: `message` may then be longer.
pub fn final_hop_packet_sized(
    size: PacketSize,
    gateway_sphinx_key: [u8; 32],
    gateway_mix: SocketAddr,
    client: [u8; 32],
    ack_first_hop: SocketAddr,
    ack_packet: &[u8; ACK_PACKET_LEN],
    message: &[u8],
) -> Vec<u8> {
    let mut plaintext = vec![0u8; routing_address::MAX_LEN];
    let encoded = routing_address::to_bytes(&ack_first_hop);
    plaintext[..encoded.len()].copy_from_slice(&encoded);
    plaintext.extend_from_slice(ack_packet);
    plaintext.extend_from_slice(message);

    let mut node_address = [0u8; 32];
    let encoded = routing_address::to_bytes(&gateway_mix);
    node_address[..encoded.len()].copy_from_slice(&encoded);
    let route = [Node::new(
        NodeAddressBytes::from_bytes(node_address),
        PublicKey::from(gateway_sphinx_key),
    )];
    let destination = Destination::new(DestinationAddressBytes::from_bytes(client), [0; 16]);
    SphinxPacketBuilder::new()
        .with_payload_size(size.payload_size())
        .build_packet(
            &plaintext,
            &route,
            &destination,
            &[Delay::new_from_nanos(0)],
        )
        .expect("packet builds")
        .to_bytes()
}

/// The v7 mix-port frame carrying `packet`.
pub fn v7_frame(packet: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    framing::encode(FrameVersion::V7, KeyRotation::Unknown, packet, &mut frame).unwrap();
    frame
}
