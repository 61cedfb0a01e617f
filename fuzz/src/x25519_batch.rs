//! Batched X25519 (`x25519-batch`): every backend this CPU runs (AVX-512 IFMA, AVX2, scalar)
//! and the default one against x25519-dalek, point for point.
//!
//! Input: a mode byte, a 32-byte secret, then up to 17 points. Even mode: the points are the
//! bytes as they are (32 each). Odd mode: each point is an edge value (0, 1, p - 1, p, p + 1,
//! 2^255 - 1, a point of order 8) with its low byte XORed with a fuzzer byte and its top bit
//! set or not, so small-order and non-canonical inputs come often.

use arbitrary::Unstructured;
use x25519_batch::{Backend, BatchSecret};

/// Most points in one input: two IFMA chunks and a remainder.
const MAX_POINTS: usize = 17;

/// Edge u-coordinates, little-endian.
const EDGES: [[u8; 32]; 8] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    let mut edges = [p; 8];
    edges[0] = [0; 32];
    edges[1] = [0; 32];
    edges[1][0] = 1;
    edges[2][0] = 0xec; // p - 1
    edges[4][0] = 0xee; // p + 1
    edges[5][0] = 0xff; // 2^255 - 1
    edges[6] = [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ];
    edges[7] = [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ];
    edges
};

pub fn run(data: &[u8]) {
    crate::by_mode(
        data,
        |raw| {
            let Some((secret, rest)) = raw.split_first_chunk::<32>() else {
                return;
            };
            let points: Vec<[u8; 32]> = rest
                .chunks_exact(32)
                .take(MAX_POINTS)
                .map(|c| c.try_into().expect("32 bytes"))
                .collect();
            check(*secret, &points);
        },
        |u| {
            let secret: [u8; 32] = u.arbitrary()?;
            let mut points = Vec::new();
            while points.len() < MAX_POINTS && !u.is_empty() {
                points.push(edge_point(u)?);
            }
            check(secret, &points);
            Ok(())
        },
    );
}

fn edge_point(u: &mut Unstructured<'_>) -> arbitrary::Result<[u8; 32]> {
    let [which, low]: [u8; 2] = u.arbitrary()?;
    let mut point = EDGES[usize::from(which) % EDGES.len()];
    point[0] ^= low;
    if which & 0x80 != 0 {
        point[31] |= 0x80;
    }
    Ok(point)
}

/// Every backend gives x25519-dalek's bytes for every point; an unavailable one says so.
fn check(secret: [u8; 32], points: &[[u8; 32]]) {
    let expected: Vec<[u8; 32]> = points
        .iter()
        .map(|point| x25519_dalek::x25519(secret, *point))
        .collect();
    let key = BatchSecret::from_bytes(secret);
    for backend in Backend::ALL {
        let mut out = vec![[0xaa; 32]; points.len()];
        match key.agree_many_with(backend, points, &mut out) {
            Ok(()) => assert_eq!(out, expected, "{backend:?}"),
            Err(unavailable) => assert!(!backend.is_available(), "{unavailable}"),
        }
    }
    let mut out = vec![[0xaa; 32]; points.len()];
    key.agree_many(points, &mut out);
    assert_eq!(
        out,
        expected,
        "default backend {:?}",
        x25519_batch::backend()
    );
    for (point, expected) in points.iter().zip(&expected) {
        assert_eq!(key.agree(point), *expected, "single point");
    }
}
