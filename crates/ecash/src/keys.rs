//! The aggregated master verification key of each DKG epoch, fetched from nym-api
//! (`GET /v1/ecash/master-verification-key?epoch_id=N`) on first use and kept per epoch.
//!
//! A key never changes for its epoch, so a cached key is never refetched. The cache holds the
//! most recent `capacity` epochs: tickets of older ones are rare (a ticketbook lives a week),
//! and one that comes costs one more request. Failures are not cached: the next ticket asks
//! again, and nothing is granted meanwhile.
//!
//! Fetching blocks (ureq): call [`MasterKeys::get`] from a blocking thread.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nym_compact_ecash::VerificationKeyAuth;
use serde::Deserialize;

use crate::error::TicketError;

/// nym-api's `VerificationKeyResponse`.
#[derive(Deserialize)]
struct KeyResponse {
    key: VerificationKeyAuth,
}

/// The master keys of the epochs seen, and where to get the others.
#[derive(Debug)]
pub struct MasterKeys {
    urls: Vec<String>,
    agent: ureq::Agent,
    capacity: usize,
    max_answer: u64,
    cache: Mutex<BTreeMap<u64, Arc<VerificationKeyAuth>>>,
}

impl MasterKeys {
    /// Keys from the nym-apis at `urls` (bases such as `https://validator.nymtech.net/api/`,
    /// tried in order), each request bounded by `timeout` and its answer by `max_answer`
    /// bytes (a larger one is a failed request); at most `capacity` epochs kept.
    pub fn new(urls: &[String], timeout: Duration, capacity: usize, max_answer: usize) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            urls: urls.to_vec(),
            agent,
            capacity: capacity.max(1),
            max_answer: max_answer as u64,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// Keys known in advance (a local authority, tests); nothing is fetched for others.
    pub fn with_key(self, epoch: u64, key: VerificationKeyAuth) -> Self {
        self.insert(epoch, Arc::new(key));
        self
    }

    /// The master key of `epoch`, from the cache or nym-api (blocking).
    pub fn get(&self, epoch: u64) -> Result<Arc<VerificationKeyAuth>, TicketError> {
        if let Some(key) = self.cached(epoch) {
            return Ok(key);
        }
        let key = Arc::new(self.fetch(epoch)?);
        self.insert(epoch, key.clone());
        Ok(key)
    }

    /// The key of `epoch` if it is cached (never blocks on the network).
    pub fn cached(&self, epoch: u64) -> Option<Arc<VerificationKeyAuth>> {
        self.lock().get(&epoch).cloned()
    }

    fn insert(&self, epoch: u64, key: Arc<VerificationKeyAuth>) {
        let mut cache = self.lock();
        cache.insert(epoch, key);
        while cache.len() > self.capacity {
            cache.pop_first();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<VerificationKeyAuth>>> {
        // The map is valid after any panic (each change is one call).
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks each nym-api in turn. A 404 (or any 4xx) means nym-api has no key for the epoch
    /// (unknown, or a DKG in progress); anything else is nym-api being unavailable.
    fn fetch(&self, epoch: u64) -> Result<VerificationKeyAuth, TicketError> {
        let mut unavailable = String::from("no nym-api is configured");
        let mut unknown = false;
        for base in &self.urls {
            let url = format!(
                "{}/v1/ecash/master-verification-key?epoch_id={epoch}",
                base.trim_end_matches('/')
            );
            match self.fetch_from(&url) {
                Ok(key) => return Ok(key),
                Err(Fetch::NoKey) => unknown = true,
                Err(Fetch::Failed(reason)) => unavailable = format!("{url}: {reason}"),
            }
        }
        if unknown {
            return Err(TicketError::EpochUnavailable(epoch));
        }
        Err(TicketError::NymApiUnavailable {
            epoch,
            reason: unavailable,
        })
    }

    fn fetch_from(&self, url: &str) -> Result<VerificationKeyAuth, Fetch> {
        let mut response = self
            .agent
            .get(url)
            .call()
            .map_err(|e| Fetch::Failed(e.to_string()))?;
        let status = response.status();
        if status.is_client_error() {
            return Err(Fetch::NoKey);
        }
        if !status.is_success() {
            return Err(Fetch::Failed(format!("status {status}")));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(self.max_answer)
            .read_to_vec()
            .map_err(|e| Fetch::Failed(e.to_string()))?;
        let answer: KeyResponse = serde_json::from_slice(&body)
            .map_err(|e| Fetch::Failed(format!("not a verification key: {e}")))?;
        Ok(answer.key)
    }
}

enum Fetch {
    NoKey,
    Failed(String),
}

/// nym-api's answer for a key, as a local nym-api (tests, the local mixnet) serves it.
pub fn key_response_json(key: &VerificationKeyAuth) -> String {
    serde_json::json!({ "key": key }).to_string()
}
