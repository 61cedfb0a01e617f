//! `encryptedRequest` ([`encrypted::open_request`] with the vector shared key) and the JSON
//! inside it.
//!
//! Input: a mode byte, then
//! - even mode: a JSON text frame; an `encryptedRequest` in it is opened;
//! - odd mode: a nonce and a plaintext, sealed here and sent as an `encryptedRequest` text frame;
//!   the gateway must read the plaintext exactly as JSON parsing of it says.

use arbitrary::{Result, Unstructured};
use gateway_protocol::client::encrypted::{self, EncryptedRequestError};
use gateway_protocol::client::shared_key::NONCE_LEN;
use gateway_protocol::client::{ClientRequest, SensitiveRequest};

use gateway_protocol::test_support::vectors;

pub fn run(data: &[u8]) {
    crate::by_mode(data, text, sealed);
}

fn text(data: &[u8]) {
    let Some(ClientRequest::EncryptedRequest { ciphertext, nonce }) = crate::text_request(data)
    else {
        return;
    };
    match encrypted::open_request(vectors::shared_key(), &ciphertext, &nonce) {
        Ok(request) => {
            assert_eq!(nonce.len(), NONCE_LEN);
            check_sensitive(request, &nonce);
        }
        Err(err) => {
            if nonce.len() != NONCE_LEN {
                assert_eq!(err, EncryptedRequestError::Decrypt);
            }
            assert!(!err.to_string().is_empty());
        }
    }
}

fn sealed(u: &mut Unstructured<'_>) -> Result<()> {
    let key = vectors::shared_key();
    let nonce: [u8; NONCE_LEN] = u.arbitrary()?;
    let plaintext = u.bytes(u.len())?;
    let frame = ClientRequest::EncryptedRequest {
        ciphertext: key.encrypt(&nonce, plaintext).expect("encrypts"),
        nonce: nonce.to_vec(),
    }
    .to_text();
    let Ok(ClientRequest::EncryptedRequest {
        ciphertext,
        nonce: sent_nonce,
    }) = ClientRequest::parse(&frame)
    else {
        panic!("our encryptedRequest frame does not parse: {frame}");
    };

    let opened = encrypted::open_request(key, &ciphertext, &sent_nonce);
    match serde_json::from_slice::<SensitiveRequest>(plaintext) {
        Ok(expected) => {
            assert_eq!(opened, Ok(expected));
            check_sensitive(expected, &nonce);
        }
        Err(parse_error) => assert_eq!(
            opened,
            Err(EncryptedRequestError::Malformed(parse_error.to_string()))
        ),
    }
    Ok(())
}

/// A request read from a plaintext serializes back to JSON that reads the same, and sealing it
/// again opens to it.
fn check_sensitive(request: SensitiveRequest, nonce: &[u8]) {
    let json = serde_json::to_string(&request).expect("serializes");
    assert_eq!(
        serde_json::from_str::<SensitiveRequest>(&json).expect("our JSON reads back"),
        request
    );
    let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("12 bytes");
    let key = vectors::shared_key();
    let ClientRequest::EncryptedRequest { ciphertext, nonce } =
        encrypted::seal_request(key, request, nonce).expect("seals")
    else {
        panic!("seal_request made another request type");
    };
    assert_eq!(
        encrypted::open_request(key, &ciphertext, &nonce),
        Ok(request)
    );
}
