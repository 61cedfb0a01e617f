//! A small e-cash authority for tests, benchmarks and the local mixnet: threshold signer keys
//! (`ttp_keygen`), ticketbooks issued by them, and tickets spent from a book for a given
//! gateway. Everything is nym's published scheme; only the plumbing is here.
//!
//! Issuing is slow (the coin-index signatures are 50 signatures per signer, made once per
//! authority); spending costs a few milliseconds per ticket.

use std::sync::Arc;

use nym_compact_ecash::scheme::coin_indices_signatures::CoinIndexSignature;
use nym_compact_ecash::scheme::expiration_date_signatures::ExpirationDateSignature;
use nym_compact_ecash::scheme::keygen::{KeyPairAuth, KeyPairUser, SecretKeyAuth, SecretKeyUser};
use nym_compact_ecash::scheme::{Wallet, WalletSignatures};
use nym_compact_ecash::tests::helpers::{
    generate_coin_indices_signatures, generate_expiration_date_signatures,
};
use nym_compact_ecash::{
    aggregate_verification_keys, aggregate_wallets, ecash_parameters, generate_keypair_user, issue,
    issue_verify, ttp_keygen, withdrawal_request, CompactEcashError, PartialWallet,
    VerificationKeyAuth,
};
use rand::RngExt as _;
use time::{Date, Duration};

use crate::verify::{encoded_date, utc_date, TicketType};
use crate::wire::{PayInfoFields, SpendingData};

/// Days a ticketbook is valid, its expiration day included (nym's `TICKETBOOK_VALIDITY_DAYS`).
pub const TICKETBOOK_VALIDITY_DAYS: i64 = 7;

/// Threshold signers of one epoch and their aggregated key.
pub struct Authority {
    epoch_id: u64,
    signers: Vec<KeyPairAuth>,
    indices: Vec<u64>,
    master_key: VerificationKeyAuth,
    coin_index_signatures: Arc<Vec<CoinIndexSignature>>,
}

impl Authority {
    /// `signers` signers of which any `threshold` can issue, for DKG epoch `epoch_id`.
    pub fn new(epoch_id: u64, threshold: u64, signers: u64) -> Result<Self, CompactEcashError> {
        let signers = ttp_keygen(threshold, signers)?;
        let indices: Vec<u64> = (1..=signers.len() as u64).collect();
        let keys: Vec<VerificationKeyAuth> =
            signers.iter().map(KeyPairAuth::verification_key).collect();
        let master_key = aggregate_verification_keys(&keys, Some(&indices))?;
        let secrets: Vec<&SecretKeyAuth> = signers.iter().map(KeyPairAuth::secret_key).collect();
        let coin_index_signatures = generate_coin_indices_signatures(
            ecash_parameters(),
            &secrets,
            &keys,
            &master_key,
            &indices,
        )?;
        Ok(Self {
            epoch_id,
            signers,
            indices,
            master_key,
            coin_index_signatures: Arc::new(coin_index_signatures),
        })
    }

    /// The epoch this authority signs for.
    pub fn epoch_id(&self) -> u64 {
        self.epoch_id
    }

    /// The aggregated master verification key (what nym-api serves and gateways verify with).
    pub fn master_key(&self) -> &VerificationKeyAuth {
        &self.master_key
    }

    /// A ticketbook of `ticket_type` valid from `expiration − 6 days` to `expiration`
    /// (UTC days), signed by every signer.
    pub fn issue(
        &self,
        ticket_type: TicketType,
        expiration: Date,
    ) -> Result<TicketBook, CompactEcashError> {
        let user = generate_keypair_user();
        let expiration_ts = encoded_date(expiration);
        let t_type = ticket_type.encoded();
        let (request, info) = withdrawal_request(user.secret_key(), expiration_ts, t_type)?;
        let mut partial = Vec::<PartialWallet>::with_capacity(self.signers.len());
        for (signer, index) in self.signers.iter().zip(&self.indices) {
            let blinded = issue(
                signer.secret_key(),
                user.public_key(),
                &request,
                expiration_ts,
                t_type,
            )?;
            partial.push(issue_verify(
                &signer.verification_key(),
                user.secret_key(),
                &blinded,
                &info,
                *index,
            )?);
        }
        let wallet = aggregate_wallets(&self.master_key, user.secret_key(), &partial, &info)?;
        let secrets: Vec<&SecretKeyAuth> =
            self.signers.iter().map(KeyPairAuth::secret_key).collect();
        let keys: Vec<VerificationKeyAuth> = self
            .signers
            .iter()
            .map(KeyPairAuth::verification_key)
            .collect();
        let date_signatures = generate_expiration_date_signatures(
            expiration_ts,
            &secrets,
            &keys,
            &self.master_key,
            &self.indices,
        )?;
        Ok(TicketBook {
            epoch_id: self.epoch_id,
            ticket_type,
            expiration,
            user,
            wallet,
            master_key: self.master_key.clone(),
            date_signatures,
            coin_index_signatures: self.coin_index_signatures.clone(),
        })
    }

    /// A ticketbook valid from today (of `now_unix`) for the usual week.
    pub fn issue_current(
        &self,
        ticket_type: TicketType,
        now_unix: i64,
    ) -> Result<TicketBook, CompactEcashError> {
        let expiration = utc_date(now_unix)
            .checked_add(Duration::days(TICKETBOOK_VALIDITY_DAYS - 1))
            .unwrap_or(Date::MAX);
        self.issue(ticket_type, expiration)
    }
}

/// A client's ticketbook: 50 tickets, spent one at a time. A clone spends the same tickets
/// again (double spends, for tests).
#[derive(Clone)]
pub struct TicketBook {
    epoch_id: u64,
    ticket_type: TicketType,
    expiration: Date,
    user: KeyPairUser,
    wallet: Wallet,
    master_key: VerificationKeyAuth,
    date_signatures: Vec<ExpirationDateSignature>,
    coin_index_signatures: Arc<Vec<CoinIndexSignature>>,
}

/// Everything a ticketbook is made of, for handing it to a client: what nym's
/// `IssuedTicketBook` holds and the global data it is spent with.
pub struct TicketBookParts {
    /// The DKG epoch of the signers.
    pub epoch_id: u64,
    /// Its ticket type.
    pub ticket_type: TicketType,
    /// Its last valid day (UTC).
    pub expiration: Date,
    /// The wallet's signatures.
    pub wallet: WalletSignatures,
    /// The client's secret e-cash key.
    pub secret_key: SecretKeyUser,
    /// The signers' aggregated key.
    pub master_key: VerificationKeyAuth,
    /// Signatures on each day of the validity period, the first day first.
    pub expiration_date_signatures: Vec<ExpirationDateSignature>,
    /// Signatures on each coin index, index 0 first.
    pub coin_index_signatures: Vec<CoinIndexSignature>,
}

impl TicketBook {
    /// Its parts, for a client that spends it itself; this book should then not be spent.
    pub fn parts(&self) -> TicketBookParts {
        TicketBookParts {
            epoch_id: self.epoch_id,
            ticket_type: self.ticket_type,
            expiration: self.expiration,
            wallet: self.wallet.clone().into_wallet_signatures(),
            secret_key: self.user.secret_key().clone(),
            master_key: self.master_key.clone(),
            expiration_date_signatures: self.date_signatures.clone(),
            coin_index_signatures: self.coin_index_signatures.as_ref().clone(),
        }
    }

    /// Spends the next ticket at the gateway with ed25519 identity key `gateway`, now: the
    /// credential a client sends in `ecashCredential`.
    pub fn spend(
        &mut self,
        gateway: [u8; 32],
        now_unix: i64,
    ) -> Result<SpendingData, CompactEcashError> {
        let pay_info = PayInfoFields {
            randomness: rand::rng().random(),
            timestamp: now_unix,
            provider: gateway,
        };
        self.spend_with(pay_info, utc_date(now_unix))
    }

    /// Spends the next ticket with the given pay info on `spend_date` (tests use dates and
    /// pay infos a client would not).
    pub fn spend_with(
        &mut self,
        pay_info: PayInfoFields,
        spend_date: Date,
    ) -> Result<SpendingData, CompactEcashError> {
        let pay_info = pay_info.to_pay_info();
        let payment = self.wallet.spend(
            ecash_parameters(),
            &self.master_key,
            self.user.secret_key(),
            &pay_info,
            1,
            &self.date_signatures,
            &self.coin_index_signatures,
            encoded_date(spend_date),
        )?;
        Ok(SpendingData {
            payment,
            pay_info,
            spend_date,
            epoch_id: self.epoch_id,
        })
    }
}
