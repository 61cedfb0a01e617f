//! The two nym-api requests the gateway makes: the key-rotation information, and the signed
//! request to describe it again after its keys changed (nym-api refreshes every node's
//! description on its own schedule; asking means clients learn a new key sooner).
//!
//! Every configured URL is tried in order until one answers; answers are bounded in size and
//! time, so a slow or misbehaving nym-api costs a warning, never the gateway.

use std::time::SystemTime;

use ed25519_dalek::{Signer, SigningKey};
use serde::Serialize;
use thiserror::Error;

use super::schedule::{InfoError, RotationInfo};
use crate::config::Tuning;

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
    max_answer: u64,
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
    /// bounded by `nym_api_timeout` and every answer by `key_rotation_max_answer_size` bytes
    /// (a larger one is a failed request).
    pub fn from_config(urls: &[String], d: &Tuning) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(d.nym_api_timeout))
            .build()
            .into();
        Self {
            urls: urls.to_vec(),
            agent,
            max_answer: d.key_rotation_max_answer_size.get() as u64,
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
                    .limit(self.max_answer)
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
/// identity's bytes ‖ the time in seconds (big-endian i64) ‖ the bytes `describe-cache-refresh-request`.
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
    use std::num::NonZeroUsize;
    use std::time::Duration;

    use super::*;
    use crate::node::test_http::Server;
    use ed25519_dalek::{Signature, Verifier};

    /// A key-rotation answer as nym-api writes it (296 bytes).
    const ROTATION_INFO: &str = r#"{"key_rotation_state":{"validity_epochs":24,"initial_epoch_id":0},"current_absolute_epoch_id":50,"current_epoch_start":"2026-12-04T17:00:00Z","epoch_duration":{"secs":3600,"nanos":0},"progress":{"current_key_rotation_id":2,"current_rotation_starting_epoch":48,"current_rotation_ending_epoch":71}}"#;

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
        let api = NymApi::from_config(&["http://127.0.0.1:9/".into()], &Tuning::default());
        let err = api.key_rotation_info().unwrap_err().to_string();
        assert!(
            err.starts_with("http://127.0.0.1:9/v1/epoch/key-rotation-info"),
            "{err}"
        );
        assert!(matches!(
            NymApi::from_config(&[], &Tuning::default()).key_rotation_info(),
            Err(ApiError::NoneConfigured)
        ));
    }

    #[test]
    fn a_key_rotation_answer_over_the_configured_size_is_a_failed_request() {
        let api = Server::answering(ROTATION_INFO);
        let urls = [api.url.clone()];
        let with_limit = |limit| {
            let tuning = Tuning {
                key_rotation_max_answer_size: NonZeroUsize::new(limit).unwrap(),
                ..Tuning::default()
            };
            NymApi::from_config(&urls, &tuning)
        };

        let (info, body) = with_limit(ROTATION_INFO.len()).key_rotation_info().unwrap();
        assert_eq!(info.current_rotation(), 2);
        assert_eq!(body, ROTATION_INFO.as_bytes());
        let err = with_limit(ROTATION_INFO.len() - 1)
            .key_rotation_info()
            .unwrap_err();
        assert!(matches!(err, ApiError::Request { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "{}v1/epoch/key-rotation-info: the response body is larger than request limit: {}",
                api.url,
                ROTATION_INFO.len() - 1
            )
        );
    }
}
