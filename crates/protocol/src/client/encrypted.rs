//! `encryptedRequest` / `encryptedResponse`: JSON carried under the shared key (§2.7).

use thiserror::Error;

use super::request::{ClientRequest, SensitiveRequest};
use super::response::{SensitiveResponse, ServerResponse};
use super::shared_key::{nonce_from_slice, KeyUsageError, SharedKey, NONCE_LEN};

/// Failure to open an encrypted text request or response.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncryptedRequestError {
    /// Wrong nonce length or AEAD failure.
    #[error("failed to decrypt provided text request")]
    Decrypt,
    /// The plaintext is not a known request; carries serde_json's message.
    #[error("the received request is malformed: {0}")]
    Malformed(String),
}

/// Opens an `encryptedRequest`.
pub fn open_request(
    key: &SharedKey,
    ciphertext: &[u8],
    nonce: &[u8],
) -> Result<SensitiveRequest, EncryptedRequestError> {
    let plaintext = open(key, ciphertext, nonce)?;
    serde_json::from_slice(&plaintext).map_err(|e| EncryptedRequestError::Malformed(e.to_string()))
}

/// Seals a reply into an `encryptedResponse` frame, with a caller-chosen random nonce.
pub fn seal_response(
    key: &SharedKey,
    response: SensitiveResponse,
    nonce: [u8; NONCE_LEN],
) -> Result<ServerResponse, KeyUsageError> {
    let plaintext = serde_json::to_vec(&response).unwrap_or_default();
    Ok(ServerResponse::EncryptedResponse {
        ciphertext: key.encrypt(&nonce, &plaintext)?,
        nonce: nonce.to_vec(),
    })
}

/// Seals a request into an `encryptedRequest` (what a client does; for tests).
pub fn seal_request(
    key: &SharedKey,
    request: SensitiveRequest,
    nonce: [u8; NONCE_LEN],
) -> Result<ClientRequest, KeyUsageError> {
    let plaintext = serde_json::to_vec(&request).unwrap_or_default();
    Ok(ClientRequest::EncryptedRequest {
        ciphertext: key.encrypt(&nonce, &plaintext)?,
        nonce: nonce.to_vec(),
    })
}

/// Opens an `encryptedResponse` (what a client does; for tests).
pub fn open_response(
    key: &SharedKey,
    ciphertext: &[u8],
    nonce: &[u8],
) -> Result<SensitiveResponse, EncryptedRequestError> {
    let plaintext = open(key, ciphertext, nonce)?;
    serde_json::from_slice(&plaintext).map_err(|e| EncryptedRequestError::Malformed(e.to_string()))
}

fn open(
    key: &SharedKey,
    ciphertext: &[u8],
    nonce: &[u8],
) -> Result<Vec<u8>, EncryptedRequestError> {
    let nonce = nonce_from_slice(nonce).map_err(|_| EncryptedRequestError::Decrypt)?;
    key.decrypt(&nonce, ciphertext)
        .map_err(|_| EncryptedRequestError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::vectors::{load, shared_key};

    fn named(v: &serde_json::Value, list: &str, name: &str) -> String {
        v[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()["ws_text"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn opens_the_vector_request_and_reseals_it_byte_exactly() {
        let v = load("json_messages.json");
        let key = shared_key();
        let text = named(&v, "client_requests", "encryptedRequest_forgetMe");
        let ClientRequest::EncryptedRequest { ciphertext, nonce } =
            ClientRequest::parse(&text).unwrap()
        else {
            panic!("wrong variant");
        };
        let request = open_request(key, &ciphertext, &nonce).unwrap();
        assert_eq!(
            request,
            SensitiveRequest::ForgetMe {
                client: true,
                stats: false
            }
        );
        let resealed = seal_request(key, request, nonce.try_into().unwrap()).unwrap();
        assert_eq!(resealed.to_text(), text);
    }

    #[test]
    fn seals_the_vector_response_byte_exactly() {
        let v = load("json_messages.json");
        let key = shared_key();
        let text = named(&v, "server_responses", "encryptedResponse");
        let ServerResponse::EncryptedResponse { ciphertext, nonce } =
            ServerResponse::parse(&text).unwrap()
        else {
            panic!("wrong variant");
        };
        let response = open_response(key, &ciphertext, &nonce).unwrap();
        assert_eq!(response, SensitiveResponse::ForgetMeAck {});
        let sealed = seal_response(key, response, nonce.try_into().unwrap()).unwrap();
        assert_eq!(sealed.to_text(), text);
    }

    #[test]
    fn failures() {
        let key = shared_key();
        let nonce = [3u8; NONCE_LEN];
        let ClientRequest::EncryptedRequest { mut ciphertext, .. } = seal_request(
            key,
            SensitiveRequest::ForgetMe {
                client: true,
                stats: true,
            },
            nonce,
        )
        .unwrap() else {
            panic!("wrong variant");
        };
        assert_eq!(
            open_request(key, &ciphertext, &nonce[..11]),
            Err(EncryptedRequestError::Decrypt)
        );
        assert_eq!(
            EncryptedRequestError::Decrypt.to_string(),
            "failed to decrypt provided text request"
        );
        ciphertext[0] ^= 0x80;
        assert_eq!(
            open_request(key, &ciphertext, &nonce),
            Err(EncryptedRequestError::Decrypt)
        );

        let junk = key.encrypt(&nonce, b"{\"Bogus\":{}}").unwrap();
        let err = open_request(key, &junk, &nonce).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the received request is malformed: unknown variant `Bogus`"),
            "{err}"
        );
    }
}
