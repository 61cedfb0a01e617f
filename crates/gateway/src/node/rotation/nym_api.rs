//! The two nym-api requests the gateway makes: the key-rotation information, and the signed
//! request to describe it again after its keys changed (nym-api refreshes every node's
//! description on its own schedule; asking means clients learn a new key sooner).
//!
//! Every configured URL is tried in order until one answers; answers are bounded in size and
//! time, so a slow or misbehaving nym-api costs a warning, never the gateway.

use std::time::{Duration, SystemTime};

use ed25519_dalek::{Signer, SigningKey};
use serde::Serialize;
use thiserror::Error;

use super::schedule::{InfoError, RotationInfo};

/// Largest answer read from nym-api (the key-rotation answer is a few hundred bytes).
const MAX_BODY: u64 = 64 * 1024;
/// What nym-api's `NodeRefreshBody` signature covers after the identity and the timestamp.
const REFRESH_CONTEXT: &[u8] = b"describe-cache-refresh-request";

/// Why no nym-api gave a usable answer: the last failure, naming its URL.
#[derive(Debug, Error)]
pub enum ApiError {
    /// No URL is configured.
    #[error("no nym-api is configured")]
    NoneConfigured,
    /// The request failed (connection, status, size, time).
    #[error("{url}: {reason}")]
    Request {
        /// Which one.
        url: String,
        /// ureq's reason.
        reason: String,
    },
    /// The answer was not key-rotation information.
    #[error("{url}: {source}")]
    Answer {
        /// Which one.
        url: String,
        /// What was wrong with it.
        source: InfoError,
    },
}

/// The configured nym-apis.
#[derive(Debug, Clone)]
pub struct NymApi {
    urls: Vec<String>,
    agent: ureq::Agent,
}

/// nym-api's `NodeRefreshBody`.
#[derive(Debug, Serialize)]
struct RefreshBody {
    node_identity: String,
    request_timestamp: i64,
    /// nym's ed25519 signatures serialise as a byte sequence: a JSON array of numbers.
    signature: Vec<u8>,
}

impl NymApi {
    /// `urls` (each a base such as `https://validator.nymtech.net/api/`), every request
    /// bounded by `timeout`.
    pub fn new(urls: &[String], timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .build()
            .into();
        Self {
            urls: urls.to_vec(),
            agent,
        }
    }

    /// `GET /v1/epoch/key-rotation-info` from the first nym-api that answers usefully,
    /// with the body as received (blocking: call it from `spawn_blocking`).
    pub fn key_rotation_info(&self) -> Result<(RotationInfo, Vec<u8>), ApiError> {
        let mut last = ApiError::NoneConfigured;
        for base in &self.urls {
            let url = join(base, "v1/epoch/key-rotation-info");
            let body = self.agent.get(&url).call().and_then(|mut response| {
                response
                    .body_mut()
                    .with_config()
                    .limit(MAX_BODY)
                    .read_to_vec()
            });
            match body {
                Ok(body) => match RotationInfo::parse(&body) {
                    Ok(info) => return Ok((info, body)),
                    Err(source) => last = ApiError::Answer { url, source },
                },
                Err(e) => {
                    last = ApiError::Request {
                        url,
                        reason: e.to_string(),
                    }
                }
            }
        }
        Err(last)
    }

    /// `POST /v1/nym-nodes/refresh-described`, signed with `identity`, to every nym-api (each
    /// keeps its own cache); the first failure is returned after all were asked (blocking).
    pub fn refresh_described(&self, identity: &SigningKey) -> Result<(), ApiError> {
        let body = refresh_body(identity, SystemTime::now());
        let mut failure = None;
        for base in &self.urls {
            let url = join(base, "v1/nym-nodes/refresh-described");
            if let Err(e) = self.agent.post(&url).send_json(&body) {
                failure.get_or_insert(ApiError::Request {
                    url,
                    reason: e.to_string(),
                });
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// What a refresh request's signature covers (nym-api's `NodeRefreshBody::plaintext`): the
/// identity's bytes ‖ the time in seconds (big-endian i64) ‖ [`REFRESH_CONTEXT`].
pub fn refresh_plaintext(identity: &[u8; 32], timestamp: i64) -> Vec<u8> {
    let mut plaintext = identity.to_vec();
    plaintext.extend_from_slice(&timestamp.to_be_bytes());
    plaintext.extend_from_slice(REFRESH_CONTEXT);
    plaintext
}

/// The refresh request at `now`: the identity, the time in seconds, and the signature over
/// [`refresh_plaintext`].
fn refresh_body(identity: &SigningKey, now: SystemTime) -> RefreshBody {
    let public = identity.verifying_key().to_bytes();
    let timestamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    RefreshBody {
        node_identity: bs58::encode(public).into_string(),
        request_timestamp: timestamp,
        signature: identity
            .sign(&refresh_plaintext(&public, timestamp))
            .to_bytes()
            .to_vec(),
    }
}

/// `base` and `path` with exactly one slash between them.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}/{path}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier};

    #[test]
    fn the_refresh_request_is_signed_as_nym_api_checks_it() {
        let identity = SigningKey::from_bytes(&[3; 32]);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let body = refresh_body(&identity, now);
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["request_timestamp"], 1_800_000_000);
        assert_eq!(json["signature"].as_array().unwrap().len(), 64);
        let public = bs58::decode(json["node_identity"].as_str().unwrap())
            .into_vec()
            .unwrap();
        assert_eq!(public, identity.verifying_key().to_bytes());
        let mut plaintext = public.clone();
        plaintext.extend_from_slice(&1_800_000_000i64.to_be_bytes());
        plaintext.extend_from_slice(b"describe-cache-refresh-request");
        let signature = Signature::from_slice(&body.signature).unwrap();
        identity
            .verifying_key()
            .verify(&plaintext, &signature)
            .unwrap();
    }

    #[test]
    fn urls_join_with_one_slash() {
        assert_eq!(
            join("https://validator.nymtech.net/api/", "v1/x"),
            "https://validator.nymtech.net/api/v1/x"
        );
        assert_eq!(
            join("http://127.0.0.1:9", "v1/x"),
            "http://127.0.0.1:9/v1/x"
        );
    }

    #[test]
    fn an_unreachable_nym_api_is_an_error_naming_it() {
        let api = NymApi::new(&["http://127.0.0.1:9/".into()], Duration::from_secs(2));
        let err = api.key_rotation_info().unwrap_err().to_string();
        assert!(
            err.starts_with("http://127.0.0.1:9/v1/epoch/key-rotation-info"),
            "{err}"
        );
        assert!(matches!(
            NymApi::new(&[], Duration::from_secs(1)).key_rotation_info(),
            Err(ApiError::NoneConfigured)
        ));
    }
}
