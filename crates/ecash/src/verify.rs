//! The checks a ticket passes before it buys bandwidth, in nym-node 1.31.0's order:
//!
//! 1. [`precheck`]: ticket type, a single ticket, spend date == today (UTC);
//! 2. the caller looks the serial number up in its store (double spend here);
//! 3. the caller gets the master verification key of the ticket's epoch ([`crate::keys`]);
//! 4. [`Verifier::check_payment`]: the pay info names this gateway, its timestamp is within
//!    the window and was not seen in it, then the scheme's `spend_verify` (CPU-heavy: about
//!    40 ms of pairings, BENCHMARKS.md; run it off the async workers).
//!
//! Time is passed in as unix seconds, so every rule is testable at any date.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use nym_compact_ecash::{CompactEcashError, VerificationKeyAuth};
use time::{Date, OffsetDateTime};

use crate::error::TicketError;
use crate::wire::{PayInfoFields, SpendingData};

/// nym-node's pay-info timestamp window: a spend made more than this before or after our
/// clock is refused.
pub const DEFAULT_PAY_INFO_WINDOW_SECS: u64 = 30;

/// The ticket types (nym's `TicketTypeRepr`), by their encoded byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketType {
    /// 0: mixnet entry (what websocket clients buy).
    V1MixnetEntry,
    /// 1: mixnet exit.
    V1MixnetExit,
    /// 2: WireGuard entry.
    V1WireguardEntry,
    /// 3: WireGuard exit.
    V1WireguardExit,
}

impl TicketType {
    /// The type of an encoded byte, if it is one.
    pub fn from_encoded(encoded: u8) -> Option<Self> {
        match encoded {
            0 => Some(Self::V1MixnetEntry),
            1 => Some(Self::V1MixnetExit),
            2 => Some(Self::V1WireguardEntry),
            3 => Some(Self::V1WireguardExit),
            _ => None,
        }
    }

    /// The encoded byte.
    pub fn encoded(self) -> u8 {
        match self {
            Self::V1MixnetEntry => 0,
            Self::V1MixnetExit => 1,
            Self::V1WireguardEntry => 2,
            Self::V1WireguardExit => 3,
        }
    }

    /// Bytes of bandwidth one ticket buys (decimal units, as nym's network defaults).
    pub const fn bandwidth(self) -> i64 {
        match self {
            Self::V1MixnetEntry => 200_000_000,
            Self::V1MixnetExit => 100_000_000,
            Self::V1WireguardEntry | Self::V1WireguardExit => 500_000_000,
        }
    }
}

/// A credential that passed [`precheck`].
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The credential.
    pub data: SpendingData,
    /// Its type.
    pub ticket_type: TicketType,
    /// Its serial number (the double-spend key).
    pub serial_number: Vec<u8>,
}

/// The UTC day of a unix time (clamped to the calendar's range, far beyond any real clock).
pub fn utc_date(now_unix: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(now_unix).map_or(Date::MAX, OffsetDateTime::date)
}

/// The unix time of a day's 00:00 UTC, as the scheme encodes dates.
pub fn encoded_date(date: Date) -> u32 {
    let seconds = date.midnight().assume_utc().unix_timestamp();
    u32::try_from(seconds).unwrap_or(0)
}

/// The cheap checks, before any lookup: type, a single ticket, spent today.
pub fn precheck(data: SpendingData, now_unix: i64) -> Result<Ticket, TicketError> {
    let serial_number = data.serial_number();
    let encoded = data.payment.t_type;
    let ticket_type =
        TicketType::from_encoded(encoded).ok_or(TicketError::UnknownTicketType(encoded))?;
    if data.payment.spend_value != 1 {
        return Err(TicketError::MultipleTickets);
    }
    let today = utc_date(now_unix);
    if data.spend_date != today {
        return Err(TicketError::SpendingDate {
            got: data.spend_date,
            expected: today,
        });
    }
    Ok(Ticket {
        data,
        ticket_type,
        serial_number,
    })
}

/// Checks payments for one gateway; shared by all its clients.
#[derive(Debug)]
pub struct Verifier {
    identity: [u8; 32],
    window_secs: i64,
    /// Pay infos of verified tickets whose timestamp is still within the window, oldest
    /// first. Bounded by the window: each entry cost a valid ticket in the last
    /// `2 × window` seconds, and older ones are dropped on every check.
    seen: Mutex<BTreeSet<(i64, PayInfoFields)>>,
}

impl Verifier {
    /// A verifier for the gateway with ed25519 identity key `identity`, accepting pay-info
    /// timestamps within `window_secs` of its clock.
    pub fn new(identity: [u8; 32], window_secs: u64) -> Self {
        Self {
            identity,
            window_secs: i64::try_from(window_secs).unwrap_or(i64::MAX),
            seen: Mutex::new(BTreeSet::new()),
        }
    }

    /// Checks the pay info, then the ticket's proof and signatures against the master key of
    /// its epoch; remembers the pay info if the ticket is valid.
    pub fn check_payment(
        &self,
        ticket: &Ticket,
        master_key: &VerificationKeyAuth,
        now_unix: i64,
    ) -> Result<(), TicketError> {
        let pay_info = PayInfoFields::from_pay_info(&ticket.data.pay_info);
        self.check_pay_info(&pay_info, now_unix)?;
        let spend_date = encoded_date(ticket.data.spend_date);
        ticket
            .data
            .payment
            .spend_verify(master_key, &ticket.data.pay_info, spend_date)
            .map_err(|e| match e {
                CompactEcashError::ExpirationDateSignatureValidity => {
                    TicketError::ExpirationSignature
                }
                _ => TicketError::BadTicket,
            })?;
        // A concurrent twin may have passed the check meanwhile; the serial number's
        // uniqueness in the store refuses it then.
        self.seen_set().insert((pay_info.timestamp, pay_info));
        Ok(())
    }

    fn check_pay_info(&self, pay_info: &PayInfoFields, now_unix: i64) -> Result<(), TicketError> {
        if pay_info.provider != self.identity {
            return Err(TicketError::WrongProvider);
        }
        let earliest = now_unix.saturating_sub(self.window_secs);
        let latest = now_unix.saturating_add(self.window_secs);
        if pay_info.timestamp < earliest || pay_info.timestamp > latest {
            return Err(TicketError::PayInfoTimestamp);
        }
        let mut seen = self.seen_set();
        // Entries older than the window can never match an acceptable timestamp again.
        let keep = seen.split_off(&(earliest, PayInfoFields::MIN));
        *seen = keep;
        if seen.contains(&(pay_info.timestamp, *pay_info)) {
            return Err(TicketError::DuplicatePayInfo);
        }
        Ok(())
    }

    fn seen_set(&self) -> std::sync::MutexGuard<'_, BTreeSet<(i64, PayInfoFields)>> {
        // The set is valid after any panic (inserts are single calls).
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pay infos remembered now (for tests and metrics).
    pub fn remembered_pay_infos(&self) -> usize {
        self.seen_set().len()
    }
}

impl PayInfoFields {
    /// The smallest value of a timestamp's entries, to split the set at.
    const MIN: Self = Self {
        randomness: [0; 32],
        timestamp: i64::MIN,
        provider: [0; 32],
    };
}
