//! The local network's e-cash authority: threshold signers made with nym's published scheme
//! (`gateway_ecash::authority`), what nym-api serves about them, the signers' ticket
//! verification, and tickets for clients.
//!
//! - `GET /v1/ecash/master-verification-key[?epoch_id=N]`: nym-api's `VerificationKeyResponse`
//!   for the authority's DKG epoch ([`DKG_EPOCH`], also when no epoch is named); 404 for others.
//! - `POST /v1/ecash/verify-ecash-ticket`: a signer's `EcashTicketVerificationResponse`, checked
//!   in nym-api's order (single ticket, spend date, replay and double spend by serial number,
//!   the proof), each verified ticket remembered.
//! - `POST /localnet/v1/ecash/ticket` ([`TICKET_PATH`]): one ticket spent for a gateway, from a
//!   ticketbook the authority issued to the named client: what a client's ticket provider hands
//!   its gateway client (`CredentialSpendingData`, bs58 of its bytes).
//! - `POST /localnet/v1/ecash/ticketbook` ([`TICKETBOOK_PATH`]): a whole ticketbook for the
//!   client to spend itself, as nym's clients import one (see [`export`]).
//!
//! A new authority is made at every start: tickets are valid only while it runs. Everything
//! here blocks (pairings, a few milliseconds each; a ticketbook takes longer): call it from a
//! blocking thread.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use anyhow::Context as _;
use gateway_ecash::authority::{Authority, TicketBook};
use gateway_ecash::keys::key_response_json;
use gateway_ecash::verify::{encoded_date, utc_date};
use gateway_ecash::{SpendingData, TicketType};
use nym_compact_ecash::identify::{identify, IdentifyResult};
use nym_compact_ecash::scheme::Payment;
use nym_compact_ecash::{ecash_parameters, PayInfo};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::{Date, Month, OffsetDateTime, Time};

/// The DKG epoch of the local authority.
pub const DKG_EPOCH: u64 = 1;
/// Signers of the local authority, and how many of them issue a ticketbook.
const SIGNERS: u64 = 3;
const THRESHOLD: u64 = 2;
/// Where clients get tickets.
pub const TICKET_PATH: &str = "/localnet/v1/ecash/ticket";
/// Where clients get ticketbooks.
pub const TICKETBOOK_PATH: &str = "/localnet/v1/ecash/ticketbook";
/// Clients with a ticketbook at once; a local network has a handful.
const MAX_CLIENTS: usize = 10_000;
/// Tickets the signer remembers (serial numbers); each one cost a ticket this authority issued.
const MAX_VERIFIED: usize = 1_000_000;
/// nym-api accepts yesterday's tickets until this time of day (UTC).
const ONE_AM: Time = match Time::from_hms(1, 0, 0) {
    Ok(time) => time,
    Err(_) => Time::MIDNIGHT,
};

/// A request refused: nym-api's status and plain-text message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    /// HTTP status.
    pub status: u16,
    /// What went wrong.
    pub message: String,
}

impl Refused {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

/// The authority, the clients' ticketbooks and the tickets verified so far.
pub struct Ecash {
    authority: Authority,
    books: Mutex<HashMap<(String, TicketType), IssuedBook>>,
    verified: Mutex<HashMap<Vec<u8>, (Payment, PayInfo)>>,
}

struct IssuedBook {
    book: TicketBook,
    spent: u64,
}

/// `POST` [`TICKET_PATH`]: which client wants a ticket for which gateway.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketRequest {
    /// bs58 ed25519 identity key of the gateway the ticket is for.
    gateway_identity: String,
    /// Whose ticketbook it comes from (one book per client and type); default `default`.
    #[serde(default)]
    client: Option<String>,
    /// nym's kebab-case ticket type name; default `v1-mixnet-entry`.
    #[serde(default)]
    ticket_type: Option<String>,
    /// When the ticket is spent (unix seconds), as the client's clock says; default now.
    #[serde(default)]
    spend_time: Option<i64>,
}

/// The answer to a ticket request.
#[derive(Debug, Serialize, Deserialize)]
pub struct IssuedTicket {
    /// bs58 of nym's `CredentialSpendingData` bytes (`CredentialSpendingData::try_from_bs58`).
    pub credential: String,
    /// The DKG epoch that issued it.
    pub epoch_id: u64,
    /// nym's name of its type.
    pub ticket_type: String,
    /// bs58 of its serial number.
    pub serial_number: String,
    /// Tickets left in the client's ticketbook (a new book is issued when it is empty).
    pub tickets_left: u64,
}

/// `POST` [`TICKETBOOK_PATH`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketBookRequest {
    /// nym's kebab-case ticket type name; default `v1-mixnet-entry`.
    #[serde(default)]
    ticket_type: Option<String>,
}

/// The answer to a ticketbook request.
#[derive(Debug, Serialize, Deserialize)]
pub struct IssuedTicketBook {
    /// bs58 of nym's `ImportableTicketBook` (revision 1) with the master key, expiration-date
    /// and coin-index signatures included.
    pub ticketbook: String,
    /// The DKG epoch that issued it.
    pub epoch_id: u64,
    /// nym's name of its type.
    pub ticket_type: String,
    /// Its last valid day (UTC), `YYYY-MM-DD`.
    pub expiration_date: String,
    /// Tickets in it.
    pub tickets: u64,
}

/// nym-api's `VerifyEcashTicketBody`.
#[derive(Deserialize)]
struct VerifyBody {
    credential: Credential,
    gateway_cosmos_addr: String,
}

/// nym's `CredentialSpendingData` in its serde form.
#[derive(Deserialize)]
struct Credential {
    payment: Payment,
    pay_info: PayInfo,
    spend_date: DateForm,
    epoch_id: u64,
}

/// A `time::Date` as serde writes it: text where the serializer is human-readable and time's
/// `serde-human-readable` is on, `[year, ordinal]` otherwise.
#[derive(Deserialize)]
#[serde(untagged)]
enum DateForm {
    Text(String),
    Tuple(i32, u16),
}

impl DateForm {
    fn date(&self) -> Option<Date> {
        match self {
            Self::Text(text) => parse_date(text),
            Self::Tuple(year, ordinal) => Date::from_ordinal_date(*year, *ordinal).ok(),
        }
    }
}

/// `YYYY-MM-DD`.
fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.splitn(3, '-');
    let year = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day = parts.next()?.parse().ok()?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

/// nym-api's `date_serde` form of a date.
fn date_text(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// A signer's `EcashTicketVerificationResponse` rejecting a ticket.
fn rejected(reason: Value) -> Value {
    json!({ "verified": { "Err": reason } })
}

impl Ecash {
    /// A fresh authority for [`DKG_EPOCH`] (seconds of key generation and signing).
    pub fn new() -> anyhow::Result<Self> {
        let authority = Authority::new(DKG_EPOCH, THRESHOLD, SIGNERS)
            .context("failed to create the e-cash authority")?;
        Ok(Self {
            authority,
            books: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// `GET /v1/ecash/master-verification-key`: the key of `epoch_id` (the current one when
    /// `None`).
    pub fn master_verification_key(&self, epoch_id: Option<u64>) -> Result<Value, Refused> {
        let epoch = epoch_id.unwrap_or(DKG_EPOCH);
        if epoch != self.authority.epoch_id() {
            return Err(Refused::new(
                404,
                format!("no master verification key is known for epoch {epoch}"),
            ));
        }
        serde_json::from_str(&key_response_json(self.authority.master_key()))
            .map_err(|e| Refused::new(500, format!("failed to encode the key: {e}")))
    }

    /// [`TICKET_PATH`]: a ticket spent at the requested gateway at `now_unix` unless the
    /// request names a time.
    pub fn ticket(&self, body: &[u8], now_unix: i64) -> Result<IssuedTicket, Refused> {
        let request: TicketRequest =
            serde_json::from_slice(body).map_err(|e| Refused::new(422, e.to_string()))?;
        let gateway = bs58::decode(&request.gateway_identity)
            .into_vec()
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| {
                Refused::new(
                    400,
                    "gateway_identity is not a bs58-encoded 32-byte ed25519 key",
                )
            })?;
        let type_name = request.ticket_type.as_deref().unwrap_or("v1-mixnet-entry");
        let ticket_type = ticket_type(type_name)
            .ok_or_else(|| Refused::new(400, format!("unknown ticket type {type_name:?}")))?;
        let client = request.client.unwrap_or_else(|| "default".to_owned());
        let spend_time = request.spend_time.unwrap_or(now_unix);

        let mut books = lock(&self.books);
        let key = (client, ticket_type);
        let total = ecash_parameters().get_total_coins();
        let exhausted = books.get(&key).is_none_or(|b| b.spent >= total);
        if exhausted {
            if !books.contains_key(&key) && books.len() >= MAX_CLIENTS {
                return Err(Refused::new(503, "too many clients have ticketbooks"));
            }
            let book = self
                .authority
                .issue_current(ticket_type, now_unix)
                .map_err(|e| Refused::new(500, format!("failed to issue a ticketbook: {e}")))?;
            books.insert(key.clone(), IssuedBook { book, spent: 0 });
        }
        let Some(issued) = books.get_mut(&key) else {
            return Err(Refused::new(500, "the ticketbook vanished"));
        };
        let data = issued
            .book
            .spend(gateway, spend_time)
            .map_err(|e| Refused::new(500, format!("failed to spend a ticket: {e}")))?;
        issued.spent += 1;
        Ok(IssuedTicket {
            credential: bs58::encode(data.encode()).into_string(),
            epoch_id: data.epoch_id,
            ticket_type: type_name.to_owned(),
            serial_number: bs58::encode(data.serial_number()).into_string(),
            tickets_left: total - issued.spent,
        })
    }

    /// [`TICKETBOOK_PATH`]: a fresh ticketbook valid from today (of `now_unix`) for a week.
    pub fn ticketbook(&self, body: &[u8], now_unix: i64) -> Result<IssuedTicketBook, Refused> {
        let request: TicketBookRequest = if body.iter().all(u8::is_ascii_whitespace) {
            TicketBookRequest::default()
        } else {
            serde_json::from_slice(body).map_err(|e| Refused::new(422, e.to_string()))?
        };
        let type_name = request.ticket_type.as_deref().unwrap_or("v1-mixnet-entry");
        let ticket_type = ticket_type(type_name)
            .ok_or_else(|| Refused::new(400, format!("unknown ticket type {type_name:?}")))?;
        let book = self
            .authority
            .issue_current(ticket_type, now_unix)
            .map_err(|e| Refused::new(500, format!("failed to issue a ticketbook: {e}")))?;
        let parts = book.parts();
        let bytes = export::importable_ticketbook(&parts)
            .map_err(|e| Refused::new(500, format!("failed to encode the ticketbook: {e}")))?;
        Ok(IssuedTicketBook {
            ticketbook: bs58::encode(bytes).into_string(),
            epoch_id: parts.epoch_id,
            ticket_type: type_name.to_owned(),
            expiration_date: date_text(parts.expiration),
            tickets: ecash_parameters().get_total_coins(),
        })
    }

    /// `POST /v1/ecash/verify-ecash-ticket` at `now_unix`: nym-api's answer, or its refusal of
    /// the request.
    pub fn verify_ticket(&self, body: &[u8], now_unix: i64) -> Result<Value, Refused> {
        let body: VerifyBody =
            serde_json::from_slice(body).map_err(|e| Refused::new(422, e.to_string()))?;
        if bech32::decode(&body.gateway_cosmos_addr).is_err() {
            return Err(Refused::new(
                422,
                "gateway_cosmos_addr is not a bech32 account address",
            ));
        }
        let credential = body.credential;
        let spend_date = credential
            .spend_date
            .date()
            .ok_or_else(|| Refused::new(422, "spend_date is not a date"))?;
        if credential.payment.spend_value != 1 {
            return Ok(rejected(json!("MultipleTickets")));
        }
        let now = OffsetDateTime::from_unix_timestamp(now_unix)
            .map_err(|_| Refused::new(500, "the clock is out of range"))?;
        let today = utc_date(now_unix);
        let yesterday = today.previous_day().unwrap_or(Date::MIN);
        // As nym-api: yesterday's tickets only until 1 AM.
        if spend_date != today && (now.time() > ONE_AM || spend_date != yesterday) {
            return Ok(rejected(json!({ "InvalidSpentDate": {
                "today": date_text(today),
                "yesterday": date_text(yesterday),
                "received": date_text(spend_date),
            }})));
        }
        let serial = credential.payment.encoded_serial_number();
        if let Some((payment, pay_info)) = lock(&self.verified).get(&serial) {
            match identify(&credential.payment, payment, credential.pay_info, *pay_info) {
                IdentifyResult::NotADuplicatePayment => {}
                IdentifyResult::DuplicatePayInfo(_) => {
                    return Ok(rejected(json!("ReplayedTicket")))
                }
                IdentifyResult::DoubleSpendingPublicKeys(_) => {
                    return Ok(rejected(json!("DoubleSpend")))
                }
            }
        }
        if credential.epoch_id != self.authority.epoch_id() {
            return Err(Refused::new(
                404,
                format!(
                    "no master verification key is known for epoch {}",
                    credential.epoch_id
                ),
            ));
        }
        let data = SpendingData {
            payment: credential.payment,
            pay_info: credential.pay_info,
            spend_date,
            epoch_id: credential.epoch_id,
        };
        let verified = data.payment.spend_verify(
            self.authority.master_key(),
            &data.pay_info,
            encoded_date(spend_date),
        );
        if verified.is_err() {
            return Ok(rejected(json!("InvalidTicket")));
        }
        let mut seen = lock(&self.verified);
        if seen.len() >= MAX_VERIFIED {
            return Err(Refused::new(503, "the signer's ticket store is full"));
        }
        if seen.contains_key(&serial) {
            // A twin verified meanwhile.
            return Ok(rejected(json!("ReplayedTicket")));
        }
        seen.insert(serial, (data.payment, data.pay_info));
        Ok(json!({ "verified": { "Ok": null } }))
    }
}

/// nym's kebab-case ticket type names.
pub fn ticket_type(name: &str) -> Option<TicketType> {
    match name {
        "v1-mixnet-entry" => Some(TicketType::V1MixnetEntry),
        "v1-mixnet-exit" => Some(TicketType::V1MixnetExit),
        "v1-wireguard-entry" => Some(TicketType::V1WireguardEntry),
        "v1-wireguard-exit" => Some(TicketType::V1WireguardExit),
        _ => None,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each change is a single insert: the maps are valid after any panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub mod export;
#[cfg(test)]
mod tests;
