//! The writer thread: the only connection that changes the database.
//!
//! It takes every queued command available (up to `max_batch`), runs them in one transaction,
//! commits, and only then replies to the callers whose commands succeeded. A command that
//! fails is undone and answered at once (a command of several statements runs in a savepoint
//! for that; one of a single statement needs none, see `Writer::step`); the others in the
//! batch still commit. One commit (and, with `synchronous_full`, one fsync) per batch instead
//! of per message is what lets the store keep up with a busy mix port. Checkpoints run on
//! another thread (`checkpoint`), so the writer waits for the disk only for its commits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::checkpoint::{self, Checkpointer};
use crate::quota::{Limits, QuotaCache};
use crate::{write_ops, Bandwidth, StoreConfig, StoreCounters, StoreError, UnixTime};

/// A failing disk fails every batch, and batches come as fast as messages: the writer warns
/// about failed transactions at most once per this period and counts the rest.
const WARNING_PERIOD: Duration = Duration::from_secs(10);

/// Longest a WAL rewind waits for readers of old pages (see `Writer::after_commit`).
const RESTART_WAIT: Duration = Duration::from_millis(250);

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
        now: UnixTime,
        reply: Reply<i64>,
    },
    DeleteMessages {
        ids: Vec<i64>,
        reply: Reply<()>,
    },
    DeleteMessagesOlderThan {
        cutoff: UnixTime,
        reply: Reply<u64>,
    },
    UpsertSharedKey {
        client: String,
        key: [u8; 32],
        reply: Reply<()>,
    },
    SetLastUsedAuthentication {
        client: String,
        timestamp: UnixTime,
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
    AddBandwidth {
        client: String,
        delta: i64,
        expiration: UnixTime,
        reply: Reply<Bandwidth>,
    },
    ForgetClient {
        client: String,
        reply: Reply<()>,
    },
    InsertReceivedTicket {
        client: String,
        received_at: UnixTime,
        serial_number: Vec<u8>,
        data: Vec<u8>,
        reply: Reply<Option<i64>>,
    },
    MarkTicketVerified {
        ticket_id: i64,
        reply: Reply<()>,
    },
    RejectTicket {
        ticket_id: i64,
        revoked: i64,
        reply: Reply<()>,
    },
}

/// A command that succeeded inside the open transaction, waiting for its commit.
enum Pending {
    Id(Reply<i64>, i64),
    Unit(Reply<()>),
    Count(Reply<u64>, u64),
    Bandwidth(Reply<Bandwidth>, Bandwidth),
    Ticket(Reply<Option<i64>>, Option<i64>),
}

impl Pending {
    fn succeed(self) {
        match self {
            Self::Id(reply, id) => answer(reply, Ok(id)),
            Self::Unit(reply) => answer(reply, Ok(())),
            Self::Count(reply, n) => answer(reply, Ok(n)),
            Self::Bandwidth(reply, b) => answer(reply, Ok(b)),
            Self::Ticket(reply, id) => answer(reply, Ok(id)),
        }
    }

    fn fail(self, err: StoreError) {
        match self {
            Self::Id(reply, _) => answer(reply, Err(err)),
            Self::Unit(reply) => answer(reply, Err(err)),
            Self::Count(reply, _) => answer(reply, Err(err)),
            Self::Bandwidth(reply, _) => answer(reply, Err(err)),
            Self::Ticket(reply, _) => answer(reply, Err(err)),
        }
    }
}

impl WriteCommand {
    /// Answers without running: the transaction could not even start.
    fn fail(self, err: StoreError) {
        match self {
            Self::InsertMessage { reply, .. } => answer(reply, Err(err)),
            Self::DeleteMessagesOlderThan { reply, .. } => answer(reply, Err(err)),
            Self::EnsureBandwidth { reply, .. } | Self::AddBandwidth { reply, .. } => {
                answer(reply, Err(err))
            }
            Self::InsertReceivedTicket { reply, .. } => answer(reply, Err(err)),
            Self::DeleteMessages { reply, .. }
            | Self::UpsertSharedKey { reply, .. }
            | Self::SetLastUsedAuthentication { reply, .. }
            | Self::SetBandwidth { reply, .. }
            | Self::ForgetClient { reply, .. }
            | Self::MarkTicketVerified { reply, .. }
            | Self::RejectTicket { reply, .. } => answer(reply, Err(err)),
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
    busy_timeout: Duration,
    counters: Arc<Counters>,
    /// When the writer last warned, and how many warnings it held back since.
    last_warning: Option<Instant>,
    suppressed_warnings: u64,
    /// The checkpointer thread, when checkpoints run off the writer (see `checkpoint`).
    checkpointer: Option<Checkpointer>,
    /// `StoreConfig::wal_restart_pages`, and the WAL size at which the next rewind is due
    /// (further out after one that readers kept from finishing).
    restart_pages: u32,
    restart_at: u32,
    /// The last commit was followed by a `RESTART`; the checkpointer is paused until the
    /// next commit has rewound the WAL.
    rewinding: bool,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        config: &StoreConfig,
        counters: Arc<Counters>,
        checkpointer: Option<Checkpointer>,
    ) -> Self {
        // Room for every statement the writer prepares, so none is ever re-prepared.
        conn.set_prepared_statement_cache_capacity(64);
        let restart_pages = config.wal_restart_pages.max(1);
        Self {
            conn,
            quota: QuotaCache::new(config.quota_cache_capacity),
            limits: Limits {
                max_messages: config.max_messages_per_client,
                max_bytes: config.max_bytes_per_client,
            },
            max_batch: config.max_batch.max(1),
            busy_timeout: config.busy_timeout,
            counters,
            last_warning: None,
            suppressed_warnings: 0,
            checkpointer,
            restart_pages,
            restart_at: restart_pages,
            rewinding: false,
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
        let mut items = Vec::with_capacity(self.max_batch);
        // All that is queued at once, up to max_batch: taking them together also frees their
        // queue slots together, so callers waiting for room (a full queue is what a busy
        // mix port makes) wake once per batch, not once per command.
        while queue.blocking_recv_many(&mut items, self.max_batch) > 0 {
            let mut batch = Vec::with_capacity(items.len());
            for item in items.drain(..) {
                match item {
                    ToWriter::Command(command) => batch.push(command),
                    ToWriter::Close(done) => {
                        // Refuse new commands but keep draining the ones already queued.
                        queue.close();
                        closers.push(done);
                    }
                }
            }
            if !batch.is_empty() {
                self.run_batch(batch);
            }
        }
        // The last connection to close checkpoints the WAL into the database file: the
        // checkpointer's goes before the writer's.
        drop(self.checkpointer.take());
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
                // Last first: a caller that awaits its commands in the order it queued them
                // (as `PendingInsert`s) is then woken once, by the first, when all are
                // done, instead of once per command, each wake-up costing the writer a
                // context switch on a busy machine.
                for done in pending.into_iter().rev() {
                    done.succeed();
                }
                self.after_commit();
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

    /// Tells the checkpointer how big the WAL is, and rewinds the WAL when it reached
    /// `restart_pages` (see `checkpoint`). Runs after the replies went out, so they do not
    /// wait for it.
    fn after_commit(&mut self) {
        let Some(checkpointer) = &self.checkpointer else {
            return;
        };
        let Some(frames) = checkpointer.index.frames() else {
            // Never seen: the header is SQLite's and was read fine at open. Should it happen,
            // SQLite's own checkpoints take over rather than the WAL growing unchecked.
            warn!("store cannot read the WAL size any more; checkpoints return to the writer");
            if self.rewinding {
                checkpointer.shared.resume();
            }
            self.checkpointer = None;
            self.rewinding = false;
            if let Err(err) = self.conn.execute_batch("PRAGMA wal_autocheckpoint=1000;") {
                warn!(cause = %err, "store could not turn its checkpoints back on");
            }
            return;
        };
        let shared = checkpointer.shared.clone();
        shared.committed(frames);
        if std::mem::take(&mut self.rewinding) {
            shared.resume();
        }
        if frames < self.restart_pages {
            // Rewound (by the last RESTART, or by SQLite in a quiet moment).
            self.restart_at = self.restart_pages;
            return;
        }
        if frames < self.restart_at {
            return;
        }
        // RESTART fails at once while another checkpoint runs: wait for the checkpointer's.
        shared.pause();
        // Its wait for readers of old pages uses the busy handler; ours are single
        // statements, but a foreign reader could hold a snapshot for long, and commands wait
        // meanwhile: give up sooner than the busy timeout, and retry only once the WAL grew
        // by as much again.
        let _ = self.conn.busy_timeout(RESTART_WAIT.min(self.busy_timeout));
        let outcome = checkpoint::checkpoint(&self.conn, "RESTART");
        let _ = self.conn.busy_timeout(self.busy_timeout);
        self.restart_at = match outcome {
            Ok(outcome) if !outcome.busy => self.restart_pages,
            Ok(outcome) => {
                debug!(wal_pages = outcome.wal_pages, "store WAL restart was busy");
                frames.saturating_add(self.restart_pages)
            }
            Err(err) => {
                if let Some(suppressed) = self.may_warn() {
                    warn!(cause = %err, suppressed, "store WAL restart failed");
                }
                frames.saturating_add(self.restart_pages)
            }
        };
        self.rewinding = true;
    }

    fn apply(&mut self, command: WriteCommand, pending: &mut Vec<Pending>) {
        let limits = self.limits;
        match command {
            WriteCommand::InsertMessage {
                client,
                content,
                now,
                reply,
            } => self.step(reply, pending, Pending::Id, SINGLE, |conn, quota| {
                write_ops::insert_message(conn, quota, limits, &client, &content, now)
            }),
            WriteCommand::DeleteMessages { ids, reply } => {
                let single = if ids.len() <= write_ops::DELETE_CHUNK {
                    SINGLE
                } else {
                    SEVERAL
                };
                self.step(reply, pending, unit, single, |conn, quota| {
                    write_ops::delete_messages(conn, quota, &ids)
                })
            }
            WriteCommand::DeleteMessagesOlderThan { cutoff, reply } => {
                self.step(reply, pending, Pending::Count, SINGLE, |conn, quota| {
                    write_ops::delete_messages_older_than(conn, quota, cutoff)
                })
            }
            WriteCommand::UpsertSharedKey { client, key, reply } => {
                self.step(reply, pending, unit, SEVERAL, |conn, _| {
                    write_ops::upsert_shared_key(conn, &client, &key)
                })
            }
            WriteCommand::SetLastUsedAuthentication {
                client,
                timestamp,
                reply,
            } => self.step(reply, pending, unit, SINGLE, |conn, _| {
                write_ops::set_last_used_authentication(conn, &client, timestamp)
            }),
            WriteCommand::EnsureBandwidth { client, reply } => {
                self.step(reply, pending, Pending::Bandwidth, SEVERAL, |conn, _| {
                    write_ops::ensure_bandwidth(conn, &client)
                })
            }
            WriteCommand::SetBandwidth {
                client,
                bandwidth,
                reply,
            } => self.step(reply, pending, unit, SEVERAL, |conn, _| {
                write_ops::set_bandwidth(conn, &client, bandwidth)
            }),
            WriteCommand::AddBandwidth {
                client,
                delta,
                expiration,
                reply,
            } => self.step(reply, pending, Pending::Bandwidth, SINGLE, |conn, _| {
                write_ops::add_bandwidth(conn, &client, delta, expiration)
            }),
            WriteCommand::ForgetClient { client, reply } => {
                self.step(reply, pending, unit, SEVERAL, |conn, quota| {
                    write_ops::forget_client(conn, quota, &client)
                })
            }
            WriteCommand::InsertReceivedTicket {
                client,
                received_at,
                serial_number,
                data,
                reply,
            } => self.step(reply, pending, Pending::Ticket, SEVERAL, |conn, _| {
                write_ops::insert_received_ticket(conn, &client, received_at, &serial_number, &data)
            }),
            WriteCommand::MarkTicketVerified { ticket_id, reply } => {
                self.step(reply, pending, unit, SINGLE, |conn, _| {
                    write_ops::mark_ticket_verified(conn, ticket_id)
                })
            }
            WriteCommand::RejectTicket {
                ticket_id,
                revoked,
                reply,
            } => self.step(reply, pending, unit, SEVERAL, |conn, _| {
                write_ops::reject_ticket(conn, ticket_id, revoked)
            }),
        }
    }

    /// Runs one command; on success its reply waits for the commit, on failure its changes
    /// are undone and the caller answered now.
    ///
    /// A command of several SQL writes runs in a savepoint, rolled back if any of them fails.
    /// A command of one write statement (`single`) needs none: SQLite undoes a failed
    /// statement by itself and leaves the transaction open, so the savepoint's two extra
    /// statements per command (and its journal of every page the command touches) would buy
    /// nothing. Either way, an error that makes SQLite roll back the whole transaction (disk
    /// full, I/O error) is caught by `run_batch`'s `is_autocommit` check.
    fn step<T>(
        &mut self,
        reply: Reply<T>,
        pending: &mut Vec<Pending>,
        wrap: fn(Reply<T>, T) -> Pending,
        single: bool,
        op: impl FnOnce(&Connection, &mut QuotaCache) -> Result<T, StoreError>,
    ) {
        let result = if single {
            op(&self.conn, &mut self.quota)
        } else {
            self.savepoint(op)
        };
        match result {
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

/// `step`'s `single`: the command is one SQL write statement (reads before it are fine).
const SINGLE: bool = true;
/// The command may run several write statements.
const SEVERAL: bool = false;

fn unit(reply: Reply<()>, (): ()) -> Pending {
    Pending::Unit(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    /// An insert command and where its answer arrives.
    fn insert(content: Vec<u8>) -> (WriteCommand, oneshot::Receiver<Result<i64, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let command = WriteCommand::InsertMessage {
            client: "client".to_owned(),
            content,
            now: UnixTime::from_secs(0),
            reply,
        };
        (command, answer)
    }

    #[test]
    fn a_severe_error_without_savepoint_rolls_back_the_batch_and_retries_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path().join("full.sqlite"));
        config.max_messages_per_client = 3;
        config.max_bytes_per_client = 0;
        let conn = schema::open_writer(&config).unwrap().conn;
        // A disk that is full after two more pages: small messages fit the table's page, a
        // 100 kB one needs overflow pages and fails with SQLITE_FULL. A single-row insert has
        // no statement journal to undo it with, so SQLite rolls back the whole transaction.
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        conn.execute_batch(&format!("PRAGMA max_page_count={}", pages + 2))
            .unwrap();
        let counters = Arc::new(Counters::default());
        let mut writer = Writer::new(conn, &config, counters.clone(), None);

        let (commands, mut answers): (Vec<_>, Vec<_>) = [
            vec![1],
            vec![0; 100_000],
            vec![2],
            vec![3],
            vec![4],
            vec![5],
        ]
        .into_iter()
        .map(insert)
        .unzip();
        writer.run_batch(commands);
        let mut results: Vec<_> = answers.iter_mut().map(|a| a.try_recv().unwrap()).collect();

        assert!(
            matches!(results[0], Err(StoreError::RolledBack)),
            "{:?}",
            results[0]
        );
        match &results[1] {
            Err(StoreError::Sqlite { source, .. }) => assert_eq!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DiskFull)
            ),
            other => panic!("expected SQLITE_FULL, got {other:?}"),
        }
        // The rest ran again in a new transaction, with the quota counted afresh: the
        // rolled-back message takes no room, so the fourth is the one refused.
        assert!(results[2..5].iter().all(Result::is_ok), "{results:?}");
        assert!(
            matches!(
                results[5],
                Err(StoreError::QuotaExceeded { messages: 3, .. })
            ),
            "{:?}",
            results[5]
        );
        let ids: Vec<i64> = results.drain(2..5).map(Result::unwrap).collect();
        let stored: Vec<(i64, Vec<u8>)> = writer
            .conn
            .prepare("SELECT id, content FROM message_store ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            stored,
            [(ids[0], vec![2]), (ids[1], vec![3]), (ids[2], vec![4])]
        );
        let counted = counters.snapshot();
        assert_eq!(
            (counted.commands_committed, counted.commands_failed),
            (3, 3)
        );
    }
}
