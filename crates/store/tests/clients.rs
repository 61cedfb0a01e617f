//! Shared keys, bandwidth and forgetting a client.

mod common;

use common::{at, bs58, client, db_path, open};
use gateway_store::{Bandwidth, StoreError};
use rusqlite::Connection;

fn client_id(path: &std::path::Path, n: u8) -> Option<i64> {
    let conn = Connection::open(path).unwrap();
    conn.query_row(
        "SELECT id FROM clients WHERE client_address_bs58 = ?1",
        [bs58(&client(n))],
        |r| r.get(0),
    )
    .ok()
}

#[tokio::test]
async fn upsert_keeps_client_id_bandwidth_and_last_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    assert!(store.shared_key(client(1)).await.unwrap().is_none());

    store.upsert_shared_key(client(1), [1; 32]).await.unwrap();
    let first = store.shared_key(client(1)).await.unwrap().unwrap();
    assert_eq!((first.key, first.last_used_authentication), ([1; 32], None));
    let id = client_id(&path, 1).unwrap();

    let bandwidth = Bandwidth {
        available: 500,
        expiration: at(1_700_000_000),
    };
    store.set_bandwidth(client(1), bandwidth).await.unwrap();
    store
        .set_last_used_authentication(client(1), at(1_700_000_100))
        .await
        .unwrap();

    store.upsert_shared_key(client(1), [2; 32]).await.unwrap();
    let second = store.shared_key(client(1)).await.unwrap().unwrap();
    assert_eq!(second.key, [2; 32]);
    assert_eq!(second.last_used_authentication, Some(at(1_700_000_100)));
    assert_eq!(store.bandwidth(client(1)).await.unwrap(), Some(bandwidth));
    assert_eq!(client_id(&path, 1), Some(id));
    // The key stays out of Debug output.
    assert!(!format!("{second:?}").contains("2, 2"));
}

#[tokio::test]
async fn last_used_needs_a_registered_client() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir));
    let err = store.set_last_used_authentication(client(9), at(1)).await;
    assert!(
        matches!(err, Err(StoreError::NotRegistered { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn ensure_bandwidth_creates_zero_then_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir));
    assert_eq!(store.bandwidth(client(1)).await.unwrap(), None);
    assert_eq!(
        store.ensure_bandwidth(client(1)).await.unwrap(),
        Bandwidth::default()
    );
    assert_eq!(
        store.bandwidth(client(1)).await.unwrap(),
        Some(Bandwidth::default())
    );
    let set = Bandwidth {
        available: 42,
        expiration: at(7),
    };
    store.set_bandwidth(client(1), set).await.unwrap();
    assert_eq!(store.ensure_bandwidth(client(1)).await.unwrap(), set);
    // Bandwidth alone registers no key.
    assert!(store.shared_key(client(1)).await.unwrap().is_none());
}

#[tokio::test]
async fn forget_client_removes_only_that_client() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    for n in [1, 2] {
        store.upsert_shared_key(client(n), [n; 32]).await.unwrap();
        store.ensure_bandwidth(client(n)).await.unwrap();
        store
            .insert_message(client(n), vec![n; 4], at(0))
            .await
            .unwrap();
    }
    store.forget_client(client(1)).await.unwrap();

    assert!(store.shared_key(client(1)).await.unwrap().is_none());
    assert!(store.bandwidth(client(1)).await.unwrap().is_none());
    assert!(store
        .fetch_messages(client(1), None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(client_id(&path, 1), None);

    assert!(store.shared_key(client(2)).await.unwrap().is_some());
    assert!(store.bandwidth(client(2)).await.unwrap().is_some());
    assert_eq!(
        store
            .fetch_messages(client(2), None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.messages, stats.message_bytes, stats.clients),
        (1, 4, 1)
    );

    // Forgetting an unknown client is fine; re-registering works.
    store.forget_client(client(1)).await.unwrap();
    store.upsert_shared_key(client(1), [3; 32]).await.unwrap();
    assert_eq!(
        store.shared_key(client(1)).await.unwrap().unwrap().key,
        [3; 32]
    );
}

#[tokio::test]
async fn damaged_key_row_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    store.upsert_shared_key(client(1), [1; 32]).await.unwrap();
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE shared_keys SET derived_aes256_gcm_siv_key = x'0102'",
            [],
        )
        .unwrap();
    let err = store.shared_key(client(1)).await;
    assert!(matches!(err, Err(StoreError::InvalidRow { .. })), "{err:?}");
}
