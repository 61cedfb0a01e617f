//! Benchmarks of the gateway's per-packet protocol work.
//!
//! - `framing`: decoding and encoding a v8 frame of a regular packet;
//! - `final_hop_regular` / `final_hop_ack`: a final hop of a 2413-byte regular packet and of a
//!   386-byte ack packet, three ways: `sphinx_packet` (the calls Nym's gateway makes:
//!   `compute_expanded_shared_secret` → `process_with_expanded_secret` → `recover_plaintext`),
//!   `reference` (our [`final_hop::unwrap`], which wraps those calls) and `fast`
//!   ([`fast_final_hop::unwrap_fast`]);
//! - `forward_hop`: a mix node's hop of a regular packet, reference and fast;
//! - `unwrap_steps_final` / `unwrap_steps_forward`: the two steps of an unwrap timed apart, on a
//!   regular packet, both paths: `step1` (header: X25519, key expansion, MAC check, replay tag),
//!   `step2` (routing information, payload, SURB-ack split) and `full` (both);
//! - `final_hop_regular_batch8`: eight different final-hop regular packets unwrapped three ways:
//!   `reference` and `fast` one by one, `fast_batch` with [`fast_final_hop::unwrap_checked_fast_many`]
//!   (the X25519 of the eight α at once: AVX-512 IFMA where the CPU has it, else scalar);
//! - `x25519`: one key agreement with x25519-dalek and with aws-lc (key parsed once);
//! - `binary_frame`: AES-256-GCM-SIV sealing of a pushed message and opening of a request.
//!
//! After criterion, `cargo bench` prints the fast path's speed-up over the reference path
//! (final hops, a forward hop, X25519 alone), measured side by side on the same packets, the
//! batched fast path's per packet (batches of 8) against the reference and the single fast path,
//! then
//! the two unwrap steps of both paths timed apart in interleaved rounds, with the share of the
//! whole that step 2 is: what checking the replay filter between the steps saves on a replayed
//! packet. `cargo bench -p gateway-protocol -- --quick` is a short smoke run.

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use gateway_protocol::client::binary::{self, RequestKind};
use gateway_protocol::client::SharedKey;
use gateway_protocol::fast_final_hop::{self, FastPartiallyUnwrapped, FastSphinxSecret};
use gateway_protocol::final_hop::{self, Hop, PartiallyUnwrapped, SphinxSecret};
use gateway_protocol::framing::{self, FrameVersion, KeyRotation};
use gateway_protocol::packet_size::{PacketSize, SURB_ACK_LEN};
use gateway_protocol::test_support::sphinx::{
    final_hop_plaintext, HonestPacket, RouteNode, ACK_PACKET_LEN,
};
use sphinx_packet::version::PAYLOAD_KEYS_SEEDS_VERSION;
use sphinx_packet::{ProcessedPacketData, SphinxPacket};
use std::hint::black_box;
use std::time::{Duration, Instant};

const GATEWAY_KEY: [u8; 32] = [0x42; 32];
const MIX_KEY: [u8; 32] = [0x55; 32];

/// The node at `address` with the public key of `key`, asked to wait 1 ms.
fn node(address: &str, key: [u8; 32]) -> RouteNode {
    let address = address.parse().expect("address");
    RouteNode::at(address, SphinxSecret::from_bytes(key).public_key())
        .with_delay(Duration::from_millis(1))
}

/// A packet of `size` for `route`, carrying a full plaintext (a SURB-ack and a message where the
/// size has one), built as the Nym client builds them today (version 259).
fn packet(size: PacketSize, route: &[RouteNode]) -> Vec<u8> {
    let mut packet = HonestPacket::new(size, route.to_vec(), [9; 32]);
    packet.version = PAYLOAD_KEYS_SEEDS_VERSION;
    packet.build(&plaintext(size))
}

/// A full plaintext for a packet of `size`: a SURB-ack and a message where the size has one.
fn plaintext(size: PacketSize) -> Vec<u8> {
    if size.has_surb_ack() {
        let message = vec![0x5a; size.plaintext_size() - SURB_ACK_LEN];
        let ack_first_hop = "192.0.2.10:1789".parse().expect("address");
        final_hop_plaintext(ack_first_hop, &[0x5a; ACK_PACKET_LEN], &message)
    } else {
        vec![0xaa; size.plaintext_size()]
    }
}

/// The final hop as Nym's gateway does it, straight through `sphinx-packet`.
fn sphinx_packet_final_hop(key: &x25519_dalek::StaticSecret, bytes: &[u8]) -> Vec<u8> {
    let packet = SphinxPacket::from_bytes(bytes).expect("parse");
    let expanded = packet.header.compute_expanded_shared_secret(key);
    black_box(expanded.replay_tag());
    match packet
        .process_with_expanded_secret(&expanded)
        .expect("process")
        .data
    {
        ProcessedPacketData::FinalHop { payload, .. } => payload.recover_plaintext().expect("ok"),
        ProcessedPacketData::ForwardHop { .. } => panic!("expected a final hop"),
    }
}

fn bench_framing(c: &mut Criterion) {
    let packet = packet(
        PacketSize::Regular,
        &[node("198.51.100.7:1789", GATEWAY_KEY)],
    );
    let mut frame = Vec::new();
    framing::encode(FrameVersion::V8, KeyRotation::Even, &packet, &mut frame).expect("encode");
    let mut group = c.benchmark_group("framing");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("decode_v8_regular", |b| {
        b.iter(|| framing::decode(black_box(&frame)).expect("valid"))
    });
    let mut out = Vec::with_capacity(frame.len());
    group.bench_function("encode_v8_regular", |b| {
        b.iter(|| {
            out.clear();
            framing::encode(
                FrameVersion::V8,
                KeyRotation::Even,
                black_box(&packet),
                &mut out,
            )
        })
    });
    group.finish();
}

fn bench_final_hop(c: &mut Criterion, name: &str, size: PacketSize) {
    let packet = packet(size, &[node("198.51.100.7:1789", GATEWAY_KEY)]);
    let dalek = x25519_dalek::StaticSecret::from(GATEWAY_KEY);
    let reference = SphinxSecret::from_bytes(GATEWAY_KEY);
    let fast = FastSphinxSecret::from_bytes(GATEWAY_KEY).expect("key");
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.bench_function("sphinx_packet", |b| {
        b.iter(|| sphinx_packet_final_hop(&dalek, black_box(&packet)))
    });
    bench_ours(&mut group, &reference, &fast, &packet);
    group.finish();
}

/// Our two unwrap paths, `final_hop::unwrap` (reference) and `unwrap_fast`, on one packet.
fn bench_ours(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    reference: &SphinxSecret,
    fast: &FastSphinxSecret,
    packet: &[u8],
) {
    group.bench_function("reference", |b| {
        b.iter(|| final_hop::unwrap(reference, black_box(packet), KeyRotation::Even).expect("ok"))
    });
    group.bench_function("fast", |b| {
        b.iter(|| {
            fast_final_hop::unwrap_fast(fast, black_box(packet), KeyRotation::Even).expect("ok")
        })
    });
}

fn bench_final_hops(c: &mut Criterion) {
    bench_final_hop(c, "final_hop_regular", PacketSize::Regular);
    bench_final_hop(c, "final_hop_ack", PacketSize::Ack);
    bench_final_hop_batch(c);
}

/// Packets per batch of the batched path: one AVX-512 IFMA chunk.
const BATCH: usize = 8;

/// `BATCH` different final-hop packets of `size` (each from its own initial secret).
fn packets(size: PacketSize) -> Vec<Vec<u8>> {
    let route = [node("198.51.100.7:1789", GATEWAY_KEY)];
    (0..BATCH as u8)
        .map(|i| {
            let mut packet = HonestPacket::new(size, route.to_vec(), [9; 32]);
            packet.version = PAYLOAD_KEYS_SEEDS_VERSION;
            packet.initial_secret = Some([i + 1; 32]);
            packet.build(&plaintext(size))
        })
        .collect()
}

/// The three ways of unwrapping a batch of final hops: the reference and the fast path one
/// packet at a time, and the batched fast path.
struct BatchWays<'a> {
    reference: SphinxSecret,
    fast: FastSphinxSecret,
    batch: Vec<(&'a [u8], KeyRotation)>,
}

impl<'a> BatchWays<'a> {
    fn new(packets: &'a [Vec<u8>]) -> Self {
        Self {
            reference: SphinxSecret::from_bytes(GATEWAY_KEY),
            fast: FastSphinxSecret::from_bytes(GATEWAY_KEY).expect("key"),
            batch: packets
                .iter()
                .map(|p| (p.as_slice(), KeyRotation::Even))
                .collect(),
        }
    }

    fn reference(&self) {
        for &(packet, rotation) in &self.batch {
            let out =
                final_hop::unwrap_checked(&self.reference, black_box(packet), rotation, |_| true);
            assert!(matches!(out.expect("ok").hop, Hop::Final(_)));
        }
    }

    fn fast(&self) {
        for &(packet, rotation) in &self.batch {
            let out = fast_final_hop::unwrap_checked_fast(
                &self.fast,
                black_box(packet),
                rotation,
                |_| true,
            );
            assert!(matches!(out.expect("ok").hop, Hop::Final(_)));
        }
    }

    fn fast_batch(&self) {
        let out =
            fast_final_hop::unwrap_checked_fast_many(&self.fast, black_box(&self.batch), |_| true);
        for out in out {
            assert!(matches!(out.expect("ok").hop, Hop::Final(_)));
        }
    }
}

fn bench_final_hop_batch(c: &mut Criterion) {
    let packets = packets(PacketSize::Regular);
    let ways = BatchWays::new(&packets);
    let mut group = c.benchmark_group("final_hop_regular_batch8");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("reference", |b| b.iter(|| ways.reference()));
    group.bench_function("fast", |b| b.iter(|| ways.fast()));
    group.bench_function("fast_batch", |b| b.iter(|| ways.fast_batch()));
    group.finish();
}

/// The batched fast path against the reference and the single fast path, in interleaved rounds
/// of 25 batches of `BATCH` different regular final hops; µs per packet.
fn print_batch_ratios() {
    const ROUNDS: usize = 200;
    const CALLS: u32 = 25;
    let packets = packets(PacketSize::Regular);
    let ways = BatchWays::new(&packets);
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        times[0].push(time_per_call(&mut || ways.reference(), CALLS) / BATCH as u32);
        times[1].push(time_per_call(&mut || ways.fast(), CALLS) / BATCH as u32);
        times[2].push(time_per_call(&mut || ways.fast_batch(), CALLS) / BATCH as u32);
    }
    for t in &mut times {
        t.sort();
    }
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "\nbatched final hop (x25519-batch backend {:?}), {ROUNDS} interleaved rounds of {CALLS} \
         batches of {BATCH} regular packets (µs per packet):",
        x25519_batch::backend()
    );
    for (which, i) in [("median", ROUNDS / 2), ("best", 0)] {
        let [reference, fast, batch] =
            [&times[0][i], &times[1][i], &times[2][i]].map(|d| micros(*d));
        println!(
            "  {which:<6} reference {reference:>6.2}, fast {fast:>6.2}, fast_batch {batch:>6.2}; \
             fast_batch vs reference {:.2}x, vs fast {:.2}x",
            reference / batch,
            fast / batch
        );
    }
}

fn bench_forward_hop(c: &mut Criterion) {
    let route = [
        node("203.0.113.5:1789", MIX_KEY),
        node("198.51.100.7:1789", GATEWAY_KEY),
    ];
    let packet = packet(PacketSize::Regular, &route);
    let reference = SphinxSecret::from_bytes(MIX_KEY);
    let fast = FastSphinxSecret::from_bytes(MIX_KEY).expect("key");
    let mut group = c.benchmark_group("forward_hop");
    group.throughput(Throughput::Elements(1));
    bench_ours(&mut group, &reference, &fast, &packet);
    group.finish();
}

/// Step 1, step 2 and both, of both paths, on `packet` unwrapped with `key`.
fn bench_unwrap_steps(c: &mut Criterion, name: &str, key: [u8; 32], packet: &[u8]) {
    let reference = SphinxSecret::from_bytes(key);
    let fast = FastSphinxSecret::from_bytes(key).expect("key");
    let rotation = KeyRotation::Even;
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.bench_function("reference_step1", |b| {
        b.iter(|| {
            PartiallyUnwrapped::new(&reference, black_box(packet), rotation)
                .expect("mac")
                .replay_tag()
        })
    });
    group.bench_function("reference_step2", |b| {
        b.iter_batched(
            || PartiallyUnwrapped::new(&reference, packet, rotation).expect("mac"),
            |partial| partial.finish().expect("ok"),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("reference_full", |b| {
        b.iter(|| final_hop::unwrap(&reference, black_box(packet), rotation).expect("ok"))
    });
    group.bench_function("fast_step1", |b| {
        b.iter(|| {
            FastPartiallyUnwrapped::new(&fast, black_box(packet), rotation)
                .expect("mac")
                .replay_tag()
        })
    });
    group.bench_function("fast_step2", |b| {
        b.iter_batched(
            || FastPartiallyUnwrapped::new(&fast, packet, rotation).expect("mac"),
            |partial| partial.finish().expect("ok"),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("fast_full", |b| {
        b.iter(|| fast_final_hop::unwrap_fast(&fast, black_box(packet), rotation).expect("ok"))
    });
    group.finish();
}

fn bench_unwrap_steps_all(c: &mut Criterion) {
    let final_packet = packet(
        PacketSize::Regular,
        &[node("198.51.100.7:1789", GATEWAY_KEY)],
    );
    bench_unwrap_steps(c, "unwrap_steps_final", GATEWAY_KEY, &final_packet);
    let forward_packet = packet(
        PacketSize::Regular,
        &[
            node("203.0.113.5:1789", MIX_KEY),
            node("198.51.100.7:1789", GATEWAY_KEY),
        ],
    );
    bench_unwrap_steps(c, "unwrap_steps_forward", MIX_KEY, &forward_packet);
}

fn bench_x25519(c: &mut Criterion) {
    use aws_lc_rs::agreement::{agree, PrivateKey, UnparsedPublicKey, X25519};
    let point = SphinxSecret::from_bytes([7; 32]).public_key();
    let dalek = x25519_dalek::StaticSecret::from(GATEWAY_KEY);
    let aws_lc = PrivateKey::from_private_key(&X25519, &GATEWAY_KEY).expect("key");
    let mut group = c.benchmark_group("x25519");
    group.bench_function("x25519_dalek", |b| {
        b.iter(|| dalek.diffie_hellman(&black_box(point).into()).to_bytes())
    });
    group.bench_function("aws_lc", |b| {
        b.iter(|| {
            agree(
                &aws_lc,
                UnparsedPublicKey::new(&X25519, black_box(&point)),
                (),
                |s| Ok(s[0]),
            )
        })
    });
    group.finish();
}

fn bench_binary_frame(c: &mut Criterion) {
    let key = SharedKey::from_bytes([3; 32]);
    let nonce = [4; 12];
    let message = vec![0x61; PacketSize::Regular.plaintext_size() - 405];
    let request =
        binary::encrypt_request(RequestKind::ForwardSphinxV2, &[0x62; 2440], &key, &nonce)
            .expect("seal");
    let mut group = c.benchmark_group("binary_frame");
    group.throughput(Throughput::Bytes(message.len() as u64));
    group.bench_function("encrypt_pushed_message", |b| {
        b.iter(|| binary::encrypt_pushed_message(black_box(&message), &key, &nonce).expect("seal"))
    });
    group.throughput(Throughput::Bytes(request.len() as u64));
    group.bench_function("decrypt_request", |b| {
        b.iter_batched(
            || request.clone(),
            |request| binary::decrypt_request(black_box(&request), &key).expect("open"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Mean time per call of `f` over `calls` calls.
fn time_per_call(f: &mut impl FnMut(), calls: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    start.elapsed() / calls
}

/// Times `reference` and `fast` in interleaved rounds, so both see the same machine, and prints
/// one line. The median round is what a busy machine gives; the best round is close to what an
/// idle core gives (a shared machine's other work lands in some rounds and not in others).
fn compare(name: &str, mut reference: impl FnMut(), mut fast: impl FnMut()) {
    const ROUNDS: usize = 400;
    const CALLS: u32 = 25;
    let (mut reference_times, mut fast_times) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        reference_times.push(time_per_call(&mut reference, CALLS));
        fast_times.push(time_per_call(&mut fast, CALLS));
    }
    reference_times.sort();
    fast_times.sort();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let line = |which: &str, reference: Duration, fast: Duration| {
        format!(
            "{which} reference {:>6.2}, fast {:>6.2}, ratio {:.2}x",
            micros(reference),
            micros(fast),
            micros(reference) / micros(fast)
        )
    };
    println!(
        "  {name:<22} {}; {}",
        line(
            "median",
            reference_times[ROUNDS / 2],
            fast_times[ROUNDS / 2]
        ),
        line("best", reference_times[0], fast_times[0]),
    );
}

/// Times step 1 (`step1`), step 2 (`finish` of what `start` returns; the `start` calls are not
/// timed) and the whole unwrap (`full`) in interleaved rounds, and prints one line: median and
/// best round of each, and the share of the whole that step 2 is (what checking the replay
/// filter between the steps would save on a replayed packet).
fn compare_steps<P>(
    name: &str,
    mut step1: impl FnMut(),
    mut start: impl FnMut() -> P,
    mut finish: impl FnMut(P),
    mut full: impl FnMut(),
) {
    const ROUNDS: usize = 400;
    const CALLS: u32 = 25;
    let (mut step1_times, mut step2_times, mut full_times) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        step1_times.push(time_per_call(&mut step1, CALLS));
        let mut started: Vec<P> = (0..CALLS).map(|_| start()).collect();
        let begin = Instant::now();
        for partial in started.drain(..) {
            finish(partial);
        }
        step2_times.push(begin.elapsed() / CALLS);
        full_times.push(time_per_call(&mut full, CALLS));
    }
    for times in [&mut step1_times, &mut step2_times, &mut full_times] {
        times.sort();
    }
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let line = |which: &str, i: usize| {
        format!(
            "{which} step1 {:>6.2}, step2 {:>6.2}, full {:>6.2}, step2/full {:>4.1}%",
            micros(step1_times[i]),
            micros(step2_times[i]),
            micros(full_times[i]),
            100.0 * micros(step2_times[i]) / micros(full_times[i])
        )
    };
    println!(
        "  {name:<28} {}; {}",
        line("median", ROUNDS / 2),
        line("best", 0)
    );
}

/// The two unwrap steps of both paths, timed apart, on a final and a forward hop.
fn print_steps() {
    println!("\nunwrap steps, 400 interleaved rounds of 25 calls (µs per call):");
    let final_packet = packet(
        PacketSize::Regular,
        &[node("198.51.100.7:1789", GATEWAY_KEY)],
    );
    let forward_packet = packet(
        PacketSize::Regular,
        &[
            node("203.0.113.5:1789", MIX_KEY),
            node("198.51.100.7:1789", GATEWAY_KEY),
        ],
    );
    let rotation = KeyRotation::Even;
    for (hop, key, packet) in [
        ("final", GATEWAY_KEY, &final_packet),
        ("forward", MIX_KEY, &forward_packet),
    ] {
        let reference = SphinxSecret::from_bytes(key);
        compare_steps(
            &format!("reference, {hop} hop, 2413 B"),
            || {
                let partial = PartiallyUnwrapped::new(&reference, black_box(packet), rotation);
                black_box(partial.expect("mac").replay_tag());
            },
            || PartiallyUnwrapped::new(&reference, packet, rotation).expect("mac"),
            |partial| {
                black_box(partial.finish().expect("ok"));
            },
            || {
                black_box(final_hop::unwrap(&reference, black_box(packet), rotation).expect("ok"));
            },
        );
        let fast = FastSphinxSecret::from_bytes(key).expect("key");
        compare_steps(
            &format!("fast, {hop} hop, 2413 B"),
            || {
                let partial = FastPartiallyUnwrapped::new(&fast, black_box(packet), rotation);
                black_box(partial.expect("mac").replay_tag());
            },
            || FastPartiallyUnwrapped::new(&fast, packet, rotation).expect("mac"),
            |partial| {
                black_box(partial.finish().expect("ok"));
            },
            || {
                let out = fast_final_hop::unwrap_fast(&fast, black_box(packet), rotation);
                black_box(out.expect("ok"));
            },
        );
    }
}

/// The fast path against the reference on the same packets, after criterion's runs.
fn print_ratios() {
    println!("\nfast vs reference, 400 interleaved rounds of 25 calls (µs per call):");
    let reference = SphinxSecret::from_bytes(GATEWAY_KEY);
    let fast = FastSphinxSecret::from_bytes(GATEWAY_KEY).expect("key");
    let is_final = |out: &Result<final_hop::Unwrapped, _>| {
        matches!(
            out,
            Ok(final_hop::Unwrapped {
                hop: Hop::Final(_),
                ..
            })
        )
    };
    for size in [PacketSize::Regular, PacketSize::Ack] {
        let packet = packet(size, &[node("198.51.100.7:1789", GATEWAY_KEY)]);
        compare(
            &format!("final hop, {} B", size.size()),
            || {
                assert!(is_final(&final_hop::unwrap(
                    &reference,
                    black_box(&packet),
                    KeyRotation::Even
                )))
            },
            || {
                let out = fast_final_hop::unwrap_fast(&fast, black_box(&packet), KeyRotation::Even);
                assert!(is_final(&out));
            },
        );
    }

    let mix_reference = SphinxSecret::from_bytes(MIX_KEY);
    let mix_fast = FastSphinxSecret::from_bytes(MIX_KEY).expect("key");
    let route = [
        node("203.0.113.5:1789", MIX_KEY),
        node("198.51.100.7:1789", GATEWAY_KEY),
    ];
    let packet = packet(PacketSize::Regular, &route);
    compare(
        "forward hop, 2413 B",
        || {
            assert!(
                final_hop::unwrap(&mix_reference, black_box(&packet), KeyRotation::Even).is_ok()
            )
        },
        || {
            let out = fast_final_hop::unwrap_fast(&mix_fast, black_box(&packet), KeyRotation::Even);
            assert!(out.is_ok());
        },
    );

    use aws_lc_rs::agreement::{agree, PrivateKey, UnparsedPublicKey, X25519};
    let point = SphinxSecret::from_bytes([7; 32]).public_key();
    let dalek = x25519_dalek::StaticSecret::from(GATEWAY_KEY);
    let aws_lc = PrivateKey::from_private_key(&X25519, &GATEWAY_KEY).expect("key");
    compare(
        "x25519 (dalek, aws-lc)",
        || {
            black_box(dalek.diffie_hellman(&black_box(point).into()));
        },
        || {
            let peer = UnparsedPublicKey::new(&X25519, black_box(&point));
            black_box(agree(&aws_lc, peer, (), |s| Ok(s[0])).expect("agree"));
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_framing, bench_final_hops, bench_forward_hop, bench_unwrap_steps_all, bench_x25519,
        bench_binary_frame
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` runs each benchmark once without it
    if std::env::args().any(|arg| arg == "--bench") {
        print_ratios();
        print_batch_ratios();
        print_steps();
    }
}
