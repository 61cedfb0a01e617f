//! The vectors of the client-side tests: the crate's loaders, and the shared key they all use.

pub(crate) use crate::test_vectors::{hex32, hex_field, load};

use super::shared_key::SharedKey;

/// The key every client-side vector file shares (derived in `handshake.json`).
pub(crate) fn vector_shared_key() -> SharedKey {
    SharedKey::from_bytes(hex32(&load("handshake.json"), "derived_shared_key_hex"))
}
