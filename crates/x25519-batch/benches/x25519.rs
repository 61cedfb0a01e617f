//! X25519 per key agreement, one secret and a batch of eight points, four ways: x25519-dalek,
//! `scalar` (aws-lc, one point at a time), `avx2` (two chunks of four) and `avx512_ifma` (one
//! chunk of eight). Criterion's throughput is points per second; after criterion, `cargo bench`
//! prints the four timed in interleaved rounds (µs per point), so the ratios compare the same
//! machine moments. `cargo bench -p x25519-batch -- --quick` is a short smoke run.

use criterion::{criterion_group, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};
use x25519_batch::{Backend, BatchSecret};

const BATCH: usize = 8;

fn points() -> Vec<[u8; 32]> {
    (0..BATCH as u8)
        .map(|i| x25519_dalek::x25519([i + 1; 32], x25519_dalek::X25519_BASEPOINT_BYTES))
        .collect()
}

/// A named way of computing a batch.
type Contender<'a> = (&'static str, Box<dyn Fn(&[[u8; 32]], &mut [[u8; 32]]) + 'a>);

/// What is timed: every available backend and x25519-dalek, each computing a batch.
fn contenders(key: &BatchSecret) -> Vec<Contender<'_>> {
    let mut all: Vec<Contender<'_>> = vec![(
        "x25519_dalek",
        Box::new(|points: &[[u8; 32]], out: &mut [[u8; 32]]| {
            for (point, out) in points.iter().zip(out) {
                *out = key.agree_dalek(point);
            }
        }),
    )];
    for (name, backend) in [
        ("scalar_aws_lc", Backend::Scalar),
        ("avx2_x4", Backend::Avx2),
        ("avx512_ifma_x8", Backend::Avx512Ifma),
    ] {
        if backend.is_available() {
            all.push((
                name,
                Box::new(move |points: &[[u8; 32]], out: &mut [[u8; 32]]| {
                    key.agree_many_with(backend, points, out)
                        .expect("available");
                }),
            ));
        } else {
            println!("{name}: not available on this CPU");
        }
    }
    all
}

fn bench_batch(c: &mut Criterion) {
    let key = BatchSecret::from_bytes([0x42; 32]);
    let points = points();
    let mut out = vec![[0; 32]; BATCH];
    let mut group = c.benchmark_group("x25519_batch_of_8");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, agree) in contenders(&key) {
        group.bench_function(name, |b| b.iter(|| agree(black_box(&points), &mut out)));
    }
    group.finish();
}

/// Every contender in interleaved rounds of 25 batches; prints the median and the best round in
/// µs per point, and each one's speed-up over aws-lc.
fn print_interleaved() {
    const ROUNDS: usize = 200;
    const CALLS: u32 = 25;
    let key = BatchSecret::from_bytes([0x42; 32]);
    let points = points();
    let mut out = vec![[0; 32]; BATCH];
    let contenders = contenders(&key);
    let mut times = vec![Vec::new(); contenders.len()];
    for _ in 0..ROUNDS {
        for ((_, agree), times) in contenders.iter().zip(&mut times) {
            let start = Instant::now();
            for _ in 0..CALLS {
                agree(black_box(&points), &mut out);
            }
            times.push(start.elapsed() / (CALLS * BATCH as u32));
        }
    }
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    for times in &mut times {
        times.sort();
    }
    let aws_lc = contenders
        .iter()
        .position(|(name, _)| *name == "scalar_aws_lc");
    println!(
        "\nX25519, {ROUNDS} interleaved rounds of {CALLS} batches of {BATCH} (µs per point; \
         speed-up over aws-lc):"
    );
    for ((name, _), t) in contenders.iter().zip(&times) {
        let (median, best) = (t[ROUNDS / 2], t[0]);
        let ratio = |i: usize, own: Duration| {
            aws_lc.map_or(String::new(), |a| {
                format!(" ({:.2}x)", micros(times[a][i]) / micros(own))
            })
        };
        println!(
            "  {name:<16} median {:>6.2}{}, best {:>6.2}{}",
            micros(median),
            ratio(ROUNDS / 2, median),
            micros(best),
            ratio(0, best)
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_batch
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|arg| arg == "--bench") {
        print_interleaved();
    }
}
