//! Proof that the fast path gives the results of the `sphinx-packet` path, [`final_hop`], byte for
//! byte: random keys, routes, destinations and payloads, built with `sphinx-packet`'s builder and
//! SURBs, every size and Sphinx version, every hop of a route; the vectors; corrupted, garbage
//! and forged packets.
//!
//! `FAST_FINAL_HOP_CASES` sets the number of random routes (default 120); run many more in a
//! release build, e.g. `FAST_FINAL_HOP_CASES=20000 cargo test --release -p gateway-protocol
//! fast_final_hop`.

use super::keys::{self, HopKeys};
use super::*;
use crate::final_hop::{self, SphinxSecret};
use crate::framing;
use crate::test_vectors::hex_field;
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use serde_json::Value;
use sphinx_packet::header::delays::Delay;
use sphinx_packet::payload::Payload;
use sphinx_packet::route::{Destination, DestinationAddressBytes, Node, NodeAddressBytes};
use sphinx_packet::version::{Version, KNOWN_VERSIONS};
use sphinx_packet::{SURBMaterial, SphinxPacketBuilder, SURB};
use std::net::SocketAddr;

fn cases() -> usize {
    std::env::var("FAST_FINAL_HOP_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(120)
}

/// Our node's key in both forms.
struct Keys {
    fast: FastSphinxSecret,
    reference: SphinxSecret,
}

impl Keys {
    fn new(bytes: [u8; 32]) -> Self {
        Self {
            fast: FastSphinxSecret::from_bytes(bytes).expect("key loads"),
            reference: SphinxSecret::from_bytes(bytes),
        }
    }
}

/// A result as text: `Ok` values whole, errors with their variant, kind and message.
fn describe(result: &Result<Unwrapped, UnwrapError>) -> String {
    format!("{result:?}")
}

/// Unwraps `packet` both ways, checks the results are identical (those of the two-step API and
/// of the checked unwrap too), and returns the result.
fn unwrap_both(
    keys: &Keys,
    packet: &[u8],
    rotation: KeyRotation,
) -> Result<Unwrapped, UnwrapError> {
    let reference = final_hop::unwrap(&keys.reference, packet, rotation);
    let fast = unwrap_fast(&keys.fast, packet, rotation);
    same_result(&reference, &fast, packet);

    let reference_tag = final_hop::PartiallyUnwrapped::new(&keys.reference, packet, rotation)
        .map(|partial| partial.replay_tag());
    let fast_tag = FastPartiallyUnwrapped::new(&keys.fast, packet, rotation)
        .map(|partial| partial.replay_tag());
    let tag = match (reference_tag, fast_tag) {
        (Ok(want), Ok(got)) => {
            assert_eq!(want, got);
            Some(got)
        }
        (Err(want), Err(got)) => {
            assert_eq!(format!("{want:?}"), format!("{got:?}"));
            None
        }
        (want, got) => panic!("two-step results differ: {want:?} vs {got:?}"),
    };
    if let Ok(unwrapped) = &fast {
        assert_eq!(Some(unwrapped.replay_tag), tag);
    }

    // the checked unwrap: a fresh tag gives the one-go result; a seen one stops after the header
    for fresh in [true, false] {
        let (mut reference_asked, mut fast_asked) = (None, None);
        let reference_checked =
            final_hop::unwrap_checked(&keys.reference, packet, rotation, |tag| {
                reference_asked = Some(*tag);
                fresh
            });
        let fast_checked = unwrap_checked_fast(&keys.fast, packet, rotation, |tag| {
            fast_asked = Some(*tag);
            fresh
        });
        same_result(&reference_checked, &fast_checked, packet);
        assert_eq!((reference_asked, fast_asked), (tag, tag));
        match (tag, fresh) {
            (None, _) | (Some(_), true) => assert_eq!(describe(&fast_checked), describe(&fast)),
            (Some(_), false) => assert!(matches!(fast_checked, Err(UnwrapError::Replayed))),
        }
    }
    // the batch path, three copies (one padded SIMD chunk where the CPU has one): each copy's
    // result is the single packet's (`batches_unwrap_as_single_packets` checks the two steps)
    let batch = [(packet, rotation); 3];
    for result in unwrap_checked_fast_many(&keys.fast, &batch, |_| true) {
        assert_eq!(describe(&result), describe(&fast));
    }
    fast
}

/// Asserts that the reference and the fast path gave the same result for `packet`.
fn same_result(
    reference: &Result<Unwrapped, UnwrapError>,
    fast: &Result<Unwrapped, UnwrapError>,
    packet: &[u8],
) {
    match (reference, fast) {
        (Ok(want), Ok(got)) => assert_eq!(want, got, "packet {}", hex::encode(packet)),
        _ => assert_eq!(
            describe(reference),
            describe(fast),
            "packet {}",
            hex::encode(packet)
        ),
    }
    if let Err(err) = reference {
        assert_eq!(
            err.to_string(),
            fast.as_ref().expect_err("both fail").to_string()
        );
    }
}

fn random_rotation(rng: &mut StdRng) -> KeyRotation {
    [KeyRotation::Unknown, KeyRotation::Odd, KeyRotation::Even][rng.random_range(0..3)]
}

fn random_socket_addr(rng: &mut StdRng) -> SocketAddr {
    if rng.random_bool(0.5) {
        SocketAddr::from((rng.random::<[u8; 4]>(), rng.random::<u16>()))
    } else {
        SocketAddr::from((rng.random::<[u8; 16]>(), rng.random::<u16>()))
    }
}

/// A node address field: mostly a zero-padded routing address, sometimes garbage.
fn random_node_address(rng: &mut StdRng) -> [u8; 32] {
    let mut out = rng.random::<[u8; 32]>();
    if rng.random_bool(0.9) {
        out = [0; 32];
        let encoded = routing_address::to_bytes(&random_socket_addr(rng));
        out[..encoded.len()].copy_from_slice(&encoded);
    }
    out
}

/// The size and version of the `case`th random packet: every size with every known version in
/// turn, and now and then a version nobody sent yet (those take the seeded payload key; so must
/// the fast path).
fn size_and_version(rng: &mut StdRng, case: usize) -> (PacketSize, Version) {
    let size = PacketSize::ALL[case % PacketSize::ALL.len()];
    let version = if case % 8 == 7 {
        Version([0, 2, 256, 261, 0x0100, 0xffff, rng.random()][rng.random_range(0..7)])
    } else {
        KNOWN_VERSIONS[(case / PacketSize::ALL.len()) % KNOWN_VERSIONS.len()]
    };
    (size, version)
}

/// A final-hop plaintext for a packet of `size`: mostly a SURB-ack (a routing address, an
/// ack-size packet) and a message; sometimes too short for the ack, or with a bad address.
fn random_plaintext(rng: &mut StdRng, size: PacketSize) -> Vec<u8> {
    let max = size.plaintext_size();
    if !size.has_surb_ack() || rng.random_bool(0.1) {
        let mut plaintext = vec![0; rng.random_range(0..=max.min(500))];
        rng.fill_bytes(&mut plaintext);
        return plaintext;
    }
    let mut plaintext = vec![0; crate::packet_size::SURB_ACK_LEN];
    rng.fill_bytes(&mut plaintext);
    if rng.random_bool(0.9) {
        plaintext[..routing_address::MAX_LEN].fill(0);
        let encoded = routing_address::to_bytes(&random_socket_addr(rng));
        plaintext[..encoded.len()].copy_from_slice(&encoded);
    }
    let mut message = vec![0; rng.random_range(0..=max - plaintext.len())];
    rng.fill_bytes(&mut message);
    plaintext.extend_from_slice(&message);
    plaintext
}

/// A random route through 1–5 nodes, a Sphinx packet of `size` and `version` for it (built
/// directly or, for the versions SURBs have, sometimes through a SURB), and the nodes' keys in
/// route order.
fn random_packet(rng: &mut StdRng, size: PacketSize, version: Version) -> (Vec<u8>, Vec<Keys>) {
    let first = rng.random();
    let (packet, secrets) = random_packet_for(rng, size, version, first);
    (packet, secrets.into_iter().map(Keys::new).collect())
}

/// [`random_packet`] whose first node has the secret key `first`; returns the nodes' secrets.
fn random_packet_for(
    rng: &mut StdRng,
    size: PacketSize,
    version: Version,
    first: [u8; 32],
) -> (Vec<u8>, Vec<[u8; 32]>) {
    let hops = rng.random_range(1..=5);
    let mut secrets: Vec<[u8; 32]> = (0..hops).map(|_| rng.random()).collect();
    secrets[0] = first;
    let route: Vec<Node> = secrets
        .iter()
        .map(|secret| {
            let public = SphinxSecret::from_bytes(*secret).public_key();
            Node::new(
                NodeAddressBytes::from_bytes(random_node_address(rng)),
                public.into(),
            )
        })
        .collect();
    let delays: Vec<Delay> = (0..hops)
        .map(|_| Delay::new_from_nanos(rng.random()))
        .collect();
    let destination = Destination::new(
        DestinationAddressBytes::from_bytes(rng.random()),
        rng.random(),
    );
    let plaintext = random_plaintext(rng, size);
    let initial_secret = x25519_dalek::StaticSecret::from(rng.random::<[u8; 32]>());

    let surb_version = version.value() == 259 || version.value() == 260;
    let packet = if surb_version && rng.random_bool(0.4) {
        // a reply: the route's creator hands out a SURB, the replier fills it
        let material = SURBMaterial::new(route, delays, destination, version);
        let surb = if version.uses_single_seed_surb() {
            SURB::new_recoverable(initial_secret, material)
                .expect("surb")
                .0
        } else {
            SURB::new(initial_secret, material).expect("surb")
        };
        surb.use_surb(&plaintext, size.payload_size())
            .expect("reply")
            .0
    } else {
        SphinxPacketBuilder::new()
            .with_version(version)
            .with_payload_size(size.payload_size())
            .with_initial_secret(&initial_secret)
            .build_packet(&plaintext, &route, &destination, &delays)
            .expect("build")
    };
    let packet = packet.to_bytes();
    assert_eq!(packet.len(), size.size());
    (packet, secrets)
}

/// Batches of 1 to 17 of one key's packets (good ones, final and forward hops
/// of every size and version; corrupted ones; other keys' ones; garbage; forged ones with a
/// small-order α; copies in the same batch; some replayed) unwrap as the single-packet
/// functions unwrap each packet, and ask about the same replay tags in the same order.
#[test]
fn batches_unwrap_as_single_packets() {
    let mut rng = StdRng::seed_from_u64(0x5f1c_0006);
    let key: [u8; 32] = rng.random();
    let keys = Keys::new(key);
    let mut packets: Vec<(Vec<u8>, KeyRotation)> = Vec::new();
    for case in 0..30 {
        let (size, version) = size_and_version(&mut rng, case);
        let (mut packet, _) = random_packet_for(&mut rng, size, version, key);
        packets.push((packet.clone(), random_rotation(&mut rng)));
        match case % 5 {
            0 => packets.push((packet.clone(), KeyRotation::Unknown)), // a copy
            1 => {
                let at = rng.random_range(0..packet.len());
                packet[at] ^= 1 << rng.random_range(0..8);
                packets.push((packet, KeyRotation::Even));
            }
            2 => {
                let (other, _) = random_packet(&mut rng, size, version);
                packets.push((other, KeyRotation::Odd));
            }
            3 => {
                let mut garbage = vec![0; rng.random_range(0..3000)];
                rng.fill_bytes(&mut garbage);
                packets.push((garbage, KeyRotation::Unknown));
            }
            _ => {
                let alpha = small_order_points()[case % 14];
                let mut routing = [0; keys::ROUTING_INFO_LEN];
                rng.fill_bytes(&mut routing);
                routing[0] = 2;
                routing[2..4].copy_from_slice(&259u16.to_be_bytes());
                let mut payload = vec![0; PacketSize::Ack.payload_size()];
                payload[16] = 1;
                packets.push((
                    forged_packet(alpha, &routing, 259, &payload),
                    KeyRotation::Even,
                ));
            }
        }
    }
    // the replay filter holds the tags of every third good packet
    let seen: std::collections::HashSet<_> = packets
        .iter()
        .step_by(3)
        .filter_map(|(p, r)| FastPartiallyUnwrapped::new(&keys.fast, p, *r).ok())
        .map(|partial| partial.replay_tag())
        .collect();
    assert!(!seen.is_empty());
    let batch: Vec<(&[u8], KeyRotation)> =
        packets.iter().map(|(p, r)| (p.as_slice(), *r)).collect();
    for size in [1, 2, 3, 4, 7, 8, 9, 16, 17] {
        for chunk in batch.chunks(size) {
            let mut asked_many = Vec::new();
            let many = unwrap_checked_fast_many(&keys.fast, chunk, |tag| {
                asked_many.push(*tag);
                !seen.contains(tag)
            });
            let mut asked_single = Vec::new();
            assert_eq!(many.len(), chunk.len());
            for (&(packet, rotation), many) in chunk.iter().zip(&many) {
                let single = unwrap_checked_fast(&keys.fast, packet, rotation, |tag| {
                    asked_single.push(*tag);
                    !seen.contains(tag)
                });
                assert_eq!(
                    describe(many),
                    describe(&single),
                    "packet {}",
                    hex::encode(packet)
                );
            }
            assert_eq!(asked_many, asked_single);
            let partials = FastPartiallyUnwrapped::new_many(&keys.fast, chunk);
            for (&(packet, rotation), partial) in chunk.iter().zip(partials) {
                let single = FastPartiallyUnwrapped::new(&keys.fast, packet, rotation);
                assert_eq!(
                    format!("{:?}", partial.map(|p| p.replay_tag())),
                    format!("{:?}", single.map(|p| p.replay_tag()))
                );
            }
        }
    }
    // the mix has every kind of result
    let results: Vec<_> = unwrap_checked_fast_many(&keys.fast, &batch, |tag| !seen.contains(tag))
        .iter()
        .map(|r| describe(r).split('(').take(2).collect::<Vec<_>>().join("("))
        .collect();
    for want in [
        "Ok(Unwrapped",
        "Err(Replayed",
        "Err(HeaderIntegrity",
        "Err(InvalidSize",
    ] {
        assert!(
            results.iter().any(|r| r.starts_with(want)),
            "{want}: {results:?}"
        );
    }
}

/// Every hop of random routes: each node unwraps with both paths, the results are identical, and
/// the forward hop's packet goes on to the next node.
#[test]
fn random_routes_unwrap_identically_at_every_hop() {
    let mut rng = StdRng::seed_from_u64(0x5f1c_0001);
    let (mut finals, mut forwards, mut errors) = (0, 0, 0);
    let mut seen = std::collections::BTreeSet::new();
    for case in 0..cases() {
        let (size, version) = size_and_version(&mut rng, case);
        let (mut packet, route) = random_packet(&mut rng, size, version);
        for keys in &route {
            match unwrap_both(keys, &packet, random_rotation(&mut rng)) {
                Ok(Unwrapped {
                    hop: Hop::Forward(hop),
                    sphinx_version,
                    ..
                }) => {
                    forwards += 1;
                    seen.insert((sphinx_version, packet.len()));
                    packet = hop.packet;
                }
                Ok(unwrapped) => {
                    finals += 1;
                    seen.insert((unwrapped.sphinx_version, packet.len()));
                    break;
                }
                Err(_) => {
                    errors += 1;
                    break;
                }
            }
        }
    }
    println!("{finals} final hops, {forwards} forward hops, {errors} errors");
    // the mix covers every outcome, and every size with every known version
    assert!(finals > 0 && forwards > 0 && errors > 0);
    for version in KNOWN_VERSIONS {
        for size in PacketSize::ALL {
            assert!(
                seen.contains(&(version.value(), size.size())),
                "{version:?} {size}"
            );
        }
    }
}

/// Packets with one flipped bit in α, the MAC, the routing information or the payload, and with
/// the wrong key: identical results (mostly the same error, with the same message).
#[test]
fn corrupted_packets_fail_identically() {
    let mut rng = StdRng::seed_from_u64(0x5f1c_0002);
    for case in 0..cases() {
        let (size, version) = size_and_version(&mut rng, case);
        let (mut packet, route) = random_packet(&mut rng, size, version);
        let region = match case % 4 {
            0 => 0..32,
            1 => 32..48,
            2 => 48..SPHINX_HEADER_LEN,
            _ => SPHINX_HEADER_LEN..packet.len(),
        };
        let at = rng.random_range(region);
        packet[at] ^= 1 << rng.random_range(0..8);
        unwrap_both(&route[0], &packet, KeyRotation::Unknown).ok();
        let stranger = Keys::new(rng.random());
        assert!(matches!(
            unwrap_both(&stranger, &packet, KeyRotation::Unknown),
            Err(UnwrapError::HeaderIntegrity(_))
        ));
    }
}

#[test]
fn garbage_and_wrong_lengths_fail_identically() {
    let mut rng = StdRng::seed_from_u64(0x5f1c_0003);
    let keys = Keys::new(rng.random());
    for len in [0, 1, 31, 48, 347, 348, 364, 385, 387, 2412, 2414, 40_000] {
        let mut bytes = vec![0; len];
        rng.fill_bytes(&mut bytes);
        assert!(matches!(
            unwrap_both(&keys, &bytes, KeyRotation::Unknown),
            Err(UnwrapError::InvalidSize(_))
        ));
    }
    for size in PacketSize::ALL {
        for _ in 0..4 {
            let mut bytes = vec![0; size.size()];
            rng.fill_bytes(&mut bytes);
            unwrap_both(&keys, &bytes, KeyRotation::Unknown).ok();
        }
    }
}

/// The u-coordinates of the points of small order, as sent and in non-canonical forms (the top
/// bit set, or ≥ p): X25519 of any key and these is all zeros.
const SMALL_ORDER_POINTS: [&str; 7] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

fn small_order_points() -> Vec<[u8; 32]> {
    let mut points = Vec::new();
    for hex_point in SMALL_ORDER_POINTS {
        let point: [u8; 32] = hex::decode(hex_point).expect("hex").try_into().expect("32");
        let mut high = point;
        high[31] |= 0x80;
        points.extend([point, high]);
    }
    points
}

#[test]
fn x25519_matches_dalek_on_random_and_edge_points() {
    let mut rng = StdRng::seed_from_u64(0x5f1c_0004);
    let mut points = small_order_points();
    // non-canonical encodings of ordinary points: the top bit set, and p + small
    for low in [2u8, 3, 9, 0xef, 0xff] {
        let mut point = [0xff; 32];
        point[0] = low;
        point[31] = 0x7f;
        points.push(point);
        point[31] = 0xff;
        points.push(point);
    }
    points.extend((0..32).map(|_| rng.random::<[u8; 32]>()));
    for _ in 0..16 {
        let bytes: [u8; 32] = rng.random();
        let fast = FastSphinxSecret::from_bytes(bytes).expect("key");
        let dalek = x25519_dalek::StaticSecret::from(bytes);
        assert_eq!(
            fast.public_key(),
            x25519_dalek::PublicKey::from(&dalek).to_bytes()
        );
        for point in &points {
            assert_eq!(
                *fast.diffie_hellman(point),
                dalek.diffie_hellman(&(*point).into()).to_bytes(),
                "point {}",
                hex::encode(point)
            );
        }
    }
}

/// A packet whose α has small order: the shared secret is all zeros whatever our key, so anyone
/// can build one that passes the MAC check. Both paths must take it the same way. Built here
/// with the fast path's own key layout; `sphinx-packet` accepting it checks that layout too.
fn forged_packet(
    alpha: [u8; 32],
    routing_plaintext: &[u8; keys::ROUTING_INFO_LEN],
    version: u16,
    payload_plaintext: &[u8],
) -> Vec<u8> {
    let keys = HopKeys::expand(&[0; 32]);
    // the keystream is the decryption of zeros
    let keystream = keys.decrypt_routing_info(&[0; keys::ROUTING_INFO_LEN]);
    let routing: Vec<u8> = routing_plaintext
        .iter()
        .zip(keystream)
        .map(|(p, k)| p ^ k)
        .collect();
    let payload = Payload::from_bytes(payload_plaintext)
        .expect("payload")
        .add_encryption_layer(*keys.payload_key(version))
        .expect("encrypt")
        .into_bytes();
    let mac = keys.header_mac(&routing);
    [alpha.as_slice(), &mac, &routing, &payload].concat()
}

#[test]
fn forged_packets_with_small_order_alpha_unwrap_identically() {
    let mut rng = StdRng::seed_from_u64(0x5f1c_0005);
    let keys = Keys::new(rng.random());
    let mut outcomes = std::collections::BTreeSet::new();
    for (i, alpha) in small_order_points().into_iter().enumerate() {
        for (flag, version) in [
            (2u8, 259u16),
            (2, 1),
            (2, 258),
            (1, 260),
            (1, 257),
            (0, 259),
            (3, 1),
            (0xff, 7),
        ] {
            let mut routing = [0; keys::ROUTING_INFO_LEN];
            rng.fill_bytes(&mut routing);
            routing[0] = flag;
            routing[1] = rng.random();
            routing[2..4].copy_from_slice(&version.to_be_bytes());
            if i % 2 == 0 {
                routing[4..36].copy_from_slice(&random_node_address(&mut rng));
            }
            for size in [PacketSize::Ack, PacketSize::Regular] {
                let mut payload = vec![0; size.payload_size()];
                match rng.random_range(0..4) {
                    // well formed
                    0 | 1 => {
                        let plaintext = random_plaintext(&mut rng, size);
                        payload[16..16 + plaintext.len()].copy_from_slice(&plaintext);
                        payload[16 + plaintext.len()] = 1;
                    }
                    // no end-of-plaintext marker
                    2 => {}
                    // leading bytes not zero
                    _ => rng.fill_bytes(&mut payload),
                }
                let packet = forged_packet(alpha, &routing, version, &payload);
                let result = unwrap_both(&keys, &packet, random_rotation(&mut rng));
                outcomes.insert(match result {
                    Ok(Unwrapped {
                        hop: Hop::Final(_), ..
                    }) => "final".to_string(),
                    Ok(_) => "forward".to_string(),
                    Err(err) => format!("{err:?}")
                        .split('(')
                        .next()
                        .unwrap_or("")
                        .to_string(),
                });
            }
        }
    }
    // the forged packets reach every branch after the MAC check
    for want in ["final", "forward", "Processing", "PayloadRecovery"] {
        assert!(outcomes.contains(want), "{outcomes:?}");
    }
}

#[test]
fn format_constants_match_sphinx_packet() {
    use sphinx_packet::constants;
    assert_eq!(
        keys::EXPANSION_INFO,
        constants::EXPANDED_SHARED_SECRET_HKDF_INFO
    );
    assert!(constants::EXPANDED_SHARED_SECRET_HKDF_SALT.is_empty());
    assert_eq!(keys::PAYLOAD_KEY_SALT, constants::PAYLOAD_KEY_HKDF_SALT);
    assert_eq!(keys::PAYLOAD_KEY_INFO, constants::PAYLOAD_KEY_HKDF_INFO);
    assert_eq!(keys::PAYLOAD_KEY_LEN, constants::PAYLOAD_KEY_SIZE);
    assert_eq!(keys::MAC_LEN, constants::HEADER_INTEGRITY_MAC_SIZE);
    assert_eq!(
        keys::ROUTING_INFO_LEN,
        sphinx_packet::header::routing::ENCRYPTED_ROUTING_INFO_SIZE
    );
    assert_eq!(SPHINX_HEADER_LEN, sphinx_packet::header::HEADER_SIZE);
}

#[test]
fn secret_public_key_and_debug() {
    for bytes in [[0; 32], [0xff; 32], [0x42; 32]] {
        let keys = Keys::new(bytes);
        assert_eq!(keys.fast.public_key(), keys.reference.public_key());
        assert_eq!(format!("{:?}", keys.fast), "FastSphinxSecret(..)");
    }
}

fn vectors() -> Value {
    crate::test_vectors::load("final_hop.json")
}

fn keys_field(v: &Value, key: &str) -> Keys {
    Keys::new(hex_field(v, key).try_into().expect("32 bytes"))
}

/// Every packet of the vectors, at every node it reaches, both ways.
#[test]
fn vectors_unwrap_identically() {
    let v = vectors();
    let gateway = keys_field(&v, "gateway_sphinx_private_key_hex");
    let mix = keys_field(&v, "mix_node_sphinx_private_key_hex");
    assert_eq!(
        gateway.fast.public_key().to_vec(),
        hex_field(&v, "gateway_sphinx_public_key_hex")
    );

    let sphinx = hex_field(&v, "sphinx_packet_hex");
    for rotation in [KeyRotation::Unknown, KeyRotation::Odd, KeyRotation::Even] {
        let unwrapped = unwrap_both(&gateway, &sphinx, rotation).expect("unwraps");
        assert_eq!(
            unwrapped.replay_tag.to_vec(),
            hex_field(&v, "replay_tag_hex")
        );
        let Hop::Final(hop) = unwrapped.hop else {
            panic!("expected a final hop")
        };
        assert_eq!(hop.message, hex_field(&v, "expected_message_hex"));
    }

    let frames = ["framed_v7_hex", "framed_v8_even_hex"];
    let results = v["expected_results_for_v7_and_v8"]
        .as_array()
        .expect("results");
    for (name, want) in frames.into_iter().zip(results) {
        let (frame, _) = framing::decode(&hex_field(&v, name))
            .expect("valid")
            .expect("complete");
        let fast = unwrap_frame_fast(&gateway.fast, &frame).expect("unwraps");
        assert_eq!(
            fast,
            final_hop::unwrap_frame(&gateway.reference, &frame).expect("unwraps")
        );
        let checked = unwrap_frame_checked_fast(&gateway.fast, &frame, |tag| {
            tag.as_slice() == hex_field(&v, "replay_tag_hex")
        });
        assert_eq!(checked.expect("fresh"), fast);
        assert!(matches!(
            unwrap_frame_checked_fast(&gateway.fast, &frame, |_| false),
            Err(UnwrapError::Replayed)
        ));
        assert_eq!(
            format!("sphinx-{}", fast.sphinx_version),
            want["processed_sphinx_version"]
        );
        let Hop::Final(hop) = fast.hop else {
            panic!("expected a final hop")
        };
        let ack = hop.ack.expect("ack");
        assert_eq!(ack.packet, hex_field(want, "ack_packet_hex"));

        // the SURB-ack at its mix node, then back at the gateway
        let Hop::Forward(at_mix) = unwrap_both(&mix, &ack.packet, ack.key_rotation)
            .expect("unwraps")
            .hop
        else {
            panic!("expected a forward hop")
        };
        let back = unwrap_both(&gateway, &at_mix.packet, KeyRotation::Unknown).expect("unwraps");
        assert!(matches!(back.hop, Hop::Final(FinalHop { ack: None, .. })));
    }

    let (frame, _) = framing::decode(&hex_field(
        &v,
        "forward_hop_packet_framed_v7_hex_gateway_must_reject",
    ))
    .expect("valid")
    .expect("complete");
    let Hop::Forward(hop) = unwrap_both(&gateway, &frame.packet, frame.header.key_rotation)
        .expect("unwraps")
        .hop
    else {
        panic!("expected a forward hop")
    };
    assert!(matches!(
        unwrap_both(&mix, &hop.packet, KeyRotation::Unknown),
        Err(UnwrapError::MissingSurbAck { plaintext_len: 7 })
    ));
}
