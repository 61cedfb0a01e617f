//! The fast final-hop path ([`fast_final_hop`]) against the reference path ([`final_hop`],
//! through `sphinx-packet`): both must give the same result for every packet — replay tag,
//! version, hop, and for a bad packet the same error with the same message.
//!
//! Input: a mode byte, then
//! - even mode: a control byte and a packet, as in the `final_hop` target;
//! - odd mode: the contents of a packet an honest sender builds for the gateway (as in the
//!   `final_hop_build` target), then up to four byte changes applied to the built packet, so
//!   both paths see valid packets and packets corrupted anywhere after the sender.

use arbitrary::{Result, Unstructured};
use gateway_protocol::fast_final_hop::{self, FastPartiallyUnwrapped, FastSphinxSecret};
use gateway_protocol::final_hop::{self, PartiallyUnwrapped, UnwrapError, Unwrapped};
use gateway_protocol::framing::KeyRotation;
use gateway_protocol::packet_size::PacketSize;
use sphinx_packet::crypto::{PrivateKey, PublicKey};
use sphinx_packet::header::delays::Delay;
use sphinx_packet::route::{Destination, DestinationAddressBytes, Node, NodeAddressBytes};
use sphinx_packet::version::KNOWN_VERSIONS;
use sphinx_packet::SphinxPacketBuilder;
use std::sync::OnceLock;

use crate::vectors;

/// The gateway's vector sphinx key, loaded for the fast path.
fn fast_secret() -> &'static FastSphinxSecret {
    static KEY: OnceLock<FastSphinxSecret> = OnceLock::new();
    KEY.get_or_init(|| {
        FastSphinxSecret::from_bytes(vectors::hex32(
            vectors::final_hop(),
            "gateway_sphinx_private_key_hex",
        ))
        .expect("aws-lc loads the vector key")
    })
}

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let Some((&control, bytes)) = rest.split_first() else {
            return;
        };
        let mut packet = bytes.to_vec();
        if let Some(size) = PacketSize::ALL.get(usize::from(control & 7)) {
            packet.resize(size.size(), 0);
        }
        compare(&packet, crate::rotation(control >> 3));
    } else {
        let _ = built(&mut Unstructured::new(rest));
    }
}

fn built(u: &mut Unstructured<'_>) -> Result<()> {
    let version = *u.choose(KNOWN_VERSIONS)?;
    let size = *u.choose(&PacketSize::ALL)?;
    let rotation = crate::rotation(u.arbitrary()?);
    let initial_secret = PrivateKey::from(u.arbitrary::<[u8; 32]>()?);
    let recipient: [u8; 32] = u.arbitrary()?;
    let identifier: [u8; 16] = u.arbitrary()?;
    let delay = u.arbitrary::<u64>()?;
    let next_hop: Option<[u8; 32]> = u.arbitrary()?;
    let changes = u.int_in_range(0..=4)?;
    let mut edits = Vec::with_capacity(changes);
    for _ in 0..changes {
        edits.push((u.arbitrary::<u16>()?, u.arbitrary::<u8>()?));
    }
    let rest = u.bytes(u.len())?;
    let plaintext = &rest[..rest.len().min(size.plaintext_size())];

    let mut route = vec![node([0; 32], vectors::gateway_sphinx_secret().public_key())];
    let mut delays = vec![Delay::new_from_nanos(delay)];
    if let Some(address) = next_hop {
        route.push(node(
            address,
            vectors::mix_node_sphinx_secret().public_key(),
        ));
        delays.push(Delay::new_from_nanos(0));
    }
    let destination = Destination::new(DestinationAddressBytes::from_bytes(recipient), identifier);
    let Ok(packet) = SphinxPacketBuilder::new()
        .with_version(version)
        .with_payload_size(size.payload_size())
        .with_initial_secret(&initial_secret)
        .build_packet(plaintext, &route, &destination, &delays)
    else {
        return Ok(());
    };
    let mut packet = packet.to_bytes();
    for (position, xor) in edits {
        let index = usize::from(position) % packet.len();
        packet[index] ^= xor;
    }
    compare(&packet, rotation);
    Ok(())
}

/// Both paths, two-step and in one go, must agree on `packet`.
fn compare(packet: &[u8], rotation: KeyRotation) {
    let reference = PartiallyUnwrapped::new(vectors::gateway_sphinx_secret(), packet, rotation);
    let fast = FastPartiallyUnwrapped::new(fast_secret(), packet, rotation);
    let (reference, fast) = match (reference, fast) {
        (Ok(reference), Ok(fast)) => (reference, fast),
        (Err(reference), Err(fast)) => {
            same_error(&reference, &fast);
            return;
        }
        (reference, fast) => panic!(
            "the header check differs: reference {:?}, fast {:?}",
            reference.err(),
            fast.err()
        ),
    };
    assert_eq!(reference.replay_tag(), fast.replay_tag());
    let reference = reference.finish();
    let fast = fast.finish();
    same_result(&reference, &fast);
    same_result(
        &fast_final_hop::unwrap_fast(fast_secret(), packet, rotation),
        &fast,
    );
    same_result(
        &final_hop::unwrap(vectors::gateway_sphinx_secret(), packet, rotation),
        &reference,
    );
}

fn same_result(
    reference: &std::result::Result<Unwrapped, UnwrapError>,
    fast: &std::result::Result<Unwrapped, UnwrapError>,
) {
    match (reference, fast) {
        (Ok(reference), Ok(fast)) => assert_eq!(reference, fast),
        (Err(reference), Err(fast)) => same_error(reference, fast),
        _ => panic!("the paths differ: reference {reference:?}, fast {fast:?}"),
    }
}

fn same_error(reference: &UnwrapError, fast: &UnwrapError) {
    assert_eq!(
        std::mem::discriminant(reference),
        std::mem::discriminant(fast),
        "reference {reference:?}, fast {fast:?}"
    );
    assert_eq!(reference.to_string(), fast.to_string());
}

fn node(address: [u8; 32], public_key: [u8; 32]) -> Node {
    Node::new(
        NodeAddressBytes::from_bytes(address),
        PublicKey::from(public_key),
    )
}
