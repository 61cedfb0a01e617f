//! A Sphinx packet together with the address of its next hop: what clients ask the gateway to
//! forward, and what a SURB-ack becomes once split off a final-hop payload.
//!
//! Two byte forms travel inside the client's binary frames:
//! ```text
//! v1 (ForwardSphinx):   packet type (1) ‖ next hop (7 or 19) ‖ Sphinx packet
//! v2 (ForwardSphinxV2): packet type (1) ‖ key rotation (1) ‖ next hop (7 or 19) ‖ Sphinx packet
//! ```
//! The Sphinx packet runs to the end of the input and must have one of the known lengths.

use crate::framing::{self, FrameVersion, InvalidKeyRotation, KeyRotation};
use crate::packet_size::{PacketSize, UnknownPacketLength};
use crate::routing_address::{self, RoutingAddressError};
use std::net::SocketAddr;
use thiserror::Error;

const PACKET_TYPE_MIX: u8 = 0;
const PACKET_TYPE_OUTFOX: u8 = 2;

/// The text a client receives when a forward request does not parse, before the error itself.
const GATEWAY_REPLY_PREFIX: &str =
    "Provided binary request was malformed - failed to serialise created sphinx packet: ";

/// A Sphinx packet and where to send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixPacket {
    /// The first mix node (or gateway) to send the packet to.
    pub next_hop: SocketAddr,
    /// Size of `packet`; always `PacketSize::from_len(packet.len())`.
    pub packet_size: PacketSize,
    /// The key rotation to announce in a v8 frame; [`KeyRotation::Unknown`] from v1 bytes.
    pub key_rotation: KeyRotation,
    /// The Sphinx packet bytes.
    pub packet: Vec<u8>,
}

/// Why bytes are not a MixPacket. The `Display` texts are the ones clients know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum MixPacketError {
    /// Fewer bytes than the fixed fields need.
    #[error("too few bytes provided to recover from bytes")]
    TooShort,
    /// Packet type other than 0 (Sphinx) or 2 (Outfox).
    #[error("provided packet mode is invalid: {0} is not a valid packet type tag")]
    InvalidPacketType(u8),
    /// Packet type 2, the retired Outfox format.
    #[error("attempted to use outfox, but it is currently not supported by the network")]
    OutfoxUnsupported,
    /// Key-rotation byte (v2 only) other than 0, 1 or 2.
    #[error("provided key rotation is invalid: {0}")]
    InvalidKeyRotation(InvalidKeyRotation),
    /// The next-hop address does not parse.
    #[error("address field was incorrectly encoded")]
    InvalidAddress(#[source] RoutingAddressError),
    /// The Sphinx packet has no known length.
    #[error("received request had an invalid packet size: {0}")]
    InvalidPacketSize(UnknownPacketLength),
}

impl MixPacketError {
    /// The error message the gateway sends to the client whose forward request this was.
    pub fn gateway_reply(&self) -> String {
        format!("{GATEWAY_REPLY_PREFIX}{self}")
    }
}

impl MixPacket {
    /// A MixPacket for `packet`, whose length must be a known packet size.
    pub fn new(
        next_hop: SocketAddr,
        key_rotation: KeyRotation,
        packet: Vec<u8>,
    ) -> Result<Self, UnknownPacketLength> {
        Ok(Self {
            next_hop,
            packet_size: PacketSize::from_len(packet.len())?,
            key_rotation,
            packet,
        })
    }

    /// Parses the v1 form; the key rotation is [`KeyRotation::Unknown`].
    pub fn decode_v1(bytes: &[u8]) -> Result<Self, MixPacketError> {
        // the packet type and at least the address's first byte
        let [packet_type, rest @ ..] = bytes else {
            return Err(MixPacketError::TooShort);
        };
        if rest.is_empty() {
            return Err(MixPacketError::TooShort);
        }
        check_packet_type(*packet_type)?;
        Self::decode_tail(KeyRotation::Unknown, rest)
    }

    /// Parses the v2 form.
    pub fn decode_v2(bytes: &[u8]) -> Result<Self, MixPacketError> {
        // packet type, key rotation and at least the address's first byte
        let [packet_type, rotation, rest @ ..] = bytes else {
            return Err(MixPacketError::TooShort);
        };
        if rest.is_empty() {
            return Err(MixPacketError::TooShort);
        }
        check_packet_type(*packet_type)?;
        let key_rotation =
            KeyRotation::from_byte(*rotation).map_err(MixPacketError::InvalidKeyRotation)?;
        Self::decode_tail(key_rotation, rest)
    }

    /// Parses what follows the fixed fields: the address, then the packet to the end.
    fn decode_tail(key_rotation: KeyRotation, bytes: &[u8]) -> Result<Self, MixPacketError> {
        let (next_hop, used) =
            routing_address::decode(bytes).map_err(MixPacketError::InvalidAddress)?;
        let packet = bytes.get(used..).unwrap_or_default();
        let packet_size =
            PacketSize::from_len(packet.len()).map_err(MixPacketError::InvalidPacketSize)?;
        Ok(Self {
            next_hop,
            packet_size,
            key_rotation,
            packet: packet.to_vec(),
        })
    }

    /// Appends the v1 form (which cannot carry the key rotation) to `out`.
    pub fn encode_v1(&self, out: &mut Vec<u8>) {
        out.push(PACKET_TYPE_MIX);
        routing_address::encode(&self.next_hop, out);
        out.extend_from_slice(&self.packet);
    }

    /// Appends the v2 form to `out`.
    pub fn encode_v2(&self, out: &mut Vec<u8>) {
        out.push(PACKET_TYPE_MIX);
        out.push(self.key_rotation.byte());
        routing_address::encode(&self.next_hop, out);
        out.extend_from_slice(&self.packet);
    }

    /// The v1 form.
    pub fn to_v1_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + routing_address::MAX_LEN + self.packet.len());
        self.encode_v1(&mut out);
        out
    }

    /// The v2 form.
    pub fn to_v2_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + routing_address::MAX_LEN + self.packet.len());
        self.encode_v2(&mut out);
        out
    }

    /// Appends the mix-port frame that carries this packet to its next hop. v8 frames carry the
    /// key rotation; send v7 ([`FrameVersion::default`]) while the network still does.
    pub fn encode_frame(
        &self,
        version: FrameVersion,
        out: &mut Vec<u8>,
    ) -> Result<(), UnknownPacketLength> {
        framing::encode(version, self.key_rotation, &self.packet, out)
    }
}

fn check_packet_type(packet_type: u8) -> Result<(), MixPacketError> {
    match packet_type {
        PACKET_TYPE_MIX => Ok(()),
        PACKET_TYPE_OUTFOX => Err(MixPacketError::OutfoxUnsupported),
        other => Err(MixPacketError::InvalidPacketType(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    use crate::test_support::vectors::hex_field;

    fn vectors() -> Value {
        crate::test_support::vectors::load("mix_packet.json")
    }

    #[test]
    fn encodings_match_vectors() {
        let v = vectors();
        let sphinx = hex_field(&v, "sphinx_packet_hex");
        assert_eq!(sphinx.len(), PacketSize::Ack.size());
        for e in v["encodings"].as_array().expect("encodings") {
            let next_hop: SocketAddr = e["next_hop"].as_str().expect("hop").parse().expect("addr");
            let v1 = MixPacket::new(next_hop, KeyRotation::Unknown, sphinx.clone()).expect("size");
            let v2 = MixPacket::new(next_hop, KeyRotation::Odd, sphinx.clone()).expect("size");
            assert_eq!(v1.packet_size, PacketSize::Ack);

            let v1_bytes = v1.to_v1_bytes();
            let v1_prefix = hex_field(e, "v1_prefix_hex");
            assert_eq!(v1_bytes.len() as u64, e["v1_len"].as_u64().expect("len"));
            assert_eq!(v1_bytes, [v1_prefix.as_slice(), &sphinx].concat());
            assert_eq!(MixPacket::decode_v1(&v1_bytes), Ok(v1.clone()));

            let v2_bytes = v2.to_v2_bytes();
            let v2_prefix = hex_field(e, "v2_odd_prefix_hex");
            assert_eq!(v2_bytes.len() as u64, e["v2_len"].as_u64().expect("len"));
            assert_eq!(v2_bytes, [v2_prefix.as_slice(), &sphinx].concat());
            assert_eq!(MixPacket::decode_v2(&v2_bytes), Ok(v2));
        }
        let first: SocketAddr = "1.2.3.4:1789".parse().expect("addr");
        let v1 = MixPacket::new(first, KeyRotation::Unknown, sphinx.clone()).expect("size");
        assert_eq!(v1.to_v1_bytes(), hex_field(&v, "v1_full_hex_ipv4"));
        let v2 = MixPacket::new(first, KeyRotation::Odd, sphinx).expect("size");
        assert_eq!(v2.to_v2_bytes(), hex_field(&v, "v2_full_hex_ipv4_odd"));
    }

    #[test]
    fn decode_errors_match_vectors() {
        let v = vectors();
        let cases = v["decode_errors_v1"].as_array().expect("errors");
        let expected = [
            MixPacketError::TooShort,
            MixPacketError::InvalidPacketType(9),
            MixPacketError::InvalidAddress(RoutingAddressError::InvalidIpVersion(5)),
            MixPacketError::InvalidPacketSize(UnknownPacketLength(100)),
        ];
        assert_eq!(cases.len(), expected.len());
        for (case, want) in cases.iter().zip(expected) {
            let err = MixPacket::decode_v1(&hex_field(case, "input_hex")).expect_err("must fail");
            assert_eq!(err, want);
            assert_eq!(err.to_string(), case["error"].as_str().expect("error"));
            let wrapped = case["as_gateway_error"].as_str().expect("wrapped");
            assert_eq!(
                err.gateway_reply(),
                format!("Provided binary request was malformed - {wrapped}")
            );
        }
    }

    #[test]
    fn other_decode_errors() {
        assert_eq!(MixPacket::decode_v1(&[]), Err(MixPacketError::TooShort));
        assert_eq!(MixPacket::decode_v1(&[0]), Err(MixPacketError::TooShort));
        assert_eq!(MixPacket::decode_v2(&[0, 0]), Err(MixPacketError::TooShort));
        // the length rule is checked before the packet type
        assert_eq!(MixPacket::decode_v1(&[9]), Err(MixPacketError::TooShort));
        assert_eq!(
            MixPacket::decode_v1(&[2, 4]),
            Err(MixPacketError::OutfoxUnsupported)
        );
        let bad_rotation = MixPacket::decode_v2(&[0, 3, 4]).expect_err("rotation 3");
        assert_eq!(
            bad_rotation,
            MixPacketError::InvalidKeyRotation(InvalidKeyRotation(3))
        );
        assert_eq!(
            bad_rotation.to_string(),
            "provided key rotation is invalid: 3 is not a valid encoding of a sphinx key rotation"
        );
        // address cut short
        assert!(matches!(
            MixPacket::decode_v1(&[0, 4, 6, 0xfd]),
            Err(MixPacketError::InvalidAddress(
                RoutingAddressError::TooShort { .. }
            ))
        ));
        // address complete, no packet
        assert_eq!(
            MixPacket::decode_v1(&[0, 4, 6, 0xfd, 1, 2, 3, 4]),
            Err(MixPacketError::InvalidPacketSize(UnknownPacketLength(0)))
        );
        // one byte too many
        let mut long = vec![0, 4, 6, 0xfd, 1, 2, 3, 4];
        long.resize(long.len() + 387, 0);
        assert_eq!(
            MixPacket::decode_v1(&long),
            Err(MixPacketError::InvalidPacketSize(UnknownPacketLength(387)))
        );
    }

    #[test]
    fn every_size_and_rotation_round_trips() {
        let hops: [SocketAddr; 2] = [
            "10.1.2.3:1789".parse().expect("v4"),
            "[2001:db8::7]:1790".parse().expect("v6"),
        ];
        for size in PacketSize::ALL {
            for rotation in [KeyRotation::Unknown, KeyRotation::Odd, KeyRotation::Even] {
                for hop in hops {
                    let packet: Vec<u8> = (0..size.size()).map(|i| (i * 7) as u8).collect();
                    let mp = MixPacket::new(hop, rotation, packet).expect("size");
                    assert_eq!(MixPacket::decode_v2(&mp.to_v2_bytes()), Ok(mp.clone()));
                    let v1 = MixPacket::decode_v1(&mp.to_v1_bytes()).expect("v1");
                    assert_eq!(v1.key_rotation, KeyRotation::Unknown);
                    assert_eq!((v1.next_hop, v1.packet_size), (hop, size));
                    assert_eq!(v1.packet, mp.packet);
                }
            }
        }
    }

    #[test]
    fn frame_for_next_hop() {
        let packet = vec![9u8; PacketSize::Ack.size()];
        let hop = "1.2.3.4:1789".parse().expect("addr");
        let mp = MixPacket::new(hop, KeyRotation::Even, packet.clone()).expect("size");
        let mut v7 = Vec::new();
        mp.encode_frame(FrameVersion::default(), &mut v7)
            .expect("frame");
        assert_eq!(v7, [&[7u8, 2, 0][..], &packet].concat());
        let mut v8 = Vec::new();
        mp.encode_frame(FrameVersion::V8, &mut v8).expect("frame");
        assert_eq!(v8, [&[8u8, 2, 0, 2][..], &packet].concat());
    }

    #[test]
    fn new_rejects_unknown_length() {
        let hop = "1.2.3.4:1789".parse().expect("addr");
        assert_eq!(
            MixPacket::new(hop, KeyRotation::Unknown, vec![0; 10]),
            Err(UnknownPacketLength(10))
        );
    }
}
