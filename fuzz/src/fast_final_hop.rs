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
use gateway_protocol::fast_final_hop::{self, FastPartiallyUnwrapped};
use gateway_protocol::final_hop::{self, PartiallyUnwrapped, UnwrapError, Unwrapped};
use gateway_protocol::framing::KeyRotation;
use gateway_protocol::packet_size::PacketSize;

use crate::honest_packet::Contents;
use gateway_protocol::test_support::vectors::{self, gateway_fast_sphinx_secret as fast_secret};

pub fn run(data: &[u8]) {
    crate::by_mode(
        data,
        |rest| {
            let Some((&control, bytes)) = rest.split_first() else {
                return;
            };
            let mut packet = bytes.to_vec();
            if let Some(size) = PacketSize::ALL.get(usize::from(control & 7)) {
                packet.resize(size.size(), 0);
            }
            compare(&packet, crate::rotation(control >> 3));
        },
        built,
    );
}

fn built(u: &mut Unstructured<'_>) -> Result<()> {
    let contents = Contents::arbitrary(u)?;
    let changes = u.int_in_range(0..=4)?;
    let mut edits = Vec::with_capacity(changes);
    for _ in 0..changes {
        edits.push((u.arbitrary::<u16>()?, u.arbitrary::<u8>()?));
    }
    let plaintext = contents.plaintext(u.bytes(u.len())?);
    let Some(mut packet) = contents.build(plaintext) else {
        return Ok(());
    };
    for (position, xor) in edits {
        let index = usize::from(position) % packet.len();
        packet[index] ^= xor;
    }
    compare(&packet, contents.rotation);
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
