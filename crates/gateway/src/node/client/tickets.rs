//! zk-nym tickets (`ecashCredential`, PROTOCOL §2.8): a client spends one ticket of its
//! ticketbook for the bandwidth of the ticket's type. The checks are nym-node 1.31.0's, in
//! its order (`gateway_ecash::verify`), with the serial number looked up in and then recorded
//! by the store, so a ticket is spent here at most once, across restarts.
//!
//! The cryptographic check and the fetch of an epoch's master key block, so they run on
//! tokio's blocking threads, at most `zk_nym_verification_concurrency` at a time: a flood of
//! tickets waits for a slot instead of taking every core.

use std::sync::Arc;
use std::time::Duration;

use gateway_ecash::{precheck, MasterKeys, SpendingData, Ticket, TicketError, Verifier};
use gateway_protocol::client::shared_key::nonce_from_slice;
use gateway_protocol::client::ServerResponse;
use gateway_store::UnixTime;
use tokio::sync::Semaphore;
use tracing::debug;

use super::session::Session;
use super::signer_queue::{AcceptedTicket, SignerQueue};
use crate::config::Tuning;

/// What a client asking for free bandwidth is told when tickets are enforced (nym-node's
/// text, from the coconut days).
pub(super) const ONLY_TICKETS: &str =
    "This gateway is only accepting coconut credentials for bandwidth";

/// Ticket acceptance, shared by every session: a cheap `Clone` handle.
#[derive(Clone)]
pub struct Tickets(Arc<Shared>);

struct Shared {
    verifier: Verifier,
    keys: MasterKeys,
    enforce_zk_nyms: bool,
    verification_slots: Semaphore,
    signers: SignerQueue,
}

/// The settings of ticket acceptance, from the config.
#[derive(Debug, Clone)]
pub struct TicketSettings {
    /// `claimFreeTestnetBandwidth` is refused; only tickets buy bandwidth.
    pub enforce_zk_nyms: bool,
    /// nym-apis serving the master verification keys, tried in order.
    pub nym_api_urls: Vec<String>,
    /// Timeout of one request to nym-api.
    pub nym_api_timeout: Duration,
    /// How far a pay-info timestamp may be from our clock.
    pub pay_info_window: Duration,
    /// Epochs whose master key is cached.
    pub key_cache_epochs: usize,
    /// Largest answer read from nym-api for a master key, in bytes.
    pub key_max_answer_size: usize,
    /// Tickets verified at once.
    pub verification_concurrency: usize,
}

impl TicketSettings {
    /// The ticket values of the config; `nym_api_urls` are the nym-apis the gateway follows.
    pub fn from_config(enforce_zk_nyms: bool, nym_api_urls: &[String], d: &Tuning) -> Self {
        Self {
            enforce_zk_nyms,
            nym_api_urls: nym_api_urls.to_vec(),
            nym_api_timeout: d.nym_api_timeout,
            pay_info_window: d.zk_nym_pay_info_window,
            key_cache_epochs: d.zk_nym_key_cache_epochs.get(),
            key_max_answer_size: d.zk_nym_key_max_answer_size.get(),
            verification_concurrency: d.zk_nym_verification_concurrency.get(),
        }
    }
}

impl Tickets {
    /// Ticket acceptance for the gateway with ed25519 identity key `identity`; accepted
    /// tickets go to `signers` for verification.
    pub fn new(identity: [u8; 32], settings: &TicketSettings, signers: SignerQueue) -> Self {
        let keys = MasterKeys::new(
            &settings.nym_api_urls,
            settings.nym_api_timeout,
            settings.key_cache_epochs,
            settings.key_max_answer_size,
        );
        Self::with_keys(identity, settings, keys, signers)
    }

    /// As [`new`](Self::new), with the master keys given (a local authority's, tests').
    pub fn with_keys(
        identity: [u8; 32],
        settings: &TicketSettings,
        keys: MasterKeys,
        signers: SignerQueue,
    ) -> Self {
        Self(Arc::new(Shared {
            verifier: Verifier::new(identity, settings.pay_info_window.as_secs()),
            keys,
            enforce_zk_nyms: settings.enforce_zk_nyms,
            verification_slots: Semaphore::new(settings.verification_concurrency.max(1)),
            signers,
        }))
    }

    /// Whether free bandwidth claims are refused.
    pub fn enforced(&self) -> bool {
        self.0.enforce_zk_nyms
    }

    /// The epoch's master key and the pay-info and cryptographic checks, off the async
    /// workers.
    async fn verify(&self, ticket: Ticket, now: UnixTime) -> Result<Ticket, TicketError> {
        // The semaphore is never closed.
        let _slot = self
            .0
            .verification_slots
            .acquire()
            .await
            .map_err(|_| TicketError::Storage)?;
        let shared = self.0.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let key = shared.keys.get(ticket.data.epoch_id)?;
            shared
                .verifier
                .check_payment(&ticket, &key, now.as_secs())
                .map(|()| ticket)
        })
        .await;
        // A panic in the scheme's code is a refused ticket, not a dead session.
        checked.unwrap_or(Err(TicketError::BadTicket))
    }
}

impl Session {
    /// Answers `ecashCredential`: the ticket's bandwidth, or nym-node's error text (and
    /// nothing granted).
    pub(super) async fn spend_ticket(
        &mut self,
        enc_credential: &[u8],
        iv: &[u8],
    ) -> ServerResponse {
        match self.accept_ticket(enc_credential, iv).await {
            Ok(total) => ServerResponse::Bandwidth {
                available_total: total,
                upgrade_mode: self.ctx.upgrade_mode.enabled(),
            },
            Err(refusal) => {
                debug!(reason = %refusal, "ticket refused");
                ServerResponse::error(refusal)
            }
        }
    }

    async fn accept_ticket(&mut self, enc_credential: &[u8], iv: &[u8]) -> Result<i64, String> {
        let malformed = |e| format!("Provided binary request was malformed - {e}");
        let nonce = nonce_from_slice(iv).map_err(malformed)?;
        let plaintext = self
            .key
            .decrypt(&nonce, enc_credential)
            .map_err(malformed)?;
        let now = UnixTime::now();
        let data = SpendingData::parse(&plaintext)
            .map_err(TicketError::Malformed)
            .map_err(|e| e.to_string())?;
        let ticket = precheck(data, now.as_secs()).map_err(|e| e.to_string())?;
        let store = &self.ctx.store;
        match store.ticket_spent(ticket.serial_number.clone()).await {
            Ok(false) => {}
            Ok(true) => return Err(TicketError::AlreadySpent.to_string()),
            Err(e) => {
                crate::warn_rate_limited!(super::STORE_ERRORS, error = %e, "failed to look up a ticket's serial number");
                return Err(TicketError::Storage.to_string());
            }
        }
        let ticket = self
            .ctx
            .tickets
            .verify(ticket, now)
            .await
            .map_err(|e| e.to_string())?;
        let recorded = store
            .insert_received_ticket(self.client, now, ticket.serial_number.clone(), plaintext)
            .await;
        let amount = ticket.ticket_type.bandwidth();
        match recorded {
            Ok(Some(ticket_id)) => self.ctx.tickets.0.signers.submit(AcceptedTicket {
                ticket_id,
                data: ticket.data,
                bandwidth: amount,
            }),
            // Spent by another session since our lookup.
            Ok(None) => return Err(TicketError::AlreadySpent.to_string()),
            Err(e) => {
                crate::warn_rate_limited!(super::STORE_ERRORS, error = %e, "failed to record a ticket");
                return Err(TicketError::Storage.to_string());
            }
        }
        self.bandwidth.add_ticket(amount, now);
        self.ctx
            .metrics
            .bandwidth_granted_bytes
            .inc_by(amount.unsigned_abs());
        self.bandwidth.persist(&self.ctx.store).await;
        // As saved: with any revocation made meanwhile.
        Ok(self.bandwidth.available(now))
    }
}
