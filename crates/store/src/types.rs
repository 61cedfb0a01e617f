//! The values the store's API takes and returns: client addresses, times, and records.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A client's address: its 32-byte ed25519 identity key. Shown (and stored, in the schema's
/// `client_address_bs58` columns) in base58.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress([u8; 32]);

impl ClientAddress {
    /// The address whose identity key is `bytes`.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The identity key.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.0).into_string())
    }
}

impl fmt::Debug for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientAddress")
            .field(&format_args!("{self}"))
            .finish()
    }
}

/// A time in whole seconds since the Unix epoch, as the schema stores it (`timestamp`,
/// `expiration`, `last_used_authentication`): signed, like SQLite's integers. The client
/// protocol's timestamps are unsigned; [`from_unsigned_secs`](Self::from_unsigned_secs) and
/// [`as_unsigned_secs`](Self::as_unsigned_secs) convert, saturating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(i64);

impl UnixTime {
    const SECONDS_PER_DAY: i64 = 24 * 60 * 60;

    /// The system clock now (the epoch if the clock is before it).
    pub fn now() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Self(secs)
    }

    /// `secs` seconds after the epoch (before it if negative).
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs)
    }

    /// Seconds since the epoch.
    pub const fn as_secs(self) -> i64 {
        self.0
    }

    /// A protocol timestamp; `i64::MAX` if it is beyond.
    pub fn from_unsigned_secs(secs: u64) -> Self {
        Self(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    /// As a protocol timestamp; 0 if before the epoch.
    pub fn as_unsigned_secs(self) -> u64 {
        u64::try_from(self.0).unwrap_or(0)
    }

    /// `age` earlier (saturating).
    pub fn saturating_sub(self, age: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX)),
        )
    }

    /// 00:00 UTC of this time's day.
    pub fn start_of_utc_day(self) -> Self {
        Self(self.0 - self.0.rem_euclid(Self::SECONDS_PER_DAY))
    }
}

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
    /// When the client last authenticated, if ever.
    pub last_used_authentication: Option<UnixTime>,
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
    /// When the allowance expires.
    pub expiration: UnixTime,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_shows_as_base58() {
        let address = ClientAddress::from_bytes([7; 32]);
        assert_eq!(address.to_string(), bs58::encode([7; 32]).into_string());
        assert_eq!(address.as_bytes(), &[7; 32]);
        assert_eq!(format!("{address:?}"), format!("ClientAddress({address})"));
    }

    #[test]
    fn the_start_of_a_day_is_midnight_utc() {
        const DAY: i64 = 24 * 60 * 60;
        // 2025-06-15 13:20:00 UTC.
        let now = UnixTime::from_secs(1_750_000_000 - 1_750_000_000 % DAY + 48_000);
        let start = now.start_of_utc_day();
        assert_eq!(start.as_secs() % DAY, 0);
        assert_eq!(now.as_secs() - start.as_secs(), 48_000);
        assert_eq!(start.start_of_utc_day(), start);
        assert_eq!(UnixTime::from_secs(-1).start_of_utc_day().as_secs(), -DAY);
    }

    #[test]
    fn protocol_timestamps_convert_saturating() {
        assert_eq!(UnixTime::from_unsigned_secs(5).as_secs(), 5);
        assert_eq!(UnixTime::from_unsigned_secs(u64::MAX).as_secs(), i64::MAX);
        assert_eq!(UnixTime::from_secs(5).as_unsigned_secs(), 5);
        assert_eq!(UnixTime::from_secs(-5).as_unsigned_secs(), 0);
        let now = UnixTime::from_secs(100);
        assert_eq!(now.saturating_sub(Duration::from_secs(30)).as_secs(), 70);
        assert_eq!(now.saturating_sub(Duration::MAX).as_secs(), 100 - i64::MAX);
        assert!(UnixTime::now() > UnixTime::from_secs(1_700_000_000));
    }
}
