//! What accepting one zk-nym ticket costs the gateway's CPU: parsing the credential, the
//! cheap checks, and the pay-info check with the scheme's `spend_verify` against the epoch's
//! master key (what runs on a blocking thread per ticket). The store lookup, the decryption and
//! the key fetch (cached after an epoch's first ticket) are not in it.
//!
//! - `ticket/verify`: the whole check path of one ticket (parse, cheap checks, pay-info
//!   checks, `spend_verify`);
//! - `ticket/spend_verify`: the scheme's `spend_verify` alone (the pairings);
//! - `ticket/parse`: the credential's parsing alone.
//!
//! One criterion iteration is one ticket, so the throughput is in tickets verified per second
//! on one core. `cargo bench -p gateway-ecash --bench tickets -- --quick` is a short run.

use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gateway_ecash::authority::Authority;
use gateway_ecash::verify::encoded_date;
use gateway_ecash::{precheck, SpendingData, TicketType, Verifier};

const GATEWAY: [u8; 32] = [0x42; 32];
/// Distinct tickets verified in turn (each is accepted once per verifier).
const TICKETS: usize = 50;

fn tickets(c: &mut Criterion) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let authority = Authority::new(1, 2, 3).expect("keygen");
    let mut book = authority
        .issue_current(TicketType::V1MixnetEntry, now)
        .expect("a ticketbook");
    let encoded: Vec<Vec<u8>> = (0..TICKETS)
        .map(|_| book.spend(GATEWAY, now).expect("a spend").encode())
        .collect();
    let key = authority.master_key();

    let mut group = c.benchmark_group("ticket");
    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function("verify", |b| {
        b.iter_batched(
            || {
                next = (next + 1) % TICKETS;
                // A fresh verifier: the same pay info is refused by one that saw it.
                (Verifier::new(GATEWAY, 3600), &encoded[next])
            },
            |(verifier, bytes)| {
                let data = SpendingData::parse(bytes).expect("parses");
                let ticket = precheck(data, now).expect("today's ticket");
                verifier
                    .check_payment(&ticket, key, now)
                    .expect("a valid ticket");
            },
            BatchSize::SmallInput,
        )
    });
    let spends: Vec<SpendingData> = encoded
        .iter()
        .map(|bytes| SpendingData::parse(bytes).expect("parses"))
        .collect();
    let mut next = 0;
    group.bench_function("spend_verify", |b| {
        b.iter(|| {
            next = (next + 1) % TICKETS;
            let data = &spends[next];
            data.payment
                .spend_verify(key, &data.pay_info, encoded_date(data.spend_date))
                .expect("a valid ticket")
        })
    });
    group.bench_function("parse", |b| {
        b.iter(|| SpendingData::parse(&encoded[0]).expect("parses"))
    });
    group.finish();
}

criterion_group!(benches, tickets);
criterion_main!(benches);
