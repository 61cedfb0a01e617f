//! Accepting zk-nym (compact e-cash) tickets the way nym-node 1.31.0 does: the credential's
//! byte layout, the checks in nym-node's order with its error texts, the master verification
//! key of each epoch, and a test authority that issues tickets. The cryptography is nym's
//! published `nym-compact-ecash`; this crate does no async I/O and knows no store.
//!
//! # Layout
//! - `wire`: the `ecashCredential` plaintext and the pay info (parse, encode).
//! - `verify`: the checks, in order; ticket types and the bandwidth each buys.
//! - `keys`: master verification keys per epoch, fetched from nym-api and cached.
//! - `error`: why a ticket is refused, in the texts clients get.
//! - `signers`: the JSON of the signers' later verification of an accepted ticket.
//! - `upgrade_mode`: the attester's published attestation and clients' `upgradeModeJWT`.
//! - `authority`: threshold signers, ticketbooks and spends, for tests and the local mixnet.

#![forbid(unsafe_code)]

pub mod authority;
pub mod error;
pub mod keys;
pub mod signers;
pub mod upgrade_mode;
pub mod verify;
pub mod wire;

#[cfg(test)]
mod tests;

pub use error::TicketError;
pub use keys::MasterKeys;
pub use nym_compact_ecash::VerificationKeyAuth;
pub use verify::{precheck, Ticket, TicketType, Verifier, DEFAULT_PAY_INFO_WINDOW_SECS};
pub use wire::{PayInfoFields, SpendingData, WireError};
