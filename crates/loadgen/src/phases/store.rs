//! The store on its own, in this process, on this machine's disk: message inserts through
//! group commit (queued the way the mix ingress queues them), and deliveries as a session
//! does them (fetch a batch after the last id, then delete it), many clients at once.

use std::time::Instant;

use anyhow::Context as _;
use gateway_store::{ClientAddress, Store, StoreConfig, UnixTime};

use crate::packets::MESSAGE_LEN;
use crate::procfs;
use crate::stats::per_second;

/// Messages fetched per batch: the gateway's default `message_retrieval_limit`.
const FETCH_BATCH: usize = 100;

/// The result of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreFigures {
    /// Messages inserted and then delivered.
    pub messages: usize,
    /// Clients they were spread over.
    pub clients: usize,
    /// `synchronous=FULL` (the gateway's default) or `NORMAL`.
    pub synchronous_full: bool,
    /// Inserts per second, queue to commit.
    pub inserts_per_s: f64,
    /// Transactions the inserts took (group commit).
    pub insert_transactions: u64,
    /// Messages fetched and deleted per second.
    pub deliveries_per_s: f64,
    /// Seconds the inserts took, and the CPU seconds of the store's threads meanwhile
    /// (a writer near 100 % is CPU-bound; far below, it waits for the disk).
    pub insert_seconds: f64,
    /// Store thread CPU seconds during the inserts, by thread.
    pub insert_cpu: Vec<(String, f64)>,
    /// Seconds the deliveries took.
    pub delivery_seconds: f64,
    /// Store thread CPU seconds during the deliveries, by thread.
    pub delivery_cpu: Vec<(String, f64)>,
}

/// CPU seconds of this process's store threads so far.
fn store_threads() -> std::collections::BTreeMap<String, f64> {
    let mut threads = procfs::thread_cpu_seconds(std::process::id()).unwrap_or_default();
    threads.retain(|name, _| name.starts_with("store-"));
    threads
}

/// Inserts `messages` messages for `clients` clients into a fresh store in `dir`, then drains
/// them all.
pub async fn run(
    dir: &std::path::Path,
    messages: usize,
    clients: usize,
    synchronous_full: bool,
) -> anyhow::Result<StoreFigures> {
    let clients = clients.max(1);
    let mut config = StoreConfig::new(dir.join(format!("store-{synchronous_full}.sqlite")));
    config.synchronous_full = synchronous_full;
    let store = tokio::task::spawn_blocking(move || Store::open(config)).await??;
    let addresses: Vec<ClientAddress> = (0..clients)
        .map(|n| {
            let mut address = [0u8; 32];
            address[..8].copy_from_slice(&(n as u64).to_le_bytes());
            ClientAddress::from_bytes(address)
        })
        .collect();
    let content = vec![0x5a; MESSAGE_LEN];
    let now = UnixTime::now();

    let before = store.counters();
    let cpu_before = store_threads();
    let start = Instant::now();
    let mut pending = Vec::with_capacity(messages);
    for n in 0..messages {
        pending.push(
            store
                .queue_message(addresses[n % clients], content.clone(), now)
                .await?,
        );
    }
    for insert in pending {
        insert.committed().await.context("a queued insert failed")?;
    }
    let insert_seconds = start.elapsed().as_secs_f64();
    let inserts_per_s = per_second(messages as u64, start.elapsed());
    let insert_cpu = procfs::cpu_delta(&cpu_before, &store_threads());
    let cpu_before = store_threads();
    let insert_transactions =
        store.counters().transactions_committed - before.transactions_committed;

    let start = Instant::now();
    let mut drains = tokio::task::JoinSet::new();
    for address in addresses {
        let store = store.clone();
        drains.spawn(async move { drain(&store, address).await });
    }
    let mut delivered = 0u64;
    while let Some(result) = drains.join_next().await {
        delivered += result??;
    }
    let delivery_seconds = start.elapsed().as_secs_f64();
    let deliveries_per_s = per_second(delivered, start.elapsed());
    let delivery_cpu = procfs::cpu_delta(&cpu_before, &store_threads());
    anyhow::ensure!(
        delivered == messages as u64,
        "drained {delivered} of {messages} messages"
    );
    store.close().await?;
    Ok(StoreFigures {
        messages,
        clients,
        synchronous_full,
        inserts_per_s,
        insert_transactions,
        deliveries_per_s,
        insert_seconds,
        insert_cpu,
        delivery_seconds,
        delivery_cpu,
    })
}

/// Fetches and deletes everything stored for `client`, batch by batch; returns the count.
async fn drain(store: &Store, client: ClientAddress) -> anyhow::Result<u64> {
    let mut after = None;
    let mut count = 0u64;
    // Bounded: each pass removes a batch, and the store holds finitely many.
    loop {
        let batch = store.fetch_messages(client, after, FETCH_BATCH).await?;
        let Some(last) = batch.last() else {
            return Ok(count);
        };
        after = Some(last.id);
        count += batch.len() as u64;
        let full = batch.len() == FETCH_BATCH;
        store
            .delete_messages(batch.into_iter().map(|m| m.id).collect())
            .await?;
        if !full {
            return Ok(count);
        }
    }
}
