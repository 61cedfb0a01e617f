//! Final-hop unwrapping in this process, on one core: the `sphinx-packet` reference path
//! ([`final_hop::unwrap`]) and our fast path ([`unwrap_fast`]), over the same pre-built
//! packets, so the two are measured side by side in one run. Both must give the same result
//! for every packet before either is timed.

use std::time::Instant;

use gateway_protocol::fast_final_hop::{unwrap_fast, FastSphinxSecret};
use gateway_protocol::final_hop::{self, SphinxSecret, UnwrapError, Unwrapped};
use gateway_protocol::framing::KeyRotation;

use crate::packets::Packet;

/// Rounds per path; the fastest counts (the least disturbed by other work on the machine).
const ROUNDS: usize = 3;

/// The result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnwrapFigures {
    /// Packets unwrapped per round.
    pub packets: usize,
    /// µs per packet, reference path.
    pub reference_us: f64,
    /// µs per packet, our path.
    pub ours_us: f64,
    /// Which function "ours" is.
    pub ours_path: &'static str,
}

/// A way to unwrap one packet.
type UnwrapFn<'a> = &'a dyn Fn(&[u8]) -> Result<Unwrapped, UnwrapError>;

/// An owned way to unwrap one packet.
type BoxedUnwrap = Box<dyn Fn(&[u8]) -> Result<Unwrapped, UnwrapError>>;

/// Times both paths over `packets` (built for the key `secret`).
pub fn run(secret: [u8; 32], packets: &[Packet]) -> anyhow::Result<UnwrapFigures> {
    let reference_secret = SphinxSecret::from_bytes(secret);
    let reference =
        |packet: &[u8]| final_hop::unwrap(&reference_secret, packet, KeyRotation::Unknown);
    let (ours_path, ours) = ours(secret)?;
    // Both paths must agree before either is timed.
    for packet in packets {
        let a = reference(packet.sphinx()).map_err(|e| anyhow::anyhow!("reference: {e}"))?;
        let b = ours(packet.sphinx()).map_err(|e| anyhow::anyhow!("ours: {e}"))?;
        anyhow::ensure!(
            a == b,
            "the two unwrap paths disagree on packet {}",
            packet.id
        );
    }
    let mut reference_us = f64::MAX;
    let mut ours_us = f64::MAX;
    for _ in 0..ROUNDS {
        reference_us = reference_us.min(time(packets, &reference)?);
        ours_us = ours_us.min(time(packets, ours.as_ref())?);
    }
    Ok(UnwrapFigures {
        packets: packets.len(),
        reference_us,
        ours_us,
        ours_path,
    })
}

/// Our production path for `secret`, and its name.
fn ours(secret: [u8; 32]) -> anyhow::Result<(&'static str, BoxedUnwrap)> {
    let ours = FastSphinxSecret::from_bytes(secret)
        .map_err(|e| anyhow::anyhow!("loading the sphinx key for the fast path: {e}"))?;
    Ok((
        "fast_final_hop::unwrap_fast",
        Box::new(move |packet| unwrap_fast(&ours, packet, KeyRotation::Unknown)),
    ))
}

/// Mean µs per packet of one pass over `packets`.
fn time(packets: &[Packet], unwrap: UnwrapFn<'_>) -> anyhow::Result<f64> {
    let start = Instant::now();
    for packet in packets {
        // black_box: the result must be computed even though only its success is used.
        std::hint::black_box(unwrap(std::hint::black_box(packet.sphinx())))
            .map_err(|e| anyhow::anyhow!("unwrapping packet {}: {e}", packet.id))?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / packets.len().max(1) as f64)
}
