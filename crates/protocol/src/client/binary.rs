//! Encrypted binary websocket frames (PROTOCOL §2.8.1, §2.8.5).
//!
//! ```text
//! [0] kind  [1] encrypted flag (1)  [2..14) nonce  [14..) AEAD_k(nonce, plaintext)
//! ```
//! Requests carry a MixPacket (kind 1 = v1, kind 2 = v2 with a key-rotation byte); decoding it
//! is [`crate::mix_packet`]'s job. The gateway pushes each delivered message as kind 1.

use thiserror::Error;

use super::shared_key::{KeyUsageError, SharedKey, NONCE_LEN};

/// Bytes before the ciphertext: kind, flag, nonce.
pub const HEADER_LEN: usize = 2 + NONCE_LEN;
/// The only encryption flag we accept.
const FLAG_ENCRYPTED: u8 = 1;
/// Kind byte of a pushed message (gateway → client).
pub const PUSHED_MIX_MESSAGE_KIND: u8 = 1;

/// What a client asks for in a binary frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Forward a MixPacket in its v1 encoding (no key-rotation byte).
    ForwardSphinx = 1,
    /// Forward a MixPacket in its v2 encoding (protocol ≥ 5).
    ForwardSphinxV2 = 2,
}

impl RequestKind {
    /// The kind for a wire byte.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::ForwardSphinx),
            2 => Some(Self::ForwardSphinxV2),
            _ => None,
        }
    }
}

/// A decrypted binary request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryRequest {
    /// How to decode `plaintext`.
    pub kind: RequestKind,
    /// The serialized MixPacket.
    pub plaintext: Vec<u8>,
}

/// Why a binary frame was refused. The texts are the ones clients see (wrapped by the
/// gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BinaryFrameError {
    /// Fewer bytes than the header needs.
    #[error("the request is too short")]
    TooShort,
    /// A flag other than 1.
    #[error("the encryption flag had an unexpected value")]
    InvalidEncryptionFlag,
    /// A kind we do not know.
    #[error("received request with an unknown kind: {0}")]
    UnknownKind(u8),
    /// Tag mismatch.
    #[error(transparent)]
    KeyUsage(#[from] KeyUsageError),
}

/// Decrypts a client's binary request frame.
pub fn decrypt_request(frame: &[u8], key: &SharedKey) -> Result<BinaryRequest, BinaryFrameError> {
    let (kind, nonce, ciphertext) = split(frame)?;
    let kind = RequestKind::from_byte(kind).ok_or(BinaryFrameError::UnknownKind(kind))?;
    let plaintext = key.decrypt(&nonce, ciphertext)?;
    Ok(BinaryRequest { kind, plaintext })
}

/// Builds a pushed-message frame `01 ‖ 01 ‖ nonce ‖ AEAD(message)`; `nonce` must be fresh
/// random bytes for every frame.
pub fn encrypt_pushed_message(
    message: &[u8],
    key: &SharedKey,
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, BinaryFrameError> {
    seal(PUSHED_MIX_MESSAGE_KIND, message, key, nonce)
}

/// Builds a request frame (what a client does; for tests).
pub fn encrypt_request(
    kind: RequestKind,
    plaintext: &[u8],
    key: &SharedKey,
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, BinaryFrameError> {
    seal(kind as u8, plaintext, key, nonce)
}

/// Opens a pushed-message frame (what a client does; for tests).
pub fn decrypt_pushed_message(frame: &[u8], key: &SharedKey) -> Result<Vec<u8>, BinaryFrameError> {
    let (kind, nonce, ciphertext) = split(frame)?;
    if kind != PUSHED_MIX_MESSAGE_KIND {
        return Err(BinaryFrameError::UnknownKind(kind));
    }
    Ok(key.decrypt(&nonce, ciphertext)?)
}

fn seal(
    kind: u8,
    plaintext: &[u8],
    key: &SharedKey,
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, BinaryFrameError> {
    let ciphertext = key.encrypt(nonce, plaintext)?;
    let mut frame = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    frame.push(kind);
    frame.push(FLAG_ENCRYPTED);
    frame.extend_from_slice(nonce);
    frame.extend_from_slice(&ciphertext);
    Ok(frame)
}

/// Splits the envelope into kind, nonce and ciphertext.
fn split(frame: &[u8]) -> Result<(u8, [u8; NONCE_LEN], &[u8]), BinaryFrameError> {
    let [kind, flag, ..] = *frame else {
        return Err(BinaryFrameError::TooShort);
    };
    // Flag 0 ("plaintext") is accepted by the reference parser, which then skips 12 bytes and
    // reads the rest unencrypted. Real clients always send 1, and the spec recommends refusing
    // 0: accepting it would let anyone who knows a client's address skip the key entirely.
    if flag != FLAG_ENCRYPTED {
        return Err(BinaryFrameError::InvalidEncryptionFlag);
    }
    let (nonce, ciphertext) = frame
        .get(2..)
        .and_then(|rest| rest.split_first_chunk::<NONCE_LEN>())
        .ok_or(BinaryFrameError::TooShort)?;
    Ok((kind, *nonce, ciphertext))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::vectors::{hex_field, load, shared_key};

    fn nonce(v: &serde_json::Value) -> [u8; NONCE_LEN] {
        hex_field(v, "nonce_hex").try_into().unwrap()
    }

    #[test]
    fn request_frames_decrypt_to_the_vector_plaintexts() {
        let v = load("binary_frames.json");
        let key = shared_key();
        assert_eq!(key.as_bytes().to_vec(), hex_field(&v, "shared_key_hex"));
        for (name, kind) in [
            ("forward_sphinx_v1", RequestKind::ForwardSphinx),
            ("forward_sphinx_v2", RequestKind::ForwardSphinxV2),
        ] {
            let frame = hex_field(&v[name], "frame_hex");
            let plaintext = hex_field(&v[name], "plaintext_hex");
            let request = decrypt_request(&frame, key).unwrap();
            assert_eq!(request.kind, kind, "{name}");
            assert_eq!(request.plaintext, plaintext, "{name}");
            assert_eq!(
                encrypt_request(kind, &plaintext, key, &nonce(&v)).unwrap(),
                frame,
                "{name}"
            );
        }
    }

    #[test]
    fn pushed_message_frame_equals_the_vector() {
        let v = load("binary_frames.json");
        let key = shared_key();
        let message = hex_field(&v["pushed_mix_message"], "plaintext_hex");
        let frame = encrypt_pushed_message(&message, key, &nonce(&v)).unwrap();
        assert_eq!(frame, hex_field(&v["pushed_mix_message"], "frame_hex"));
        assert_eq!(decrypt_pushed_message(&frame, key).unwrap(), message);

        let live = hex_field(&v, "pushed_mix_message_live_random_nonce_hex");
        assert_eq!(decrypt_pushed_message(&live, key).unwrap(), message);
    }

    #[test]
    fn parse_errors_have_the_reference_texts() {
        let v = load("binary_frames.json");
        let errors = &v["parse_errors"];
        let key = shared_key();
        let good = hex_field(&v["forward_sphinx_v2"], "frame_hex");
        let text = |frame: &[u8]| decrypt_request(frame, key).unwrap_err().to_string();

        assert_eq!(text(&[1]), errors["one_byte"].as_str().unwrap());
        assert_eq!(text(&[]), errors["one_byte"].as_str().unwrap());
        assert_eq!(
            text(&good[..13]),
            errors["encrypted_but_short"].as_str().unwrap()
        );
        let mut flag2 = good.clone();
        flag2[1] = 2;
        assert_eq!(text(&flag2), errors["flag_2"].as_str().unwrap());
        let mut kind3 = good.clone();
        kind3[0] = 3;
        assert_eq!(text(&kind3), errors["kind_3"].as_str().unwrap());
        let mut bad_tag = good.clone();
        *bad_tag.last_mut().unwrap() ^= 1;
        assert_eq!(text(&bad_tag), errors["bad_tag"].as_str().unwrap());
        // A header with an empty ciphertext has no tag to check.
        assert_eq!(
            text(&good[..HEADER_LEN]),
            errors["bad_tag"].as_str().unwrap()
        );

        let e = load("error_strings.json");
        assert_eq!(
            BinaryFrameError::TooShort.to_string(),
            e["errors"]["GatewayRequestsError::TooShortRequest"]
                .as_str()
                .unwrap()
        );
        assert_eq!(
            BinaryFrameError::InvalidEncryptionFlag.to_string(),
            e["errors"]["GatewayRequestsError::InvalidEncryptionFlag"]
                .as_str()
                .unwrap()
        );
    }

    #[test]
    fn unencrypted_frames_are_refused() {
        let v = load("binary_frames.json");
        // The reference accepts this frame as plaintext; we do not.
        assert!(v["unencrypted_flag0_with_12_zero_nonce_bytes_parses"]
            .as_bool()
            .unwrap());
        let plaintext = hex_field(&v["forward_sphinx_v1"], "plaintext_hex");
        let frame = [&[1u8, 0][..], &[0; NONCE_LEN], &plaintext].concat();
        assert_eq!(
            decrypt_request(&frame, shared_key()),
            Err(BinaryFrameError::InvalidEncryptionFlag)
        );
        // Short flag-0 frames (which crash the reference) are refused too.
        assert_eq!(
            decrypt_request(&[1, 0, 5], shared_key()),
            Err(BinaryFrameError::InvalidEncryptionFlag)
        );
    }

    #[test]
    fn every_prefix_of_a_frame_is_refused_without_panicking() {
        let v = load("binary_frames.json");
        let key = shared_key();
        let good = hex_field(&v["pushed_mix_message"], "frame_hex");
        for len in 0..good.len() {
            assert!(decrypt_request(&good[..len], key).is_err(), "{len}");
            assert!(decrypt_pushed_message(&good[..len], key).is_err(), "{len}");
        }
        let request = [&[2u8][..], &good[1..]].concat();
        assert_eq!(
            decrypt_pushed_message(&request, key),
            Err(BinaryFrameError::UnknownKind(2))
        );
    }
}
