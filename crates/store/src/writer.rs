//! The writer thread: the only connection that changes the database.
//!
//! It takes every queued command available (up to `max_batch`), runs them in one transaction,
//! each inside its own savepoint, commits, and only then replies to the callers whose commands
//! succeeded. A command that fails is rolled back to its savepoint and answered at once; the
//! others in the batch still commit. One commit (and, with `synchronous_full`, one fsync) per
//! batch instead of per message is what lets the store keep up with a busy mix port.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::quota::{Limits, QuotaCache};
use crate::{write_ops, Bandwidth, StoreConfig, StoreCounters, StoreError};

/// A failing disk fails every batch, and batches come as fast as messages: the writer warns
/// about failed transactions at most once per this period and counts the rest.
const WARNING_PERIOD: Duration = Duration::from_secs(10);

/// Where the writer sends a command's result.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What callers put in the writer's queue.
pub(crate) enum ToWriter {
    Command(WriteCommand),
    /// Finish what is queued, commit, close the connection, then signal.
    Close(oneshot::Sender<()>),
}

/// One write; the fields are the arguments of the [`Store`](crate::Store) method of that name.
pub(crate) enum WriteCommand {
    InsertMessage {
        client: String,
        content: Vec<u8>,
        now: i64,
        reply: Reply<i64>,
    },
    DeleteMessages {
        ids: Vec<i64>,
        reply: Reply<()>,
    },
    DeleteMessagesOlderThan {
        cutoff: i64,
        reply: Reply<u64>,
    },
    UpsertSharedKey {
        client: String,
        key: [u8; 32],
        reply: Reply<()>,
    },
    SetLastUsedAuthentication {
        client: String,
        timestamp: i64,
        reply: Reply<()>,
    },
    EnsureBandwidth {
        client: String,
        reply: Reply<Bandwidth>,
    },
    SetBandwidth {
        client: String,
        bandwidth: Bandwidth,
        reply: Reply<()>,
    },
    ForgetClient {
        client: String,
        reply: Reply<()>,
    },
}

/// A command that succeeded inside the open transaction, waiting for its commit.
enum Pending {
    Id(Reply<i64>, i64),
    Unit(Reply<()>),
    Count(Reply<u64>, u64),
    Bandwidth(Reply<Bandwidth>, Bandwidth),
}

impl Pending {
    fn succeed(self) {
        match self {
            Self::Id(reply, id) => answer(reply, Ok(id)),
            Self::Unit(reply) => answer(reply, Ok(())),
            Self::Count(reply, n) => answer(reply, Ok(n)),
            Self::Bandwidth(reply, b) => answer(reply, Ok(b)),
        }
    }

    fn fail(self, err: StoreError) {
        match self {
            Self::Id(reply, _) => answer(reply, Err(err)),
            Self::Unit(reply) => answer(reply, Err(err)),
            Self::Count(reply, _) => answer(reply, Err(err)),
            Self::Bandwidth(reply, _) => answer(reply, Err(err)),
        }
    }
}

impl WriteCommand {
    /// Answers without running: the transaction could not even start.
    fn fail(self, err: StoreError) {
        match self {
            Self::InsertMessage { reply, .. } => answer(reply, Err(err)),
            Self::DeleteMessagesOlderThan { reply, .. } => answer(reply, Err(err)),
            Self::EnsureBandwidth { reply, .. } => answer(reply, Err(err)),
            Self::DeleteMessages { reply, .. }
            | Self::UpsertSharedKey { reply, .. }
            | Self::SetLastUsedAuthentication { reply, .. }
            | Self::SetBandwidth { reply, .. }
            | Self::ForgetClient { reply, .. } => answer(reply, Err(err)),
        }
    }
}

/// Sends a result. A caller that stopped waiting is no error: a successful command took
/// effect all the same.
fn answer<T>(reply: Reply<T>, result: Result<T, StoreError>) {
    let _ = reply.send(result);
}

/// Counters shared between the writer and the handles.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    transactions: AtomicU64,
    commands: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> StoreCounters {
        StoreCounters {
            transactions_committed: self.transactions.load(Ordering::Relaxed),
            commands_committed: self.commands.load(Ordering::Relaxed),
            commands_failed: self.failed.load(Ordering::Relaxed),
        }
    }

    fn failed(&self, n: usize) {
        self.failed.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    conn: Connection,
    quota: QuotaCache,
    limits: Limits,
    max_batch: usize,
    counters: Arc<Counters>,
    /// When the writer last warned, and how many warnings it held back since.
    last_warning: Option<Instant>,
    suppressed_warnings: u64,
}

impl Writer {
    pub(crate) fn new(conn: Connection, config: &StoreConfig, counters: Arc<Counters>) -> Self {
        // Room for every statement the writer prepares, so none is ever re-prepared.
        conn.set_prepared_statement_cache_capacity(64);
        Self {
            conn,
            quota: QuotaCache::new(config.quota_cache_capacity),
            limits: Limits {
                max_messages: config.max_messages_per_client,
                max_bytes: config.max_bytes_per_client,
            },
            max_batch: config.max_batch.max(1),
            counters,
            last_warning: None,
            suppressed_warnings: 0,
        }
    }

    /// `Some(held back since the last warning)` if a warning may be logged now.
    fn may_warn(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|last| now.duration_since(last) < WARNING_PERIOD)
        {
            self.suppressed_warnings += 1;
            return None;
        }
        self.last_warning = Some(now);
        Some(std::mem::take(&mut self.suppressed_warnings))
    }

    /// The thread's body. Returns when the queue is closed (by [`ToWriter::Close`] or because
    /// every handle was dropped) and everything in it was processed.
    pub(crate) fn run(mut self, mut queue: mpsc::Receiver<ToWriter>) {
        let mut closers = Vec::new();
        while let Some(first) = queue.blocking_recv() {
            let mut batch = Vec::new();
            let mut next = Some(first);
            while let Some(item) = next {
                match item {
                    ToWriter::Command(command) => batch.push(command),
                    ToWriter::Close(done) => {
                        // Refuse new commands but keep draining the ones already queued.
                        queue.close();
                        closers.push(done);
                    }
                }
                next = if batch.len() < self.max_batch {
                    queue.try_recv().ok()
                } else {
                    None
                };
            }
            if !batch.is_empty() {
                self.run_batch(batch);
            }
        }
        // The last connection to close checkpoints the WAL into the database file.
        if let Err((_, err)) = self.conn.close() {
            warn!(cause = %err, "closing the store's write connection failed");
        }
        debug!("store writer stopped");
        for done in closers {
            let _ = done.send(());
        }
    }

    fn run_batch(&mut self, batch: Vec<WriteCommand>) {
        let mut commands = batch.into_iter();
        loop {
            if let Err(err) = run(&self.conn, "BEGIN IMMEDIATE") {
                if let Some(suppressed) = self.may_warn() {
                    warn!(cause = %err, suppressed, "store could not begin a transaction");
                }
                let source = Arc::new(err);
                self.counters.failed(commands.len());
                for command in commands {
                    command.fail(StoreError::Transaction {
                        source: source.clone(),
                    });
                }
                return;
            }
            let mut pending = Vec::new();
            let mut aborted = false;
            for command in commands.by_ref() {
                self.apply(command, &mut pending);
                // A severe error (disk full, I/O error) makes SQLite roll back the whole
                // transaction, and with it every command that already succeeded in it.
                if self.conn.is_autocommit() {
                    aborted = true;
                    break;
                }
            }
            if !aborted {
                self.commit(pending);
                return;
            }
            if let Some(suppressed) = self.may_warn() {
                warn!(
                    suppressed,
                    "store transaction was rolled back by an error; retrying the rest of the batch"
                );
            }
            self.quota.clear();
            self.counters.failed(pending.len());
            for done in pending {
                done.fail(StoreError::RolledBack);
            }
            if commands.as_slice().is_empty() {
                return;
            }
        }
    }

    fn commit(&mut self, pending: Vec<Pending>) {
        match run(&self.conn, "COMMIT") {
            Ok(()) => {
                self.counters.transactions.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .commands
                    .fetch_add(pending.len() as u64, Ordering::Relaxed);
                for done in pending {
                    done.succeed();
                }
            }
            Err(err) => {
                if let Some(suppressed) = self.may_warn() {
                    warn!(cause = %err, commands = pending.len(), suppressed, "store commit failed");
                }
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                self.quota.clear();
                self.counters.failed(pending.len());
                let source = Arc::new(err);
                for done in pending {
                    done.fail(StoreError::Transaction {
                        source: source.clone(),
                    });
                }
            }
        }
    }

    fn apply(&mut self, command: WriteCommand, pending: &mut Vec<Pending>) {
        let limits = self.limits;
        match command {
            WriteCommand::InsertMessage {
                client,
                content,
                now,
                reply,
            } => self.step(reply, pending, Pending::Id, |conn, quota| {
                write_ops::insert_message(conn, quota, limits, &client, &content, now)
            }),
            WriteCommand::DeleteMessages { ids, reply } => {
                self.step(reply, pending, unit, |conn, quota| {
                    write_ops::delete_messages(conn, quota, &ids)
                })
            }
            WriteCommand::DeleteMessagesOlderThan { cutoff, reply } => {
                self.step(reply, pending, Pending::Count, |conn, quota| {
                    write_ops::delete_messages_older_than(conn, quota, cutoff)
                })
            }
            WriteCommand::UpsertSharedKey { client, key, reply } => {
                self.step(reply, pending, unit, |conn, _| {
                    write_ops::upsert_shared_key(conn, &client, &key)
                })
            }
            WriteCommand::SetLastUsedAuthentication {
                client,
                timestamp,
                reply,
            } => self.step(reply, pending, unit, |conn, _| {
                write_ops::set_last_used_authentication(conn, &client, timestamp)
            }),
            WriteCommand::EnsureBandwidth { client, reply } => {
                self.step(reply, pending, Pending::Bandwidth, |conn, _| {
                    write_ops::ensure_bandwidth(conn, &client)
                })
            }
            WriteCommand::SetBandwidth {
                client,
                bandwidth,
                reply,
            } => self.step(reply, pending, unit, |conn, _| {
                write_ops::set_bandwidth(conn, &client, bandwidth)
            }),
            WriteCommand::ForgetClient { client, reply } => {
                self.step(reply, pending, unit, |conn, quota| {
                    write_ops::forget_client(conn, quota, &client)
                })
            }
        }
    }

    /// Runs one command in a savepoint; on success its reply waits for the commit, on failure
    /// the savepoint is rolled back and the caller answered now.
    fn step<T>(
        &mut self,
        reply: Reply<T>,
        pending: &mut Vec<Pending>,
        wrap: fn(Reply<T>, T) -> Pending,
        op: impl FnOnce(&Connection, &mut QuotaCache) -> Result<T, StoreError>,
    ) {
        match self.savepoint(op) {
            Ok(value) => pending.push(wrap(reply, value)),
            Err(err) => {
                self.counters.failed(1);
                answer(reply, Err(err));
            }
        }
    }

    fn savepoint<T>(
        &mut self,
        op: impl FnOnce(&Connection, &mut QuotaCache) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        run(&self.conn, "SAVEPOINT command").map_err(StoreError::sqlite("savepoint"))?;
        // Ops touch the cache only after their SQL succeeded, so a failed op left it as it
        // was; a failed release after a successful op did not, and the cache is recounted.
        let result = match op(&self.conn, &mut self.quota) {
            Ok(value) => run(&self.conn, "RELEASE command")
                .map(|()| value)
                .map_err(|err| {
                    self.quota.clear();
                    StoreError::Sqlite {
                        op: "release savepoint",
                        source: err,
                    }
                }),
            Err(err) => Err(err),
        };
        if result.is_err() && !self.conn.is_autocommit() {
            if let Err(err) = self
                .conn
                .execute_batch("ROLLBACK TO command; RELEASE command")
            {
                warn!(cause = %err, "store could not roll back a failed command");
            }
        }
        result
    }
}

/// Runs a statement from the statement cache: these run several times per batch, and
/// `execute_batch` would parse them every time.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

fn unit(reply: Reply<()>, (): ()) -> Pending {
    Pending::Unit(reply)
}
