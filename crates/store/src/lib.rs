//! The gateway's durable state in SQLite: client inboxes (messages stored for clients that are
//! offline), shared keys, bandwidth, and the serial numbers of zk-nym tickets spent here.
//!
//! [`Store::open`] opens (or creates) the database file, migrates its schema and starts its
//! threads: one **writer** that owns the only write connection and commits queued commands in
//! batches (group commit), one **reader** on a second, query-only connection, and one
//! **checkpointer** that copies the WAL into the database file. [`Store`] is
//! a cheap `Clone` handle; its methods are `async` and resolve once the work is done, for a
//! write that means *committed*. The queues in front of both threads are bounded: when they
//! are full, callers wait.
//!
//! Messages leave the store only by [`Store::delete_messages`] (called once they were written
//! to the client's socket), by retention ([`Store::delete_messages_older_than`]) or by
//! [`Store::forget_client`].
//!
//! # Layout
//! - [`config`] — [`StoreConfig`]: path, durability, queue and batch sizes, quotas.
//! - [`error`] — [`OpenError`] (from [`Store::open`]) and [`StoreError`] (from operations).
//! - `handle` — [`Store`], the async API; turns calls into commands for the two threads.
//! - `schema` — opening connections, pragmas, migrations (`PRAGMA user_version`).
//! - `legacy` — importing a store written by the 1.0.x gateway (sqlx schema), with a backup.
//! - `writer` — the writer thread: batching, one transaction per batch, a savepoint per command
//!   of several statements.
//! - `checkpoint` — the checkpointer thread: copies the WAL into the database file off the
//!   writer, and keeps the WAL bounded.
//! - `write_ops` — the SQL of each write command.
//! - `quota` — per-client inbox usage, cached in the writer.
//! - `reader` — the reader thread and the SQL of each read.
//! - [`types`] — [`ClientAddress`], [`UnixTime`] and the records the API returns.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checkpoint;
pub mod config;
pub mod error;
mod handle;
mod legacy;
mod quota;
mod reader;
mod schema;
pub mod types;
mod write_ops;
mod writer;

pub use config::StoreConfig;
pub use error::{OpenError, StoreError};
pub use handle::{PendingInsert, Store};
pub use legacy::{LEGACY_MIGRATIONS, LEGACY_SHARED_KEYS};
pub use types::{
    Bandwidth, ClientAddress, SharedKeyRecord, StoreCounters, StoreStats, StoredMessage, UnixTime,
};

/// The base58 text under which a client's rows are stored.
pub(crate) fn address_bs58(client: &ClientAddress) -> String {
    bs58::encode(client.as_bytes()).into_string()
}
