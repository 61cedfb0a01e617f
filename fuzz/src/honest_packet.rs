//! Packets an honest sender builds (with `sphinx-packet`) for the gateway's vector key, from
//! contents the fuzzer chooses: shared by the `final_hop_build` and `fast_final_hop` targets.

use arbitrary::{Result, Unstructured};
use gateway_protocol::framing::KeyRotation;
use gateway_protocol::packet_size::PacketSize;
use sphinx_packet::crypto::{PrivateKey, PublicKey};
use sphinx_packet::header::delays::Delay;
use sphinx_packet::route::{Destination, DestinationAddressBytes, Node, NodeAddressBytes};
use sphinx_packet::version::{Version, KNOWN_VERSIONS};
use sphinx_packet::SphinxPacketBuilder;

use crate::vectors;

/// What the sender puts in a packet, besides the plaintext.
pub(crate) struct Contents {
    pub(crate) version: Version,
    pub(crate) size: PacketSize,
    pub(crate) rotation: KeyRotation,
    initial_secret: PrivateKey,
    pub(crate) recipient: [u8; 32],
    identifier: [u8; 16],
    pub(crate) delay: u64,
    /// A mix node (with the vector mix-node key) to forward to after the gateway.
    pub(crate) next_hop: Option<[u8; 32]>,
}

impl Contents {
    /// Reads version, size, rotation, sender secret, recipient, SURB id, delay and next hop,
    /// in that order (the seeds in `examples/build_corpus.rs` are laid out so).
    pub(crate) fn arbitrary(u: &mut Unstructured<'_>) -> Result<Self> {
        Ok(Self {
            version: *u.choose(KNOWN_VERSIONS)?,
            size: *u.choose(&PacketSize::ALL)?,
            rotation: crate::rotation(u.arbitrary()?),
            initial_secret: PrivateKey::from(u.arbitrary::<[u8; 32]>()?),
            recipient: u.arbitrary()?,
            identifier: u.arbitrary()?,
            delay: u.arbitrary()?,
            next_hop: u.arbitrary()?,
        })
    }

    /// The part of `bytes` that fits in a packet of this size.
    pub(crate) fn plaintext<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[..bytes.len().min(self.size.plaintext_size())]
    }

    /// The packet carrying `plaintext`, routed through the gateway (and on to `next_hop`), or
    /// `None` where `sphinx-packet` refuses these contents.
    pub(crate) fn build(&self, plaintext: &[u8]) -> Option<Vec<u8>> {
        let mut route = vec![node([0; 32], vectors::gateway_sphinx_secret().public_key())];
        let mut delays = vec![Delay::new_from_nanos(self.delay)];
        if let Some(address) = self.next_hop {
            route.push(node(
                address,
                vectors::mix_node_sphinx_secret().public_key(),
            ));
            delays.push(Delay::new_from_nanos(0));
        }
        let destination = Destination::new(
            DestinationAddressBytes::from_bytes(self.recipient),
            self.identifier,
        );
        let packet = SphinxPacketBuilder::new()
            .with_version(self.version)
            .with_payload_size(self.size.payload_size())
            .with_initial_secret(&self.initial_secret)
            .build_packet(plaintext, &route, &destination, &delays)
            .ok()?;
        Some(packet.to_bytes())
    }
}

fn node(address: [u8; 32], public_key: [u8; 32]) -> Node {
    Node::new(
        NodeAddressBytes::from_bytes(address),
        PublicKey::from(public_key),
    )
}
