//! `authenticateV2` verification, gateway side (PROTOCOL §2.5).
//!
//! Calling contract: [`verify_request`] runs the checks that need no storage (version, clock
//! skew, signature). The caller then looks up the shared key stored for
//! [`VerifiedIdentity::client_identity`] (answering [`AuthError::NotRegistered`] if there is
//! none) and its last-used authentication timestamp, and calls
//! [`VerifiedIdentity::verify_with_key`], which checks the address ciphertext and the replay
//! rule and returns the timestamp to record as the new last-used value.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::request::AuthenticateV2Request;
use super::shared_key::{nonce_from_slice, KeyUsageError, SharedKey};
use super::time_display::{request_instant, UtcSeconds};
use super::CURRENT_PROTOCOL_VERSION;

/// Oldest protocol version that has `authenticateV2`.
pub const MIN_AUTHENTICATE_V2_VERSION: u8 = 4;
/// Default allowed difference between the request timestamp and our clock, in seconds.
pub const DEFAULT_MAX_TIMESTAMP_SKEW_SECS: u64 = 120;

/// Why an `authenticateV2` request was refused. The texts are the ones clients see.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// The declared version is outside 4..=6.
    #[error(
        "Attempted to negotiate connection with client using incompatible protocol version. Ours is {ours} and the client reports {theirs}"
    )]
    IncompatibleProtocol {
        /// Our version.
        ours: u8,
        /// The client's.
        theirs: u8,
    },
    /// The request timestamp is too far from our clock (both as unix seconds, UTC).
    #[error(
        "the provided request timestamp is excessively skewed. got {} whilst the server time is {}",
        UtcSeconds(*.received),
        UtcSeconds(*.server)
    )]
    ExcessiveTimestampSkew {
        /// The request's time as the reference interprets it.
        received: i64,
        /// Our time.
        server: i64,
    },
    /// The signature does not verify under the client identity.
    #[error("failed to verify request signature")]
    InvalidSignature,
    /// No key is stored for the client.
    #[error("the client is not registered")]
    NotRegistered,
    /// The nonce is not 12 bytes.
    #[error("the provided nonce (or legacy IV) did not have the expected length")]
    MalformedNonce,
    /// The address ciphertext does not match the stored key.
    #[error("failed to verify provided address ciphertext")]
    MalformedCiphertext,
    /// The timestamp is not newer than the last one used.
    #[error("the provided request timestamp is smaller or equal to one previously used")]
    RequestReuse,
    /// A live session for the client started at or after this request's timestamp (§2.10).
    #[error("attempted to overwrite client session with a stale authentication")]
    StaleAuthentication,
}

/// A request whose version, timestamp and signature passed; the key checks remain.
#[derive(Debug)]
pub struct VerifiedIdentity {
    request: AuthenticateV2Request,
}

/// Checks version, clock skew (`max_skew_secs` either way of `now_unix`) and signature.
pub fn verify_request(
    request: AuthenticateV2Request,
    now_unix: u64,
    max_skew_secs: u64,
) -> Result<VerifiedIdentity, AuthError> {
    let version = request.protocol_version;
    if !(MIN_AUTHENTICATE_V2_VERSION..=CURRENT_PROTOCOL_VERSION).contains(&version) {
        return Err(AuthError::IncompatibleProtocol {
            ours: CURRENT_PROTOCOL_VERSION,
            theirs: version,
        });
    }
    check_skew(request.request_unix_timestamp, now_unix, max_skew_secs)?;

    let identity = VerifyingKey::from_bytes(&request.client_identity)
        .map_err(|_| AuthError::InvalidSignature)?;
    identity
        .verify(
            &request.signed_message(),
            &Signature::from_bytes(&request.request_signature),
        )
        .map_err(|_| AuthError::InvalidSignature)?;
    Ok(VerifiedIdentity { request })
}

/// The skew rule: refuse `ts < now − skew` and `ts − skew > now`.
pub fn check_skew(request_unix: u64, now_unix: u64, max_skew_secs: u64) -> Result<(), AuthError> {
    let received = request_instant(request_unix);
    let server = i64::try_from(now_unix).unwrap_or(i64::MAX);
    let (ts, now, skew) = (
        i128::from(received),
        i128::from(server),
        i128::from(max_skew_secs),
    );
    if ts < now - skew || ts - skew > now {
        return Err(AuthError::ExcessiveTimestampSkew { received, server });
    }
    Ok(())
}

/// The duplicate-session rule: a new authentication may replace a live session only if its
/// timestamp is later than that session's start (unix seconds).
pub fn check_not_stale(request_unix: u64, live_session_start: u64) -> Result<(), AuthError> {
    if request_unix <= live_session_start {
        return Err(AuthError::StaleAuthentication);
    }
    Ok(())
}

impl VerifiedIdentity {
    /// The client's identity, which is also its address: look its key up by this.
    pub fn client_identity(&self) -> [u8; 32] {
        self.request.client_identity
    }

    /// The client's declared protocol version (echoed in the `authenticate` response).
    pub fn protocol_version(&self) -> u8 {
        self.request.protocol_version
    }

    /// The request timestamp (unix seconds).
    pub fn request_timestamp(&self) -> u64 {
        self.request.request_unix_timestamp
    }

    /// Checks the address ciphertext under the stored key (constant-time) and that the
    /// timestamp is strictly newer than `last_used`. Returns the timestamp to store.
    pub fn verify_with_key(
        &self,
        key: &SharedKey,
        last_used: Option<u64>,
    ) -> Result<u64, AuthError> {
        let nonce = nonce_from_slice(&self.request.nonce).map_err(|_| AuthError::MalformedNonce)?;
        let expected = key
            .encrypt(&nonce, &self.request.client_identity)
            .map_err(|_: KeyUsageError| AuthError::MalformedCiphertext)?;
        if !bool::from(expected.ct_eq(&self.request.address_ciphertext)) {
            return Err(AuthError::MalformedCiphertext);
        }
        let ts = self.request.request_unix_timestamp;
        if last_used.is_some_and(|previous| ts <= previous) {
            return Err(AuthError::RequestReuse);
        }
        Ok(ts)
    }
}

#[cfg(test)]
mod tests;
