//! Importing a store written by the 1.0.x gateway: built here from the 1.0.x schema
//! (`testdata/store-1.0.x/schema.sql`), with rows in every table, never by this store.

mod common;

use std::path::Path;

use common::{at, bs58, client};
use gateway_store::{OpenError, Store, StoreConfig, LEGACY_MIGRATIONS, LEGACY_SHARED_KEYS};
use rusqlite::Connection;

const SCHEMA_1_0: &str = include_str!("../../../testdata/store-1.0.x/schema.sql");

/// Client 1 has a key, two messages and bandwidth; client 2 only messages; client 3 only a
/// key; client 4 only bandwidth. Messages are interleaved so ids, not clients, give the order.
fn build_1_0_store(path: &Path, wal: bool) {
    let conn = Connection::open(path).unwrap();
    if wal {
        // sqlx's default journal mode: part of the data may still be in the WAL.
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
        conn.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
    }
    conn.execute_batch(SCHEMA_1_0).unwrap();
    for (n, key) in [(1u8, "legacykey1"), (3, "legacykey3")] {
        conn.execute(
            "INSERT INTO shared_keys VALUES (?1, ?2)",
            [bs58(&client(n)), key.to_owned()],
        )
        .unwrap();
    }
    for (n, content) in [(1u8, "one-a"), (2, "two-a"), (1, "one-b"), (2, "two-b")] {
        conn.execute(
            "INSERT INTO message_store (client_address_bs58, content) VALUES (?1, ?2)",
            rusqlite::params![bs58(&client(n)), content.as_bytes()],
        )
        .unwrap();
    }
    for (n, available) in [(1u8, 1_000i64), (4, 5_000)] {
        conn.execute(
            "INSERT INTO available_bandwidth VALUES (?1, ?2)",
            rusqlite::params![bs58(&client(n)), available],
        )
        .unwrap();
    }
}

fn tables(conn: &Connection) -> Vec<String> {
    conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn contents(messages: &[gateway_store::StoredMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8(m.content.clone()).unwrap())
        .collect()
}

fn open_labelled(path: &Path, label: &str) -> Result<Store, OpenError> {
    let mut config = StoreConfig::new(path);
    config.legacy_backup_label = label.to_owned();
    Store::open(config)
}

#[tokio::test]
async fn a_1_0_store_is_imported_with_its_messages_and_a_backup() {
    for wal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        build_1_0_store(&path, wal);

        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let store = open_labelled(&path, "1.0.1").expect("a 1.0.x store opens");

        // Messages: kept per client, in their original order, with their ids.
        let one = store.fetch_messages(client(1), None, 10).await.unwrap();
        let two = store.fetch_messages(client(2), None, 10).await.unwrap();
        assert_eq!(contents(&one), ["one-a", "one-b"], "wal={wal}");
        assert_eq!(contents(&two), ["two-a", "two-b"], "wal={wal}");
        assert_eq!(one.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 3]);
        // Bandwidth: carried over, valid today.
        let bandwidth = store.bandwidth(client(4)).await.unwrap().unwrap();
        assert_eq!(bandwidth.available, 5_000);
        assert_eq!(
            bandwidth.expiration.as_secs(),
            before - before.rem_euclid(86_400)
        );
        assert_eq!(
            store.bandwidth(client(1)).await.unwrap().unwrap().available,
            1_000
        );
        // Shared keys: today's clients cannot use them, so nobody is registered...
        assert!(store.shared_key(client(1)).await.unwrap().is_none());
        // ...until they register again; then their stored messages are theirs as before.
        store.upsert_shared_key(client(1), [7; 32]).await.unwrap();
        assert!(store.shared_key(client(1)).await.unwrap().is_some());
        // New messages follow the imported ones.
        let id = store
            .insert_message(client(2), b"two-c".to_vec(), at(before))
            .await
            .unwrap();
        assert!(id > 4);
        store.close().await.unwrap();

        let conn = Connection::open(&path).unwrap();
        let names = tables(&conn);
        assert!(names.contains(&LEGACY_SHARED_KEYS.to_owned()), "{names:?}");
        assert!(names.contains(&LEGACY_MIGRATIONS.to_owned()), "{names:?}");
        assert!(!names.contains(&"_sqlx_migrations".to_owned()), "{names:?}");
        assert_eq!(count(&conn, LEGACY_SHARED_KEYS), 2);
        let timestamps: Vec<i64> = conn
            .prepare("SELECT timestamp FROM message_store WHERE id <= 4")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(timestamps.len(), 4);
        assert!(timestamps.iter().all(|&t| t >= before), "{timestamps:?}");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 2);

        // The backup is the 1.0.x store as it was, WAL content included.
        let backup = Connection::open(dir.path().join("db.sqlite.1.0.1.bak")).unwrap();
        assert_eq!(
            tables(&backup),
            [
                "_sqlx_migrations",
                "available_bandwidth",
                "message_store",
                "shared_keys",
                "sqlite_sequence"
            ]
        );
        assert_eq!(count(&backup, "message_store"), 4);
        assert_eq!(count(&backup, "shared_keys"), 2);
        assert_eq!(count(&backup, "available_bandwidth"), 2);
    }
}

#[tokio::test]
async fn an_imported_store_opens_again_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    build_1_0_store(&path, false);
    open_labelled(&path, "1.0.2")
        .unwrap()
        .close()
        .await
        .unwrap();
    let backup = dir.path().join("db.sqlite.1.0.2.bak");
    let backup_bytes = std::fs::read(&backup).unwrap();

    let store = open_labelled(&path, "1.0.2").unwrap();
    assert_eq!(
        contents(&store.fetch_messages(client(2), None, 10).await.unwrap()),
        ["two-a", "two-b"]
    );
    store.close().await.unwrap();
    assert_eq!(std::fs::read(&backup).unwrap(), backup_bytes);
}

#[tokio::test]
async fn a_failed_import_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    build_1_0_store(&path, false);
    // A table in the way of today's schema makes the import fail half-way.
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE clients (x INTEGER)")
        .unwrap();

    let Err(err) = open_labelled(&path, "1.0.1") else {
        panic!("the import should fail");
    };
    assert!(
        matches!(err, OpenError::Migration { version: 1, .. }),
        "{err}"
    );
    let conn = Connection::open(&path).unwrap();
    assert_eq!(
        tables(&conn),
        [
            "_sqlx_migrations",
            "available_bandwidth",
            "clients",
            "message_store",
            "shared_keys",
            "sqlite_sequence"
        ]
    );
    assert_eq!(count(&conn, "message_store"), 4);
    assert_eq!(count(&conn, "shared_keys"), 2);
    assert!(dir.path().join("db.sqlite.1.0.1.bak").exists());
}

#[tokio::test]
async fn a_foreign_database_is_refused_and_left_alone() {
    let cases: [(&str, &str); 2] = [
        (
            "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');",
            "no schema version",
        ),
        (
            // sqlx-managed, but a later gateway's schema (clients table, integer ids).
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY);
             CREATE TABLE shared_keys (client_id INTEGER PRIMARY KEY, client_address_bs58 TEXT);
             CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');",
            "derived_aes128_ctr_blake3_hmac_keys_bs58",
        ),
    ];
    for (sql, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        Connection::open(&path).unwrap().execute_batch(sql).unwrap();
        let Err(err) = Store::open(StoreConfig::new(&path)) else {
            panic!("a foreign database should be refused");
        };
        assert!(matches!(err, OpenError::ForeignSchema { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(reason), "{text}");
        assert!(text.contains("nothing was changed"), "{text}");
        let conn = Connection::open(&path).unwrap();
        assert_eq!(count(&conn, "notes"), 1);
        assert!(!tables(&conn).contains(&"message_store".to_owned()));
    }
}
