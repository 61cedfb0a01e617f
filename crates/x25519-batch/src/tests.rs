//! Every backend against x25519-dalek: RFC 7748's vectors, the iterated test, edge-case points,
//! every batch size up to 17, and random secrets and points.

use super::*;
use rand::{Rng as _, RngExt as _};

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn available() -> Vec<Backend> {
    let backends: Vec<_> = Backend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .collect();
    #[cfg(target_arch = "x86_64")]
    if std::env::var_os("X25519_BATCH_REQUIRE_SIMD").is_some() {
        assert!(backends.contains(&Backend::Avx512Ifma));
    }
    backends
}

/// `agree_many_with(backend)` of `points`, checked against x25519-dalek point by point.
fn check(secret: &[u8; 32], points: &[[u8; 32]], backend: Backend) -> Vec<[u8; 32]> {
    let key = BatchSecret::from_bytes(*secret);
    let mut out = vec![[0xaa; 32]; points.len()];
    key.agree_many_with(backend, points, &mut out).unwrap();
    for (point, got) in points.iter().zip(&out) {
        let expected = x25519_dalek::x25519(*secret, *point);
        assert_eq!(
            *got,
            expected,
            "{backend:?}: secret {} point {}",
            hex::encode(secret),
            hex::encode(point)
        );
    }
    out
}

#[test]
fn rfc7748_vectors_on_every_backend() {
    let vectors = [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ];
    for backend in available() {
        for (scalar, u, expected) in vectors {
            // 17 copies: two full chunks of eight, four of four, and a remainder
            let out = check(&hex32(scalar), &[hex32(u); 17], backend);
            for o in out {
                assert_eq!(hex::encode(o), expected, "{backend:?}");
            }
        }
    }
}

/// RFC 7748 5.2: k = u = 9, then `k, u = X25519(k, u), k` `iterations` times; every lane of the
/// batch computes the same thing.
fn iterate(backend: Backend, iterations: u32) -> [u8; 32] {
    let mut k = [0; 32];
    k[0] = 9;
    let mut u = k;
    let points = vec![[0; 32]; backend.lanes()];
    let mut out = points.clone();
    for _ in 0..iterations {
        let points = vec![u; points.len()];
        BatchSecret::from_bytes(k)
            .agree_many_with(backend, &points, &mut out)
            .unwrap();
        assert!(out.iter().all(|o| *o == out[0]));
        u = k;
        k = out[0];
    }
    k
}

#[test]
fn rfc7748_iterated_1_and_1000_on_every_backend() {
    for backend in available() {
        assert_eq!(
            iterate(backend, 1),
            hex32("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
        );
        assert_eq!(
            iterate(backend, 1000),
            hex32("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")
        );
    }
}

#[test]
#[ignore = "minutes; run with --ignored in release"]
fn rfc7748_iterated_1_000_000_on_every_backend() {
    for backend in available() {
        assert_eq!(
            iterate(backend, 1_000_000),
            hex32("7c3911e0ab2586fd864497297e575e6f3bc601c0883c30df5f4dd2d24f665424")
        );
    }
}

/// u-coordinates at the edges: 0, 1, p - 1, p, p + 1, 2^255 - 1, every point of small order
/// (also written + p, where that stays below 2^255), and each with the top bit set.
fn edge_points() -> Vec<[u8; 32]> {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    let add = |a: [u8; 32], small: u64| {
        let mut r = a;
        let mut carry = small;
        for byte in &mut r {
            let sum = u64::from(*byte) + (carry & 0xff);
            *byte = sum as u8;
            carry = (carry >> 8) + (sum >> 8);
        }
        r
    };
    let sub_one = |a: [u8; 32]| {
        let mut r = a;
        for byte in &mut r {
            let (v, borrow) = byte.overflowing_sub(1);
            *byte = v;
            if !borrow {
                break;
            }
        }
        r
    };
    let zero = [0; 32];
    let one = add(zero, 1);
    // the points of order 8 (the others of small order are 0, 1 and p - 1, of order 4, 1, 2)
    let order8 = [
        hex32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        hex32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    ];
    let mut points = vec![
        zero,
        one,
        sub_one(p),
        p,
        add(p, 1),
        add(p, 2),
        add(p, 18), // 2^255 - 1
        hex32("0900000000000000000000000000000000000000000000000000000000000000"),
    ];
    for small in order8 {
        points.push(small);
        // small + p stays below 2^255 only for the second one
        let plus_p = {
            let mut r = [0u8; 32];
            let mut carry = 0u16;
            for i in 0..32 {
                let s = u16::from(small[i]) + u16::from(p[i]) + carry;
                r[i] = s as u8;
                carry = s >> 8;
            }
            r
        };
        points.push(plus_p);
    }
    let with_top_bit: Vec<_> = points
        .iter()
        .map(|point| {
            let mut q = *point;
            q[31] |= 0x80;
            q
        })
        .collect();
    points.extend(with_top_bit);
    points.push([0xff; 32]);
    points
}

#[test]
fn edge_points_on_every_backend() {
    let points = edge_points();
    let secrets = [
        [0; 32],
        [0xff; 32],
        hex32("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
    ];
    for backend in available() {
        for secret in &secrets {
            let out = check(secret, &points, backend);
            // small order: all zeros
            for index in [0, 1, 2, 8, 10] {
                assert_eq!(out[index], [0; 32], "{backend:?} point {index}");
            }
        }
    }
}

#[test]
fn every_batch_size_up_to_17_on_every_backend() {
    let mut rng = rand::rng();
    let secret: [u8; 32] = rng.random();
    let points: Vec<[u8; 32]> = (0..17).map(|_| rng.random()).collect();
    for backend in available() {
        for n in 0..=17 {
            check(&secret, &points[..n], backend);
        }
    }
    let key = BatchSecret::from_bytes(secret);
    let mut out = vec![[0; 32]; 17];
    key.agree_many(&points, &mut out);
    assert_eq!(out, check(&secret, &points, backend()));
}

/// Random secrets and points, `batches` batches of 8 to 17 points per backend.
fn random_pairs(batches: usize) {
    let mut rng = rand::rng();
    for backend in available() {
        for _ in 0..batches {
            let secret: [u8; 32] = rng.random();
            let n = rng.random_range(8..=17);
            let mut points = vec![[0; 32]; n];
            for point in &mut points {
                rng.fill_bytes(point);
            }
            check(&secret, &points, backend);
        }
    }
}

#[test]
fn random_pairs_short() {
    random_pairs(100);
}

#[test]
#[ignore = "a few million pairs: run with --ignored in release"]
fn random_pairs_long() {
    random_pairs(100_000);
}

#[test]
fn unavailable_backend_is_an_error_and_lengths_must_match() {
    let key = BatchSecret::from_bytes([1; 32]);
    for backend in Backend::ALL {
        let result = key.agree_many_with(backend, &[], &mut []);
        assert_eq!(result.is_ok(), backend.is_available());
    }
    let mismatched = std::panic::catch_unwind(|| key.agree_many(&[[9; 32]; 2], &mut [[0; 32]; 1]));
    assert!(mismatched.is_err());
    assert_eq!(
        key.public_key(),
        x25519_dalek::x25519([1; 32], x25519_dalek::X25519_BASEPOINT_BYTES)
    );
}

/// Each backend takes full chunks of its lanes, IFMA a remainder of three or more as one padded
/// chunk too, and only the rest goes one point at a time. (A remainder counted from the start
/// of the batch instead of after its chunks once sent most of a batch of 12 through the scalar
/// path again: the results stayed right, every point cost a scalar X25519 more.)
#[test]
fn only_the_planned_remainder_goes_one_point_at_a_time() {
    let key = BatchSecret::from_bytes([7; 32]);
    for backend in available() {
        for len in 0..=25 {
            let points: Vec<[u8; 32]> = (0..len).map(|i| [i as u8 + 9; 32]).collect();
            let mut out = vec![[0; 32]; len];
            let one_at_a_time = key.run(backend, &points, &mut out);
            let expected = match backend {
                Backend::Scalar => len,
                Backend::Avx2 => len % 4,
                Backend::Avx512Ifma if len % 8 >= IFMA_PADDED_FROM => 0,
                Backend::Avx512Ifma => len % 8,
            };
            assert_eq!(one_at_a_time, expected, "{backend:?}, {len} points");
            for (point, got) in points.iter().zip(&out) {
                assert_eq!(
                    *got,
                    x25519_dalek::x25519([7; 32], *point),
                    "{backend:?}, {len} points"
                );
            }
        }
    }
}
