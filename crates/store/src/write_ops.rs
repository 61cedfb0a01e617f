//! The SQL of each write command. Each function runs inside the writer's open transaction and
//! savepoint, and changes the quota cache only after all its SQL succeeded (so a failed
//! command leaves the cache as it found it).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use crate::quota::{Limits, QuotaCache};
use crate::{Bandwidth, StoreError};

pub(crate) fn insert_message(
    conn: &Connection,
    quota: &mut QuotaCache,
    limits: Limits,
    client: &str,
    content: &[u8],
    now: i64,
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
    .and_then(|mut stmt| stmt.execute(params![client, content, now]))
    .map_err(StoreError::sqlite(op))?;
    let id = conn.last_insert_rowid();
    quota.add(client, len);
    Ok(id)
}

/// Deletes the given rows; ids that do not exist (already deleted) are skipped.
pub(crate) fn delete_messages(
    conn: &Connection,
    quota: &mut QuotaCache,
    ids: &[i64],
) -> Result<(), StoreError> {
    let op = "delete_messages";
    let mut stmt = conn
        .prepare_cached(
            "DELETE FROM message_store WHERE id = ?1 RETURNING client_address_bs58, length(content)",
        )
        .map_err(StoreError::sqlite(op))?;
    let mut freed: HashMap<String, (u64, u64)> = HashMap::new();
    for id in ids {
        let row: Option<(String, i64)> = stmt
            .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(StoreError::sqlite(op))?;
        if let Some((client, len)) = row {
            let entry = freed.entry(client).or_default();
            entry.0 += 1;
            entry.1 += u64::try_from(len).unwrap_or(0);
        }
    }
    for (client, (messages, bytes)) in freed {
        quota.remove(&client, messages, bytes);
    }
    Ok(())
}

pub(crate) fn delete_messages_older_than(
    conn: &Connection,
    quota: &mut QuotaCache,
    cutoff: i64,
) -> Result<u64, StoreError> {
    // No index on timestamp: this runs hourly and a scan is cheaper overall than maintaining
    // a second index on every insert.
    let deleted = conn
        .prepare_cached("DELETE FROM message_store WHERE timestamp < ?1")
        .and_then(|mut stmt| stmt.execute([cutoff]))
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
    timestamp: i64,
) -> Result<(), StoreError> {
    let updated = conn
        .prepare_cached(
            "UPDATE shared_keys SET last_used_authentication = ?2 WHERE client_address_bs58 = ?1",
        )
        .and_then(|mut stmt| stmt.execute(params![client, timestamp]))
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
                expiration: row.get(1)?,
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
    .and_then(|mut stmt| stmt.execute(params![id, bandwidth.available, bandwidth.expiration]))
    .map_err(StoreError::sqlite(op))?;
    Ok(())
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
