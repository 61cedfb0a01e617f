//! Errors of the store: [`OpenError`] from [`Store::open`](crate::Store::open) (creating,
//! migrating, importing a 1.0.x store, starting the threads), and [`StoreError`] from each
//! operation on an open store.

use std::path::PathBuf;
use std::sync::Arc;

/// Why [`Store::open`](crate::Store::open) failed. Each variant says what failed and where.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory for the database file could not be created.
    #[error("cannot create directory {path} for the store: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database file could not be created (no space, no permission).
    #[error("cannot create store file {path}: {source}")]
    CreateFile {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be opened or set up: not a database, corrupt, unreadable.
    #[error("cannot open store {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Another process or connection holds a lock on the database for longer than the busy
    /// timeout (for example a second gateway on the same file).
    #[error("store {path} is locked by another process or connection: {source}")]
    Locked {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database was written by a newer version of this software.
    #[error("store {path} has schema version {found}, newer than the supported {supported}")]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The database has tables but not a schema this build knows how to migrate (neither its
    /// own, versioned in `PRAGMA user_version`, nor the 1.0.x gateway's). Nothing was changed.
    #[error("store {path} was not written by this gateway or by a 1.0.x gateway: {reason}; nothing was changed")]
    ForeignSchema {
        /// The database file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The copy kept before importing a 1.0.x store could not be written; nothing was
    /// imported.
    #[error("cannot write the backup {path} of the 1.0.x store (nothing was changed): {reason}")]
    Backup {
        /// The backup file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A schema migration failed; the file was left at the previous version.
    #[error("migrating store {path} to schema version {version} failed: {source}")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The version being migrated to.
        version: i64,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A store thread could not be started.
    #[error("cannot start the store's {thread} thread: {source}")]
    Spawn {
        /// Which thread.
        thread: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// Why an operation on an open store failed. Each variant says what failed and where.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// One operation failed in SQLite; only that operation had no effect.
    #[error("store operation {op} failed: {source}")]
    Sqlite {
        /// The operation, e.g. `insert_message`.
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The batch's transaction could not be started or committed, so this operation had no
    /// effect (nor had the others in its batch).
    #[error("store transaction failed: {source}")]
    Transaction {
        /// SQLite's error, shared by every operation of the batch.
        source: Arc<rusqlite::Error>,
    },
    /// Another operation of the same batch hit an error that made SQLite roll back the whole
    /// transaction (disk full, I/O error), so this operation had no effect.
    #[error("store transaction was rolled back by another operation's error")]
    RolledBack,
    /// The client's inbox is full; the message was not stored.
    #[error("inbox of {client} is full ({messages} messages, {bytes} bytes stored)")]
    QuotaExceeded {
        /// The client's address, base58.
        client: String,
        /// Messages already stored for it.
        messages: u64,
        /// Content bytes already stored for it.
        bytes: u64,
    },
    /// The operation needs a registered client (one with a shared key) and this one is not.
    #[error("client {client} is not registered")]
    NotRegistered {
        /// The client's address, base58.
        client: String,
    },
    /// A row does not have the shape the schema promises (edited or damaged database).
    #[error("invalid row in {table}: {reason}")]
    InvalidRow {
        /// The table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The store was closed (or its thread is gone); the operation was not run.
    #[error("the store is closed")]
    Closed,
    /// A store thread panicked. Everything it acknowledged was committed.
    #[error("the store's {thread} thread panicked")]
    Panicked {
        /// Which thread.
        thread: &'static str,
    },
}

impl StoreError {
    /// Wraps a SQLite error from operation `op`.
    pub(crate) fn sqlite(op: &'static str) -> impl FnOnce(rusqlite::Error) -> Self {
        move |source| Self::Sqlite { op, source }
    }
}
