//! The signers' verification of accepted tickets, after the client got its bandwidth, as
//! nym-node does it: each ticket is sent to every configured signer
//! (`POST /v1/ecash/verify-ecash-ticket`); signers that could not be reached are asked again
//! later. Once at least `1 − quorum` of the signers refused it, the ticket is marked rejected
//! and `penalty ×` its bandwidth is taken from its client's stored allowance; once `quorum`
//! accepted it, its credential bytes are dropped from the store.
//!
//! The queue is bounded (`zk_nym_signer_queue_capacity` tickets waiting, the same again
//! waiting for a retry), sessions never wait for it, and a ticket that does not fit or runs
//! out of attempts stays in the store unverified (with its credential), logged.
//! One worker task sends one ticket at a time; the requests to its signers run in parallel on
//! blocking threads.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use gateway_ecash::signers::{parse_vote, verify_ticket_body, Vote, VERIFY_TICKET_PATH};
use gateway_ecash::SpendingData;
use gateway_store::Store;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::Tuning;

/// Queued tickets were dropped or left unverified: one warning per period.
static QUEUE_WARNINGS: crate::logging::RateLimit =
    crate::logging::RateLimit::new(crate::logging::WARNING_PERIOD);

/// The settings of the signers' verification, from the config.
#[derive(Debug, Clone)]
pub struct SignerSettings {
    /// The signers' API bases; empty: tickets are not sent for verification.
    pub urls: Vec<String>,
    /// The gateway's nyx account, named in each request.
    pub gateway_cosmos_addr: String,
    /// Tickets waiting to be sent, and (separately) waiting for a retry.
    pub queue_capacity: usize,
    /// Attempts per ticket before it is left unverified.
    pub attempts: u32,
    /// Wait before asking the signers that did not answer again.
    pub retry_interval: Duration,
    /// Share of the signers whose acceptance settles a ticket.
    pub quorum: f64,
    /// A rejected ticket costs its client this many times its bandwidth.
    pub revocation_penalty: f64,
    /// Timeout of one request to a signer.
    pub timeout: Duration,
    /// Largest answer read from a signer, in bytes; a larger one counts as no answer.
    pub max_answer_size: usize,
}

impl SignerSettings {
    /// The signer values of the config.
    pub fn from_config(urls: &[String], gateway_cosmos_addr: &str, d: &Tuning) -> Self {
        Self {
            urls: urls.to_vec(),
            gateway_cosmos_addr: gateway_cosmos_addr.to_owned(),
            queue_capacity: d.zk_nym_signer_queue_capacity.get(),
            attempts: d.zk_nym_signer_attempts.get(),
            retry_interval: d.zk_nym_signer_retry_interval,
            quorum: d.zk_nym_signer_quorum,
            revocation_penalty: d.zk_nym_revocation_penalty,
            timeout: d.nym_api_timeout,
            max_answer_size: d.zk_nym_signer_max_answer_size.get(),
        }
    }
}

/// A ticket accepted and recorded, to be verified by the signers.
pub(super) struct AcceptedTicket {
    pub(super) ticket_id: i64,
    pub(super) data: SpendingData,
    pub(super) bandwidth: i64,
}

/// Where sessions hand accepted tickets over: a cheap `Clone` handle.
#[derive(Clone)]
pub struct SignerQueue {
    queue: Option<mpsc::Sender<AcceptedTicket>>,
}

impl SignerQueue {
    /// No signers: accepted tickets are only recorded.
    pub fn disabled() -> Self {
        Self { queue: None }
    }

    /// Starts the worker (until `shutdown`); with no signer configured, [`disabled`](Self::disabled).
    pub fn start(
        settings: SignerSettings,
        store: Store,
        shutdown: CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Self {
        if settings.urls.is_empty() {
            return Self::disabled();
        }
        let (queue, tickets) = mpsc::channel(settings.queue_capacity.max(1));
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .build()
            .into();
        let worker = Worker {
            settings,
            store,
            agent,
            retries: VecDeque::new(),
        };
        tasks.spawn(worker.run(tickets, shutdown));
        Self { queue: Some(queue) }
    }

    /// Queues a ticket without waiting; a full queue leaves it unverified in the store.
    pub(super) fn submit(&self, ticket: AcceptedTicket) {
        let Some(queue) = &self.queue else { return };
        if let Err(e) = queue.try_send(ticket) {
            let ticket_id = match &e {
                mpsc::error::TrySendError::Full(t) | mpsc::error::TrySendError::Closed(t) => {
                    t.ticket_id
                }
            };
            crate::warn_rate_limited!(
                QUEUE_WARNINGS,
                ticket_id,
                "the signer queue is full; a ticket stays unverified"
            );
        }
    }
}

/// A ticket between attempts.
struct Pending {
    ticket: AcceptedTicket,
    body: Arc<String>,
    /// Indices of the signers that have not answered yet.
    waiting: Vec<usize>,
    accepted: usize,
    rejected: usize,
    attempts: u32,
}

struct Worker {
    settings: SignerSettings,
    store: Store,
    agent: ureq::Agent,
    /// Oldest first; each due `retry_interval` after its last attempt.
    retries: VecDeque<(Instant, Pending)>,
}

impl Worker {
    async fn run(
        mut self,
        mut tickets: mpsc::Receiver<AcceptedTicket>,
        shutdown: CancellationToken,
    ) {
        loop {
            let due = self.retries.front().map(|(at, _)| *at);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                ticket = tickets.recv() => match ticket {
                    Some(ticket) => {
                        let pending = self.pending(ticket);
                        self.attempt(pending).await;
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    if let Some((_, pending)) = self.retries.pop_front() {
                        self.attempt(pending).await;
                    }
                }
            }
        }
        if !self.retries.is_empty() {
            debug!(
                tickets = self.retries.len(),
                "tickets left unverified at shutdown"
            );
        }
    }

    fn pending(&self, ticket: AcceptedTicket) -> Pending {
        let body = verify_ticket_body(&ticket.data, &self.settings.gateway_cosmos_addr);
        Pending {
            ticket,
            body: Arc::new(body.to_string()),
            waiting: (0..self.settings.urls.len()).collect(),
            accepted: 0,
            rejected: 0,
            attempts: 0,
        }
    }

    async fn attempt(&mut self, mut pending: Pending) {
        pending.attempts += 1;
        let requests: Vec<_> = pending
            .waiting
            .iter()
            .map(|&signer| {
                let agent = self.agent.clone();
                let url = format!(
                    "{}/{VERIFY_TICKET_PATH}",
                    self.settings.urls[signer].trim_end_matches('/')
                );
                let body = pending.body.clone();
                let limit = self.settings.max_answer_size;
                (
                    signer,
                    tokio::task::spawn_blocking(move || ask(&agent, &url, &body, limit)),
                )
            })
            .collect();
        let mut unanswered = Vec::new();
        for (signer, request) in requests {
            match request.await {
                Ok(Ok(Vote::Accepted)) => pending.accepted += 1,
                Ok(Ok(Vote::Rejected(reason))) => {
                    debug!(ticket_id = pending.ticket.ticket_id, signer, %reason, "a signer refused a ticket");
                    pending.rejected += 1;
                }
                Ok(Err(reason)) => {
                    debug!(ticket_id = pending.ticket.ticket_id, signer, %reason, "a signer did not answer");
                    unanswered.push(signer);
                }
                Err(_) => unanswered.push(signer),
            }
        }
        pending.waiting = unanswered;
        self.settle(pending).await;
    }

    /// Records the verdict once there is one; otherwise schedules another attempt.
    async fn settle(&mut self, pending: Pending) {
        let signers = self.settings.urls.len() as f64;
        let ticket_id = pending.ticket.ticket_id;
        if pending.rejected as f64 >= (1.0 - self.settings.quorum) * signers {
            let revoked =
                (pending.ticket.bandwidth as f64 * self.settings.revocation_penalty) as i64;
            warn!(
                ticket_id,
                revoked, "the signers rejected a ticket; its bandwidth is revoked"
            );
            if let Err(e) = self.store.reject_ticket(ticket_id, revoked).await {
                crate::warn_rate_limited!(super::STORE_ERRORS, error = %e, "failed to record a rejected ticket");
            }
            return;
        }
        if pending.accepted as f64 >= self.settings.quorum * signers {
            debug!(ticket_id, "the signers verified a ticket");
            if let Err(e) = self.store.mark_ticket_verified(ticket_id).await {
                crate::warn_rate_limited!(super::STORE_ERRORS, error = %e, "failed to record a verified ticket");
            }
            return;
        }
        if pending.attempts >= self.settings.attempts
            || self.retries.len() >= self.settings.queue_capacity
        {
            crate::warn_rate_limited!(
                QUEUE_WARNINGS,
                ticket_id,
                "the signers could not settle a ticket; it stays unverified"
            );
            return;
        }
        let due = Instant::now() + self.settings.retry_interval;
        self.retries.push_back((due, pending));
    }
}

/// One signer's vote, from an answer of at most `limit` bytes (blocking).
fn ask(agent: &ureq::Agent, url: &str, body: &str, limit: usize) -> Result<Vote, String> {
    let mut response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .map_err(|e| e.to_string())?;
    let answer = response
        .body_mut()
        .with_config()
        .limit(limit as u64)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    parse_vote(&answer).ok_or_else(|| "not a verification answer".to_owned())
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::node::test_http::Server;

    #[test]
    fn a_signer_answer_over_the_configured_size_is_no_answer() {
        let answer = r#"{"verified":{"Ok":null}}"#;
        let signer = Server::answering(answer);
        let url = format!("{}{VERIFY_TICKET_PATH}", signer.url);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let settings = |limit| {
            let tuning = Tuning {
                zk_nym_signer_max_answer_size: NonZeroUsize::new(limit).unwrap(),
                ..Tuning::default()
            };
            SignerSettings::from_config(&[], "n1gateway", &tuning)
        };

        let exact = settings(answer.len());
        assert_eq!(
            ask(&agent, &url, "{}", exact.max_answer_size),
            Ok(Vote::Accepted)
        );
        let short = settings(answer.len() - 1);
        assert_eq!(
            ask(&agent, &url, "{}", short.max_answer_size),
            Err(format!(
                "the response body is larger than request limit: {}",
                answer.len() - 1
            ))
        );
    }
}
