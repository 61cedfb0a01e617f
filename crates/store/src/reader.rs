//! The reader thread: a second, query-only connection for reads.
//!
//! Why not read through the writer: an inbox drain (fetching up to a batch of messages while
//! a client authenticates) or a stats scan would then wait behind a batch of inserts, and
//! stall them in turn. In WAL mode a reader sees the last committed state without blocking
//! the writer or being blocked by it. Every read is one statement, so it sees one consistent
//! snapshot, and since writes answer only after their commit, a read issued after a write
//! returned sees that write.

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::writer::Reply;
use crate::{Bandwidth, SharedKeyRecord, StoreError, StoreStats, StoredMessage, UnixTime};

/// What callers put in the reader's queue.
pub(crate) enum ToReader {
    Command(ReadCommand),
    /// Answer what is queued, close the connection, then signal.
    Close(oneshot::Sender<()>),
}

/// One read; the fields are the arguments of the [`Store`](crate::Store) method of that name.
pub(crate) enum ReadCommand {
    FetchMessages {
        client: String,
        after_id: Option<i64>,
        limit: usize,
        reply: Reply<Vec<StoredMessage>>,
    },
    SharedKey {
        client: String,
        reply: Reply<Option<SharedKeyRecord>>,
    },
    Bandwidth {
        client: String,
        reply: Reply<Option<Bandwidth>>,
    },
    Stats {
        reply: Reply<StoreStats>,
    },
    TicketSpent {
        serial_number: Vec<u8>,
        reply: Reply<bool>,
    },
}

/// The thread's body; returns when the queue is closed and drained.
pub(crate) fn run(conn: Connection, mut queue: mpsc::Receiver<ToReader>) {
    let mut closers = Vec::new();
    while let Some(item) = queue.blocking_recv() {
        match item {
            ToReader::Command(command) => execute(&conn, command),
            ToReader::Close(done) => {
                queue.close();
                closers.push(done);
            }
        }
    }
    if let Err((_, err)) = conn.close() {
        warn!(cause = %err, "closing the store's read connection failed");
    }
    debug!("store reader stopped");
    for done in closers {
        let _ = done.send(());
    }
}

// A caller that stopped waiting is no error, hence the ignored send results.
fn execute(conn: &Connection, command: ReadCommand) {
    match command {
        ReadCommand::FetchMessages {
            client,
            after_id,
            limit,
            reply,
        } => {
            let _ = reply.send(fetch_messages(conn, &client, after_id, limit));
        }
        ReadCommand::SharedKey { client, reply } => {
            let _ = reply.send(shared_key(conn, &client));
        }
        ReadCommand::Bandwidth { client, reply } => {
            let _ = reply.send(bandwidth(conn, &client));
        }
        ReadCommand::Stats { reply } => {
            let _ = reply.send(stats(conn));
        }
        ReadCommand::TicketSpent {
            serial_number,
            reply,
        } => {
            let _ = reply.send(ticket_spent(conn, &serial_number));
        }
    }
}

fn fetch_messages(
    conn: &Connection,
    client: &str,
    after_id: Option<i64>,
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let after_id = after_id.unwrap_or(i64::MIN);
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, content FROM message_store
             WHERE client_address_bs58 = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )
        .map_err(StoreError::sqlite("fetch_messages"))?;
    let rows = stmt
        .query_map(params![client, after_id, limit], |row| {
            Ok(StoredMessage {
                id: row.get(0)?,
                content: row.get(1)?,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(StoreError::sqlite("fetch_messages"))?;
    Ok(rows)
}

fn shared_key(conn: &Connection, client: &str) -> Result<Option<SharedKeyRecord>, StoreError> {
    let row: Option<(Vec<u8>, Option<i64>)> = conn
        .prepare_cached(
            "SELECT derived_aes256_gcm_siv_key, last_used_authentication
             FROM shared_keys WHERE client_address_bs58 = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([client], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(StoreError::sqlite("shared_key"))?;
    let Some((key, last_used_authentication)) = row else {
        return Ok(None);
    };
    let key: [u8; 32] = key
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::InvalidRow {
            table: "shared_keys",
            reason: format!("key of {client} is {} bytes, not 32", key.len()),
        })?;
    Ok(Some(SharedKeyRecord {
        key,
        last_used_authentication: last_used_authentication.map(UnixTime::from_secs),
    }))
}

fn ticket_spent(conn: &Connection, serial_number: &[u8]) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT EXISTS(SELECT 1 FROM ticket_data WHERE serial_number = ?1)")
        .and_then(|mut stmt| stmt.query_row([serial_number], |row| row.get(0)))
        .map_err(StoreError::sqlite("ticket_spent"))
}

fn bandwidth(conn: &Connection, client: &str) -> Result<Option<Bandwidth>, StoreError> {
    conn.prepare_cached(
        "SELECT b.available, b.expiration
         FROM available_bandwidth b JOIN clients c ON c.id = b.client_id
         WHERE c.client_address_bs58 = ?1",
    )
    .and_then(|mut stmt| {
        stmt.query_row([client], |row| {
            Ok(Bandwidth {
                available: row.get(0)?,
                expiration: UnixTime::from_secs(row.get(1)?),
            })
        })
        .optional()
    })
    .map_err(StoreError::sqlite("bandwidth"))
}

fn stats(conn: &Connection) -> Result<StoreStats, StoreError> {
    // A full scan of message_store (not of the contents: length() reads record headers). It is
    // meant for a metrics scrape, not for every message.
    let (messages, message_bytes, clients): (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM message_store),
                    (SELECT COALESCE(SUM(length(content)), 0) FROM message_store),
                    (SELECT COUNT(*) FROM clients)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .map_err(StoreError::sqlite("stats"))?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(StoreStats {
        messages: count(messages),
        message_bytes: count(message_bytes),
        clients: count(clients),
    })
}
