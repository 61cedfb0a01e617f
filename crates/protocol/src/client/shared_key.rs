//! The per-client shared key (the "access token") and the one AEAD every client frame uses.
//!
//! Everything encrypted between a client and the gateway (handshake signatures, the
//! `authenticateV2` address, binary frames, encrypted text requests) is AES-256-GCM-SIV under
//! this key, with a 12-byte nonce, the 16-byte tag appended and no associated data.

use std::fmt;

use aes_gcm_siv::aead::{Aead, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Key, Nonce};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a shared key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of an AEAD nonce in bytes.
pub const NONCE_LEN: usize = 12;
/// Length of the AEAD tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

/// Failure to use the shared key. The texts are the ones clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum KeyUsageError {
    /// A nonce that is not 12 bytes long.
    #[error("the provided nonce (or legacy IV) did not have the expected length")]
    MalformedNonce,
    /// Tag mismatch on decryption (or an input too large to encrypt).
    #[error("failed to either encrypt or decrypt provided message")]
    AeadFailure,
}

/// A stored key did not have [`KEY_LEN`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the shared key had invalid size. Got: {received}, but expected: {KEY_LEN}")]
pub struct InvalidKeyLength {
    /// How many bytes were given.
    pub received: usize,
}

/// The AES-256-GCM-SIV key derived in the registration handshake.
///
/// The bytes are wiped on drop and never printed by `Debug`. Equality is constant-time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SharedKey([u8; KEY_LEN]);

impl SharedKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Wraps key bytes loaded from storage, checking their length.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, InvalidKeyLength> {
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| InvalidKeyLength {
            received: bytes.len(),
        })?;
        Ok(Self(bytes))
    }

    /// The raw key bytes, for storing the key.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn cipher(&self) -> Aes256GcmSiv {
        Aes256GcmSiv::new(&Key::<Aes256GcmSiv>::from(self.0))
    }

    /// Encrypts `plaintext`, returning `ciphertext ‖ tag`.
    pub fn encrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, KeyUsageError> {
        // Only inputs beyond 2^36 bytes can fail; no websocket frame is that large.
        self.cipher()
            .encrypt(&Nonce::from(*nonce), plaintext)
            .map_err(|_| KeyUsageError::AeadFailure)
    }

    /// Decrypts and authenticates `ciphertext ‖ tag`.
    pub fn decrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, KeyUsageError> {
        self.cipher()
            .decrypt(&Nonce::from(*nonce), ciphertext)
            .map_err(|_| KeyUsageError::AeadFailure)
    }
}

/// Checks that a nonce received on the wire has exactly [`NONCE_LEN`] bytes.
pub fn nonce_from_slice(raw: &[u8]) -> Result<[u8; NONCE_LEN], KeyUsageError> {
    raw.try_into().map_err(|_| KeyUsageError::MalformedNonce)
}

impl PartialEq for SharedKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SharedKey {}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_key() -> SharedKey {
        let raw = hex::decode("819922cc7ffd2933a445c5e0f5dd847da0276568245eb09f905b6c9fcfe7e58d")
            .unwrap();
        SharedKey::try_from_slice(&raw).unwrap()
    }

    #[test]
    fn round_trip_and_tamper() {
        let key = vector_key();
        let nonce = [9u8; NONCE_LEN];
        let ct = key.encrypt(&nonce, b"hello").unwrap();
        assert_eq!(ct.len(), 5 + TAG_LEN);
        assert_eq!(key.decrypt(&nonce, &ct).unwrap(), b"hello");

        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(key.decrypt(&nonce, &bad), Err(KeyUsageError::AeadFailure));
        assert_eq!(key.decrypt(&nonce, &[]), Err(KeyUsageError::AeadFailure));
        assert_eq!(
            key.decrypt(&[8u8; NONCE_LEN], &ct),
            Err(KeyUsageError::AeadFailure)
        );
    }

    #[test]
    fn debug_never_prints_bytes() {
        let key = SharedKey::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "SharedKey(<redacted>)");
        assert!(!shown.to_lowercase().contains("ab"));
    }

    #[test]
    fn slice_lengths_and_equality() {
        assert_eq!(
            SharedKey::try_from_slice(&[0u8; 31]),
            Err(InvalidKeyLength { received: 31 })
        );
        assert_eq!(
            InvalidKeyLength { received: 31 }.to_string(),
            "the shared key had invalid size. Got: 31, but expected: 32"
        );
        assert_eq!(vector_key(), vector_key());
        assert_ne!(vector_key(), SharedKey::from_bytes([0; KEY_LEN]));
        assert_eq!(
            nonce_from_slice(&[1; 11]),
            Err(KeyUsageError::MalformedNonce)
        );
        assert_eq!(nonce_from_slice(&[1; 12]), Ok([1; 12]));
    }

    #[test]
    fn error_texts() {
        assert_eq!(
            KeyUsageError::MalformedNonce.to_string(),
            "the provided nonce (or legacy IV) did not have the expected length"
        );
        assert_eq!(
            KeyUsageError::AeadFailure.to_string(),
            "failed to either encrypt or decrypt provided message"
        );
    }
}
