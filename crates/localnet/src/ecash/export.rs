//! A ticketbook in the form Nym's clients import it: nym-credentials' `ImportableTicketBook`
//! with the global data it is spent with (master key, expiration-date and coin-index
//! signatures), as `nym-cli ecash issue-ticket-book` writes it and a client's
//! `ecash import-ticket-book --full` (nym-id's `import_full_ticketbook`) reads it.
//!
//! The encoding is nym's "versioned serialisation": bincode 1 with big-endian integers and
//! varint encoding, each part wrapped as `{data, revision}`. The structs below mirror nym's field
//! for field; the cryptographic values are the scheme's own types and serialise themselves.

use bincode::Options as _;
use gateway_ecash::authority::TicketBookParts;
use gateway_ecash::verify::encoded_date;
use gateway_ecash::TicketType;
use nym_compact_ecash::scheme::coin_indices_signatures::AnnotatedCoinIndexSignature;
use nym_compact_ecash::scheme::expiration_date_signatures::AnnotatedExpirationDateSignature;
use nym_compact_ecash::scheme::keygen::SecretKeyUser;
use nym_compact_ecash::scheme::WalletSignatures;
use nym_compact_ecash::VerificationKeyAuth;
use serde::Serialize;

/// Revisions of nym's serialisation: 1 for ticketbooks, 2 for the global data.
const TICKETBOOK_REVISION: u8 = 1;
const GLOBAL_DATA_REVISION: u8 = 2;
const SECONDS_PER_DAY: u32 = 86_400;

/// `VersionSerialised<T>`.
#[derive(Serialize)]
struct Versioned {
    data: Vec<u8>,
    revision: u8,
}

/// `ImportableTicketBook`.
#[derive(Serialize)]
struct Importable {
    serialised_ticketbook: Versioned,
    serialised_expiration_date_signatures: Option<Versioned>,
    serialised_coin_index_signatures: Option<Versioned>,
    serialised_master_verification_key: Option<Versioned>,
}

/// `IssuedTicketBook`.
#[derive(Serialize)]
struct Issued<'a> {
    signatures_wallet: &'a WalletSignatures,
    spent_tickets: u64,
    epoch_id: u64,
    ecash_secret_key: &'a SecretKeyUser,
    /// `time::Date` in a binary format: (year, day of the year).
    expiration_date: (i32, u16),
    ticketbook_type: TicketTypeForm,
}

/// nym's `TicketType`: bincode writes a variant's index, so the order is what matters.
#[derive(Serialize)]
// The names are nym's.
#[allow(clippy::enum_variant_names)]
enum TicketTypeForm {
    V1MixnetEntry,
    V1MixnetExit,
    V1WireguardEntry,
    V1WireguardExit,
}

impl From<TicketType> for TicketTypeForm {
    fn from(ticket_type: TicketType) -> Self {
        match ticket_type {
            TicketType::V1MixnetEntry => Self::V1MixnetEntry,
            TicketType::V1MixnetExit => Self::V1MixnetExit,
            TicketType::V1WireguardEntry => Self::V1WireguardEntry,
            TicketType::V1WireguardExit => Self::V1WireguardExit,
        }
    }
}

/// `AggregatedExpirationDateSignatures` (its date as nym's `YYYY-MM-DD` text).
#[derive(Serialize)]
struct ExpirationDateSignatures {
    epoch_id: u64,
    expiration_date: String,
    signatures: Vec<AnnotatedExpirationDateSignature>,
}

/// `AggregatedCoinIndicesSignatures`.
#[derive(Serialize)]
struct CoinIndexSignatures {
    epoch_id: u64,
    signatures: Vec<AnnotatedCoinIndexSignature>,
}

/// `EpochVerificationKey`.
#[derive(Serialize)]
struct EpochKey<'a> {
    epoch_id: u64,
    key: &'a VerificationKeyAuth,
}

fn versioned<T: Serialize>(value: &T, revision: u8) -> Result<Versioned, bincode::Error> {
    let data = bincode::DefaultOptions::new()
        .with_big_endian()
        .with_varint_encoding()
        .serialize(value)?;
    Ok(Versioned { data, revision })
}

/// The bytes of a full `ImportableTicketBook` of `parts`, none of its tickets spent.
pub fn importable_ticketbook(parts: &TicketBookParts) -> Result<Vec<u8>, bincode::Error> {
    let epoch_id = parts.epoch_id;
    let issued = Issued {
        signatures_wallet: &parts.wallet,
        spent_tickets: 0,
        epoch_id,
        ecash_secret_key: &parts.secret_key,
        expiration_date: (parts.expiration.year(), parts.expiration.ordinal()),
        ticketbook_type: parts.ticket_type.into(),
    };
    // The signatures cover the validity period's days in order, the expiration day last.
    let expiration = encoded_date(parts.expiration);
    let days = u32::try_from(parts.expiration_date_signatures.len()).unwrap_or(u32::MAX);
    let expiration_date_signatures = ExpirationDateSignatures {
        epoch_id,
        expiration_date: super::date_text(parts.expiration),
        signatures: (0..days)
            .zip(&parts.expiration_date_signatures)
            .map(|(day, signature)| AnnotatedExpirationDateSignature {
                signature: *signature,
                expiration_timestamp: expiration,
                spending_timestamp: expiration
                    .saturating_sub((days - day - 1).saturating_mul(SECONDS_PER_DAY)),
            })
            .collect(),
    };
    let coin_index_signatures = CoinIndexSignatures {
        epoch_id,
        signatures: (0u64..)
            .zip(&parts.coin_index_signatures)
            .map(|(index, signature)| AnnotatedCoinIndexSignature {
                signature: *signature,
                index,
            })
            .collect(),
    };
    let key = EpochKey {
        epoch_id,
        key: &parts.master_key,
    };
    let importable = Importable {
        serialised_ticketbook: versioned(&issued, TICKETBOOK_REVISION)?,
        serialised_expiration_date_signatures: Some(versioned(
            &expiration_date_signatures,
            GLOBAL_DATA_REVISION,
        )?),
        serialised_coin_index_signatures: Some(versioned(
            &coin_index_signatures,
            GLOBAL_DATA_REVISION,
        )?),
        serialised_master_verification_key: Some(versioned(&key, GLOBAL_DATA_REVISION)?),
    };
    Ok(versioned(&importable, TICKETBOOK_REVISION)?.data)
}
