//! Checkpoints: off the writer, and a WAL that stays bounded under steady writes.

mod common;

use std::path::{Path, PathBuf};

use common::{at, client, db_path, open_with};
use gateway_store::Store;

/// A regular packet's final-hop message.
const MESSAGE_LEN: usize = 1643;

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Queues `count` messages over 8 clients and waits for all their commits.
async fn insert(store: &Store, count: usize) {
    let mut pending = Vec::new();
    for n in 0..count {
        pending.push(
            store
                .queue_message(client((n % 8) as u8), vec![n as u8; MESSAGE_LEN], at(0))
                .await
                .unwrap(),
        );
    }
    for p in pending {
        p.committed().await.unwrap();
    }
}

#[tokio::test]
async fn the_wal_stays_bounded_under_steady_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open_with(&path, |c| {
        c.max_batch = 16;
        c.checkpoint_pages = 16;
        c.wal_restart_pages = 64;
        c.max_messages_per_client = 0;
        c.max_bytes_per_client = 0;
    });
    let wal = wal_path(&path);
    // 3000 messages of 1643 B: about 1500 pages pass through the WAL, and writes never pause
    // long enough for SQLite to rewind it by itself.
    let mut largest = 0;
    for _ in 0..10 {
        insert(&store, 300).await;
        largest = largest.max(file_len(&wal));
    }
    // Deletes too, 50 ids per command: a client's messages are spread over the table (the
    // clients' inserts alternate), so that changes about 60 pages.
    for c in 0..8 {
        loop {
            let batch = store.fetch_messages(client(c), None, 50).await.unwrap();
            if batch.is_empty() {
                break;
            }
            store
                .delete_messages(batch.into_iter().map(|m| m.id).collect())
                .await
                .unwrap();
            largest = largest.max(file_len(&wal));
        }
    }
    assert_eq!(store.stats().await.unwrap().messages, 0);
    // The file only grows, so its size is the most the WAL ever held: 64 pages plus the
    // transaction that crossed the mark (at most about 70 here), each page a 4096-byte frame
    // plus 24 bytes of header. Unbounded, it reaches about 4000 frames.
    let frame = 4096 + 24;
    assert!(
        largest <= 320 * frame,
        "the WAL reached {largest} bytes ({} frames)",
        largest / frame
    );
    store.close().await.unwrap();
    // The writer's connection closed last (after the checkpointer's) and took the WAL with it.
    assert!(!wal.exists());
}

#[tokio::test]
async fn the_checkpointer_copies_the_wal_into_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open_with(&path, |c| {
        c.max_batch = 16;
        c.checkpoint_pages = 16;
        // Never rewound by the writer: only the checkpointer copies pages.
        c.wal_restart_pages = u32::MAX;
        c.max_messages_per_client = 0;
        c.max_bytes_per_client = 0;
    });
    let before = file_len(&path);
    insert(&store, 1000).await;
    // The checkpointer runs on its own time; it is only asked to be done eventually (the
    // bound only makes a broken one fail instead of hang).
    let mut waited = 0;
    while file_len(&path) < before + 1_000_000 && waited < 3000 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        waited += 1;
    }
    assert!(
        file_len(&path) >= before + 1_000_000,
        "database file {} bytes after 1000 messages",
        file_len(&path)
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn checkpoints_in_the_writer_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open_with(&path, |c| c.background_checkpoints = false);
    insert(&store, 500).await;
    let fetched = store.fetch_messages(client(3), None, 1000).await.unwrap();
    assert_eq!(fetched.len(), 500 / 8 + 1);
    store.close().await.unwrap();
    assert!(!wal_path(&path).exists());
    let store = open_with(&path, |_| {});
    assert_eq!(store.stats().await.unwrap().messages, 500);
}
