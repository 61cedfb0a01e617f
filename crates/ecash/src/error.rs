//! Why a ticket is refused. The texts are nym-node 1.31.0's, word for word: clients show them
//! and some match on them.

use thiserror::Error;
use time::Date;

use crate::wire::WireError;

/// A refused ticket; its `Display` is the `message` of the client's `error` reply.
#[derive(Debug, Error)]
pub enum TicketError {
    /// The decrypted bytes are not a credential.
    #[error("Provided binary request was malformed - the received encrypted data was malformed")]
    Malformed(#[source] WireError),
    /// The ticket type byte names no known ticket type.
    #[error("provided unknown ticketbook type")]
    UnknownTicketType(u8),
    /// A payment for more than one ticket.
    #[error(
        "the received payment contained more than a single ticket. that's currently not supported"
    )]
    MultipleTickets,
    /// Spent on another day than today (UTC).
    #[error(
        "the provided credential has an invalid spending date. got {got} but expected {expected}"
    )]
    SpendingDate {
        /// The ticket's date.
        got: Date,
        /// Today.
        expected: Date,
    },
    /// The serial number is in our store: spent here before.
    #[error("the provided bandwidth credential has already been spent before at this gateway")]
    AlreadySpent,
    /// nym-api has no master key for the ticket's epoch (unknown, or a DKG in progress).
    #[error("the DKG threshold value for epoch {0} is currently unavailable. we're probably mid-epoch transition")]
    EpochUnavailable(u64),
    /// No nym-api answered the request for the master key (nothing is granted meanwhile).
    #[error("failed to query the nym API for the verification key of epoch {epoch}: {reason}")]
    NymApiUnavailable {
        /// The ticket's epoch.
        epoch: u64,
        /// The last failure.
        reason: String,
    },
    /// The pay info names another gateway.
    #[error("provided payinfo's public key does not match provider's")]
    WrongProvider,
    /// The pay info's time is too far from ours.
    #[error("provided payinfo's timestamp is invalid")]
    PayInfoTimestamp,
    /// The same pay info was presented within the timestamp window.
    #[error("received payinfo is a duplicate")]
    DuplicatePayInfo,
    /// The expiration-date signature does not hold (an expired ticketbook, or a forged date).
    #[error("failed to verify provided ticket due to invalid expiration date signatures")]
    ExpirationSignature,
    /// Any other failure of the cryptographic verification.
    #[error("the provided ticket failed to get verified")]
    BadTicket,
    /// The store failed (details go to the log).
    #[error("Internal gateway storage error")]
    Storage,
}
