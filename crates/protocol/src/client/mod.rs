//! The client websocket protocol, gateway side (PROTOCOL §2; protocol version 6).
//!
//! - [`request`] / [`response`]: the JSON text frames, parsed once into enums.
//! - [`handshake`]: registration (key agreement → [`SharedKey`]), one type per state.
//! - [`authenticate`]: `authenticateV2` verification for returning clients.
//! - [`binary`]: the encrypted binary frames (forward requests in, pushed messages out).
//! - [`encrypted`]: `encryptedRequest` / `encryptedResponse` (ForgetMe, RememberMe).
//! - [`shared_key`]: the per-client key and its AEAD.
//!
//! Nothing here reads a clock or a random source on its own: the current time and all nonces
//! and ephemeral keys are passed in.

pub mod authenticate;
pub mod binary;
pub mod encrypted;
pub mod handshake;
pub mod request;
pub mod response;
pub mod shared_key;
mod time_display;

pub use authenticate::{verify_request, AuthError, VerifiedIdentity};
pub use binary::{BinaryFrameError, BinaryRequest, RequestKind};
pub use handshake::{AwaitingClientFinish, HandshakeError, Registered};
pub use request::{AuthenticateV2Request, ClientRequest, HandshakeFrame, SensitiveRequest};
pub use response::{SensitiveResponse, ServerResponse, TypedError};
pub use shared_key::SharedKey;

/// The protocol version we speak and announce in `supportedProtocol`.
pub const CURRENT_PROTOCOL_VERSION: u8 = 6;

/// The version used in registration replies: the client's proposal, capped at ours
/// (registration itself does not refuse any version).
pub fn negotiate_registration_version(proposed: u8) -> u8 {
    proposed.min(CURRENT_PROTOCOL_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::vectors;

    #[test]
    fn registration_version_is_capped() {
        assert_eq!(negotiate_registration_version(0), 0);
        assert_eq!(negotiate_registration_version(4), 4);
        assert_eq!(negotiate_registration_version(6), 6);
        assert_eq!(negotiate_registration_version(200), 6);
    }

    /// Random peer input never panics and never passes authentication.
    #[test]
    fn random_input_is_refused() {
        use rand::{Rng, RngExt, SeedableRng};

        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let key = vectors::shared_key();
        let identity = ed25519_dalek::SigningKey::from_bytes(&[0x22; 32]);
        let valid_init = vectors::handshake_message(0);
        for _ in 0..500 {
            let len = rng.random_range(0..200);
            let mut bytes = vec![0u8; len];
            rng.fill_bytes(&mut bytes);
            if len >= 2 && rng.random_bool(0.5) {
                bytes[0] = rng.random_range(1..=2);
                bytes[1] = 1;
            }
            assert!(binary::decrypt_request(&bytes, key).is_err());
            assert!(binary::decrypt_pushed_message(&bytes, key).is_err());

            let text = String::from_utf8_lossy(&bytes);
            let _ = ClientRequest::parse(&text);
            let _ = HandshakeFrame::parse(&text);

            if len != handshake::INIT_LEN {
                assert!(handshake::start_with_rng(&bytes, &identity, &mut rng).is_err());
            }
            let (state, _) = handshake::start_with_rng(&valid_init, &identity, &mut rng).unwrap();
            assert!(state.finish(&bytes).is_err());
            let _ = handshake::client_identity_from_init(&bytes);
        }
    }

    #[test]
    fn supported_protocol_reply() {
        let reply = ServerResponse::SupportedProtocol {
            version: CURRENT_PROTOCOL_VERSION,
        };
        assert_eq!(
            reply.to_text(),
            r#"{"type":"supportedProtocol","version":6}"#
        );
    }
}
