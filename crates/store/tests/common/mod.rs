//! Helpers shared by the store's integration tests.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use gateway_store::{ClientAddress, Store, StoreConfig, StoreError, UnixTime};
use rusqlite::Connection;

/// A distinct client address per `n`.
pub fn client(n: u8) -> ClientAddress {
    ClientAddress::from_bytes([n; 32])
}

/// The base58 text the store keeps `client`'s rows under.
pub fn bs58(client: &ClientAddress) -> String {
    client.to_string()
}

/// `secs` seconds after the Unix epoch.
pub fn at(secs: i64) -> UnixTime {
    UnixTime::from_secs(secs)
}

pub fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("nested").join("store.sqlite")
}

pub fn open(path: &Path) -> Store {
    Store::open(StoreConfig::new(path)).expect("open store")
}

pub fn open_with(path: &Path, change: impl FnOnce(&mut StoreConfig)) -> Store {
    let mut config = StoreConfig::new(path);
    change(&mut config);
    Store::open(config).expect("open store")
}

/// A second connection holding the write lock, so the store's writer blocks in its next
/// `BEGIN` while commands pile up in its queue. Dropping it releases the lock.
pub fn lock_writer(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

/// Spawns one task per future and yields until every task has run to its first await, which
/// is after its command was queued (queueing never waits while the queue has room).
pub async fn spawn_all<T: Send + 'static>(
    futures: Vec<impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<tokio::task::JoinHandle<T>> {
    let started = Arc::new(AtomicUsize::new(0));
    let total = futures.len();
    let handles = futures
        .into_iter()
        .map(|future| {
            let started = started.clone();
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                future.await
            })
        })
        .collect();
    while started.load(Ordering::SeqCst) < total {
        tokio::task::yield_now().await;
    }
    // One more round so the last task also got past its first poll.
    tokio::task::yield_now().await;
    handles
}

pub async fn join_all<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

pub fn is_quota_error(result: &Result<i64, StoreError>) -> bool {
    matches!(result, Err(StoreError::QuotaExceeded { .. }))
}
