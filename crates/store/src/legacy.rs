//! Importing a store written by the 1.0.x gateway.
//!
//! The 1.0.x gateway kept its database with sqlx migrations (a `_sqlx_migrations` table,
//! `PRAGMA user_version` left at 0) and three tables:
//! `shared_keys(client_address_bs58, derived_aes128_ctr_blake3_hmac_keys_bs58)`,
//! `message_store(id, client_address_bs58, content)` and
//! `available_bandwidth(client_address_bs58, available)`.
//!
//! What happens to each, in the one transaction that also creates today's schema:
//! - **messages** are kept, with their ids (so their order), for the same client addresses.
//!   They had no timestamp; they get the import time, so retention counts from the upgrade
//!   rather than deleting them at the first cleaner run.
//! - **shared keys** were AES-128-CTR + HMAC-BLAKE3 material, which today's clients cannot use:
//!   the table is renamed to [`LEGACY_SHARED_KEYS`], not dropped, and the log says that those
//!   clients must register again (registering delivers their stored messages).
//! - **bandwidth** rows are carried over, valid until the end of the import's UTC day (a free
//!   allowance lasts one UTC day; 1.0.x allowances had no expiry).
//! - `_sqlx_migrations` is renamed to [`LEGACY_MIGRATIONS`], a record of where the file came
//!   from.
//!
//! Before the transaction, a copy of the whole database (`VACUUM INTO`, which includes what
//! is still in its WAL) is kept next to it: `<file>.<label>.bak`.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use tracing::{info, warn};

use crate::{OpenError, UnixTime};

/// Where the 1.0.x shared keys are kept after the import.
pub const LEGACY_SHARED_KEYS: &str = "legacy_1_0_shared_keys";
/// Where the 1.0.x sqlx migration record is kept after the import.
pub const LEGACY_MIGRATIONS: &str = "legacy_1_0_sqlx_migrations";

/// The columns each 1.0.x table must have for the import to know what it reads.
const LEGACY_TABLES: &[(&str, &[&str])] = &[
    (
        "shared_keys",
        &[
            "client_address_bs58",
            "derived_aes128_ctr_blake3_hmac_keys_bs58",
        ],
    ),
    ("message_store", &["id", "client_address_bs58", "content"]),
    ("available_bandwidth", &["client_address_bs58", "available"]),
];

/// What an unversioned (`user_version = 0`) database file holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unversioned {
    /// No tables of its own: a new file, to be created with today's schema.
    Empty,
    /// The 1.0.x gateway's schema.
    Legacy,
}

/// Tells a new file from a 1.0.x store; anything else is refused with a clear error rather
/// than migrated over (our migration would fail on the existing tables, or worse, succeed
/// beside tables nobody reads).
pub(crate) fn classify(conn: &Connection, path: &Path) -> Result<Unversioned, OpenError> {
    let open = |source| OpenError::Open {
        path: path.to_path_buf(),
        source,
    };
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .and_then(|mut stmt| stmt.query_map([], |row| row.get(0))?.collect())
        .map_err(open)?;
    if tables.is_empty() {
        return Ok(Unversioned::Empty);
    }
    let foreign = |reason: String| OpenError::ForeignSchema {
        path: path.to_path_buf(),
        reason,
    };
    if !tables.iter().any(|t| t == "_sqlx_migrations") {
        return Err(foreign(format!(
            "it has tables ({}) but no schema version",
            tables.join(", ")
        )));
    }
    for (table, columns) in LEGACY_TABLES {
        let found: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info(?1)")
            .and_then(|mut stmt| stmt.query_map([table], |row| row.get(0))?.collect())
            .map_err(open)?;
        if let Some(missing) = columns.iter().find(|c| !found.iter().any(|f| f == *c)) {
            return Err(foreign(format!(
                "it has sqlx migrations but not the 1.0.x gateway's schema (table {table} has no column {missing}); only 1.0.x stores can be imported"
            )));
        }
    }
    Ok(Unversioned::Legacy)
}

/// The backup kept before importing `path`: `<file>.<label>.bak`.
pub(crate) fn backup_path(path: &Path, label: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{label}.bak"));
    path.with_file_name(name)
}

/// Copies the database to its backup path, unless a backup is there already: that one was
/// taken before an earlier import attempt that failed (and so changed nothing), and is the
/// same data.
pub(crate) fn back_up(conn: &Connection, path: &Path, label: &str) -> Result<PathBuf, OpenError> {
    let backup = backup_path(path, label);
    if backup.exists() {
        info!(backup = %backup.display(), "a backup of the 1.0.x store exists already; keeping it");
        return Ok(backup);
    }
    let target = backup
        .to_str()
        .ok_or_else(|| OpenError::Backup {
            path: backup.clone(),
            reason: "the path is not valid UTF-8".to_owned(),
        })?
        .to_owned();
    conn.execute("VACUUM INTO ?1", [target])
        .map_err(|e| OpenError::Backup {
            path: backup.clone(),
            reason: e.to_string(),
        })?;
    info!(backup = %backup.display(), "kept a copy of the 1.0.x store before importing it");
    Ok(backup)
}

/// Counts of what the import did, for the log and for tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Imported {
    pub(crate) messages: u64,
    pub(crate) shared_keys_set_aside: u64,
    pub(crate) bandwidth_rows: u64,
}

/// Imports the 1.0.x tables into today's schema, which `create_schema` creates. Runs inside
/// the caller's transaction: on any error nothing has changed.
pub(crate) fn import(
    conn: &Connection,
    create_schema: &str,
    now: UnixTime,
) -> rusqlite::Result<Imported> {
    conn.execute_batch(&format!(
        "ALTER TABLE shared_keys RENAME TO {LEGACY_SHARED_KEYS};
         ALTER TABLE message_store RENAME TO legacy_1_0_message_store;
         ALTER TABLE available_bandwidth RENAME TO legacy_1_0_available_bandwidth;
         ALTER TABLE _sqlx_migrations RENAME TO {LEGACY_MIGRATIONS};
         DROP INDEX IF EXISTS message_store_index;"
    ))?;
    conn.execute_batch(create_schema)?;
    let messages = conn.execute(
        "INSERT INTO message_store (id, client_address_bs58, content, timestamp)
         SELECT id, client_address_bs58, content, ?1 FROM legacy_1_0_message_store ORDER BY id",
        [now.as_secs()],
    )?;
    // `clients` was just created, and the 1.0.x addresses are unique: no conflict possible.
    conn.execute(
        "INSERT INTO clients (client_address_bs58)
         SELECT client_address_bs58 FROM legacy_1_0_available_bandwidth",
        [],
    )?;
    // A free allowance lasts until the end of the UTC day it was granted on (its expiration
    // is that day's 00:00).
    let today_start = now.start_of_utc_day().as_secs();
    let bandwidth_rows = conn.execute(
        "INSERT INTO available_bandwidth (client_id, available, expiration)
         SELECT c.id, b.available, ?1
         FROM legacy_1_0_available_bandwidth b
         JOIN clients c ON c.client_address_bs58 = b.client_address_bs58",
        [today_start],
    )?;
    let shared_keys_set_aside: i64 = conn.query_row(
        &format!("SELECT count(*) FROM {LEGACY_SHARED_KEYS}"),
        [],
        |row| row.get(0),
    )?;
    conn.execute_batch(
        "DROP TABLE legacy_1_0_message_store; DROP TABLE legacy_1_0_available_bandwidth;",
    )?;
    Ok(Imported {
        messages: messages as u64,
        shared_keys_set_aside: u64::try_from(shared_keys_set_aside).unwrap_or(0),
        bandwidth_rows: bandwidth_rows as u64,
    })
}

/// Says what the import did, and what operators and clients must know.
pub(crate) fn report(path: &Path, imported: &Imported) {
    info!(
        path = %path.display(),
        messages = imported.messages,
        bandwidth = imported.bandwidth_rows,
        "imported the 1.0.x store: stored messages kept for their clients; bandwidth allowances carried over until the end of today (UTC)"
    );
    if imported.shared_keys_set_aside > 0 {
        warn!(
            path = %path.display(),
            clients = imported.shared_keys_set_aside,
            table = LEGACY_SHARED_KEYS,
            "{} clients registered with the 1.0.x gateway must register again: their AES-128-CTR keys cannot be used by today's client protocol (kept aside in table {LEGACY_SHARED_KEYS}); their stored messages are delivered when they do",
            imported.shared_keys_set_aside
        );
    }
}
