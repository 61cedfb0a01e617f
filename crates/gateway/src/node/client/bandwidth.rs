//! A session's bandwidth allowance (PROTOCOL §2.7, §2.8.4), metered in memory and saved to
//! the store when it changed by [`PERSIST_THRESHOLD`], after a claim, and at session end.
//!
//! A save adds the session's net change to the stored allowance and reads it back, as
//! nym-node's sync does: a ticket the signers rejected meanwhile (its bandwidth revoked in the
//! store) then counts for a connected client too, instead of being overwritten.
//!
//! An allowance expires at the end of the UTC day of its `expiration` (which a claim sets to
//! today 00:00 UTC): it counts as expired once `expiration` is before today 00:00 UTC, and an
//! expired allowance is reset to 0 before it is used or reported.

use gateway_protocol::client::TypedError;
use gateway_store::{Bandwidth, ClientAddress, Store, UnixTime};

/// Unsaved usage that triggers a save: what the reference gateway uses, so a crash loses at
/// most this much metering per client.
const PERSIST_THRESHOLD: i64 = 512 * 1024;

/// Days a ticket's bandwidth outlasts today: a ticketbook is valid for 7 days, today included.
const TICKET_VALIDITY_EXTRA_DAYS: i64 = 6;
const DAY_SECS: i64 = 24 * 60 * 60;

/// One client's allowance during a session.
#[derive(Debug)]
pub(super) struct ClientBandwidth {
    client: ClientAddress,
    current: Bandwidth,
    /// Bytes used or dropped since the last save.
    unsaved: i64,
    /// Net change of `current.available` since the last save (what a save adds to the store).
    delta: i64,
    /// Changed since the last save.
    dirty: bool,
    /// The client asked to be forgotten: saving would recreate its rows.
    forgotten: bool,
}

impl ClientBandwidth {
    /// The allowance as stored, reset to 0 if it expired.
    pub(super) fn new(client: ClientAddress, stored: Bandwidth, now: UnixTime) -> Self {
        let mut bandwidth = Self {
            client,
            current: stored,
            unsaved: 0,
            delta: 0,
            dirty: false,
            forgotten: false,
        };
        bandwidth.expire(now);
        bandwidth
    }

    /// Bytes available now.
    pub(super) fn available(&mut self, now: UnixTime) -> i64 {
        self.expire(now);
        self.current.available
    }

    /// Adds a free claim of `amount` bytes valid until the end of today; returns the new total.
    pub(super) fn claim(&mut self, amount: i64, now: UnixTime) -> i64 {
        self.expire(now);
        self.current.available = self.current.available.saturating_add(amount);
        self.delta = self.delta.saturating_add(amount);
        self.current.expiration = now.start_of_utc_day();
        self.dirty = true;
        self.current.available
    }

    /// Adds a zk-nym ticket's `amount` bytes; the whole allowance then lasts until the end of
    /// the ticketbook's last possible day (today + 6 days), as nym-node sets it. Returns the
    /// new total.
    pub(super) fn add_ticket(&mut self, amount: i64, now: UnixTime) -> i64 {
        self.expire(now);
        self.current.available = self.current.available.saturating_add(amount);
        self.delta = self.delta.saturating_add(amount);
        self.current.expiration = UnixTime::from_secs(
            now.start_of_utc_day().as_secs() + TICKET_VALIDITY_EXTRA_DAYS * DAY_SECS,
        );
        self.dirty = true;
        self.current.available
    }

    /// Checks that `cost` bytes are available, without using them.
    pub(super) fn check(&mut self, cost: i64, now: UnixTime) -> Result<(), TypedError> {
        let available = self.available(now);
        if available < cost {
            return Err(TypedError::OutOfBandwidth {
                required: cost,
                available,
            });
        }
        Ok(())
    }

    /// Uses `cost` bytes (after a successful [`check`](Self::check)); returns what remains.
    pub(super) fn charge(&mut self, cost: i64) -> i64 {
        self.current.available = self.current.available.saturating_sub(cost);
        self.delta = self.delta.saturating_sub(cost);
        self.unsaved = self.unsaved.saturating_add(cost);
        self.dirty = true;
        self.current.available
    }

    /// Whether enough has changed since the last save to save now.
    pub(super) fn save_due(&self) -> bool {
        self.dirty && self.unsaved >= PERSIST_THRESHOLD
    }

    /// The client's rows are gone; nothing is saved from now on.
    pub(super) fn forget(&mut self) {
        self.forgotten = true;
        self.current = Bandwidth::default();
    }

    /// Saves the allowance if it changed. A failed save is logged and retried at the next one.
    pub(super) async fn persist(&mut self, store: &Store) {
        if !self.dirty || self.forgotten {
            return;
        }
        match store
            .add_bandwidth(self.client, self.delta, self.current.expiration)
            .await
        {
            Ok(stored) => {
                self.current.available = stored.available;
                self.delta = 0;
                self.dirty = false;
                self.unsaved = 0;
            }
            Err(e) => {
                crate::warn_rate_limited!(super::STORE_ERRORS, error = %e, "failed to save a client's bandwidth")
            }
        }
    }

    fn expire(&mut self, now: UnixTime) {
        if self.current.expiration < now.start_of_utc_day() && self.current.available != 0 {
            self.delta = self.delta.saturating_sub(self.current.available);
            self.current.available = 0;
            self.dirty = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 60 * 60;
    /// 2025-06-15 13:20:00 UTC.
    const NOW: UnixTime = UnixTime::from_secs(1_750_000_000 - 1_750_000_000 % DAY + 48_000);
    const EPOCH: UnixTime = UnixTime::from_secs(0);

    fn today_start() -> i64 {
        NOW.start_of_utc_day().as_secs()
    }

    fn fresh(available: i64, expiration: UnixTime) -> ClientBandwidth {
        ClientBandwidth::new(
            ClientAddress::from_bytes([1; 32]),
            Bandwidth {
                available,
                expiration,
            },
            NOW,
        )
    }

    #[test]
    fn a_claim_lasts_until_the_end_of_the_utc_day() {
        let mut b = fresh(0, EPOCH);
        assert_eq!(b.claim(1000, NOW), 1000);
        assert_eq!(b.claim(1000, NOW), 2000, "claims add up");
        let last_second = today_start() + DAY - 1;
        assert_eq!(b.available(UnixTime::from_secs(last_second)), 2000);
        assert_eq!(b.available(UnixTime::from_secs(last_second + 1)), 0);
    }

    #[test]
    fn expired_allowance_is_reset_when_loaded() {
        let mut b = fresh(5000, UnixTime::from_secs(today_start() - 1));
        assert_eq!(b.available(NOW), 0);
        assert!(b.dirty, "the reset is saved");
        let mut current = fresh(5000, NOW.start_of_utc_day());
        assert_eq!(current.available(NOW), 5000);
        assert!(!current.dirty);
    }

    #[test]
    fn check_then_charge() {
        let mut b = fresh(0, EPOCH);
        assert_eq!(
            b.check(2413, NOW),
            Err(TypedError::OutOfBandwidth {
                required: 2413,
                available: 0
            })
        );
        b.claim(5000, NOW);
        assert_eq!(b.check(2413, NOW), Ok(()));
        assert_eq!(b.charge(2413), 2587);
        assert_eq!(b.check(2413, NOW), Ok(()), "exactly enough is enough");
        assert_eq!(b.charge(2413), 174);
        assert!(b.check(2413, NOW).is_err());
    }

    #[test]
    fn saves_are_due_after_the_threshold() {
        let mut b = fresh(0, EPOCH);
        b.claim(i64::MAX, NOW);
        assert!(!b.save_due(), "a claim is saved by the caller right away");
        b.charge(PERSIST_THRESHOLD - 1);
        assert!(!b.save_due());
        b.charge(1);
        assert!(b.save_due());
    }

    #[test]
    fn a_ticket_lasts_a_week_and_a_claim_shortens_it_again() {
        let mut b = fresh(0, EPOCH);
        assert_eq!(b.add_ticket(200_000_000, NOW), 200_000_000);
        let last_second = today_start() + 7 * DAY - 1;
        assert_eq!(b.available(UnixTime::from_secs(last_second)), 200_000_000);
        // nym-node's rule: any increase sets the whole allowance's expiry.
        b.claim(1, NOW);
        assert_eq!(b.available(UnixTime::from_secs(today_start() + DAY)), 0);
    }

    #[test]
    fn forgotten_clients_have_nothing() {
        let mut b = fresh(0, EPOCH);
        b.claim(100, NOW);
        b.forget();
        assert_eq!(b.available(NOW), 0);
    }
}
