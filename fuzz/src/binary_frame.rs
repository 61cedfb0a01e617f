//! Encrypted binary frames ([`binary::decrypt_request`] with the vector shared key), and the
//! MixPackets inside them, as an authenticated client sends them.
//!
//! Input: a mode byte, then
//! - even mode: the raw frame; the outcome must follow from its layout (length, flag, kind,
//!   tag), and a frame that opens re-encrypts to the same bytes;
//! - odd mode: a kind byte, a nonce and a plaintext, sealed here under the shared key; the
//!   gateway must open it to the same plaintext, then decode the MixPacket in it.

use arbitrary::{Result, Unstructured};
use gateway_protocol::client::binary::{
    self, BinaryFrameError, BinaryRequest, RequestKind, HEADER_LEN, PUSHED_MIX_MESSAGE_KIND,
};
use gateway_protocol::client::shared_key::{KeyUsageError, NONCE_LEN, TAG_LEN};
use gateway_protocol::mix_packet::MixPacket;

use gateway_protocol::test_support::vectors;

pub fn run(data: &[u8]) {
    crate::by_mode(data, raw, sealed);
}

fn raw(frame: &[u8]) {
    let key = vectors::shared_key();
    let layout_error = if frame.len() < 2 {
        Some(BinaryFrameError::TooShort)
    } else if frame[1] != 1 {
        Some(BinaryFrameError::InvalidEncryptionFlag)
    } else if frame.len() < HEADER_LEN {
        Some(BinaryFrameError::TooShort)
    } else {
        None
    };

    let result = binary::decrypt_request(frame, key);
    match (layout_error, &result) {
        (Some(expected), _) => assert_eq!(result, Err(expected)),
        (None, Err(BinaryFrameError::UnknownKind(kind))) => {
            assert_eq!(*kind, frame[0]);
            assert!(RequestKind::from_byte(frame[0]).is_none());
        }
        (None, Err(BinaryFrameError::KeyUsage(KeyUsageError::AeadFailure))) => {
            assert!(RequestKind::from_byte(frame[0]).is_some());
        }
        (None, Ok(request)) => {
            assert_eq!(request.kind as u8, frame[0]);
            assert_eq!(request.plaintext.len() + HEADER_LEN + TAG_LEN, frame.len());
            let nonce: [u8; NONCE_LEN] = frame[2..HEADER_LEN].try_into().expect("12");
            let again = binary::encrypt_request(request.kind, &request.plaintext, key, &nonce)
                .expect("encrypts");
            assert_eq!(again, frame, "a frame that opens must re-encrypt to itself");
        }
        (None, Err(other)) => panic!("unexpected error {other}"),
    }
    if let Err(err) = &result {
        assert!(!err.to_string().is_empty());
    }

    // the client side of pushed messages takes the same envelope
    let pushed = binary::decrypt_pushed_message(frame, key);
    if let Some(expected) = layout_error {
        assert_eq!(pushed, Err(expected));
    } else if frame[0] != PUSHED_MIX_MESSAGE_KIND {
        assert_eq!(pushed, Err(BinaryFrameError::UnknownKind(frame[0])));
    }
}

fn sealed(u: &mut Unstructured<'_>) -> Result<()> {
    let key = vectors::shared_key();
    let kind: u8 = if u.arbitrary()? {
        u.int_in_range(1..=2)?
    } else {
        u.arbitrary()?
    };
    let nonce: [u8; NONCE_LEN] = u.arbitrary()?;
    let plaintext = u.bytes(u.len())?;

    // sealed by hand, as the layout says: kind ‖ 1 ‖ nonce ‖ AEAD(plaintext)
    let mut frame = vec![kind, 1];
    frame.extend_from_slice(&nonce);
    frame.extend_from_slice(&key.encrypt(&nonce, plaintext).expect("encrypts"));

    let Some(expected_kind) = RequestKind::from_byte(kind) else {
        assert_eq!(
            binary::decrypt_request(&frame, key),
            Err(BinaryFrameError::UnknownKind(kind))
        );
        return Ok(());
    };
    assert_eq!(
        binary::encrypt_request(expected_kind, plaintext, key, &nonce).as_deref(),
        Ok(&frame[..])
    );
    let request = binary::decrypt_request(&frame, key).expect("an honest frame opens");
    assert_eq!(
        request,
        BinaryRequest {
            kind: expected_kind,
            plaintext: plaintext.to_vec(),
        }
    );

    // what the session does next: decode the MixPacket the kind names
    let (decoded, version) = match request.kind {
        RequestKind::ForwardSphinx => (MixPacket::decode_v1(&request.plaintext), 1),
        RequestKind::ForwardSphinxV2 => (MixPacket::decode_v2(&request.plaintext), 2),
    };
    crate::mix_packet::check(&request.plaintext, &decoded, version);

    // pushed messages: what we seal, the client opens
    let pushed = binary::encrypt_pushed_message(plaintext, key, &nonce).expect("encrypts");
    assert_eq!(
        binary::decrypt_pushed_message(&pushed, key).as_deref(),
        Ok(plaintext)
    );
    Ok(())
}
