//! Opening connections, pragmas and schema migrations.
//!
//! The schema version lives in `PRAGMA user_version`; migration `n` (1-based) takes the file
//! from version `n - 1` to `n` in one transaction, so a failed migration leaves the file as it
//! was. Migrations are only ever appended.

use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use tracing::{info, warn};

use crate::legacy::{self, Unversioned};
use crate::{OpenError, StoreConfig, UnixTime};

/// The schema, one entry per version. Column names match the reference gateway's, so tools
/// that read its database read ours.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    "CREATE TABLE clients (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client_address_bs58 TEXT NOT NULL UNIQUE
    );
    CREATE TABLE shared_keys (
        client_id INTEGER PRIMARY KEY REFERENCES clients(id),
        client_address_bs58 TEXT NOT NULL UNIQUE,
        derived_aes256_gcm_siv_key BLOB NOT NULL,
        last_used_authentication INTEGER NULL -- unix seconds
    );
    CREATE TABLE available_bandwidth (
        client_id INTEGER PRIMARY KEY REFERENCES clients(id),
        available INTEGER NOT NULL,
        expiration INTEGER NOT NULL -- unix seconds
    );
    CREATE TABLE message_store (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client_address_bs58 TEXT NOT NULL,
        content BLOB NOT NULL,
        timestamp INTEGER NOT NULL -- unix seconds
    );
    CREATE INDEX message_store_client_id ON message_store (client_address_bs58, id);",
    // Version 2: zk-nym tickets. A spent serial number stays when its client is forgotten
    // (`ON DELETE SET NULL`): forgetting a client must not make its tickets spendable again.
    "CREATE TABLE received_ticket (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client_id INTEGER NULL REFERENCES clients(id) ON DELETE SET NULL,
        received_at INTEGER NOT NULL, -- unix seconds
        rejected BOOLEAN NULL
    );
    CREATE INDEX received_ticket_received_at ON received_ticket (received_at);
    CREATE TABLE ticket_data (
        ticket_id INTEGER PRIMARY KEY REFERENCES received_ticket(id),
        serial_number BLOB NOT NULL UNIQUE,
        data BLOB NULL -- the credential as received, until the signers verified it
    );",
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// One query per table naming every column the code uses: preparing them at open turns a
/// foreign or damaged schema into a clear error instead of failures later.
const SCHEMA_PROBES: &[&str] = &[
    "SELECT id, client_address_bs58 FROM clients LIMIT 0",
    "SELECT client_id, client_address_bs58, derived_aes256_gcm_siv_key, last_used_authentication
     FROM shared_keys LIMIT 0",
    "SELECT client_id, available, expiration FROM available_bandwidth LIMIT 0",
    "SELECT id, client_address_bs58, content, timestamp FROM message_store LIMIT 0",
    "SELECT id, client_id, received_at, rejected FROM received_ticket LIMIT 0",
    "SELECT ticket_id, serial_number, data FROM ticket_data LIMIT 0",
];

/// The write connection, and whether it is in WAL mode.
pub(crate) struct WriteConnection {
    pub(crate) conn: Connection,
    pub(crate) wal: bool,
}

/// Opens the write connection: creates the file, sets WAL and the pragmas, migrates.
pub(crate) fn open_writer(config: &StoreConfig) -> Result<WriteConnection, OpenError> {
    let path = config.path.as_path();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    create_private(path).map_err(|source| OpenError::CreateFile {
        path: path.to_path_buf(),
        source,
    })?;
    let conn = Connection::open(path).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(config.busy_timeout)
        .map_err(|e| open_error(path, e))?;

    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .map_err(|e| open_error(path, e))?;
    let wal = mode.eq_ignore_ascii_case("wal");
    if !wal {
        // Some file systems (network mounts) cannot do WAL; the store still works, slower and
        // with readers blocking the writer.
        warn!(path = %path.display(), journal_mode = %mode, "store could not switch to WAL mode");
    }
    let synchronous = if config.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    // temp_store=MEMORY: SQLite's temporary storage (the rows a `RETURNING` statement hands
    // back, the index it builds of an `IN (…)` list, a savepoint's journal of the pages a
    // command changed) may otherwise go to temporary files, and the batched delete uses all
    // three: deliveries ran about a quarter slower without it.
    // cache_size: deleting delivered messages reads the pages they were written to, often
    // long evicted from SQLite's default 2 MiB cache; see `StoreConfig::writer_cache_kib`.
    let cache_kib = config.writer_cache_kib.max(1);
    conn.execute_batch(&format!(
        "PRAGMA synchronous={synchronous}; PRAGMA foreign_keys=ON;
         PRAGMA temp_store=MEMORY; PRAGMA cache_size=-{cache_kib};"
    ))
    .map_err(|e| open_error(path, e))?;

    // A 1.0.x store is copied aside before anything changes it; the copy needs no
    // transaction open, so it is taken here and the import itself runs in `migrate`.
    if user_version(&conn, path)? == 0 && legacy::classify(&conn, path)? == Unversioned::Legacy {
        legacy::back_up(&conn, path, &config.legacy_backup_label)?;
    }
    migrate(&conn, path)?;
    probe_schema(&conn, path)?;
    Ok(WriteConnection { conn, wal })
}

/// Stops SQLite's checkpoints in the write connection: the checkpointer thread runs them.
pub(crate) fn disable_autocheckpoint(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    conn.execute_batch("PRAGMA wal_autocheckpoint=0;")
        .map_err(|e| open_error(path, e))
}

/// Creates an empty database file readable by its owner only (0600 on unix), unless it
/// exists: it holds clients' shared keys and messages. SQLite gives its `-wal` and `-shm`
/// files the mode of the database file.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens the read connection. It is read-write at the file level (a WAL reader must be able
/// to update the shared-memory index) but `query_only`, so it can never change data.
pub(crate) fn open_reader(config: &StoreConfig) -> Result<Connection, OpenError> {
    let path = config.path.as_path();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    conn.busy_timeout(config.busy_timeout)
        .map_err(|e| open_error(path, e))?;
    conn.execute_batch("PRAGMA query_only=ON;")
        .map_err(|e| open_error(path, e))?;
    probe_schema(&conn, path)?;
    Ok(conn)
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    // IMMEDIATE takes the write lock before reading the version, so two processes opening
    // the same new file cannot both run a migration.
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| open_error(path, e))?;
    let result = migrate_locked(conn, path);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute_batch(end);
    let imported = result?;
    ended.map_err(|source| OpenError::Migration {
        path: path.to_path_buf(),
        version: SCHEMA_VERSION,
        source,
    })?;
    if let Some(imported) = imported {
        legacy::report(path, &imported);
    }
    Ok(())
}

fn user_version(conn: &Connection, path: &Path) -> Result<i64, OpenError> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| open_error(path, e))
}

/// Migrates to [`SCHEMA_VERSION`]; returns what was imported if the file was a 1.0.x store.
fn migrate_locked(conn: &Connection, path: &Path) -> Result<Option<legacy::Imported>, OpenError> {
    let mut found = user_version(conn, path)?;
    let mut imported = None;
    // Classified again under the write lock: another process may have migrated meanwhile.
    if found == 0 && legacy::classify(conn, path)? == Unversioned::Legacy {
        let now = UnixTime::now();
        imported = Some(
            legacy::import(conn, MIGRATIONS[0], now)
                .and_then(|counts| conn.pragma_update(None, "user_version", 1).map(|()| counts))
                .map_err(|source| OpenError::Migration {
                    path: path.to_path_buf(),
                    version: 1,
                    source,
                })?,
        );
        found = 1;
    }
    if found > SCHEMA_VERSION {
        return Err(OpenError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for version in (found + 1)..=SCHEMA_VERSION {
        let sql = MIGRATIONS[(version - 1) as usize];
        conn.execute_batch(sql)
            .and_then(|()| conn.pragma_update(None, "user_version", version))
            .map_err(|source| OpenError::Migration {
                path: path.to_path_buf(),
                version,
                source,
            })?;
        info!(path = %path.display(), version, "store schema migrated");
    }
    Ok(imported)
}

fn probe_schema(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    for sql in SCHEMA_PROBES {
        conn.prepare(sql).map_err(|e| open_error(path, e))?;
    }
    Ok(())
}

/// Classifies an error met while opening: a lock held elsewhere gets its own variant because
/// the operator's fix (stop the other process) differs from a damaged file's.
fn open_error(path: &Path, source: rusqlite::Error) -> OpenError {
    let path = path.to_path_buf();
    match source.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            OpenError::Locked { path, source }
        }
        _ => OpenError::Open { path, source },
    }
}
