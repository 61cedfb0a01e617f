//! Records returned by the store.

/// A message waiting in a client's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Row id; increases with insertion order. Pass it to
    /// [`Store::delete_messages`](crate::Store::delete_messages) once delivered.
    pub id: i64,
    /// The final-hop message, as it was stored.
    pub content: Vec<u8>,
}

/// A client's shared key, from registration.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedKeyRecord {
    /// The derived AES-256-GCM-SIV key.
    pub key: [u8; 32],
    /// When the client last authenticated (unix seconds), if ever.
    pub last_used_authentication: Option<i64>,
}

// Keys stay out of logs, even debug ones.
impl std::fmt::Debug for SharedKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKeyRecord")
            .field("key", &"<redacted>")
            .field("last_used_authentication", &self.last_used_authentication)
            .finish()
    }
}

/// A client's bandwidth allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bandwidth {
    /// Bytes the client may still send.
    pub available: i64,
    /// When the allowance expires (unix seconds).
    pub expiration: i64,
}

/// Totals over the whole database, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Messages stored, for all clients.
    pub messages: u64,
    /// Content bytes of those messages.
    pub message_bytes: u64,
    /// Rows in `clients`: clients that registered and were not forgotten.
    pub clients: u64,
}

/// Counters kept by the writer since the store was opened, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreCounters {
    /// Transactions (batches) committed.
    pub transactions_committed: u64,
    /// Commands that took effect in those transactions.
    pub commands_committed: u64,
    /// Commands that failed (quota, bad state, SQLite errors, failed commits).
    pub commands_failed: u64,
}
