//! Read-only access to the gateway's message store
//! (`message_store(id, client_address_bs58, content, timestamp)` in `data/db.sqlite`).

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: i64,
    pub client_address_bs58: String,
    pub content: Vec<u8>,
}

/// Every stored message for `client_address_bs58` (all clients if `None`), by ascending id.
pub fn stored_messages(
    db: &Path,
    client_address_bs58: Option<&str>,
) -> anyhow::Result<Vec<StoredMessage>> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", db.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut stmt = conn
        .prepare(
            "SELECT id, client_address_bs58, content FROM message_store \
             WHERE (?1 IS NULL OR client_address_bs58 = ?1) ORDER BY id",
        )
        .context("querying message_store")?;
    let rows = stmt
        .query_map([client_address_bs58], |row| {
            Ok(StoredMessage {
                id: row.get(0)?,
                client_address_bs58: row.get(1)?,
                content: row.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
