//! Tickets from nym-localnet's e-cash authority for the real client, two ways:
//!
//! * [`LocalnetTickets`], a `BandwidthTicketProvider` (nym-bandwidth-controller 2.0.0, the trait
//!   `GatewayClient` asks for tickets): each ticket is spent for the asking gateway at the asked
//!   time by `POST /localnet/v1/ecash/ticket`, and arrives as nym's `CredentialSpendingData`;
//! * [`imported_ticketbook`]: a whole ticketbook from `POST /localnet/v1/ecash/ticketbook`,
//!   imported as nym's clients import one, for nym's own `BandwidthController` to spend.

use anyhow::Context;
use async_trait::async_trait;
use gateway_test_harness::http_post;
use nym_bandwidth_controller::error::BandwidthControllerError;
use nym_bandwidth_controller::{
    BandwidthTicketProvider, PreparedCredential, PreparedCredentialMetadata,
};
use nym_credential_storage::ephemeral_storage::EphemeralStorage;
use nym_credential_storage::storage::Storage as _;
use nym_credentials::ecash::bandwidth::serialiser::VersionedSerialise as _;
use nym_credentials::ImportableTicketBook;
use nym_credentials_interface::{CredentialSpendingData, TicketType};
use nym_crypto::asymmetric::ed25519;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// Where nym-localnet hands out tickets.
pub const TICKET_PATH: &str = "/localnet/v1/ecash/ticket";
/// Where nym-localnet hands out ticketbooks.
pub const TICKETBOOK_PATH: &str = "/localnet/v1/ecash/ticketbook";

/// A ticketbook of `ticket_type` from nym-localnet at `api`, imported into a fresh in-memory
/// credential store the way nym-id's `import_full_ticketbook` (`nym-client ecash
/// import-ticket-book --full`) does: decoded by nym-credentials, the ticketbook and its global
/// data stored.
pub async fn imported_ticketbook(
    api: SocketAddr,
    ticket_type: TicketType,
) -> anyhow::Result<(EphemeralStorage, IssuedTicketBookInfo)> {
    let request = serde_json::json!({ "ticket_type": ticket_type.to_string() });
    let body = http_post(api, TICKETBOOK_PATH, &request.to_string())
        .await
        .context("nym-localnet gave no ticketbook")?;
    let answer: serde_json::Value = serde_json::from_str(&body).context("the answer's JSON")?;
    let encoded = answer["ticketbook"]
        .as_str()
        .context("the answer has no ticketbook")?;
    let raw = bs58::decode(encoded).into_vec()?;
    let importable =
        ImportableTicketBook::try_unpack(&raw, None).context("not nym's ImportableTicketBook")?;
    let decoded = importable
        .try_unpack_full()
        .context("the ticketbook's parts do not decode")?;
    let storage = EphemeralStorage::default();
    let key = decoded
        .master_verification_key
        .context("no master verification key included")?;
    let dates = decoded
        .expiration_date_signatures
        .context("no expiration date signatures included")?;
    let coins = decoded
        .coin_index_signatures
        .context("no coin index signatures included")?;
    storage.insert_master_verification_key(&key).await?;
    storage.insert_expiration_date_signatures(&dates).await?;
    storage.insert_coin_index_signatures(&coins).await?;
    storage
        .insert_issued_ticketbook(&decoded.ticketbook)
        .await?;
    let info = IssuedTicketBookInfo {
        epoch_id: decoded.ticketbook.epoch_id(),
        ticket_type: decoded.ticketbook.ticketbook_type(),
        expiration_date: decoded.ticketbook.expiration_date(),
        spent_tickets: decoded.ticketbook.spent_tickets(),
        key_epoch: key.epoch_id,
        coin_index_signatures: coins.signatures.len(),
        expiration_date_signatures: dates.signatures.len(),
    };
    Ok((storage, info))
}

/// What an imported ticketbook says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTicketBookInfo {
    pub epoch_id: u64,
    pub ticket_type: TicketType,
    pub expiration_date: time::Date,
    pub spent_tickets: u64,
    pub key_epoch: u64,
    pub coin_index_signatures: usize,
    pub expiration_date_signatures: usize,
}

/// A ticket as nym-localnet hands it out.
#[derive(Debug, Clone)]
pub struct LocalTicket {
    pub credential: CredentialSpendingData,
    pub epoch_id: u64,
    pub serial_number: String,
    pub tickets_left: u64,
}

/// Asks nym-localnet at `api` for a ticket of `client`'s book, for `gateway`, spent at
/// `spend_time`.
pub async fn fetch_ticket(
    api: SocketAddr,
    client: &str,
    ticket_type: TicketType,
    gateway: &ed25519::PublicKey,
    spend_time: OffsetDateTime,
) -> anyhow::Result<LocalTicket> {
    let request = serde_json::json!({
        "client": client,
        "gateway_identity": gateway.to_base58_string(),
        "ticket_type": ticket_type.to_string(),
        "spend_time": spend_time.unix_timestamp(),
    });
    let body = http_post(api, TICKET_PATH, &request.to_string())
        .await
        .context("nym-localnet gave no ticket")?;
    let answer: serde_json::Value = serde_json::from_str(&body).context("the ticket's JSON")?;
    let credential = answer["credential"]
        .as_str()
        .context("the answer has no credential")?;
    let bytes = bs58::decode(credential).into_vec()?;
    Ok(LocalTicket {
        credential: CredentialSpendingData::try_from_bytes(&bytes)
            .context("the credential is not nym's CredentialSpendingData")?,
        epoch_id: answer["epoch_id"].as_u64().context("epoch_id")?,
        serial_number: answer["serial_number"]
            .as_str()
            .context("serial_number")?
            .to_owned(),
        tickets_left: answer["tickets_left"].as_u64().context("tickets_left")?,
    })
}

/// What the provider does when the client asks for a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supply {
    /// A fresh ticket from nym-localnet each time.
    Fresh,
    /// The first ticket it ever got, again and again (a double spend from the second on).
    Replay,
}

/// The provider handed to `GatewayClient::new`.
pub struct LocalnetTickets {
    api: SocketAddr,
    client: String,
    supply: Supply,
    /// Tickets handed to the client so far.
    pub handed_out: Arc<AtomicU32>,
    /// Tickets received from nym-localnet, in order.
    pub received: Arc<Mutex<Vec<LocalTicket>>>,
}

impl LocalnetTickets {
    pub fn new(api: SocketAddr, client: &str, supply: Supply) -> Self {
        Self {
            api,
            client: client.to_owned(),
            supply,
            handed_out: Arc::default(),
            received: Arc::default(),
        }
    }
}

#[async_trait]
impl BandwidthTicketProvider for LocalnetTickets {
    async fn get_ecash_ticket(
        &self,
        ticket_type: TicketType,
        gateway_id: ed25519::PublicKey,
        tickets_to_spend: u32,
        spend_time: OffsetDateTime,
    ) -> Result<Option<PreparedCredential>, BandwidthControllerError> {
        if tickets_to_spend != 1 {
            return Err(BandwidthControllerError::internal(
                "nym-localnet spends one ticket at a time",
            ));
        }
        let earlier = self.received.lock().expect("lock").first().cloned();
        let ticket = match (self.supply, earlier) {
            (Supply::Replay, Some(first)) => first,
            _ => {
                let ticket =
                    fetch_ticket(self.api, &self.client, ticket_type, &gateway_id, spend_time)
                        .await
                        .map_err(|e| BandwidthControllerError::internal(format!("{e:#}")))?;
                self.received.lock().expect("lock").push(ticket.clone());
                ticket
            }
        };
        let used = self.handed_out.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Some(PreparedCredential {
            data: ticket.credential,
            epoch_id: ticket.epoch_id,
            metadata: PreparedCredentialMetadata {
                ticketbook_id: 0,
                tickets_withdrawn: 1,
                used_tickets: used,
            },
        }))
    }

    async fn get_upgrade_mode_token(&self) -> Result<Option<String>, BandwidthControllerError> {
        Ok(None)
    }

    async fn attempt_revert_spending(
        &self,
        _metadata: PreparedCredentialMetadata,
    ) -> Result<bool, BandwidthControllerError> {
        // A ticket once spent here is gone; nothing is reverted.
        Ok(false)
    }

    async fn close(&self) {}
}
