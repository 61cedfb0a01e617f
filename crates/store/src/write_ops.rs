//! The SQL of each write command. Each function runs inside the writer's open transaction (and
//! a savepoint if it may run several write statements), and changes the quota cache only
//! after all its SQL succeeded (so a failed command leaves the cache as it found it).

use std::collections::HashMap;
use std::sync::OnceLock;

use rusqlite::types::ValueRef;
use rusqlite::{params, params_from_iter, Connection};

use crate::quota::{Limits, QuotaCache};
use crate::{Bandwidth, StoreError, UnixTime};

pub(crate) fn insert_message(
    conn: &Connection,
    quota: &mut QuotaCache,
    limits: Limits,
    client: &str,
    content: &[u8],
    now: UnixTime,
) -> Result<i64, StoreError> {
    let op = "insert_message";
    let usage = quota.get(conn, client)?;
    let len = content.len() as u64;
    if !limits.admits(usage, len) {
        return Err(StoreError::QuotaExceeded {
            client: client.to_owned(),
            messages: usage.messages,
            bytes: usage.bytes,
        });
    }
    conn.prepare_cached(
        "INSERT INTO message_store (client_address_bs58, content, timestamp) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut stmt| stmt.execute(params![client, content, now.as_secs()]))
    .map_err(StoreError::sqlite(op))?;
    let id = conn.last_insert_rowid();
    quota.add(client, len);
    Ok(id)
}

/// Ids per `DELETE` statement of [`delete_messages`]. The gateway deletes what it fetched, up to
/// `message_retrieval_limit` (default 100) messages per call, so a call is one statement; a
/// shorter list is padded with NULL (`id IN (…, NULL)` matches no row for it), so there is only
/// this one statement to prepare and cache, whatever the list's length.
pub(crate) const DELETE_CHUNK: usize = 100;

/// `DELETE … WHERE id IN (?, …) RETURNING …` with [`DELETE_CHUNK`] placeholders.
fn delete_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let placeholders = vec!["?"; DELETE_CHUNK].join(", ");
        format!(
            "DELETE FROM message_store WHERE id IN ({placeholders})
             RETURNING client_address_bs58, length(content)"
        )
    })
}

/// Deletes the given rows; ids that do not exist (already deleted) are skipped.
///
/// One statement per [`DELETE_CHUNK`] ids rather than one per id: the per-statement work
/// (binding, stepping, resetting) was most of the writer's time while clients drained their
/// inboxes. `RETURNING` gives each deleted row's owner and size, so the quota cache is
/// updated exactly, for any mix of clients and ids.
///
/// With at most [`DELETE_CHUNK`] ids this is a single statement, which the writer runs
/// without a savepoint (see `writer::Writer::apply`): SQLite makes all of a `RETURNING`
/// statement's changes in its first step, and undoes them if that step fails. The later steps
/// only hand back the returned rows from memory; should one fail anyway, the quota cache is
/// cleared, so it never counts rows that are gone. Reading a row never fails here (a row of
/// unexpected shape only makes the cache recount).
pub(crate) fn delete_messages(
    conn: &Connection,
    quota: &mut QuotaCache,
    ids: &[i64],
) -> Result<(), StoreError> {
    let op = "delete_messages";
    let mut stmt = conn
        .prepare_cached(delete_sql())
        .map_err(StoreError::sqlite(op))?;
    // (messages, bytes) per client. Looked up by the row's borrowed text, so an address is
    // copied once per client and call, not once per row.
    let mut freed: HashMap<String, (u64, u64)> = HashMap::new();
    let mut unexpected = false;
    for chunk in ids.chunks(DELETE_CHUNK) {
        let padded = (0..DELETE_CHUNK).map(|i| chunk.get(i).copied());
        let mut rows = stmt
            .query(params_from_iter(padded))
            .map_err(StoreError::sqlite(op))?;
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(err) => {
                    // Rows this call already deleted may stay deleted (see above): whatever
                    // happened, the cache must not count them.
                    quota.clear();
                    return Err(StoreError::sqlite(op)(err));
                }
            };
            let (Ok(ValueRef::Text(client)), Ok(ValueRef::Integer(len))) =
                (row.get_ref(0), row.get_ref(1))
            else {
                unexpected = true;
                continue;
            };
            let Ok(client) = std::str::from_utf8(client) else {
                unexpected = true;
                continue;
            };
            let len = u64::try_from(len).unwrap_or(0);
            match freed.get_mut(client) {
                Some((messages, bytes)) => {
                    *messages += 1;
                    *bytes += len;
                }
                None => {
                    freed.insert(client.to_owned(), (1, len));
                }
            }
        }
    }
    if unexpected {
        // Not our schema's rows (edited database): count everyone again when next used.
        quota.clear();
    } else {
        for (client, (messages, bytes)) in freed {
            quota.remove(&client, messages, bytes);
        }
    }
    Ok(())
}

pub(crate) fn delete_messages_older_than(
    conn: &Connection,
    quota: &mut QuotaCache,
    cutoff: UnixTime,
) -> Result<u64, StoreError> {
    // No index on timestamp: this runs hourly and a scan is cheaper overall than maintaining
    // a second index on every insert.
    let deleted = conn
        .prepare_cached("DELETE FROM message_store WHERE timestamp < ?1")
        .and_then(|mut stmt| stmt.execute([cutoff.as_secs()]))
        .map_err(StoreError::sqlite("delete_messages_older_than"))?;
    if deleted > 0 {
        // Could touch any client; recounting on demand beats tracking each deleted row.
        quota.clear();
    }
    Ok(deleted as u64)
}

/// The client's row id, creating the `clients` row if needed.
fn client_id(conn: &Connection, client: &str, op: &'static str) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO clients (client_address_bs58) VALUES (?1)
         ON CONFLICT (client_address_bs58) DO NOTHING",
    )
    .and_then(|mut stmt| stmt.execute([client]))
    .and_then(|_| {
        conn.prepare_cached("SELECT id FROM clients WHERE client_address_bs58 = ?1")?
            .query_row([client], |row| row.get(0))
    })
    .map_err(StoreError::sqlite(op))
}

pub(crate) fn upsert_shared_key(
    conn: &Connection,
    client: &str,
    key: &[u8; 32],
) -> Result<(), StoreError> {
    let op = "upsert_shared_key";
    let id = client_id(conn, client, op)?;
    // A re-registering client keeps its id, bandwidth and last authentication time.
    conn.prepare_cached(
        "INSERT INTO shared_keys
             (client_id, client_address_bs58, derived_aes256_gcm_siv_key, last_used_authentication)
         VALUES (?1, ?2, ?3, NULL)
         ON CONFLICT (client_id) DO UPDATE
             SET derived_aes256_gcm_siv_key = excluded.derived_aes256_gcm_siv_key",
    )
    .and_then(|mut stmt| stmt.execute(params![id, client, &key[..]]))
    .map_err(StoreError::sqlite(op))?;
    Ok(())
}

pub(crate) fn set_last_used_authentication(
    conn: &Connection,
    client: &str,
    timestamp: UnixTime,
) -> Result<(), StoreError> {
    let updated = conn
        .prepare_cached(
            "UPDATE shared_keys SET last_used_authentication = ?2 WHERE client_address_bs58 = ?1",
        )
        .and_then(|mut stmt| stmt.execute(params![client, timestamp.as_secs()]))
        .map_err(StoreError::sqlite("set_last_used_authentication"))?;
    if updated == 0 {
        return Err(StoreError::NotRegistered {
            client: client.to_owned(),
        });
    }
    Ok(())
}

pub(crate) fn ensure_bandwidth(conn: &Connection, client: &str) -> Result<Bandwidth, StoreError> {
    let op = "ensure_bandwidth";
    let id = client_id(conn, client, op)?;
    conn.prepare_cached(
        "INSERT INTO available_bandwidth (client_id, available, expiration) VALUES (?1, 0, 0)
         ON CONFLICT (client_id) DO NOTHING",
    )
    .and_then(|mut stmt| stmt.execute([id]))
    .and_then(|_| {
        conn.prepare_cached(
            "SELECT available, expiration FROM available_bandwidth WHERE client_id = ?1",
        )?
        .query_row([id], |row| {
            Ok(Bandwidth {
                available: row.get(0)?,
                expiration: UnixTime::from_secs(row.get(1)?),
            })
        })
    })
    .map_err(StoreError::sqlite(op))
}

pub(crate) fn set_bandwidth(
    conn: &Connection,
    client: &str,
    bandwidth: Bandwidth,
) -> Result<(), StoreError> {
    let op = "set_bandwidth";
    let id = client_id(conn, client, op)?;
    conn.prepare_cached(
        "INSERT INTO available_bandwidth (client_id, available, expiration) VALUES (?1, ?2, ?3)
         ON CONFLICT (client_id) DO UPDATE
             SET available = excluded.available, expiration = excluded.expiration",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            id,
            bandwidth.available,
            bandwidth.expiration.as_secs()
        ])
    })
    .map_err(StoreError::sqlite(op))?;
    Ok(())
}

/// Adds `delta` bytes (negative: takes them) to a client's stored allowance and sets its
/// expiration; returns the allowance as stored afterwards, which includes what others changed
/// meanwhile (a revoked ticket), so a live session can pick that up.
pub(crate) fn add_bandwidth(
    conn: &Connection,
    client: &str,
    delta: i64,
    expiration: UnixTime,
) -> Result<Bandwidth, StoreError> {
    let op = "add_bandwidth";
    let id = client_id(conn, client, op)?;
    conn.prepare_cached(
        "INSERT INTO available_bandwidth (client_id, available, expiration) VALUES (?1, ?2, ?3)
         ON CONFLICT (client_id) DO UPDATE
             SET available = available + excluded.available, expiration = excluded.expiration
         RETURNING available, expiration",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![id, delta, expiration.as_secs()], |row| {
            Ok(Bandwidth {
                available: row.get(0)?,
                expiration: UnixTime::from_secs(row.get(1)?),
            })
        })
    })
    .map_err(StoreError::sqlite(op))
}

/// Deletes everything about a client: messages, key, bandwidth and its `clients` row.
pub(crate) fn forget_client(
    conn: &Connection,
    quota: &mut QuotaCache,
    client: &str,
) -> Result<(), StoreError> {
    // Children before the parent row, for the foreign keys.
    const STATEMENTS: &[&str] = &[
        "DELETE FROM message_store WHERE client_address_bs58 = ?1",
        "DELETE FROM shared_keys WHERE client_address_bs58 = ?1
             OR client_id IN (SELECT id FROM clients WHERE client_address_bs58 = ?1)",
        "DELETE FROM available_bandwidth
             WHERE client_id IN (SELECT id FROM clients WHERE client_address_bs58 = ?1)",
        "DELETE FROM clients WHERE client_address_bs58 = ?1",
    ];
    for sql in STATEMENTS {
        conn.prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute([client]))
            .map_err(StoreError::sqlite("forget_client"))?;
    }
    quota.forget(client);
    Ok(())
}

/// Records a ticket received from `client`, unless its serial number was spent before here:
/// then nothing changes and the answer is `None`. Otherwise the new ticket's id.
pub(crate) fn insert_received_ticket(
    conn: &Connection,
    client: &str,
    received_at: UnixTime,
    serial_number: &[u8],
    data: &[u8],
) -> Result<Option<i64>, StoreError> {
    let op = "insert_received_ticket";
    let spent: bool = conn
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM ticket_data WHERE serial_number = ?1)")
        .and_then(|mut stmt| stmt.query_row([serial_number], |row| row.get(0)))
        .map_err(StoreError::sqlite(op))?;
    if spent {
        return Ok(None);
    }
    conn.prepare_cached(
        "INSERT INTO received_ticket (client_id, received_at)
         VALUES ((SELECT id FROM clients WHERE client_address_bs58 = ?1), ?2)",
    )
    .and_then(|mut stmt| stmt.execute(params![client, received_at.as_secs()]))
    .map_err(StoreError::sqlite(op))?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO ticket_data (ticket_id, serial_number, data) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut stmt| stmt.execute(params![id, serial_number, data]))
    .map_err(StoreError::sqlite(op))?;
    Ok(Some(id))
}

/// The signers confirmed ticket `ticket_id`: its credential is no longer needed (its serial
/// number stays, so it can never be spent here again).
pub(crate) fn mark_ticket_verified(conn: &Connection, ticket_id: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE ticket_data SET data = NULL WHERE ticket_id = ?1")
        .and_then(|mut stmt| stmt.execute([ticket_id]))
        .map_err(StoreError::sqlite("mark_ticket_verified"))?;
    Ok(())
}

/// The signers refused ticket `ticket_id`: it is marked rejected and `revoked` bytes are taken
/// from its client's stored bandwidth (which may go negative). The serial number stays spent.
pub(crate) fn reject_ticket(
    conn: &Connection,
    ticket_id: i64,
    revoked: i64,
) -> Result<(), StoreError> {
    let op = "reject_ticket";
    conn.prepare_cached("UPDATE received_ticket SET rejected = TRUE WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute([ticket_id]))
        .map_err(StoreError::sqlite(op))?;
    conn.prepare_cached("UPDATE ticket_data SET data = NULL WHERE ticket_id = ?1")
        .and_then(|mut stmt| stmt.execute([ticket_id]))
        .map_err(StoreError::sqlite(op))?;
    conn.prepare_cached(
        "UPDATE available_bandwidth SET available = available - ?2
         WHERE client_id = (SELECT client_id FROM received_ticket WHERE id = ?1)",
    )
    .and_then(|mut stmt| stmt.execute(params![ticket_id, revoked]))
    .map_err(StoreError::sqlite(op))?;
    Ok(())
}
