//! Benchmarks of the store on this machine's disk (a database under the system temp dir), the
//! way the gateway uses it:
//!
//! - `insert`: 1643-byte messages for 64 clients queued with [`Store::queue_message`] (as the
//!   mix ingress does), then every [`PendingInsert::committed`] awaited: group commit;
//! - `drain`: the 64 clients at once, each fetching 100 messages after the last id it saw and
//!   deleting them (as a session delivers an inbox), until the store is empty.
//!
//! Each for `synchronous=FULL` (the gateway's default) and `NORMAL`. One criterion iteration is
//! a round of [`ROUND`] messages, so its throughput is in messages per second.
//!
//! After criterion, `cargo bench` prints the figures of [`SUMMARY_RUNS`] runs on a fresh store
//! each (insert [`SUMMARY_MESSAGES`], then drain them), as the load generator's in-process store
//! phase does (`STORE_BENCH_RUNS` and `STORE_BENCH_MESSAGES` change both; the load generator
//! uses 100 000 messages), with, per phase, the CPU time of the whole process per message (which
//! the machine's other load hardly changes, unlike the rates) and each store thread's time on a
//! CPU and waiting for one: a writer far below 100 % in total waits for the disk.
//!
//! `cargo bench -p gateway-store --bench store -- --quick` is a short run; with a filter that
//! matches no benchmark (`-- --bench none`) only the summary runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use gateway_store::{ClientAddress, PendingInsert, Store, StoreConfig, UnixTime};
use tokio::runtime::Runtime;

/// A regular packet's final-hop message, as the gateway stores it.
const MESSAGE_LEN: usize = 1643;
/// Clients the messages are spread over (the load generator's figure).
const CLIENTS: usize = 64;
/// Messages fetched per batch: the gateway's default `message_retrieval_limit`.
const FETCH_BATCH: usize = 100;
/// Messages per criterion iteration: three fetch batches per client.
const ROUND: usize = CLIENTS * FETCH_BATCH * 3;
/// Runs per mode in the summary, and messages per run, unless `STORE_BENCH_RUNS` and
/// `STORE_BENCH_MESSAGES` say otherwise (the load generator's store phase uses 100 000).
const SUMMARY_RUNS: usize = 3;
const SUMMARY_MESSAGES: usize = CLIENTS * FETCH_BATCH * 6;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn addresses() -> Vec<ClientAddress> {
    (0..CLIENTS)
        .map(|n| {
            let mut address = [0u8; 32];
            address[..8].copy_from_slice(&(n as u64).to_le_bytes());
            ClientAddress::from_bytes(address)
        })
        .collect()
}

fn open(path: &Path, synchronous_full: bool) -> Store {
    let mut config = StoreConfig::new(path);
    config.synchronous_full = synchronous_full;
    Store::open(config).expect("open store")
}

fn runtime() -> Runtime {
    // Two workers, like the gateway's runtime on this 2-vCPU machine.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime")
}

/// Queues `messages` messages round-robin over the clients and waits for every commit.
async fn insert(store: &Store, clients: &[ClientAddress], messages: usize) {
    let content = vec![0x5a; MESSAGE_LEN];
    let mut pending: Vec<PendingInsert> = Vec::with_capacity(messages);
    for n in 0..messages {
        let insert = store
            .queue_message(
                clients[n % clients.len()],
                content.clone(),
                UnixTime::from_secs(1_700_000_000),
            )
            .await
            .expect("queue");
        pending.push(insert);
    }
    for insert in pending {
        insert.committed().await.expect("insert");
    }
}

/// Every client drains its inbox at once; returns the messages delivered.
async fn drain(store: &Store, clients: &[ClientAddress]) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for &client in clients {
        let store = store.clone();
        tasks.spawn(async move {
            let mut after = None;
            let mut count = 0;
            loop {
                let batch = store
                    .fetch_messages(client, after, FETCH_BATCH)
                    .await
                    .expect("fetch");
                let Some(last) = batch.last() else {
                    return count;
                };
                after = Some(last.id);
                count += batch.len();
                let full = batch.len() == FETCH_BATCH;
                store
                    .delete_messages(batch.into_iter().map(|m| m.id).collect())
                    .await
                    .expect("delete");
                if !full {
                    return count;
                }
            }
        });
    }
    let mut delivered = 0;
    while let Some(count) = tasks.join_next().await {
        delivered += count.expect("drain task");
    }
    delivered
}

fn mode_name(synchronous_full: bool) -> &'static str {
    if synchronous_full {
        "full"
    } else {
        "normal"
    }
}

fn bench_store(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::Builder::new()
        .prefix("gateway-store-bench")
        .tempdir()
        .expect("temp dir");
    let clients = addresses();
    for synchronous_full in [true, false] {
        let path = dir
            .path()
            .join(format!("bench-{}.sqlite", mode_name(synchronous_full)));
        let store = open(&path, synchronous_full);
        let mut group = c.benchmark_group(format!("store_{}", mode_name(synchronous_full)));
        group.throughput(Throughput::Elements(ROUND as u64));
        group.sample_size(10);
        group.bench_function("insert", |b| {
            b.iter_custom(|rounds| {
                rt.block_on(async {
                    let mut timed = Duration::ZERO;
                    for _ in 0..rounds {
                        let start = Instant::now();
                        insert(&store, &clients, ROUND).await;
                        timed += start.elapsed();
                        // Untimed: keeps the database at the same size round after round.
                        assert_eq!(drain(&store, &clients).await, ROUND);
                    }
                    timed
                })
            })
        });
        group.bench_function("drain", |b| {
            b.iter_custom(|rounds| {
                rt.block_on(async {
                    let mut timed = Duration::ZERO;
                    for _ in 0..rounds {
                        insert(&store, &clients, ROUND).await;
                        let start = Instant::now();
                        let delivered = drain(&store, &clients).await;
                        timed += start.elapsed();
                        assert_eq!(delivered, ROUND);
                    }
                    timed
                })
            })
        });
        group.finish();
        rt.block_on(store.close()).expect("close");
    }
}

/// Per store thread (`store-*`, by name): time on a CPU, and time runnable but waiting for
/// one, so far, from `/proc/self/task/*/schedstat` (nanoseconds). Empty without procfs.
fn store_threads_cpu() -> BTreeMap<String, (Duration, Duration)> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    let main_thread = std::process::id().to_string();
    for task in tasks.flatten() {
        // The main thread is named after the executable, `store-<hash>`.
        if task.file_name().to_str() == Some(main_thread.as_str()) {
            continue;
        }
        let path = task.path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        let name = name.trim();
        if !name.starts_with("store-") {
            continue;
        }
        let schedstat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
        let mut fields = schedstat
            .split_whitespace()
            .map(|f| Duration::from_nanos(f.parse().unwrap_or(0)));
        let entry: &mut (Duration, Duration) = out.entry(name.to_owned()).or_default();
        entry.0 += fields.next().unwrap_or_default();
        entry.1 += fields.next().unwrap_or_default();
    }
    out
}

/// CPU time of the whole process so far (all threads, the callers' too), from
/// `/proc/self/task/*/schedstat`: per message, a figure the machine's other load hardly
/// changes, unlike the rates.
fn process_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .sum()
}

/// Each store thread's share of `wall` between two snapshots on a CPU (and, in brackets,
/// runnable but waiting for a CPU): "writer 60 % (+10 %)". A writer far below 100 % in total
/// waits for the disk or for work.
fn cpu_shares(
    before: &BTreeMap<String, (Duration, Duration)>,
    after: &BTreeMap<String, (Duration, Duration)>,
    wall: Duration,
) -> String {
    let share = |d: Duration| 100.0 * d.as_secs_f64() / wall.as_secs_f64();
    after
        .iter()
        .map(|(name, (cpu, waiting))| {
            let (cpu_before, waiting_before) = before.get(name).copied().unwrap_or_default();
            format!(
                "{} {:.0} % (+{:.0} %)",
                name.trim_start_matches("store-"),
                share(cpu.saturating_sub(cpu_before)),
                share(waiting.saturating_sub(waiting_before)),
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fresh-store runs like the load generator's store phase, with min–max over the runs.
fn print_summary() {
    let rt = runtime();
    let clients = addresses();
    let runs = env_or("STORE_BENCH_RUNS", SUMMARY_RUNS).max(1);
    let messages = env_or("STORE_BENCH_MESSAGES", SUMMARY_MESSAGES).max(1);
    println!(
        "\nstore, fresh database per run, {runs} runs of {messages} messages \
         ({MESSAGE_LEN} B, {CLIENTS} clients):"
    );
    for synchronous_full in [true, false] {
        let (mut inserts, mut drains) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let dir = tempfile::Builder::new()
                .prefix("gateway-store-bench")
                .tempdir()
                .expect("temp dir");
            let path = dir.path().join("store.sqlite");
            let store = open(&path, synchronous_full);
            let transactions = store.counters().transactions_committed;
            let cpu = store_threads_cpu();
            let total = process_cpu();
            let start = Instant::now();
            rt.block_on(insert(&store, &clients, messages));
            let insert_wall = start.elapsed();
            let insert_cpu = store_threads_cpu();
            let insert_total = process_cpu();
            let transactions = store.counters().transactions_committed - transactions;
            let start = Instant::now();
            let delivered = rt.block_on(drain(&store, &clients));
            let drain_wall = start.elapsed();
            let drain_cpu = store_threads_cpu();
            let drain_total = process_cpu();
            let micros_each = |d: Duration| d.as_secs_f64() * 1e6 / messages as f64;
            assert_eq!(delivered, messages);
            // The WAL file only grows until a checkpoint truncates it: its size now is the
            // most the WAL held during the run.
            let wal_kib =
                std::fs::metadata(path.with_extension("sqlite-wal")).map_or(0, |m| m.len() / 1024);
            rt.block_on(store.close()).expect("close");
            let insert_rate = messages as f64 / insert_wall.as_secs_f64();
            let drain_rate = messages as f64 / drain_wall.as_secs_f64();
            println!(
                "  {:<6} insert {insert_rate:>6.0}/s, {:.1} µs CPU each ({transactions} \
                 transactions; {}); drain {drain_rate:>6.0}/s, {:.1} µs CPU each ({}); \
                 WAL at most {wal_kib} KiB",
                mode_name(synchronous_full),
                micros_each(insert_total - total),
                cpu_shares(&cpu, &insert_cpu, insert_wall),
                micros_each(drain_total - insert_total),
                cpu_shares(&insert_cpu, &drain_cpu, drain_wall),
            );
            inserts.push(insert_rate);
            drains.push(drain_rate);
        }
        let range = |v: &[f64]| {
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(0.0, f64::max);
            format!("{min:.0}–{max:.0}/s")
        };
        println!(
            "  {:<6} inserts {}, deliveries {}",
            mode_name(synchronous_full),
            range(&inserts),
            range(&drains)
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_store
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` runs each benchmark once without it.
    if std::env::args().any(|arg| arg == "--bench") {
        print_summary();
    }
}
