//! Sphinx packets built with `sphinx-packet` as an honest client builds them, and the frames
//! that carry them to the mix port.
//!
//! [`HonestPacket`] builds any packet: a route of [`RouteNode`]s (each with its address, sphinx
//! key and delay), a size, a destination, and optionally the sender's version, SURB id and
//! initial secret. [`final_hop_packet`] is the common case: a packet whose only hop is the
//! gateway, carrying a SURB-ack and a message for one of its clients.

use std::net::SocketAddr;
use std::time::Duration;

use sphinx_packet::crypto::{PrivateKey, PublicKey};
use sphinx_packet::header::delays::Delay;
use sphinx_packet::route::{Destination, DestinationAddressBytes, Node, NodeAddressBytes};
use sphinx_packet::version::Version;
use sphinx_packet::SphinxPacketBuilder;

use crate::framing::{self, FrameVersion, KeyRotation};
use crate::packet_size::PacketSize;
use crate::routing_address;

/// Length of the ack-size Sphinx packet inside a SURB-ack.
pub const ACK_PACKET_LEN: usize = PacketSize::Ack.size();

/// One node of a packet's route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteNode {
    /// The node address the hop before finds in its layer of the header: a routing address,
    /// zero-padded (see [`node_address`]), or any bytes.
    pub address: [u8; 32],
    /// The node's x25519 sphinx public key.
    pub sphinx_key: [u8; 32],
    /// How long the sender asks the node to hold the packet.
    pub delay: Duration,
}

impl RouteNode {
    /// The node at `addr` with `sphinx_key`, asked for no delay.
    pub fn at(addr: SocketAddr, sphinx_key: [u8; 32]) -> Self {
        Self {
            address: node_address(&addr),
            sphinx_key,
            delay: Duration::ZERO,
        }
    }

    /// The same node, asked to hold the packet for `delay`.
    pub fn with_delay(self, delay: Duration) -> Self {
        Self { delay, ..self }
    }
}

/// `addr` as a node address in a Sphinx header: its routing address, zero-padded to 32 bytes.
pub fn node_address(addr: &SocketAddr) -> [u8; 32] {
    let mut out = [0; 32];
    let encoded = routing_address::to_bytes(addr);
    out[..encoded.len()].copy_from_slice(&encoded);
    out
}

/// A packet as a client builds it: [`HonestPacket::new`] gives the choices of a Nym client
/// (current Sphinx version, zero SURB id, a fresh initial secret); the fields change them.
#[derive(Debug, Clone)]
pub struct HonestPacket {
    /// The packet's size.
    pub size: PacketSize,
    /// The nodes it goes through, the last one taking off the final layer.
    pub route: Vec<RouteNode>,
    /// The destination address the last node finds (a client's address at a gateway).
    pub destination: [u8; 32],
    /// The SURB identifier next to the destination.
    pub surb_id: [u8; 16],
    /// The Sphinx header version.
    pub version: Version,
    /// The sender's initial secret (the header's first α), or `None` for a fresh random one.
    pub initial_secret: Option<[u8; 32]>,
}

impl HonestPacket {
    /// A packet of `size` through `route` to `destination`, built as a Nym client does.
    pub fn new(size: PacketSize, route: Vec<RouteNode>, destination: [u8; 32]) -> Self {
        Self {
            size,
            route,
            destination,
            surb_id: [0; 16],
            version: Version::default(),
            initial_secret: None,
        }
    }

    /// The packet carrying `plaintext`; panics where [`try_build`](Self::try_build) fails.
    pub fn build(&self, plaintext: &[u8]) -> Vec<u8> {
        self.try_build(plaintext).expect("the honest packet builds")
    }

    /// The packet carrying `plaintext`, or `sphinx-packet`'s error where it refuses these
    /// contents (an empty or too long route, a plaintext too long for the size).
    pub fn try_build(&self, plaintext: &[u8]) -> Result<Vec<u8>, sphinx_packet::Error> {
        let route: Vec<Node> = self
            .route
            .iter()
            .map(|node| {
                Node::new(
                    NodeAddressBytes::from_bytes(node.address),
                    PublicKey::from(node.sphinx_key),
                )
            })
            .collect();
        let delays: Vec<Delay> = self
            .route
            .iter()
            .map(|node| {
                let nanos = u64::try_from(node.delay.as_nanos()).expect("a delay of < 584 years");
                Delay::new_from_nanos(nanos)
            })
            .collect();
        let destination = Destination::new(
            DestinationAddressBytes::from_bytes(self.destination),
            self.surb_id,
        );
        let initial_secret = self.initial_secret.map(PrivateKey::from);
        let mut builder = SphinxPacketBuilder::new()
            .with_version(self.version)
            .with_payload_size(self.size.payload_size());
        if let Some(secret) = &initial_secret {
            builder = builder.with_initial_secret(secret);
        }
        let packet = builder.build_packet(plaintext, &route, &destination, &delays)?;
        Ok(packet.to_bytes())
    }
}

/// A final hop's plaintext as a client lays it out: the SURB-ack (the routing address of its
/// first hop `ack_first_hop`, zero-padded, then `ack_packet`), then `message`.
pub fn final_hop_plaintext(
    ack_first_hop: SocketAddr,
    ack_packet: &[u8; ACK_PACKET_LEN],
    message: &[u8],
) -> Vec<u8> {
    let mut plaintext = node_address(&ack_first_hop)[..routing_address::MAX_LEN].to_vec();
    plaintext.extend_from_slice(ack_packet);
    plaintext.extend_from_slice(message);
    plaintext
}

/// A regular-size Sphinx packet whose only hop is the gateway (`gateway_sphinx_key`, at
/// `gateway_mix`), for `client`, carrying a SURB-ack (`ack_packet` to `ack_first_hop`) and
/// `message`: what the last mix node delivers to a gateway. Other sizes: [`HonestPacket`] with
/// [`final_hop_plaintext`].
pub fn final_hop_packet(
    gateway_sphinx_key: [u8; 32],
    gateway_mix: SocketAddr,
    client: [u8; 32],
    ack_first_hop: SocketAddr,
    ack_packet: &[u8; ACK_PACKET_LEN],
    message: &[u8],
) -> Vec<u8> {
    let gateway = RouteNode::at(gateway_mix, gateway_sphinx_key);
    let plaintext = final_hop_plaintext(ack_first_hop, ack_packet, message);
    HonestPacket::new(PacketSize::Regular, vec![gateway], client).build(&plaintext)
}

/// The mix-port frame of `version` and `rotation` carrying `packet`.
pub fn frame(version: FrameVersion, rotation: KeyRotation, packet: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(version.header_len() + packet.len());
    framing::encode(version, rotation, packet, &mut frame).expect("a packet of a known size");
    frame
}

/// The v7 frame carrying `packet`, as mix nodes send today.
pub fn v7_frame(packet: &[u8]) -> Vec<u8> {
    frame(FrameVersion::V7, KeyRotation::Unknown, packet)
}
