//! Store configuration.

use std::path::PathBuf;
use std::time::Duration;

/// How to open and run a [`Store`](crate::Store). Build it with [`StoreConfig::new`] and
/// change the fields you need; every field has a sane default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The SQLite database file. Missing parent directories are created.
    pub path: PathBuf,
    /// `PRAGMA synchronous=FULL` instead of `NORMAL`. Default `false`.
    ///
    /// The store runs in WAL mode. With `NORMAL`, a committed transaction survives a crash of
    /// the process (even SIGKILL), because it is in the WAL file the OS already holds; only an
    /// OS crash or power loss can lose the last transactions (never corrupt the file). `FULL`
    /// also syncs the WAL on every commit, which closes that window at the cost of one fsync
    /// per batch.
    pub synchronous_full: bool,
    /// How long a connection waits for a lock held by another connection before failing.
    /// Default 5 s.
    pub busy_timeout: Duration,
    /// Capacity of each command queue (writer and reader). When full, callers wait.
    /// Default 8192; 0 is treated as 1.
    pub queue_capacity: usize,
    /// Most commands the writer commits in one transaction. Default 512; 0 is treated as 1.
    pub max_batch: usize,
    /// Most messages stored for one client; 0 = unlimited. Default 20 000.
    pub max_messages_per_client: u64,
    /// Most content bytes stored for one client; 0 = unlimited. Default 64 MiB.
    pub max_bytes_per_client: u64,
    /// Most clients whose inbox usage the writer keeps in memory; others are counted again
    /// (one indexed query) when they next receive a message. Default 65 536; 0 is treated as 1.
    pub quota_cache_capacity: usize,
    /// Page cache of the write connection, in KiB (`PRAGMA cache_size`). Deleting delivered
    /// messages reads the pages they were written to; with SQLite's default of 2 MiB those
    /// were mostly evicted again, and deliveries ran about a third slower. Default 16 MiB;
    /// 0 is treated as 1.
    pub writer_cache_kib: u32,
    /// Copy the WAL into the database file (checkpoint) on a thread of its own instead of in
    /// the writer, which then waits for the disk only for its own commits. Default `true`.
    /// Where the WAL's size cannot be read (not unix, no WAL mode), SQLite's own checkpoints
    /// run in the writer, as with `false`: every 1000 pages.
    pub background_checkpoints: bool,
    /// With `background_checkpoints`: pages (4 KiB each) the WAL gains between two
    /// checkpoints. Default 1000 (SQLite's own default); 0 is treated as 1.
    pub checkpoint_pages: u32,
    /// With `background_checkpoints`: once the WAL holds this many pages, the writer rewinds
    /// it between two transactions (a `RESTART` checkpoint: it copies what the checkpoint
    /// thread has not yet and waits for readers of older pages). Under steady writes this is
    /// what bounds the WAL file, to about this size plus one transaction. Default 4096
    /// (16 MiB); 0 is treated as 1.
    pub wal_restart_pages: u32,
    /// Names the copy kept before a store written by the 1.0.x gateway is imported:
    /// `<path>.<legacy_backup_label>.bak`. The gateway passes the version its configuration
    /// was written by. Default `1.0.x`.
    pub legacy_backup_label: String,
}

impl StoreConfig {
    /// Defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            synchronous_full: false,
            busy_timeout: Duration::from_secs(5),
            queue_capacity: 8192,
            max_batch: 512,
            max_messages_per_client: 20_000,
            max_bytes_per_client: 64 * 1024 * 1024,
            quota_cache_capacity: 65_536,
            writer_cache_kib: 16 * 1024,
            background_checkpoints: true,
            checkpoint_pages: 1000,
            wal_restart_pages: 4096,
            legacy_backup_label: "1.0.x".to_owned(),
        }
    }
}
