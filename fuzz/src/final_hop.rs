//! Final-hop processing with the gateway's fixed vector key: parsing, header check, replay tag,
//! then unwrapping, in the two steps the gateway uses
//! ([`PartiallyUnwrapped::new`] + [`PartiallyUnwrapped::finish`]).
//!
//! Input: one control byte, then the Sphinx packet. Bits 0–2 of the control byte pick a packet
//! size (0–4) that the packet is cut or zero-padded to, or (5–7) keep its length as it is;
//! bits 3–4 pick the frame's key rotation. Random bytes never pass the header MAC; the seeds
//! (valid packets) do, and mutations of their payload reach the decryption and the split.

use gateway_protocol::final_hop::{FinalHop, Hop, PartiallyUnwrapped, UnwrapError};
use gateway_protocol::framing::KeyRotation;
use gateway_protocol::packet_size::{PacketSize, UnknownPacketLength, SURB_ACK_LEN};
use sphinx_packet::version::KNOWN_VERSIONS;

use gateway_protocol::test_support::vectors;

pub fn run(data: &[u8]) {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let rotation = crate::rotation(control >> 3);
    let mut packet = bytes.to_vec();
    if let Some(size) = PacketSize::ALL.get(usize::from(control & 7)) {
        packet.resize(size.size(), 0);
    }
    let known_size = PacketSize::from_len(packet.len());

    let partial = match PartiallyUnwrapped::new(vectors::gateway_sphinx_secret(), &packet, rotation)
    {
        Ok(partial) => partial,
        Err(err) => {
            match err {
                UnwrapError::InvalidSize(UnknownPacketLength(len)) => {
                    assert_eq!(len, packet.len());
                    assert!(known_size.is_err());
                }
                UnwrapError::Malformed(_) | UnwrapError::HeaderIntegrity(_) => {
                    assert!(known_size.is_ok());
                }
                other => panic!("not a header failure before the header was checked: {other}"),
            }
            assert!(!err.to_string().is_empty());
            return;
        }
    };
    let size = known_size.expect("a packet that passed the header check has a known size");
    let replay_tag = partial.replay_tag();
    match partial.finish() {
        Ok(unwrapped) => {
            assert_eq!(unwrapped.replay_tag, replay_tag);
            assert!(KNOWN_VERSIONS
                .iter()
                .any(|v| v.value() == unwrapped.sphinx_version));
            match unwrapped.hop {
                Hop::Final(hop) => check_final(&hop, size, rotation),
                Hop::Forward(hop) => assert_eq!(hop.packet.len(), packet.len()),
            }
        }
        Err(err) => {
            assert!(
                !matches!(
                    err,
                    UnwrapError::InvalidSize(_)
                        | UnwrapError::Malformed(_)
                        | UnwrapError::HeaderIntegrity(_)
                ),
                "a header failure after the header was verified: {err}"
            );
            assert!(!err.to_string().is_empty());
        }
    }
}

/// What every final hop the gateway accepts satisfies.
pub fn check_final(hop: &FinalHop, size: PacketSize, rotation: KeyRotation) {
    let ack_len = if size.has_surb_ack() { SURB_ACK_LEN } else { 0 };
    assert!(hop.message.len() + ack_len <= size.plaintext_size());
    assert_eq!(hop.ack.is_some(), size.has_surb_ack());
    if let Some(ack) = &hop.ack {
        assert_eq!(ack.packet_size, PacketSize::Ack);
        assert_eq!(ack.packet.len(), PacketSize::Ack.size());
        assert_eq!(ack.key_rotation, rotation);
    }
}
