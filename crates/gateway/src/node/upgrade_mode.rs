//! Upgrade mode, as nym-node 1.31.0 runs it: a watcher fetches the attestation the network's
//! attester publishes (`upgrade_mode_attestation_url`) every `upgrade_mode_poll_interval`
//! (`upgrade_mode_expedited_poll_interval` while upgrade mode is on); while a valid one is
//! published, client bandwidth is not metered and responses carry `upgrade_mode: true`.
//!
//! A client that learned of an upgrade before this gateway sends `upgradeModeJWT`: if the
//! watcher has not asked for `upgrade_mode_min_staleness_recheck`, it asks now, and the JWT
//! counts only if it carries the attestation just fetched. An attestation counts only if it is
//! signed by `upgrade_mode_attester_public_key` (nym-node checks the key it names; this
//! gateway also checks the signature).
//!
//! Failures keep the current state: an unreachable URL or a bad document turns upgrade mode
//! off only after `upgrade_mode_failure_threshold` failures in a row (a removed file may be
//! replaced by an error page), as nym-node does.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use gateway_ecash::upgrade_mode::{parse_published, verify_jwt, Attestation, JwtError};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::config::Tuning;

/// The least bandwidth reported while upgrade mode is on: just over nym's
/// `DEFAULT_MIXNET_REQUEST_BANDWIDTH_THRESHOLD` (a fifth of an entry ticket), so a client that
/// ignores the `upgrade_mode` flag does not try to spend a ticket.
const UNMETERED_FLOOR: i64 = gateway_ecash::TicketType::V1MixnetEntry.bandwidth() / 5 + 1;

/// The bandwidth reported to a client with `available` bytes while upgrade mode is on.
pub fn unmetered_bandwidth(available: i64) -> i64 {
    available.max(UNMETERED_FLOOR)
}

/// Failed fetches repeat every poll while they last: one warning per period.
static FETCH_WARNINGS: crate::logging::RateLimit =
    crate::logging::RateLimit::new(crate::logging::WARNING_PERIOD);

/// Why an `upgradeModeJWT` did not turn upgrade mode on; the texts are nym-node's.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UpgradeModeError {
    /// The watcher asked too recently to ask again for a client.
    #[error("too soon to perform another upgrade mode attestation check")]
    TooManyRecheckRequests,
    /// The JWT is not a valid one.
    #[error("provided upgrade mode JWT is invalid: {0}")]
    InvalidJwt(#[from] JwtError),
    /// No attestation is published (or none this gateway accepts).
    #[error("the upgrade mode attestation does not appear to have been published")]
    AttestationNotPublished,
    /// The JWT carries another attestation than the published one.
    #[error("the provided upgrade mode attestation is different from the published one")]
    MismatchedAttestation,
}

/// The upgrade-mode settings of the config.
#[derive(Debug, Clone)]
pub struct UpgradeModeSettings {
    /// Where the attestation is published; empty: no watcher (upgrade mode stays off).
    pub attestation_url: String,
    /// The network's attester.
    pub attester: VerifyingKey,
    /// Wait between fetches while upgrade mode is off.
    pub poll_interval: Duration,
    /// Wait between fetches while upgrade mode is on.
    pub expedited_poll_interval: Duration,
    /// A client's JWT makes the watcher fetch again only this long after its last fetch.
    pub min_staleness_recheck: Duration,
    /// Timeout of one fetch.
    pub request_timeout: Duration,
    /// Largest attestation document read (and largest JWT taken).
    pub max_document_size: usize,
    /// Failed fetches in a row that turn upgrade mode off.
    pub failure_threshold: u32,
}

impl UpgradeModeSettings {
    /// The upgrade-mode values of the config: `url` and `attester` from `[gateway]`, the rest
    /// from `[debug]`.
    pub fn from_config(url: &str, attester: VerifyingKey, d: &Tuning) -> Self {
        Self {
            attestation_url: url.to_owned(),
            attester,
            poll_interval: d.upgrade_mode_poll_interval,
            expedited_poll_interval: d.upgrade_mode_expedited_poll_interval,
            min_staleness_recheck: d.upgrade_mode_min_staleness_recheck,
            request_timeout: d.upgrade_mode_request_timeout,
            max_document_size: d.upgrade_mode_max_document_size.get(),
            failure_threshold: d.upgrade_mode_failure_threshold.get(),
        }
    }
}

/// Whether upgrade mode is on: a cheap `Clone` handle for sessions.
#[derive(Clone)]
pub struct UpgradeMode(Arc<Shared>);

struct Shared {
    /// Read by every metered request: an atomic, not the lock.
    enabled: AtomicBool,
    /// The attestation in force (`Some` exactly while `enabled`).
    attestation: Mutex<Option<Attestation>>,
    /// When the watcher last fetched.
    last_fetch: Mutex<Option<Instant>>,
    min_staleness_recheck: Duration,
    max_jwt_size: usize,
    /// Asks the watcher to fetch now; capacity one (one pending request serves every waiter).
    recheck: Option<mpsc::Sender<()>>,
    /// Counts the watcher's answers to rechecks, so a waiter knows its request was served.
    rechecked: watch::Receiver<u64>,
    /// How long a client's request waits for a recheck.
    recheck_wait: Duration,
}

impl UpgradeMode {
    /// No watcher: upgrade mode stays off and every JWT is refused.
    pub fn off() -> Self {
        Self::new(
            Duration::ZERO,
            usize::MAX,
            None,
            watch::channel(0).1,
            Duration::ZERO,
        )
    }

    fn new(
        min_staleness_recheck: Duration,
        max_jwt_size: usize,
        recheck: Option<mpsc::Sender<()>>,
        rechecked: watch::Receiver<u64>,
        recheck_wait: Duration,
    ) -> Self {
        Self(Arc::new(Shared {
            enabled: AtomicBool::new(false),
            attestation: Mutex::new(None),
            last_fetch: Mutex::new(None),
            min_staleness_recheck,
            max_jwt_size,
            recheck,
            rechecked,
            recheck_wait,
        }))
    }

    /// Starts the watcher (until `shutdown`); with no URL, [`off`](Self::off).
    pub fn start(
        settings: UpgradeModeSettings,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Self {
        if settings.attestation_url.is_empty() {
            return Self::off();
        }
        let (recheck, requests) = mpsc::channel(1);
        let (served, rechecked) = watch::channel(0);
        let state = Self::new(
            settings.min_staleness_recheck,
            settings.max_document_size,
            Some(recheck),
            rechecked,
            // One fetch, and a second to spare for the watcher's own scheduling.
            settings.request_timeout + Duration::from_secs(1),
        );
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.request_timeout))
            .build()
            .into();
        let watcher = Watcher {
            settings,
            state: state.clone(),
            agent,
            failures: 0,
        };
        tasks.spawn(watcher.run(requests, served, shutdown));
        state
    }

    /// Whether bandwidth is unmetered now.
    pub fn enabled(&self) -> bool {
        self.0.enabled.load(Ordering::Acquire)
    }

    fn since_last_fetch(&self) -> Option<Duration> {
        let last = *self
            .0
            .last_fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.map(|at| at.elapsed())
    }

    fn attestation(&self) -> Option<Attestation> {
        self.0
            .attestation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records a fetch's outcome: `Some` turns upgrade mode on, `None` off.
    fn set(&self, attestation: Option<Attestation>) {
        let on = attestation.is_some();
        let mut current = self
            .0
            .attestation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.is_some() != on {
            info!(enabled = on, "upgrade mode changed");
        }
        *current = attestation;
        // Set while holding the lock, so `enabled` never says on without an attestation.
        self.0.enabled.store(on, Ordering::Release);
        drop(current);
        self.fetched();
    }

    fn fetched(&self) {
        *self
            .0
            .last_fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// A client's `upgradeModeJWT` (nym-node's order: rate limit, the JWT itself, a fresh
    /// fetch, then the JWT's attestation against the fetched one); `now` in Unix seconds.
    pub async fn try_enable_with_jwt(&self, token: &str, now: i64) -> Result<(), UpgradeModeError> {
        if self
            .since_last_fetch()
            .is_some_and(|since| since <= self.0.min_staleness_recheck)
        {
            return Err(UpgradeModeError::TooManyRecheckRequests);
        }
        if token.len() > self.0.max_jwt_size {
            return Err(JwtError::Verification("Token is too long").into());
        }
        let claimed = verify_jwt(token, now)?;
        self.recheck().await;
        let Some(published) = self.attestation() else {
            return Err(UpgradeModeError::AttestationNotPublished);
        };
        if published != claimed {
            return Err(UpgradeModeError::MismatchedAttestation);
        }
        info!("upgrade mode confirmed through a client's JWT");
        Ok(())
    }

    /// Asks the watcher to fetch now and waits (bounded) until it has.
    async fn recheck(&self) {
        let Some(recheck) = &self.0.recheck else {
            return;
        };
        let mut served = self.0.rechecked.clone();
        served.mark_unchanged();
        // Full: a recheck is already pending, and its answer serves this request too.
        if let Err(mpsc::error::TrySendError::Closed(())) = recheck.try_send(()) {
            return;
        }
        let _ = tokio::time::timeout(self.0.recheck_wait, served.changed()).await;
    }
}

struct Watcher {
    settings: UpgradeModeSettings,
    state: UpgradeMode,
    agent: ureq::Agent,
    failures: u32,
}

impl Watcher {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<()>,
        served: watch::Sender<u64>,
        shutdown: CancellationToken,
    ) {
        info!(url = %self.settings.attestation_url, "watching for upgrade mode");
        // The first fetch is at once.
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(()) = requests.recv() => {
                    let stale = self
                        .state
                        .since_last_fetch()
                        .is_none_or(|since| since > self.settings.min_staleness_recheck);
                    if stale {
                        // A fetch may take `upgrade_mode_request_timeout`: shutdown does not wait.
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            () = self.fetch() => {}
                        }
                        // Rescheduled from this fetch: one that turned upgrade mode on polls at
                        // the expedited interval from now on.
                        next = self.next_poll();
                    }
                    served.send_modify(|count| *count += 1);
                }
                _ = tokio::time::sleep_until(next) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        () = self.fetch() => {}
                    }
                    next = self.next_poll();
                }
            }
        }
        debug!("upgrade mode watcher stopped");
    }

    fn next_poll(&self) -> tokio::time::Instant {
        let interval = if self.state.enabled() {
            self.settings.expedited_poll_interval
        } else {
            self.settings.poll_interval
        };
        tokio::time::Instant::now() + interval
    }

    async fn fetch(&mut self) {
        let agent = self.agent.clone();
        let url = self.settings.attestation_url.clone();
        let limit = self.settings.max_document_size;
        let attester = self.settings.attester;
        let outcome = tokio::task::spawn_blocking(move || {
            let body = get(&agent, &url, limit)?;
            parse_published(&body, &attester).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match outcome {
            Ok(attestation) => {
                self.failures = 0;
                self.state.set(attestation);
            }
            Err(reason) => {
                self.failures += 1;
                crate::warn_rate_limited!(
                    FETCH_WARNINGS,
                    url = %self.settings.attestation_url,
                    %reason,
                    failures = self.failures,
                    "could not read the upgrade mode attestation"
                );
                if self.state.enabled() && self.failures > self.settings.failure_threshold {
                    self.state.set(None);
                } else {
                    self.state.fetched();
                }
            }
        }
    }
}

/// The body at `url`, at most `limit` bytes (blocking).
fn get(agent: &ureq::Agent, url: &str, limit: usize) -> Result<Vec<u8>, String> {
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    if body.len() > limit {
        return Err(format!("the document is larger than {limit} bytes"));
    }
    Ok(body)
}

/// The watcher's settings for `config` in `network`: the URL and attester key of `[gateway]`,
/// else the network's. The network's URL is watched only by a gateway that follows a nym-api
/// (one that takes part in the network); a URL set in the config is watched in any case.
pub fn settings(
    config: &crate::config::Config,
    network: &crate::network::Network,
) -> anyhow::Result<UpgradeModeSettings> {
    let g = &config.gateway;
    let url = match &g.upgrade_mode_attestation_url {
        Some(url) => url.clone(),
        None if super::rotation::followed_apis(config).is_empty() => String::new(),
        None => network.upgrade_mode_attestation_url.clone(),
    };
    let key = g
        .upgrade_mode_attester_public_key
        .as_deref()
        .unwrap_or(&network.upgrade_mode_attester_public_key);
    let attester = gateway_ecash::upgrade_mode::bs58_key(key).ok_or_else(|| {
        anyhow::anyhow!("the upgrade mode attester key {key:?} is not a bs58 ed25519 public key")
    })?;
    Ok(UpgradeModeSettings::from_config(
        &url,
        attester,
        &config.debug,
    ))
}

#[cfg(test)]
mod tests {
    use gateway_ecash::upgrade_mode::TestAttester;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[tokio::test]
    async fn a_jwt_needs_a_published_attestation_and_may_not_force_fetches_too_often() {
        let attester = TestAttester::new([1; 32], [2; 32]);
        let attestation = attester.attest(NOW - 60);
        let token = attester.jwt(&attestation, NOW, 600);

        // No watcher: a valid JWT finds nothing published, a bad one is refused as such.
        let off = UpgradeMode::off();
        assert_eq!(
            off.try_enable_with_jwt(&token, NOW).await,
            Err(UpgradeModeError::AttestationNotPublished)
        );
        assert_eq!(
            off.try_enable_with_jwt("x", NOW).await,
            Err(UpgradeModeError::InvalidJwt(JwtError::Metadata))
        );
        assert!(!off.enabled());

        // Fetched a moment ago: a JWT may not ask for another fetch yet.
        let recent = UpgradeMode::new(
            Duration::from_secs(30),
            4096,
            None,
            watch::channel(0).1,
            Duration::ZERO,
        );
        recent.fetched();
        assert_eq!(
            recent.try_enable_with_jwt(&token, NOW).await,
            Err(UpgradeModeError::TooManyRecheckRequests)
        );

        // Published (as a fetch records it): the JWT carrying it matches, another does not.
        let published = UpgradeMode::new(
            Duration::ZERO,
            4096,
            None,
            watch::channel(0).1,
            Duration::ZERO,
        );
        published.set(Some(attestation));
        assert!(published.enabled());
        assert_eq!(published.try_enable_with_jwt(&token, NOW).await, Ok(()));
        let other = attester.jwt(&attester.attest(NOW - 120), NOW, 600);
        assert_eq!(
            published.try_enable_with_jwt(&other, NOW).await,
            Err(UpgradeModeError::MismatchedAttestation)
        );
        assert_eq!(
            published.try_enable_with_jwt(&"a".repeat(4097), NOW).await,
            Err(UpgradeModeError::InvalidJwt(JwtError::Verification(
                "Token is too long"
            )))
        );
        published.set(None);
        assert!(!published.enabled());
    }

    #[test]
    fn unmetered_bandwidth_is_enough_that_a_client_does_not_spend_a_ticket() {
        assert_eq!(unmetered_bandwidth(0), 40_000_001);
        assert_eq!(unmetered_bandwidth(-5), 40_000_001);
        assert_eq!(unmetered_bandwidth(1 << 40), 1 << 40);
    }
}
