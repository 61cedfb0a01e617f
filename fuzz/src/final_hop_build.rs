//! Final-hop processing of packets an honest sender built (with `sphinx-packet`) for the
//! gateway's vector key, from contents the fuzzer chooses: Sphinx version, size, key rotation,
//! destination, plaintext, and optionally a next hop after the gateway. Unwrapping must give
//! back exactly what was put in, or the error the contents call for.

use std::time::Duration;

use arbitrary::{Result, Unstructured};
use gateway_protocol::final_hop::{self, Hop, UnwrapError};
use gateway_protocol::mix_packet::MixPacket;
use gateway_protocol::packet_size::{PacketSize, SURB_ACK_LEN};
use gateway_protocol::routing_address::{self, MAX_LEN};

use crate::honest_packet::Contents;
use gateway_protocol::test_support::vectors;

pub fn run(data: &[u8]) {
    let _ = build_and_unwrap(&mut Unstructured::new(data));
}

fn build_and_unwrap(u: &mut Unstructured<'_>) -> Result<()> {
    let contents = Contents::arbitrary(u)?;
    let plaintext = contents.plaintext(u.bytes(u.len())?);
    let Contents {
        version,
        size,
        rotation,
        recipient,
        delay,
        next_hop,
        ..
    } = contents;
    let Some(packet) = contents.build(plaintext) else {
        return Ok(());
    };
    assert_eq!(packet.len(), size.size());

    let result = final_hop::unwrap(vectors::gateway_sphinx_secret(), &packet, rotation);
    if let Ok(unwrapped) = &result {
        assert_eq!(unwrapped.sphinx_version, version.value());
    }
    let hop = result.map(|unwrapped| unwrapped.hop);

    if let Some(address) = next_hop {
        match routing_address::decode(&address) {
            Ok((next, _)) => {
                let Ok(Hop::Forward(hop)) = hop else {
                    panic!("expected a forward hop to {next}, got {hop:?}");
                };
                assert_eq!(hop.next_hop, next);
                assert_eq!(hop.delay, Duration::from_nanos(delay));
                assert_eq!(hop.packet.len(), packet.len());
            }
            Err(err) => assert!(
                matches!(hop, Err(UnwrapError::MalformedNextHop(e)) if e == err),
                "expected MalformedNextHop({err}), got {hop:?}"
            ),
        }
        return Ok(());
    }

    if !size.has_surb_ack() {
        let Ok(Hop::Final(hop)) = hop else {
            panic!("expected a final hop, got {hop:?}");
        };
        assert_eq!(hop.destination, recipient);
        assert_eq!(hop.message, plaintext);
        assert_eq!(hop.ack, None);
        return Ok(());
    }
    if plaintext.len() < SURB_ACK_LEN {
        assert!(
            matches!(hop, Err(UnwrapError::MissingSurbAck { plaintext_len }) if plaintext_len == plaintext.len()),
            "expected MissingSurbAck, got {hop:?}"
        );
        return Ok(());
    }
    match routing_address::decode(&plaintext[..MAX_LEN]) {
        Ok((first_hop, _)) => {
            let Ok(Hop::Final(hop)) = hop else {
                panic!("expected a final hop, got {hop:?}");
            };
            assert_eq!(hop.destination, recipient);
            assert_eq!(hop.message, plaintext[SURB_ACK_LEN..]);
            let expected_ack = MixPacket {
                next_hop: first_hop,
                packet_size: PacketSize::Ack,
                key_rotation: rotation,
                packet: plaintext[MAX_LEN..SURB_ACK_LEN].to_vec(),
            };
            assert_eq!(hop.ack, Some(expected_ack));
            crate::final_hop::check_final(&hop, size, rotation);
        }
        Err(err) => assert!(
            matches!(hop, Err(UnwrapError::MalformedSurbAck(e)) if e == err),
            "expected MalformedSurbAck({err}), got {hop:?}"
        ),
    }
    Ok(())
}
