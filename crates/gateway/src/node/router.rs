//! The router decides where a client's message goes: to its live session, or to the store.
//! It also owns the rule that a SURB-ack is forwarded only after its message was written to the
//! client's socket or committed to the store, so a sender never hears "delivered" for a message
//! the gateway could still lose.
//!
//! Sessions register here while authenticated. A session that cannot write a message (full
//! queue, closed socket, shutdown) hands it back through [`Router::store_then_ack`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use gateway_protocol::mix_packet::MixPacket;
use gateway_store::{ClientAddress, Store, StoreError, UnixTime};
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::client::inbox::{InboxSender, Prober, TrySendError};
use super::egress::Egress;
use super::metrics::{GaugeGuard, Metrics, MixDrop};
use crate::logging::{RateLimit, WARNING_PERIOD};
use crate::warn_rate_limited;

/// Store failures repeat for every message while they last (a full disk): one warning per
/// period.
static STORE_FAILURES: RateLimit = RateLimit::new(WARNING_PERIOD);

/// A message for a client and the SURB-ack to forward once it is safe.
#[derive(Debug)]
pub struct Delivery {
    /// The final-hop message (SURB-ack already removed).
    pub message: Vec<u8>,
    /// The SURB-ack to send back into the mixnet, if the packet carried one.
    pub ack: Option<MixPacket>,
    /// When the packet was unwrapped: the start of its `delivery_seconds`.
    pub unwrapped_at: Instant,
}

/// A liveness probe: the session pings its client and answers whether a pong came back.
pub type LivenessProbe = oneshot::Sender<bool>;

/// What a live session gives the router.
#[derive(Debug)]
pub struct SessionHandle {
    /// Live messages for the session to write (boxed, so a queued one costs a pointer in the
    /// queue), liveness probes, and "a message for this client was committed to the store":
    /// one small allocation per session (see `client::inbox`).
    pub inbox: InboxSender,
    /// When the session started (its authentication timestamp or registration time, unix s).
    pub started_at: u64,
}

/// The session already registered for a client.
#[derive(Debug, Clone)]
pub struct ExistingSession {
    /// Its registration id (to replace exactly this one).
    pub id: u64,
    /// When it started.
    pub started_at: u64,
    /// To probe it.
    pub liveness: Prober,
}

/// A session's place in the router; dropping it unregisters the session.
#[derive(Debug)]
pub struct Registration {
    router: Router,
    client: ClientAddress,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut sessions = self.router.sessions();
        if sessions.get(&self.client).is_some_and(|e| e.id == self.id) {
            sessions.remove(&self.client);
        }
    }
}

struct Entry {
    id: u64,
    handle: SessionHandle,
    /// Counts the entry in `clients_connected` for as long as it is in the map.
    _counted: GaugeGuard,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The router; cloning shares it.
#[derive(Clone, Debug)]
pub struct Router {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    sessions: Mutex<HashMap<ClientAddress, Entry>>,
    next_id: AtomicU64,
    store: Store,
    egress: Egress,
    metrics: Metrics,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Egress")
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Router {
    /// A router storing through `store` and forwarding through `egress`; background commits
    /// are tracked by `tasks` so shutdown can wait for them.
    pub fn new(store: Store, egress: Egress, metrics: Metrics, tasks: TaskTracker) -> Self {
        Self {
            shared: Arc::new(Shared {
                sessions: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                store,
                egress,
                metrics,
                tasks,
            }),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<ClientAddress, Entry>> {
        self.shared
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of registered sessions.
    pub fn connected_clients(&self) -> usize {
        self.sessions().len()
    }

    /// Whether `client` has a registered session whose queue is open.
    pub fn is_live(&self, client: &ClientAddress) -> bool {
        self.sessions()
            .get(client)
            .is_some_and(|e| !e.handle.inbox.is_closed())
    }

    /// Delivers a message from the mixnet. Calls made in order by one caller are stored in
    /// that order; this waits only for room in the store's queue, never for a commit.
    pub async fn deliver(&self, client: ClientAddress, delivery: Delivery) {
        // `try_send` under the lock: a session being replaced cannot receive the message after
        // its entry was removed (it never blocks, so holding the lock is cheap).
        let delivery = {
            let sessions = self.sessions();
            match sessions.get(&client) {
                Some(entry) => match entry.handle.inbox.try_send(Box::new(delivery)) {
                    // The session writes it and then calls `pushed`.
                    Ok(()) => return,
                    Err(TrySendError::Full(d) | TrySendError::Closed(d)) => *d,
                },
                None => delivery,
            }
        };
        self.store_then_ack(client, delivery).await;
    }

    /// Stores a message and forwards its ack once committed. A refused message (quota, store
    /// failure) is counted and logged, and its ack is *not* sent, so the sender retransmits.
    pub async fn store_then_ack(&self, client: ClientAddress, delivery: Delivery) {
        let Delivery {
            message,
            ack,
            unwrapped_at,
        } = delivery;
        let pending = match self
            .shared
            .store
            .queue_message(client, message, UnixTime::now())
            .await
        {
            Ok(pending) => pending,
            Err(e) => {
                self.refused(&e);
                return;
            }
        };
        let router = self.clone();
        self.shared.tasks.spawn(async move {
            match pending.committed().await {
                Ok(_) => {
                    let metrics = &router.shared.metrics;
                    metrics.messages_stored.inc();
                    metrics
                        .delivery_seconds
                        .observe(unwrapped_at.elapsed().as_secs_f64());
                    if let Some(ack) = ack {
                        router.forward_ack(&ack);
                    }
                    if let Some(entry) = router.sessions().get(&client) {
                        entry.handle.inbox.notify_stored();
                    }
                }
                Err(e) => router.refused(&e),
            }
        });
    }

    /// Counts and logs a message the store did not take (its SURB-ack is withheld, so the
    /// sender retransmits). A full inbox is the sender's doing (debug); anything else is a
    /// store failure the operator must see (warned, rate-limited: it repeats per message).
    fn refused(&self, error: &StoreError) {
        if let StoreError::QuotaExceeded { .. } = error {
            self.shared.metrics.mix_drop(MixDrop::StoreRefused);
            debug!(%error, "message refused: the client's inbox is full; its SURB-ack is withheld");
        } else {
            self.shared.metrics.mix_drop(MixDrop::StoreFailed);
            warn_rate_limited!(STORE_FAILURES, %error, "message not stored; its SURB-ack is withheld");
        }
    }

    /// A session wrote a live message to its client's socket: count it, forward the ack.
    pub fn pushed(&self, delivery: Delivery) {
        let metrics = &self.shared.metrics;
        metrics.messages_pushed.inc();
        metrics
            .delivery_seconds
            .observe(delivery.unwrapped_at.elapsed().as_secs_f64());
        if let Some(ack) = delivery.ack {
            self.forward_ack(&ack);
        }
    }

    fn forward_ack(&self, ack: &MixPacket) {
        if self.shared.egress.send(ack).is_ok() {
            self.shared.metrics.acks_forwarded.inc();
        }
    }

    /// Registers a session for `client`, unless one is registered already.
    pub fn claim(
        &self,
        client: ClientAddress,
        handle: SessionHandle,
    ) -> Result<Registration, (ExistingSession, SessionHandle)> {
        self.register(client, handle, None)
    }

    /// Registers a session for `client` in place of the session `stale` (found unresponsive);
    /// fails if another session took the place meanwhile.
    pub fn replace(
        &self,
        client: ClientAddress,
        stale: u64,
        handle: SessionHandle,
    ) -> Result<Registration, (ExistingSession, SessionHandle)> {
        self.register(client, handle, Some(stale))
    }

    fn register(
        &self,
        client: ClientAddress,
        handle: SessionHandle,
        replacing: Option<u64>,
    ) -> Result<Registration, (ExistingSession, SessionHandle)> {
        let mut sessions = self.sessions();
        if let Some(existing) = sessions.get(&client) {
            if Some(existing.id) != replacing && !existing.handle.inbox.is_closed() {
                let existing = ExistingSession {
                    id: existing.id,
                    started_at: existing.handle.started_at,
                    liveness: existing.handle.inbox.prober(),
                };
                return Err((existing, handle));
            }
            // A replaced or finished session: its queue closes, its task ends and hands back
            // whatever it still holds.
            sessions.remove(&client);
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            id,
            handle,
            _counted: GaugeGuard::hold(&self.shared.metrics.clients_connected),
        };
        sessions.insert(client, entry);
        Ok(Registration {
            router: self.clone(),
            client,
            id,
        })
    }
}
