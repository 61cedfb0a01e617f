//! Group commit, per-command failure inside a batch, backpressure.

mod common;

use common::{at, bs58, client, db_path, join_all, lock_writer, open, open_with, spawn_all};
use gateway_store::StoreError;
use rusqlite::Connection;

#[tokio::test]
async fn concurrent_inserts_share_few_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    let before = store.counters();

    // Hold the write lock so the writer blocks while all 1000 inserts queue up.
    let lock = lock_writer(&path);
    let inserts = (0..1000u32)
        .map(|n| {
            let store = store.clone();
            async move {
                store
                    .insert_message(client((n % 7) as u8), n.to_be_bytes().to_vec(), at(0))
                    .await
            }
        })
        .collect();
    let handles = spawn_all(inserts).await;
    drop(lock);
    let results = join_all(handles).await;
    assert!(results.iter().all(Result::is_ok));

    let after = store.counters();
    assert_eq!(after.commands_committed - before.commands_committed, 1000);
    let transactions = after.transactions_committed - before.transactions_committed;
    // A first batch taken before the queue filled, then batches of at most max_batch (512).
    assert!(
        (2..=3).contains(&transactions),
        "{transactions} transactions"
    );
    assert_eq!(store.stats().await.unwrap().messages, 1000);
}

#[tokio::test]
async fn unblocked_concurrent_inserts_are_batched() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir));
    let inserts = (0..1000u32)
        .map(|n| {
            let store = store.clone();
            async move {
                store
                    .insert_message(client(1), vec![0; 64], at(n.into()))
                    .await
            }
        })
        .collect();
    let results = join_all(spawn_all(inserts).await).await;
    assert!(results.iter().all(Result::is_ok));
    let counters = store.counters();
    assert_eq!(counters.commands_committed, 1000);
    assert!(counters.transactions_committed < 500, "{counters:?}");
}

#[tokio::test]
async fn a_failing_command_fails_alone_in_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open_with(&path, |c| c.max_messages_per_client = 2);
    // A damaged row: a key for client 5 under a client id that does not exist, so
    // registering client 5 creates its `clients` row, then violates UNIQUE on the key's
    // address and must roll that row back.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    conn.execute(
        "INSERT INTO shared_keys VALUES (999, ?1, zeroblob(32), NULL)",
        [bs58(&client(5))],
    )
    .unwrap();
    drop(conn);
    let before = store.counters();

    let lock = lock_writer(&path);
    let s = store.clone();
    let inserts = (0..3)
        .map(|_| {
            let s = s.clone();
            async move { s.insert_message(client(1), vec![1], at(0)).await.map(drop) }
        })
        .collect::<Vec<_>>();
    let mut handles = spawn_all(inserts).await;
    let s = store.clone();
    handles.extend(
        spawn_all(vec![async move {
            s.upsert_shared_key(client(5), [5; 32]).await
        }])
        .await,
    );
    let s = store.clone();
    handles.extend(
        spawn_all(vec![async move {
            s.upsert_shared_key(client(6), [6; 32]).await
        }])
        .await,
    );
    drop(lock);
    let results = join_all(handles).await;

    assert!(results[0].is_ok() && results[1].is_ok());
    assert!(
        matches!(results[2], Err(StoreError::QuotaExceeded { .. })),
        "{:?}",
        results[2]
    );
    assert!(
        matches!(results[3], Err(StoreError::Sqlite { .. })),
        "{:?}",
        results[3]
    );
    assert!(results[4].is_ok());

    let after = store.counters();
    assert_eq!(after.commands_committed - before.commands_committed, 3);
    assert_eq!(after.commands_failed - before.commands_failed, 2);
    assert!(after.transactions_committed - before.transactions_committed <= 2);

    assert_eq!(
        store
            .fetch_messages(client(1), None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(store.shared_key(client(6)).await.unwrap().is_some());
    let conn = Connection::open(&path).unwrap();
    let client5_rows: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM clients WHERE client_address_bs58 = ?1",
            [bs58(&client(5))],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        client5_rows, 0,
        "the failed command's clients row was rolled back"
    );
}

#[tokio::test]
async fn a_full_queue_makes_callers_wait() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open_with(&path, |c| c.queue_capacity = 2);
    let lock = lock_writer(&path);
    let inserts = (0..10)
        .map(|_| {
            let store = store.clone();
            async move { store.insert_message(client(1), vec![1], at(0)).await }
        })
        .collect();
    let handles = spawn_all(inserts).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
        assert!(store.queued_writes() <= 2);
    }
    assert!(handles.iter().all(|h| !h.is_finished()));
    drop(lock);
    assert!(join_all(handles).await.iter().all(Result::is_ok));
    assert_eq!(store.queued_writes(), 0);
}

#[tokio::test]
async fn close_commits_queued_writes_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    let other = store.clone();
    let inserts = (0..50u8)
        .map(|n| {
            let store = store.clone();
            async move { store.insert_message(client(1), vec![n], at(0)).await }
        })
        .collect();
    let handles = spawn_all(inserts).await;
    store.close().await.unwrap();
    assert!(join_all(handles).await.iter().all(Result::is_ok));
    assert!(matches!(
        other.insert_message(client(1), vec![], at(0)).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(other.stats().await, Err(StoreError::Closed)));
    other.close().await.unwrap();

    let store = open(&path);
    assert_eq!(store.stats().await.unwrap().messages, 50);
}

#[tokio::test]
async fn a_failing_statement_without_savepoint_fails_alone_in_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open_with(&path, |c| {
        c.max_messages_per_client = 4;
        c.max_bytes_per_client = 0;
    });
    let refused = store
        .insert_message(client(1), vec![0xbe, 0xef], at(0))
        .await
        .unwrap();
    let kept = store
        .insert_message(client(1), vec![1], at(0))
        .await
        .unwrap();
    // Triggers (not the store's: a stand-in for any statement error) refuse one insert and
    // the deletion of one row. Inserts and deletes of at most 100 ids are single statements
    // the writer runs without a savepoint: SQLite must undo the failing one alone.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER refuse_insert BEFORE INSERT ON message_store
             WHEN NEW.content = x'dead' BEGIN SELECT RAISE(ABORT, 'refused'); END;
         CREATE TRIGGER refuse_delete BEFORE DELETE ON message_store
             WHEN OLD.content = x'beef' BEGIN SELECT RAISE(ABORT, 'refused'); END;",
    )
    .unwrap();
    drop(conn);
    let before = store.counters();

    let lock = lock_writer(&path);
    let mut handles = Vec::new();
    for content in [vec![2], vec![0xde, 0xad], vec![3]] {
        let s = store.clone();
        handles.extend(
            spawn_all(vec![async move {
                s.insert_message(client(1), content, at(0)).await.map(drop)
            }])
            .await,
        );
    }
    let s = store.clone();
    // Fails as a whole: `kept` is not deleted either.
    handles.extend(
        spawn_all(vec![
            async move { s.delete_messages(vec![kept, refused]).await },
        ])
        .await,
    );
    drop(lock);
    let results = join_all(handles).await;

    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(StoreError::Sqlite { .. })),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok(), "{:?}", results[2]);
    assert!(
        matches!(results[3], Err(StoreError::Sqlite { .. })),
        "{:?}",
        results[3]
    );
    let after = store.counters();
    assert_eq!(after.commands_committed - before.commands_committed, 2);
    assert_eq!(after.commands_failed - before.commands_failed, 2);
    assert!(after.transactions_committed - before.transactions_committed <= 2);

    let contents: Vec<Vec<u8>> = store
        .fetch_messages(client(1), None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(contents, [vec![0xbe, 0xef], vec![1], vec![2], vec![3]]);
    // The quota counts what is stored: full now, and one free slot once `kept` is gone.
    assert!(common::is_quota_error(
        &store.insert_message(client(1), vec![4], at(0)).await
    ));
    store.delete_messages(vec![kept]).await.unwrap();
    store
        .insert_message(client(1), vec![4], at(0))
        .await
        .unwrap();
}
