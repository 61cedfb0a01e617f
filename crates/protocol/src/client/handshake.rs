//! The registration handshake, gateway side (PROTOCOL §2.4).
//!
//! ```text
//! 1 C→G  ID_C (32) ‖ gˣ (32) ‖ salt (16)                      80 bytes
//! 2 G→C  gʸ (32) ‖ AEAD_k(n₁, Sig_G(gʸ ‖ gˣ)) (80) ‖ n₁ (12)   124 bytes
//! 3 C→G  AEAD_k(n₂, Sig_C(gˣ ‖ gʸ)) (80) ‖ n₂ (12)             92 bytes
//! 4 G→C  [0x01]
//! k = HKDF-HMAC-BLAKE3(salt, X25519(y, gˣ), info = "", 32 bytes)
//! ```
//!
//! Calling contract: [`start`] (or [`start_with_rng`]) with message 1 returns the
//! [`AwaitingClientFinish`] state and message 2; send message 2, then feed the client's message
//! 3 to [`AwaitingClientFinish::finish`], which yields the key and the client identity; then
//! send [`FINALIZATION_SUCCESS`]. The 5-second wait for message 3 is the caller's, reported as
//! [`HandshakeError::Timeout`]; a client `handshakeError` frame is reported as
//! [`HandshakeError::Remote`]. Randomness is passed in so tests are deterministic.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand_core::CryptoRng;
use thiserror::Error;
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};

use super::shared_key::{KeyUsageError, SharedKey, KEY_LEN, NONCE_LEN, TAG_LEN};

/// Length of handshake message 1.
pub const INIT_LEN: usize = 32 + 32 + SALT_LEN;
/// Length of the client's HKDF salt in message 1.
pub const SALT_LEN: usize = 16;
/// Length of an encrypted ed25519 signature.
const SEALED_SIGNATURE_LEN: usize = 64 + TAG_LEN;
/// Length of handshake message 2.
pub const GATEWAY_MESSAGE_LEN: usize = 32 + SEALED_SIGNATURE_LEN + NONCE_LEN;
/// Length of handshake message 3.
pub const CLIENT_FINISH_LEN: usize = SEALED_SIGNATURE_LEN + NONCE_LEN;
/// Message 4: the handshake succeeded.
pub const FINALIZATION_SUCCESS: [u8; 1] = [1];

/// Handshake failures. The texts are the ones clients see (inside `handshakeError`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// Message 1 is not 80 bytes or does not start with a valid ed25519 key.
    #[error("sent request was malformed")]
    MalformedRequest,
    /// Message 3 is not 92 bytes (the trailing colon is the reference text).
    #[error("received response was malformed:")]
    MalformedResponse,
    /// The client's signature does not verify.
    #[error("received invalid signature")]
    InvalidSignature,
    /// Message 3 failed to decrypt.
    #[error(transparent)]
    KeyUsage(#[from] KeyUsageError),
    /// The client sent a `handshakeError` frame.
    #[error("error on the remote: {0}")]
    Remote(String),
    /// Message 3 did not arrive in time.
    #[error("timed out waiting for a handshake message")]
    Timeout,
    /// The connection closed or failed during the handshake.
    #[error("encountered network error")]
    Network,
}

/// The client's identity from message 1, so the caller can check for a live connection of the
/// same client before running the handshake.
pub fn client_identity_from_init(init: &[u8]) -> Result<[u8; 32], HandshakeError> {
    let bytes: [u8; 32] = init
        .get(..32)
        .and_then(|b| b.try_into().ok())
        .ok_or(HandshakeError::MalformedRequest)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| HandshakeError::MalformedRequest)?;
    Ok(bytes)
}

/// Derives the session key: HKDF (RFC 5869) over HMAC-BLAKE3, BLAKE3 used as a plain hash
/// with a 64-byte block (not its keyed mode), empty info.
pub fn derive_shared_key(dh_output: &[u8; 32], salt: &[u8]) -> SharedKey {
    let hkdf = hkdf::SimpleHkdf::<blake3::Hasher>::new(Some(salt), dh_output);
    let mut okm = zeroize::Zeroizing::new([0u8; KEY_LEN]);
    // 32 bytes is far below HKDF's limit of 255 hash lengths, so this cannot fail.
    let _ = hkdf.expand(&[], okm.as_mut());
    SharedKey::from_bytes(*okm)
}

/// Gateway state after sending message 2: waiting for the client's message 3.
pub struct AwaitingClientFinish {
    shared_key: SharedKey,
    client_identity: VerifyingKey,
    client_ephemeral: [u8; 32],
    gateway_ephemeral: [u8; 32],
}

/// Handles message 1 with the given ephemeral secret and message-2 nonce; returns the next
/// state and message 2.
pub fn start(
    init: &[u8],
    gateway_identity: &SigningKey,
    ephemeral: StaticSecret,
    nonce: [u8; NONCE_LEN],
) -> Result<(AwaitingClientFinish, Vec<u8>), HandshakeError> {
    if init.len() != INIT_LEN {
        return Err(HandshakeError::MalformedRequest);
    }
    let identity = client_identity_from_init(init)?;
    let client_identity =
        VerifyingKey::from_bytes(&identity).map_err(|_| HandshakeError::MalformedRequest)?;
    let mut client_ephemeral = [0u8; 32];
    client_ephemeral.copy_from_slice(&init[32..64]);
    let salt = &init[64..INIT_LEN];

    // The client's x25519 key is not validated, as in the reference gateway.
    let gateway_ephemeral = X25519Public::from(&ephemeral).to_bytes();
    let dh = ephemeral.diffie_hellman(&X25519Public::from(client_ephemeral));
    let shared_key = derive_shared_key(dh.as_bytes(), salt);

    let signature = gateway_identity.sign(&concat(&gateway_ephemeral, &client_ephemeral));
    let sealed = shared_key.encrypt(&nonce, &signature.to_bytes())?;

    let mut message = Vec::with_capacity(GATEWAY_MESSAGE_LEN);
    message.extend_from_slice(&gateway_ephemeral);
    message.extend_from_slice(&sealed);
    message.extend_from_slice(&nonce);

    let state = AwaitingClientFinish {
        shared_key,
        client_identity,
        client_ephemeral,
        gateway_ephemeral,
    };
    Ok((state, message))
}

/// [`start`] with a fresh ephemeral secret and nonce drawn from `rng`.
pub fn start_with_rng<R: CryptoRng + ?Sized>(
    init: &[u8],
    gateway_identity: &SigningKey,
    rng: &mut R,
) -> Result<(AwaitingClientFinish, Vec<u8>), HandshakeError> {
    let ephemeral = StaticSecret::random_from_rng(rng);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    start(init, gateway_identity, ephemeral, nonce)
}

/// The handshake's result.
#[derive(Debug)]
pub struct Registered {
    /// The session key to store for the client.
    pub shared_key: SharedKey,
    /// The client's ed25519 identity (= its address).
    pub client_identity: [u8; 32],
}

impl AwaitingClientFinish {
    /// The client's ed25519 identity from message 1.
    pub fn client_identity(&self) -> [u8; 32] {
        self.client_identity.to_bytes()
    }

    /// Handles message 3: decrypts the client's signature and verifies it over `gˣ ‖ gʸ`.
    pub fn finish(self, message: &[u8]) -> Result<Registered, HandshakeError> {
        if message.len() != CLIENT_FINISH_LEN {
            return Err(HandshakeError::MalformedResponse);
        }
        let (sealed, nonce) = message.split_at(SEALED_SIGNATURE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| HandshakeError::MalformedResponse)?;
        let plaintext = self.shared_key.decrypt(&nonce, sealed)?;
        let signature: [u8; 64] = plaintext
            .as_slice()
            .try_into()
            .map_err(|_| HandshakeError::MalformedResponse)?;
        self.client_identity
            .verify(
                &concat(&self.client_ephemeral, &self.gateway_ephemeral),
                &Signature::from_bytes(&signature),
            )
            .map_err(|_| HandshakeError::InvalidSignature)?;
        Ok(Registered {
            client_identity: self.client_identity.to_bytes(),
            shared_key: self.shared_key,
        })
    }
}

impl std::fmt::Debug for AwaitingClientFinish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitingClientFinish")
            .field("client_identity", &self.client_identity)
            .finish_non_exhaustive()
    }
}

fn concat(first: &[u8; 32], second: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(first);
    out[32..].copy_from_slice(second);
    out
}

#[cfg(test)]
mod tests;
