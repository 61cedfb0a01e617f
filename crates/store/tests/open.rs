//! Opening: schema, pragmas, and clear errors for bad files.

mod common;

use std::time::Duration;

use common::{db_path, open};
use gateway_store::{OpenError, Store, StoreConfig};
use rusqlite::Connection;

#[tokio::test]
async fn creates_the_documented_schema_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path);
    let conn = Connection::open(&path).unwrap();
    let columns = |table: &str| -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(columns("clients"), ["id", "client_address_bs58"]);
    assert_eq!(
        columns("shared_keys"),
        [
            "client_id",
            "client_address_bs58",
            "derived_aes256_gcm_siv_key",
            "last_used_authentication"
        ]
    );
    assert_eq!(
        columns("available_bandwidth"),
        ["client_id", "available", "expiration"]
    );
    assert_eq!(
        columns("message_store"),
        ["id", "client_address_bs58", "content", "timestamp"]
    );
    let index: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_info('message_store_client_id')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(index, ["client_address_bs58", "id"]);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    store.close().await.unwrap();
}

#[test]
fn garbage_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    std::fs::write(&path, vec![0xA5; 8192]).unwrap();
    let err = Store::open(StoreConfig::new(&path)).unwrap_err();
    assert!(matches!(err, OpenError::Open { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("store.sqlite") && text.contains("not a database"),
        "{text}"
    );
}

#[test]
fn locked_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let holder = Connection::open(&path).unwrap();
    holder
        .execute_batch("PRAGMA journal_mode=DELETE; BEGIN EXCLUSIVE; CREATE TABLE t (a);")
        .unwrap();
    let mut config = StoreConfig::new(&path);
    config.busy_timeout = Duration::from_millis(50);
    let err = Store::open(config).unwrap_err();
    assert!(matches!(err, OpenError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("locked"), "{err}");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = Store::open(StoreConfig::new(&path)).unwrap_err();
    assert!(
        matches!(err, OpenError::SchemaTooNew { found: 99, .. }),
        "{err:?}"
    );
}

#[test]
fn foreign_schema_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE message_store (x); PRAGMA user_version = 1;")
        .unwrap();
    let err = Store::open(StoreConfig::new(&path)).unwrap_err();
    assert!(matches!(err, OpenError::Open { .. }), "{err:?}");
}

#[test]
fn directory_in_the_way_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"").unwrap();
    let err = Store::open(StoreConfig::new(blocker.join("store.sqlite"))).unwrap_err();
    assert!(matches!(err, OpenError::CreateDir { .. }), "{err:?}");
}
