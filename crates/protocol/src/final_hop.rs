//! Unwrapping a Sphinx packet that arrived on the mix port, and splitting a final hop's
//! plaintext into its SURB-ack and the message for the client.
//!
//! The work happens in two steps so the caller can consult its replay filter in between and
//! skip decrypting the payload of a replayed packet:
//! 1. [`PartiallyUnwrapped::new`]: derive the shared secret from α and our sphinx key, check the
//!    header MAC, and expose the replay tag;
//! 2. [`PartiallyUnwrapped::finish`]: decrypt the routing information and payload, then either
//!    recover the final-hop plaintext and split off its SURB-ack, or return the forward hop.
//!
//! Step 1 is mostly the X25519, which every packet costs, replayed or not; step 2 is what a
//! replay saves: on a regular packet about a fifth of the fast path's unwrap of a final hop and
//! more than half of a forward hop's, which blinds α with a second X25519 (the `unwrap_steps_*`
//! benches of this crate). [`unwrap_checked`] and [`unwrap_frame_checked`] do both steps with
//! the caller's replay check in between; [`unwrap`] and [`unwrap_frame`] do both without one.
//! Every Sphinx version in use (1, 257–260) is handled by `sphinx-packet`, which reads the
//! version from the routing information.

use crate::framing::{Frame, KeyRotation};
use crate::mix_packet::MixPacket;
use crate::packet_size::{PacketSize, UnknownPacketLength, SURB_ACK_LEN};
use crate::routing_address::{self, RoutingAddressError};
use sphinx_packet::crypto::{PrivateKey, PublicKey};
use sphinx_packet::header::shared_secret::ExpandedSharedSecret;
use sphinx_packet::{ProcessedPacketData, SphinxPacket};
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// Length of a replay tag.
pub const REPLAY_TAG_LEN: usize = 32;

/// The gateway's x25519 sphinx secret key. Wiped from memory when dropped.
pub struct SphinxSecret(PrivateKey);

impl SphinxSecret {
    /// The key with these 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(PrivateKey::from(bytes))
    }

    /// The matching x25519 public key, as announced to clients.
    pub fn public_key(&self) -> [u8; 32] {
        PublicKey::from(&self.0).to_bytes()
    }
}

impl std::fmt::Debug for SphinxSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SphinxSecret(..)")
    }
}

/// Why a packet could not be unwrapped. Each of these drops the packet; none ends the connection.
#[derive(Debug, Error)]
pub enum UnwrapError {
    /// The packet's length is none of the known sizes.
    #[error("the sphinx packet has an invalid size: {0}")]
    InvalidSize(UnknownPacketLength),
    /// The bytes do not form a Sphinx packet.
    #[error("the sphinx packet is malformed: {0}")]
    Malformed(sphinx_packet::Error),
    /// The header MAC does not verify: the packet was altered or is not meant for our key.
    #[error("the sphinx header failed its integrity check: {0}")]
    HeaderIntegrity(sphinx_packet::Error),
    /// The routing information or the payload could not be unwrapped.
    #[error("failed to unwrap the sphinx packet: {0}")]
    Processing(sphinx_packet::Error),
    /// The final-hop payload is not a padded plaintext.
    #[error("failed to recover the final hop plaintext: {0}")]
    PayloadRecovery(sphinx_packet::Error),
    /// A final hop of a size that carries a SURB-ack is shorter than one.
    #[error("the final hop did not contain a SURB-Ack ({plaintext_len} bytes of plaintext)")]
    MissingSurbAck {
        /// Length of the recovered plaintext.
        plaintext_len: usize,
    },
    /// The SURB-ack's first-hop address does not parse; the whole packet is dropped.
    #[error("failed to recover the expected SURB-Ack packet: {0}")]
    MalformedSurbAck(RoutingAddressError),
    /// A forward hop names a next hop that is not a routing address.
    #[error("the next hop address of the forward hop is malformed: {0}")]
    MalformedNextHop(RoutingAddressError),
    /// The caller's replay check, asked between the two steps by [`unwrap_checked`] (or
    /// [`unwrap_checked_fast`](crate::fast_final_hop::unwrap_checked_fast)), found the replay
    /// tag seen before; the payload was left encrypted.
    #[error("the packet's replay tag was seen before")]
    Replayed,
}

/// The layer meant for us, once removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hop {
    /// We are the last hop: a message for one of our clients.
    Final(FinalHop),
    /// Another hop follows. A gateway that relays nothing drops this.
    Forward(ForwardHop),
}

/// A message for a client, and the SURB-ack to send once it has been delivered or stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalHop {
    /// The recipient's address (its ed25519 identity public key).
    pub destination: [u8; 32],
    /// The message for the client: the plaintext after the SURB-ack.
    pub message: Vec<u8>,
    /// The SURB-ack, ready to forward to its first hop; `None` for ack-size packets.
    pub ack: Option<MixPacket>,
}

/// A packet to pass on to another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardHop {
    /// Where to send it.
    pub next_hop: SocketAddr,
    /// How long the sender asked us to hold it.
    pub delay: Duration,
    /// The re-wrapped Sphinx packet, the same size as the one received.
    pub packet: Vec<u8>,
}

/// The result of unwrapping one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unwrapped {
    /// The tag to check against (and insert into) the replay filter.
    pub replay_tag: [u8; REPLAY_TAG_LEN],
    /// The Sphinx version the sender built the packet with.
    pub sphinx_version: u16,
    /// What to do with it.
    pub hop: Hop,
}

/// A packet whose header MAC has been verified with our key; the payload is still encrypted.
pub struct PartiallyUnwrapped {
    packet: SphinxPacket,
    expanded_secret: ExpandedSharedSecret,
    packet_size: PacketSize,
    key_rotation: KeyRotation,
}

impl PartiallyUnwrapped {
    /// Parses `packet` and verifies its header against `secret`. `key_rotation` is the incoming
    /// frame's; a SURB-ack inherits it.
    pub fn new(
        secret: &SphinxSecret,
        packet: &[u8],
        key_rotation: KeyRotation,
    ) -> Result<Self, UnwrapError> {
        let packet_size = PacketSize::from_len(packet.len()).map_err(UnwrapError::InvalidSize)?;
        let packet = SphinxPacket::from_bytes(packet).map_err(UnwrapError::Malformed)?;
        let expanded_secret = packet.header.compute_expanded_shared_secret(&secret.0);
        packet
            .header
            .ensure_header_integrity(&expanded_secret)
            .map_err(UnwrapError::HeaderIntegrity)?;
        Ok(Self {
            packet,
            expanded_secret,
            packet_size,
            key_rotation,
        })
    }

    /// The packet's replay tag: the same for every copy of the packet, unlinkable otherwise.
    pub fn replay_tag(&self) -> [u8; REPLAY_TAG_LEN] {
        *self.expanded_secret.replay_tag()
    }

    /// Removes our layer.
    pub fn finish(self) -> Result<Unwrapped, UnwrapError> {
        let replay_tag = self.replay_tag();
        let processed = self
            .packet
            .process_with_expanded_secret(&self.expanded_secret)
            .map_err(UnwrapError::Processing)?;
        let hop = match processed.data {
            ProcessedPacketData::ForwardHop {
                next_hop_packet,
                next_hop_address,
                delay,
            } => {
                let (next_hop, _) = routing_address::decode(next_hop_address.as_bytes())
                    .map_err(UnwrapError::MalformedNextHop)?;
                Hop::Forward(ForwardHop {
                    next_hop,
                    delay: delay.to_duration(),
                    packet: next_hop_packet.to_bytes(),
                })
            }
            ProcessedPacketData::FinalHop {
                destination,
                identifier: _,
                payload,
            } => {
                let plaintext = payload
                    .recover_plaintext()
                    .map_err(UnwrapError::PayloadRecovery)?;
                let (ack, message) =
                    split_surb_ack(self.packet_size, self.key_rotation, plaintext)?;
                Hop::Final(FinalHop {
                    destination: destination.as_bytes(),
                    message,
                    ack,
                })
            }
        };
        Ok(Unwrapped {
            replay_tag,
            sphinx_version: processed.version.value(),
            hop,
        })
    }
}

/// Unwraps `packet` (received in a frame with `key_rotation`) in one go.
pub fn unwrap(
    secret: &SphinxSecret,
    packet: &[u8],
    key_rotation: KeyRotation,
) -> Result<Unwrapped, UnwrapError> {
    PartiallyUnwrapped::new(secret, packet, key_rotation)?.finish()
}

/// Unwraps the packet of a decoded frame in one go.
pub fn unwrap_frame(secret: &SphinxSecret, frame: &Frame) -> Result<Unwrapped, UnwrapError> {
    unwrap(secret, &frame.packet, frame.header.key_rotation)
}

/// Unwraps `packet` (received in a frame with `key_rotation`), asking `is_fresh` about its replay
/// tag once the header has verified: a packet whose tag is not fresh stops there, with
/// [`UnwrapError::Replayed`]. `is_fresh` is not asked about a packet whose header fails.
pub fn unwrap_checked(
    secret: &SphinxSecret,
    packet: &[u8],
    key_rotation: KeyRotation,
    is_fresh: impl FnOnce(&[u8; REPLAY_TAG_LEN]) -> bool,
) -> Result<Unwrapped, UnwrapError> {
    let partial = PartiallyUnwrapped::new(secret, packet, key_rotation)?;
    if !is_fresh(&partial.replay_tag()) {
        return Err(UnwrapError::Replayed);
    }
    partial.finish()
}

/// [`unwrap_checked`] of the packet of a decoded frame.
pub fn unwrap_frame_checked(
    secret: &SphinxSecret,
    frame: &Frame,
    is_fresh: impl FnOnce(&[u8; REPLAY_TAG_LEN]) -> bool,
) -> Result<Unwrapped, UnwrapError> {
    unwrap_checked(secret, &frame.packet, frame.header.key_rotation, is_fresh)
}

/// Splits a final-hop plaintext of a packet of `packet_size` into its SURB-ack and the message.
///
/// ```text
/// [0..19)    first-hop routing address, zero-padded
/// [19..405)  ack-size Sphinx packet
/// [405..)    message
/// ```
/// Ack-size packets carry no SURB-ack: all of their plaintext is the message.
pub fn split_surb_ack(
    packet_size: PacketSize,
    key_rotation: KeyRotation,
    mut plaintext: Vec<u8>,
) -> Result<(Option<MixPacket>, Vec<u8>), UnwrapError> {
    if !packet_size.has_surb_ack() {
        return Ok((None, plaintext));
    }
    if plaintext.len() < SURB_ACK_LEN {
        return Err(UnwrapError::MissingSurbAck {
            plaintext_len: plaintext.len(),
        });
    }
    let message = plaintext.split_off(SURB_ACK_LEN);
    let Some((address, ack_packet)) = plaintext.split_first_chunk::<{ routing_address::MAX_LEN }>()
    else {
        return Err(UnwrapError::MissingSurbAck {
            plaintext_len: plaintext.len(),
        });
    };
    // the address is zero-padded to the field's width; decoding stops where it ends
    let (first_hop, _) = routing_address::decode(address).map_err(UnwrapError::MalformedSurbAck)?;
    let ack = MixPacket {
        next_hop: first_hop,
        packet_size: PacketSize::Ack,
        key_rotation,
        packet: ack_packet.to_vec(),
    };
    Ok((Some(ack), message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{self, FrameVersion};
    use serde_json::Value;
    use sphinx_packet::header::delays::Delay;
    use sphinx_packet::route::{Destination, DestinationAddressBytes, Node, NodeAddressBytes};
    use sphinx_packet::version::Version;
    use sphinx_packet::SphinxPacketBuilder;

    use crate::test_vectors::hex_field;

    fn vectors() -> Value {
        crate::test_vectors::load("final_hop.json")
    }

    fn secret_field(v: &Value, key: &str) -> SphinxSecret {
        SphinxSecret::from_bytes(hex_field(v, key).try_into().expect("32 bytes"))
    }

    fn gateway_secret() -> SphinxSecret {
        secret_field(&vectors(), "gateway_sphinx_private_key_hex")
    }

    fn rotation_by_name(name: &str) -> KeyRotation {
        match name {
            "Unknown" => KeyRotation::Unknown,
            "OddRotation" => KeyRotation::Odd,
            "EvenRotation" => KeyRotation::Even,
            other => panic!("unexpected rotation {other}"),
        }
    }

    fn decode_whole_frame(bytes: &[u8]) -> Frame {
        let (frame, used) = framing::decode(bytes).expect("valid").expect("complete");
        assert_eq!(used, bytes.len());
        frame
    }

    #[test]
    fn public_key_matches_vector() {
        let v = vectors();
        let secret = gateway_secret();
        assert_eq!(
            secret.public_key().to_vec(),
            hex_field(&v, "gateway_sphinx_public_key_hex")
        );
        assert_eq!(format!("{secret:?}"), "SphinxSecret(..)");
    }

    #[test]
    fn v7_and_v8_frames_unwrap_to_the_vector_results() {
        let v = vectors();
        let secret = gateway_secret();
        let frames = [
            hex_field(&v, "framed_v7_hex"),
            hex_field(&v, "framed_v8_even_hex"),
        ];
        let results = v["expected_results_for_v7_and_v8"]
            .as_array()
            .expect("results");
        assert_eq!(results.len(), 2);
        let sphinx = hex_field(&v, "sphinx_packet_hex");
        let replay_tag = hex_field(&v, "replay_tag_hex");

        for (framed, want) in frames.iter().zip(results) {
            let frame = decode_whole_frame(framed);
            assert_eq!(frame.packet, sphinx);
            let unwrapped = unwrap_frame(&secret, &frame).expect("unwraps");
            assert_eq!(unwrapped.replay_tag.to_vec(), replay_tag);
            assert_eq!(
                format!("sphinx-{}", unwrapped.sphinx_version),
                want["processed_sphinx_version"].as_str().expect("version")
            );
            let Hop::Final(hop) = unwrapped.hop else {
                panic!("expected a final hop")
            };
            assert_eq!(hop.destination.to_vec(), hex_field(want, "destination_hex"));
            assert_eq!(
                bs58::encode(hop.destination).into_string(),
                want["destination_bs58"].as_str().expect("bs58")
            );
            assert_eq!(hop.message, hex_field(want, "message_hex"));
            assert_eq!(hop.message, hex_field(&v, "expected_message_hex"));

            let ack = hop.ack.expect("regular packets carry an ack");
            let ack_hop: SocketAddr = want["ack_next_hop"]
                .as_str()
                .expect("hop")
                .parse()
                .expect("addr");
            assert_eq!(ack.next_hop, ack_hop);
            assert_eq!(ack.packet_size, PacketSize::Ack);
            assert_eq!(
                ack.key_rotation,
                rotation_by_name(want["ack_key_rotation"].as_str().expect("rotation"))
            );
            assert_eq!(ack.key_rotation, frame.header.key_rotation);
            assert_eq!(ack.packet, hex_field(want, "ack_packet_hex"));
            assert_eq!(
                [
                    routing_address::to_bytes(&ack_hop),
                    vec![0; 12],
                    ack.packet.clone()
                ]
                .concat(),
                hex_field(&v, "surb_ack_hex")
            );

            let mut ack_framed = Vec::new();
            ack.encode_frame(FrameVersion::V7, &mut ack_framed)
                .expect("frame");
            assert_eq!(ack_framed, hex_field(want, "ack_framed_v7_hex"));
        }
    }

    #[test]
    fn replay_tag_is_known_before_the_payload_is_decrypted() {
        let v = vectors();
        let secret = gateway_secret();
        let sphinx = hex_field(&v, "sphinx_packet_hex");
        let partial = PartiallyUnwrapped::new(&secret, &sphinx, KeyRotation::Odd).expect("mac");
        assert_eq!(
            partial.replay_tag().to_vec(),
            hex_field(&v, "replay_tag_hex")
        );
        let done = partial.finish().expect("finishes");
        let Hop::Final(hop) = done.hop else {
            panic!("expected a final hop")
        };
        assert_eq!(hop.ack.expect("ack").key_rotation, KeyRotation::Odd);
    }

    #[test]
    fn checked_unwrap_asks_about_the_tag_between_the_steps() {
        let v = vectors();
        let secret = gateway_secret();
        let frame = decode_whole_frame(&hex_field(&v, "framed_v8_even_hex"));
        let want_tag = hex_field(&v, "replay_tag_hex");

        let mut asked = None;
        let fresh = unwrap_frame_checked(&secret, &frame, |tag| {
            asked = Some(tag.to_vec());
            true
        })
        .expect("fresh");
        assert_eq!(asked.as_ref(), Some(&want_tag));
        assert_eq!(fresh, unwrap_frame(&secret, &frame).expect("unwraps"));

        let mut asked = None;
        let replayed = unwrap_frame_checked(&secret, &frame, |tag| {
            asked = Some(tag.to_vec());
            false
        });
        assert_eq!(asked, Some(want_tag));
        let err = replayed.expect_err("replayed");
        assert!(matches!(err, UnwrapError::Replayed));
        assert_eq!(err.to_string(), "the packet's replay tag was seen before");

        // a packet whose header fails is not asked about
        let mut tampered = frame.packet.clone();
        tampered[40] ^= 1;
        let err = unwrap_checked(&secret, &tampered, KeyRotation::Even, |_| {
            panic!("asked about a packet whose header failed")
        })
        .expect_err("tampered");
        assert!(matches!(err, UnwrapError::HeaderIntegrity(_)));
    }

    #[test]
    fn split_of_the_vector_plaintext() {
        let v = vectors();
        let plaintext = hex_field(&v, "plaintext_hex");
        let (ack, message) =
            split_surb_ack(PacketSize::Regular, KeyRotation::Unknown, plaintext).expect("split");
        assert_eq!(message, hex_field(&v, "expected_message_hex"));
        let ack = ack.expect("ack");
        let mut surb_ack = vec![0; routing_address::MAX_LEN];
        let encoded = routing_address::to_bytes(&ack.next_hop);
        surb_ack[..encoded.len()].copy_from_slice(&encoded);
        surb_ack.extend_from_slice(&ack.packet);
        assert_eq!(surb_ack, hex_field(&v, "surb_ack_hex"));
    }

    #[test]
    fn ack_packet_unwraps_at_the_mix_node() {
        let v = vectors();
        let mix = secret_field(&v, "mix_node_sphinx_private_key_hex");
        let expected = &v["ack_packet_processed_by_mix_node"];
        let want_hop: SocketAddr = expected["next_hop"]
            .as_str()
            .expect("hop")
            .parse()
            .expect("addr");
        let want_delay = Duration::from_nanos(expected["delay_nanos"].as_u64().expect("delay"));
        for result in v["expected_results_for_v7_and_v8"]
            .as_array()
            .expect("results")
        {
            let ack = hex_field(result, "ack_packet_hex");
            let unwrapped = unwrap(&mix, &ack, KeyRotation::Unknown).expect("unwraps");
            let Hop::Forward(hop) = unwrapped.hop else {
                panic!("expected a forward hop")
            };
            assert_eq!(hop.next_hop, want_hop);
            assert_eq!(hop.delay, want_delay);
            assert_eq!(hop.packet.len(), PacketSize::Ack.size());
            // the next layer is for the gateway: the client's ack, no SURB-ack of its own
            let last = unwrap(&gateway_secret(), &hop.packet, KeyRotation::Unknown).expect("ok");
            let Hop::Final(last) = last.hop else {
                panic!("expected a final hop")
            };
            assert_eq!(last.message, vec![0xaa; 21]);
            assert_eq!(last.ack, None);
            assert_eq!(
                last.destination.to_vec(),
                hex_field(&v, "client_address_hex")
            );
        }
    }

    #[test]
    fn forward_hop_packet_comes_out_as_forward_hop() {
        let v = vectors();
        let frame = decode_whole_frame(&hex_field(
            &v,
            "forward_hop_packet_framed_v7_hex_gateway_must_reject",
        ));
        let unwrapped = unwrap_frame(&gateway_secret(), &frame).expect("unwraps");
        let Hop::Forward(hop) = unwrapped.hop else {
            panic!("expected a forward hop")
        };
        assert_eq!(hop.next_hop, "192.0.2.10:1789".parse().expect("addr"));
        assert_eq!(hop.delay, Duration::from_nanos(5));
        assert_eq!(hop.packet.len(), PacketSize::Regular.size());
        // the mix node can take off the last layer: a 7-byte message, too short for a SURB-ack
        let mix = secret_field(&v, "mix_node_sphinx_private_key_hex");
        assert!(matches!(
            unwrap(&mix, &hop.packet, KeyRotation::Unknown),
            Err(UnwrapError::MissingSurbAck { plaintext_len: 7 })
        ));
    }

    #[test]
    fn flipped_mac_byte_fails_integrity() {
        let v = vectors();
        let secret = gateway_secret();
        let sphinx = hex_field(&v, "sphinx_packet_hex");
        // α is bytes 0..32, the MAC 32..48, the routing information 48..348
        for position in [32, 47, 48, 347] {
            let mut tampered = sphinx.clone();
            tampered[position] ^= 0x01;
            let err = unwrap(&secret, &tampered, KeyRotation::Unknown).expect_err("tampered");
            assert!(matches!(err, UnwrapError::HeaderIntegrity(_)), "{err}");
            assert!(
                err.to_string().contains("failed to verify integrity MAC"),
                "{err}"
            );
        }
    }

    #[test]
    fn wrong_key_fails_integrity() {
        let v = vectors();
        let sphinx = hex_field(&v, "sphinx_packet_hex");
        let other = SphinxSecret::from_bytes([0x43; 32]);
        assert!(matches!(
            unwrap(&other, &sphinx, KeyRotation::Unknown),
            Err(UnwrapError::HeaderIntegrity(_))
        ));
    }

    #[test]
    fn tampered_payload_fails_recovery() {
        let v = vectors();
        let secret = gateway_secret();
        let mut sphinx = hex_field(&v, "sphinx_packet_hex");
        sphinx[1000] ^= 0x80;
        let err = unwrap(&secret, &sphinx, KeyRotation::Unknown).expect_err("tampered");
        assert!(matches!(err, UnwrapError::PayloadRecovery(_)), "{err}");
        assert!(err.to_string().contains("malformed payload"), "{err}");
    }

    #[test]
    fn unknown_lengths_and_garbage_are_errors() {
        let secret = gateway_secret();
        for len in [0, 1, 364, 385, 387, 2412] {
            assert!(matches!(
                unwrap(&secret, &vec![0; len], KeyRotation::Unknown),
                Err(UnwrapError::InvalidSize(UnknownPacketLength(l))) if l == len
            ));
        }
        for size in PacketSize::ALL {
            let garbage: Vec<u8> = (0..size.size()).map(|i| (i * 31 + 7) as u8).collect();
            assert!(matches!(
                unwrap(&secret, &garbage, KeyRotation::Unknown),
                Err(UnwrapError::HeaderIntegrity(_))
            ));
        }
    }

    #[test]
    fn surb_ack_split_rules() {
        // ack-size: everything is message
        let (ack, message) =
            split_surb_ack(PacketSize::Ack, KeyRotation::Even, vec![1; 21]).expect("split");
        assert_eq!((ack, message), (None, vec![1; 21]));

        // too short for a SURB-ack
        for size in [PacketSize::Regular, PacketSize::Extended8] {
            assert!(matches!(
                split_surb_ack(size, KeyRotation::Unknown, vec![4; SURB_ACK_LEN - 1]),
                Err(UnwrapError::MissingSurbAck { plaintext_len: 404 })
            ));
        }

        // exactly a SURB-ack: empty message, IPv6 first hop filling the whole address field
        let first_hop: SocketAddr = "[2001:db8::1]:1789".parse().expect("addr");
        let mut plaintext = routing_address::to_bytes(&first_hop);
        plaintext.extend_from_slice(&[7; 386]);
        let (ack, message) =
            split_surb_ack(PacketSize::Extended16, KeyRotation::Odd, plaintext).expect("split");
        assert!(message.is_empty());
        assert_eq!(
            ack,
            Some(MixPacket {
                next_hop: first_hop,
                packet_size: PacketSize::Ack,
                key_rotation: KeyRotation::Odd,
                packet: vec![7; 386],
            })
        );

        // a bad address drops the whole packet
        let mut bad = vec![5; SURB_ACK_LEN];
        bad.extend_from_slice(b"message");
        let err = split_surb_ack(PacketSize::Regular, KeyRotation::Unknown, bad).expect_err("bad");
        assert!(matches!(
            err,
            UnwrapError::MalformedSurbAck(RoutingAddressError::InvalidIpVersion(5))
        ));
        assert_eq!(
            err.to_string(),
            "failed to recover the expected SURB-Ack packet: 5 is not a valid version of the \
             Internet Protocol (IP). Expected either '4' or '6'"
        );
    }

    fn node(addr: [u8; 32], secret: &SphinxSecret) -> Node {
        Node::new(
            NodeAddressBytes::from_bytes(addr),
            PublicKey::from(secret.public_key()),
        )
    }

    fn padded(addr: &SocketAddr) -> [u8; 32] {
        let mut out = [0; 32];
        let encoded = routing_address::to_bytes(addr);
        out[..encoded.len()].copy_from_slice(&encoded);
        out
    }

    /// Packets built with every Sphinx version (both payload-key formats) and every size unwrap
    /// to the plaintext they were built from.
    #[test]
    fn every_sphinx_version_and_size() {
        let secret = gateway_secret();
        let gateway: SocketAddr = "198.51.100.7:1789".parse().expect("addr");
        let first_hop: SocketAddr = "192.0.2.10:1789".parse().expect("addr");
        let destination = Destination::new(DestinationAddressBytes::from_bytes([9; 32]), [0; 16]);
        let route = [node(padded(&gateway), &secret)];
        for version in sphinx_packet::version::KNOWN_VERSIONS {
            for size in PacketSize::ALL {
                let message = format!("version {} size {}", version.value(), size).into_bytes();
                let plaintext = if size.has_surb_ack() {
                    let mut p = padded(&first_hop)[..routing_address::MAX_LEN].to_vec();
                    p.extend_from_slice(&[0x5a; 386]);
                    p.extend_from_slice(&message);
                    p
                } else {
                    message.clone()
                };
                let packet = SphinxPacketBuilder::new()
                    .with_version(*version)
                    .with_payload_size(size.payload_size())
                    .build_packet(
                        &plaintext,
                        &route,
                        &destination,
                        &[Delay::new_from_nanos(0)],
                    )
                    .expect("build")
                    .to_bytes();
                assert_eq!(packet.len(), size.size());

                let unwrapped = unwrap(&secret, &packet, KeyRotation::Even).expect("unwraps");
                assert_eq!(unwrapped.sphinx_version, version.value());
                let Hop::Final(hop) = unwrapped.hop else {
                    panic!("expected a final hop")
                };
                assert_eq!(hop.destination, [9; 32]);
                assert_eq!(hop.message, message);
                match hop.ack {
                    Some(ack) => {
                        assert!(size.has_surb_ack());
                        assert_eq!(ack.next_hop, first_hop);
                        assert_eq!(ack.key_rotation, KeyRotation::Even);
                        assert_eq!(ack.packet, vec![0x5a; 386]);
                    }
                    None => assert_eq!(size, PacketSize::Ack),
                }
            }
        }
        assert!(sphinx_packet::version::KNOWN_VERSIONS.contains(&Version(259)));
    }

    #[test]
    fn forward_hop_with_a_bad_next_hop_address() {
        let secret = gateway_secret();
        let mix = SphinxSecret::from_bytes([0x55; 32]);
        let gateway: SocketAddr = "198.51.100.7:1789".parse().expect("addr");
        // the next hop's address field starts with 9: no IP version
        let route = [node(padded(&gateway), &secret), node([9; 32], &mix)];
        let destination = Destination::new(DestinationAddressBytes::from_bytes([1; 32]), [0; 16]);
        let packet = SphinxPacketBuilder::new()
            .with_payload_size(PacketSize::Ack.payload_size())
            .build_packet(
                b"x",
                &route,
                &destination,
                &[Delay::new_from_nanos(0), Delay::new_from_nanos(0)],
            )
            .expect("build")
            .to_bytes();
        assert!(matches!(
            unwrap(&secret, &packet, KeyRotation::Unknown),
            Err(UnwrapError::MalformedNextHop(
                RoutingAddressError::InvalidIpVersion(9)
            ))
        ));
    }
}
