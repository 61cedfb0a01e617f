//! The plaintext of an `ecashCredential` (nym's `CredentialSpendingData` byte layout) and the
//! 72-byte pay info inside it. All integers are big-endian:
//!
//! ```text
//! payment_len: u32 | payment: payment_len bytes (the scheme's own encoding)
//! pay_info: 72 bytes = randomness 32 | unix timestamp i64 | provider (gateway identity) key 32
//! spend_date: i32 julian day | epoch_id: u64
//! ```
//!
//! Parsing never panics: any input gives a [`SpendingData`] or a [`WireError`].

use nym_compact_ecash::scheme::{PayInfo, Payment};
use nym_compact_ecash::Bytable;
use thiserror::Error;
use time::Date;

/// Length of the pay info.
pub const PAY_INFO_LEN: usize = 72;
/// Bytes after the payment: pay info, date and epoch.
const TRAILER_LEN: usize = PAY_INFO_LEN + 4 + 8;
/// The shortest possible plaintext: the length prefix and the trailer.
const MIN_LEN: usize = 4 + TRAILER_LEN;

/// Why bytes are not a spending credential (for the log; clients get one fixed text).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the fixed fields need.
    #[error("{0} bytes are fewer than the {MIN_LEN} of an empty credential")]
    TooShort(usize),
    /// The length prefix does not match the bytes that follow.
    #[error("the payment length {declared} does not match the {actual} bytes present")]
    PaymentLength {
        /// What the prefix says.
        declared: u32,
        /// What follows the prefix, less the trailer.
        actual: usize,
    },
    /// The payment bytes are not a payment.
    #[error("the payment does not decode: {0}")]
    Payment(String),
    /// The julian day is outside the calendar's range.
    #[error("the spend date {0} is not a valid julian day")]
    SpendDate(i32),
}

/// A decoded ticket spend, as a client sends it in `ecashCredential`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendingData {
    /// The ticket itself (zero-knowledge spend proof and signatures).
    pub payment: Payment,
    /// What the spend is bound to: randomness, time and the gateway it is for.
    pub pay_info: PayInfo,
    /// The day the ticket is spent (UTC).
    pub spend_date: Date,
    /// The DKG epoch whose signers issued the ticketbook.
    pub epoch_id: u64,
}

impl SpendingData {
    /// Decodes a credential's plaintext.
    pub fn parse(raw: &[u8]) -> Result<Self, WireError> {
        if raw.len() < MIN_LEN {
            return Err(WireError::TooShort(raw.len()));
        }
        let (prefix, rest) = raw.split_at(4);
        let declared = u32::from_be_bytes(prefix.try_into().map_err(|_| WireError::TooShort(0))?);
        let payment_len = rest.len() - TRAILER_LEN;
        if usize::try_from(declared).ok() != Some(payment_len) {
            return Err(WireError::PaymentLength {
                declared,
                actual: payment_len,
            });
        }
        let (payment, trailer) = rest.split_at(payment_len);
        let payment =
            Payment::try_from_byte_slice(payment).map_err(|e| WireError::Payment(e.to_string()))?;
        let (pay_info, trailer) = trailer.split_at(PAY_INFO_LEN);
        let (date, epoch) = trailer.split_at(4);
        let julian_day = i32::from_be_bytes(date.try_into().map_err(|_| WireError::TooShort(0))?);
        let spend_date =
            Date::from_julian_day(julian_day).map_err(|_| WireError::SpendDate(julian_day))?;
        let epoch_id = u64::from_be_bytes(epoch.try_into().map_err(|_| WireError::TooShort(0))?);
        Ok(Self {
            payment,
            pay_info: PayInfo {
                pay_info_bytes: pay_info.try_into().map_err(|_| WireError::TooShort(0))?,
            },
            spend_date,
            epoch_id,
        })
    }

    /// Encodes the credential as a client sends it.
    pub fn encode(&self) -> Vec<u8> {
        let payment = self.payment.to_byte_vec();
        let mut out = Vec::with_capacity(MIN_LEN + payment.len());
        // A payment's encoding is a few kilobytes; a length beyond u32 cannot be built.
        out.extend_from_slice(
            &u32::try_from(payment.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(&payment);
        out.extend_from_slice(&self.pay_info.pay_info_bytes);
        out.extend_from_slice(&self.spend_date.to_julian_day().to_be_bytes());
        out.extend_from_slice(&self.epoch_id.to_be_bytes());
        out
    }

    /// The ticket's serial number: the double-spend key (48 bytes per ticket).
    pub fn serial_number(&self) -> Vec<u8> {
        self.payment.encoded_serial_number()
    }
}

/// The fields of nym's pay info layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PayInfoFields {
    /// Chosen by the client so that every spend is unique.
    pub randomness: [u8; 32],
    /// When the client made the spend (unix seconds).
    pub timestamp: i64,
    /// The ed25519 identity key of the gateway the ticket is spent at.
    pub provider: [u8; 32],
}

impl PayInfoFields {
    /// Splits the 72 bytes into their fields.
    pub fn from_pay_info(pay_info: &PayInfo) -> Self {
        let bytes = &pay_info.pay_info_bytes;
        let mut randomness = [0; 32];
        let mut timestamp = [0; 8];
        let mut provider = [0; 32];
        randomness.copy_from_slice(&bytes[..32]);
        timestamp.copy_from_slice(&bytes[32..40]);
        provider.copy_from_slice(&bytes[40..]);
        Self {
            randomness,
            timestamp: i64::from_be_bytes(timestamp),
            provider,
        }
    }

    /// Joins the fields into the 72 bytes.
    pub fn to_pay_info(&self) -> PayInfo {
        let mut pay_info_bytes = [0; PAY_INFO_LEN];
        pay_info_bytes[..32].copy_from_slice(&self.randomness);
        pay_info_bytes[32..40].copy_from_slice(&self.timestamp.to_be_bytes());
        pay_info_bytes[40..].copy_from_slice(&self.provider);
        PayInfo { pay_info_bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_inconsistent_inputs_are_errors() {
        for len in [0, 1, 4, MIN_LEN - 1] {
            assert_eq!(
                SpendingData::parse(&vec![0; len]),
                Err(WireError::TooShort(len))
            );
        }
        // An empty payment is no payment.
        assert!(matches!(
            SpendingData::parse(&[0; MIN_LEN]),
            Err(WireError::Payment(_))
        ));
        let mut raw = vec![0; MIN_LEN + 3];
        raw[..4].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(
            SpendingData::parse(&raw),
            Err(WireError::PaymentLength {
                declared: 2,
                actual: 3
            })
        );
        raw[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            SpendingData::parse(&raw),
            Err(WireError::PaymentLength { .. })
        ));
    }

    #[test]
    fn pay_info_fields_round_trip() {
        let fields = PayInfoFields {
            randomness: [7; 32],
            timestamp: 1_765_000_000,
            provider: [9; 32],
        };
        let pay_info = fields.to_pay_info();
        assert_eq!(
            &pay_info.pay_info_bytes[32..40],
            &1_765_000_000i64.to_be_bytes()
        );
        assert_eq!(PayInfoFields::from_pay_info(&pay_info), fields);
    }
}
