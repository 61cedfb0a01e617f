//! The contents of a packet an honest sender builds for the gateway's vector key, chosen by the
//! fuzzer: shared by the `final_hop_build` and `fast_final_hop` targets. The packet itself is
//! built by `gateway_protocol::test_support::sphinx`.

use std::time::Duration;

use arbitrary::{Result, Unstructured};
use gateway_protocol::framing::KeyRotation;
use gateway_protocol::packet_size::PacketSize;
use gateway_protocol::test_support::sphinx::{HonestPacket, RouteNode};
use gateway_protocol::test_support::vectors;
use sphinx_packet::version::{Version, KNOWN_VERSIONS};

/// What the sender puts in a packet, besides the plaintext.
pub(crate) struct Contents {
    pub(crate) version: Version,
    pub(crate) size: PacketSize,
    pub(crate) rotation: KeyRotation,
    initial_secret: [u8; 32],
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
            initial_secret: u.arbitrary()?,
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
        let mut route = vec![RouteNode {
            address: [0; 32],
            sphinx_key: vectors::gateway_sphinx_secret().public_key(),
            delay: Duration::from_nanos(self.delay),
        }];
        if let Some(address) = self.next_hop {
            route.push(RouteNode {
                address,
                sphinx_key: vectors::mix_node_sphinx_secret().public_key(),
                delay: Duration::ZERO,
            });
        }
        let packet = HonestPacket {
            surb_id: self.identifier,
            version: self.version,
            initial_secret: Some(self.initial_secret),
            ..HonestPacket::new(self.size, route, self.recipient)
        };
        packet.try_build(plaintext).ok()
    }
}
