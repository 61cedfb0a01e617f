//! Per-client inbox usage, kept in memory by the writer so the quota check on every insert
//! costs a hash lookup.
//!
//! The cache only ever holds what the database says (it is filled by a COUNT/SUM query on the
//! `(client_address_bs58, id)` index and updated by the writer, the only one who changes
//! `message_store`). It is bounded: when full, an arbitrary entry is evicted and counted again
//! on next use. After anything that could make it disagree with the database (a failed
//! commit, bulk retention) it is cleared.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};

use crate::StoreError;

/// What one client has stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
}

/// The limits; 0 means unlimited.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_messages: u64,
    pub(crate) max_bytes: u64,
}

impl Limits {
    /// Whether one more message of `len` bytes fits next to `usage`.
    pub(crate) fn admits(&self, usage: Usage, len: u64) -> bool {
        let messages_ok =
            self.max_messages == 0 || usage.messages.saturating_add(1) <= self.max_messages;
        let bytes_ok = self.max_bytes == 0 || usage.bytes.saturating_add(len) <= self.max_bytes;
        messages_ok && bytes_ok
    }
}

/// Usage by client address (base58, as stored).
#[derive(Debug)]
pub(crate) struct QuotaCache {
    usage: HashMap<String, Usage>,
    capacity: usize,
}

impl QuotaCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            usage: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The client's usage, counted in the database if not cached.
    pub(crate) fn get(&mut self, conn: &Connection, client: &str) -> Result<Usage, StoreError> {
        if let Some(usage) = self.usage.get(client) {
            return Ok(*usage);
        }
        let usage = count(conn, client)?;
        if self.usage.len() >= self.capacity {
            if let Some(victim) = self.usage.keys().next().cloned() {
                self.usage.remove(&victim);
            }
        }
        self.usage.insert(client.to_owned(), usage);
        Ok(usage)
    }

    /// Records a stored message. The entry exists: [`get`](Self::get) was called first.
    pub(crate) fn add(&mut self, client: &str, len: u64) {
        if let Some(usage) = self.usage.get_mut(client) {
            usage.messages += 1;
            usage.bytes = usage.bytes.saturating_add(len);
        }
    }

    /// Records deleted messages. Uncached clients need nothing: they are counted when used.
    pub(crate) fn remove(&mut self, client: &str, messages: u64, bytes: u64) {
        if let Some(usage) = self.usage.get_mut(client) {
            usage.messages = usage.messages.saturating_sub(messages);
            usage.bytes = usage.bytes.saturating_sub(bytes);
        }
    }

    /// Drops one client's entry.
    pub(crate) fn forget(&mut self, client: &str) {
        self.usage.remove(client);
    }

    /// Drops every entry; they are counted again when used.
    pub(crate) fn clear(&mut self) {
        self.usage.clear();
    }
}

fn count(conn: &Connection, client: &str) -> Result<Usage, StoreError> {
    // length() of a BLOB is read from the record header, so this does not load contents.
    let row: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(length(content)), 0)
             FROM message_store WHERE client_address_bs58 = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([client], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(StoreError::sqlite("count_inbox"))?;
    let (messages, bytes) = row.unwrap_or((0, 0));
    Ok(Usage {
        messages: u64::try_from(messages).unwrap_or(0),
        bytes: u64::try_from(bytes).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_inclusive_and_zero_is_unlimited() {
        let limits = Limits {
            max_messages: 2,
            max_bytes: 10,
        };
        let usage = |messages, bytes| Usage { messages, bytes };
        assert!(limits.admits(usage(1, 0), 10));
        assert!(!limits.admits(usage(2, 0), 0));
        assert!(!limits.admits(usage(1, 1), 10));
        let unlimited = Limits {
            max_messages: 0,
            max_bytes: 0,
        };
        assert!(unlimited.admits(usage(u64::MAX, u64::MAX), u64::MAX));
    }

    #[test]
    fn cache_stays_bounded() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE message_store (client_address_bs58 TEXT, content BLOB);
             INSERT INTO message_store VALUES ('a', x'0102'), ('a', x'03'), ('b', x'');",
        )
        .unwrap();
        let mut cache = QuotaCache::new(1);
        assert_eq!(
            cache.get(&conn, "a").unwrap(),
            Usage {
                messages: 2,
                bytes: 3
            }
        );
        assert_eq!(
            cache.get(&conn, "b").unwrap(),
            Usage {
                messages: 1,
                bytes: 0
            }
        );
        assert_eq!(cache.usage.len(), 1);
    }
}
