//! [`Store`]: the async handle the rest of the gateway uses.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::checkpoint::{self, Checkpointer, Checkpoints, WalIndex};
use crate::reader::{self, ReadCommand, ToReader};
use crate::writer::{Counters, Reply, ToWriter, WriteCommand, Writer};
use crate::{
    address_bs58, schema, Bandwidth, ClientAddress, OpenError, SharedKeyRecord, StoreConfig,
    StoreCounters, StoreError, StoreStats, StoredMessage, UnixTime,
};

/// A handle to the store. Cloning is cheap; all clones talk to the same two threads.
///
/// Every method queues a command and waits for its answer. A write answers only after its
/// transaction committed. Dropping a method's future does not cancel a command already
/// queued: it runs, and its answer is discarded.
///
/// # Shutdown
/// [`close`](Self::close) drains both queues, commits, closes the connections and joins the
/// threads. Dropping the last handle instead lets the threads drain and stop on their own
/// without waiting for them (so a drop never blocks an async runtime); call `close` when the
/// process is about to exit, so the final commit and WAL checkpoint are done before it does.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    writes: mpsc::Sender<ToWriter>,
    reads: mpsc::Sender<ToReader>,
    counters: Arc<Counters>,
    /// Taken by the first `close`.
    threads: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the database, then starts the writer, reader
    /// and checkpointer threads. Blocking: call it at startup, or from `spawn_blocking`.
    pub fn open(config: StoreConfig) -> Result<Self, OpenError> {
        let write = schema::open_writer(&config)?;
        let read_conn = schema::open_reader(&config)?;
        let index = (write.wal && config.background_checkpoints)
            .then(|| WalIndex::open(&config.path))
            .flatten();
        let checkpointer = match index {
            Some(index) => {
                let conn = schema::open_reader(&config)?;
                schema::disable_autocheckpoint(&write.conn, &config.path)?;
                let shared = Arc::new(Checkpoints::new(config.checkpoint_pages));
                let thread_shared = shared.clone();
                let thread = spawn("ckpt", move || checkpoint::run(conn, &thread_shared))?;
                Some(Checkpointer::new(shared, index, thread))
            }
            None => None,
        };
        let capacity = config.queue_capacity.max(1);
        let (writes, write_queue) = mpsc::channel(capacity);
        let (reads, read_queue) = mpsc::channel(capacity);
        let counters = Arc::new(Counters::default());

        let writer = Writer::new(write.conn, &config, counters.clone(), checkpointer);
        let writer_thread = spawn("writer", move || writer.run(write_queue))?;
        // If this fails, `writes` is dropped on return and the writer thread stops by itself.
        let reader_thread = spawn("reader", move || reader::run(read_conn, read_queue))?;

        info!(
            path = %config.path.display(),
            schema_version = schema::SCHEMA_VERSION,
            synchronous_full = config.synchronous_full,
            "store opened"
        );
        Ok(Self {
            shared: Arc::new(Shared {
                path: config.path,
                writes,
                reads,
                counters,
                threads: Mutex::new(vec![("writer", writer_thread), ("reader", reader_thread)]),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Counters of the writer since open.
    pub fn counters(&self) -> StoreCounters {
        self.shared.counters.snapshot()
    }

    /// Write commands queued and not yet taken by the writer (a gauge for metrics).
    pub fn queued_writes(&self) -> usize {
        let writes = &self.shared.writes;
        writes.max_capacity() - writes.capacity()
    }

    /// Stores a message for `client` and returns its id, once committed. Fails with
    /// [`StoreError::QuotaExceeded`], storing nothing, if the client's inbox is full.
    pub async fn insert_message(
        &self,
        client: ClientAddress,
        content: Vec<u8>,
        now: UnixTime,
    ) -> Result<i64, StoreError> {
        self.write(|reply| WriteCommand::InsertMessage {
            client: address_bs58(&client),
            content,
            now,
            reply,
        })
        .await
    }

    /// Queues a message for `client` and returns once it is *queued*, in call order; the
    /// returned [`PendingInsert`] resolves when it is committed (or refused). Callers that must
    /// keep per-sender order without waiting for each commit (the mix ingress) use this.
    pub async fn queue_message(
        &self,
        client: ClientAddress,
        content: Vec<u8>,
        now: UnixTime,
    ) -> Result<PendingInsert, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .writes
            .send(ToWriter::Command(WriteCommand::InsertMessage {
                client: address_bs58(&client),
                content,
                now,
                reply,
            }))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(PendingInsert { answer })
    }

    /// Up to `limit` of `client`'s messages with an id above `after_id` (all if `None`),
    /// oldest first.
    pub async fn fetch_messages(
        &self,
        client: ClientAddress,
        after_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.read(|reply| ReadCommand::FetchMessages {
            client: address_bs58(&client),
            after_id,
            limit,
            reply,
        })
        .await
    }

    /// Deletes messages by id, in one transaction; ids that no longer exist are skipped.
    pub async fn delete_messages(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.write(|reply| WriteCommand::DeleteMessages { ids, reply })
            .await
    }

    /// Deletes every message stored before `cutoff` and returns how many.
    pub async fn delete_messages_older_than(&self, cutoff: UnixTime) -> Result<u64, StoreError> {
        self.write(|reply| WriteCommand::DeleteMessagesOlderThan { cutoff, reply })
            .await
    }

    /// Sets `client`'s shared key, registering the client if new. A known client keeps its
    /// id, bandwidth and last authentication time.
    pub async fn upsert_shared_key(
        &self,
        client: ClientAddress,
        key: [u8; 32],
    ) -> Result<(), StoreError> {
        self.write(|reply| WriteCommand::UpsertSharedKey {
            client: address_bs58(&client),
            key,
            reply,
        })
        .await
    }

    /// `client`'s shared key, if registered.
    pub async fn shared_key(
        &self,
        client: ClientAddress,
    ) -> Result<Option<SharedKeyRecord>, StoreError> {
        self.read(|reply| ReadCommand::SharedKey {
            client: address_bs58(&client),
            reply,
        })
        .await
    }

    /// Records when `client` authenticated. Fails with
    /// [`StoreError::NotRegistered`] if it has no shared key.
    pub async fn set_last_used_authentication(
        &self,
        client: ClientAddress,
        timestamp: UnixTime,
    ) -> Result<(), StoreError> {
        self.write(|reply| WriteCommand::SetLastUsedAuthentication {
            client: address_bs58(&client),
            timestamp,
            reply,
        })
        .await
    }

    /// `client`'s bandwidth, created as `available = 0, expiration = 0` if missing.
    pub async fn ensure_bandwidth(&self, client: ClientAddress) -> Result<Bandwidth, StoreError> {
        self.write(|reply| WriteCommand::EnsureBandwidth {
            client: address_bs58(&client),
            reply,
        })
        .await
    }

    /// `client`'s bandwidth, if it has any row.
    pub async fn bandwidth(&self, client: ClientAddress) -> Result<Option<Bandwidth>, StoreError> {
        self.read(|reply| ReadCommand::Bandwidth {
            client: address_bs58(&client),
            reply,
        })
        .await
    }

    /// Adds `delta` bytes (negative: takes them) to `client`'s allowance and sets its
    /// expiration; returns the allowance as stored now (with changes made meanwhile by others,
    /// such as a revoked ticket).
    pub async fn add_bandwidth(
        &self,
        client: ClientAddress,
        delta: i64,
        expiration: UnixTime,
    ) -> Result<Bandwidth, StoreError> {
        self.write(|reply| WriteCommand::AddBandwidth {
            client: address_bs58(&client),
            delta,
            expiration,
            reply,
        })
        .await
    }

    /// Sets `client`'s bandwidth, creating the row (and the client) if missing.
    pub async fn set_bandwidth(
        &self,
        client: ClientAddress,
        bandwidth: Bandwidth,
    ) -> Result<(), StoreError> {
        self.write(|reply| WriteCommand::SetBandwidth {
            client: address_bs58(&client),
            bandwidth,
            reply,
        })
        .await
    }

    /// Deletes everything stored about `client`: messages, shared key, bandwidth.
    pub async fn forget_client(&self, client: ClientAddress) -> Result<(), StoreError> {
        self.write(|reply| WriteCommand::ForgetClient {
            client: address_bs58(&client),
            reply,
        })
        .await
    }

    /// Whether a ticket with this serial number was spent here (committed).
    pub async fn ticket_spent(&self, serial_number: Vec<u8>) -> Result<bool, StoreError> {
        self.read(|reply| ReadCommand::TicketSpent {
            serial_number,
            reply,
        })
        .await
    }

    /// Records a zk-nym ticket `client` spent, with its serial number and the credential as
    /// received, once committed. `None`: the serial number was spent before, nothing changed
    /// (the check and the insert are one step of the writer, so two spends of one ticket
    /// cannot both succeed).
    pub async fn insert_received_ticket(
        &self,
        client: ClientAddress,
        received_at: UnixTime,
        serial_number: Vec<u8>,
        data: Vec<u8>,
    ) -> Result<Option<i64>, StoreError> {
        self.write(|reply| WriteCommand::InsertReceivedTicket {
            client: address_bs58(&client),
            received_at,
            serial_number,
            data,
            reply,
        })
        .await
    }

    /// The signers confirmed ticket `ticket_id`: its credential bytes are dropped.
    pub async fn mark_ticket_verified(&self, ticket_id: i64) -> Result<(), StoreError> {
        self.write(|reply| WriteCommand::MarkTicketVerified { ticket_id, reply })
            .await
    }

    /// The signers refused ticket `ticket_id`: marked rejected, and `revoked` bytes taken from
    /// its client's stored bandwidth. Its serial number stays spent.
    pub async fn reject_ticket(&self, ticket_id: i64, revoked: i64) -> Result<(), StoreError> {
        self.write(|reply| WriteCommand::RejectTicket {
            ticket_id,
            revoked,
            reply,
        })
        .await
    }

    /// Totals over the database (scans `message_store`; meant for metrics scrapes).
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.read(|reply| ReadCommand::Stats { reply }).await
    }

    /// Graceful shutdown: every command queued before this call runs (writes are committed),
    /// later ones fail with [`StoreError::Closed`], then the connections are closed and the
    /// threads joined. Other clones of this handle see [`StoreError::Closed`] from then on;
    /// closing an already closed store is `Ok`.
    pub async fn close(self) -> Result<(), StoreError> {
        // The reader goes first so that the writer's connection is the last one open: closing
        // it checkpoints the WAL into the database file.
        let (done, stopped) = oneshot::channel();
        if self.shared.reads.send(ToReader::Close(done)).await.is_ok() {
            self.join("reader", stopped).await?;
        }
        let (done, stopped) = oneshot::channel();
        if self.shared.writes.send(ToWriter::Close(done)).await.is_ok() {
            self.join("writer", stopped).await?;
        }
        // A queue already closed means another clone's `close` got there first and joins.
        Ok(())
    }

    /// Waits for a thread's stop signal, then joins it. The signal is the thread's last act
    /// (or is dropped when it panics), so the join is short and never holds up the runtime.
    async fn join(
        &self,
        thread: &'static str,
        stopped: oneshot::Receiver<()>,
    ) -> Result<(), StoreError> {
        let _ = stopped.await;
        let handle = {
            let mut threads = self
                .shared
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let index = threads.iter().position(|(name, _)| *name == thread);
            index.map(|index| threads.swap_remove(index).1)
        };
        match handle.map(JoinHandle::join) {
            Some(Err(_)) => Err(StoreError::Panicked { thread }),
            _ => Ok(()),
        }
    }

    async fn write<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> WriteCommand,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .writes
            .send(ToWriter::Command(command(reply)))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> ReadCommand,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .reads
            .send(ToReader::Command(command(reply)))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// A message queued by [`Store::queue_message`]; await [`PendingInsert::committed`] for its id.
#[derive(Debug)]
pub struct PendingInsert {
    answer: oneshot::Receiver<Result<i64, StoreError>>,
}

impl PendingInsert {
    /// The message's id once its transaction committed, or why it was not stored.
    pub async fn committed(self) -> Result<i64, StoreError> {
        self.answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn spawn(
    thread: &'static str,
    body: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, OpenError> {
    std::thread::Builder::new()
        .name(format!("store-{thread}"))
        .spawn(body)
        .map_err(|source| OpenError::Spawn { thread, source })
}
