//! What the router hands a live session: live messages (a bounded queue), liveness probes,
//! and "a message was stored for you", all in one small shared allocation.
//!
//! These were three tokio channels. A tokio `mpsc` channel allocates ~500 bytes of state
//! (cache-padded) and its first block of 32 slots up front, ~800 bytes in all, and every
//! connected client had two of them and a `Notify`: ~1.6 KiB per client, most of which never
//! have anything queued. This is a mutex-guarded queue that allocates nothing while empty,
//! with the same semantics the router and the session relied on:
//! - `try_send` refuses when the queue is full or the session closed its end (the router
//!   then stores the message);
//! - the session's `recv` returns `None` once the router let go of the session (it was
//!   replaced), or, after `close`, once the queue is drained;
//! - a probe sent to a session that ended fails at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::node::router::{Delivery, LivenessProbe};

/// Queue capacity kept while empty: a session that had a burst gives the rest back.
const KEEP_WHEN_EMPTY: usize = 8;

/// Why [`InboxSender::try_send`] did not queue a delivery.
#[derive(Debug)]
pub enum TrySendError {
    /// The queue holds as many as it may.
    Full(Box<Delivery>),
    /// The session no longer takes messages.
    Closed(Box<Delivery>),
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    capacity: usize,
    /// A delivery was queued, or the router let go.
    delivery_ready: Notify,
    /// A liveness probe was queued.
    probe_ready: Notify,
    /// A message for this client was committed to the store.
    stored: Notify,
}

#[derive(Debug, Default)]
struct State {
    deliveries: VecDeque<Box<Delivery>>,
    probes: Vec<LivenessProbe>,
    /// The session closed its end or ended: nothing more is taken.
    closed: bool,
    /// The router dropped its sender: the session was replaced or unregistered.
    released: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A new session's inbox: the router's end and the session's end.
pub fn inbox(capacity: usize) -> (InboxSender, InboxReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        capacity: capacity.max(1),
        delivery_ready: Notify::new(),
        probe_ready: Notify::new(),
        stored: Notify::new(),
    });
    (
        InboxSender {
            shared: shared.clone(),
        },
        InboxReceiver { shared },
    )
}

/// The router's end (one per session); dropping it tells the session it was let go.
#[derive(Debug)]
pub struct InboxSender {
    shared: Arc<Shared>,
}

impl InboxSender {
    /// Queues a live message unless the queue is full or the session closed its end.
    pub fn try_send(&self, delivery: Box<Delivery>) -> Result<(), TrySendError> {
        {
            let mut state = self.shared.state();
            if state.closed {
                return Err(TrySendError::Closed(delivery));
            }
            if state.deliveries.len() >= self.shared.capacity {
                return Err(TrySendError::Full(delivery));
            }
            state.deliveries.push_back(delivery);
        }
        self.shared.delivery_ready.notify_one();
        Ok(())
    }

    /// Whether the session no longer takes messages.
    pub fn is_closed(&self) -> bool {
        self.shared.state().closed
    }

    /// Wakes the session: a message for its client was committed to the store.
    pub fn notify_stored(&self) {
        self.shared.stored.notify_one();
    }

    /// A handle to probe the session's liveness with.
    pub fn prober(&self) -> Prober {
        Prober {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for InboxSender {
    fn drop(&mut self) {
        self.shared.state().released = true;
        self.shared.delivery_ready.notify_one();
    }
}

/// Asks a session whether its client is still there.
#[derive(Debug, Clone)]
pub struct Prober {
    shared: Arc<Shared>,
}

impl Prober {
    /// Hands `reply` to the session, which answers once its client answered a ping (or not).
    /// Fails (giving `reply` back) when the session has ended.
    pub fn probe(&self, reply: LivenessProbe) -> Result<(), LivenessProbe> {
        {
            let mut state = self.shared.state();
            if state.closed {
                return Err(reply);
            }
            state.probes.push(reply);
        }
        self.shared.probe_ready.notify_one();
        Ok(())
    }
}

/// The session's end; dropping it closes the inbox (probes waiting get no answer, which
/// their probers take as "not alive").
#[derive(Debug)]
pub struct InboxReceiver {
    shared: Arc<Shared>,
}

impl InboxReceiver {
    /// The next live message; `None` once the router let go (or, after [`close`], once the
    /// queue is empty). Cancel-safe: a message is taken only when this returns it.
    ///
    /// [`close`]: Self::close
    pub async fn recv(&self) -> Option<Box<Delivery>> {
        loop {
            let notified = self.shared.delivery_ready.notified();
            tokio::pin!(notified);
            // Registered before the check, so a send between the check and the wait wakes us.
            notified.as_mut().enable();
            {
                let mut state = self.shared.state();
                if let Some(delivery) = state.deliveries.pop_front() {
                    if state.deliveries.is_empty() && state.deliveries.capacity() > KEEP_WHEN_EMPTY
                    {
                        state.deliveries.shrink_to(KEEP_WHEN_EMPTY);
                    }
                    return Some(delivery);
                }
                if state.released || state.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The next queued live message, if there is one now.
    pub fn try_recv(&self) -> Option<Box<Delivery>> {
        self.shared.state().deliveries.pop_front()
    }

    /// The next liveness probe. Cancel-safe.
    pub async fn recv_probe(&self) -> LivenessProbe {
        loop {
            let notified = self.shared.probe_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.shared.state();
                if !state.probes.is_empty() {
                    return state.probes.remove(0);
                }
            }
            notified.await;
        }
    }

    /// Waits for a "message stored for you" notification. Cancel-safe.
    pub async fn stored(&self) {
        self.shared.stored.notified().await;
    }

    /// Takes nothing more: `try_send` and probes fail from now on, and waiting probes get no
    /// answer. Messages already queued stay for `recv`.
    pub fn close(&self) {
        let probes = {
            let mut state = self.shared.state();
            state.closed = true;
            std::mem::take(&mut state.probes)
        };
        // Dropped outside the lock: each wakes a prober.
        drop(probes);
    }
}

impl Drop for InboxReceiver {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn delivery(byte: u8) -> Box<Delivery> {
        Box::new(Delivery {
            message: vec![byte],
            ack: None,
            unwrapped_at: Instant::now(),
        })
    }

    #[tokio::test]
    async fn queues_in_order_up_to_capacity_then_refuses() {
        let (tx, rx) = inbox(2);
        tx.try_send(delivery(1)).unwrap();
        tx.try_send(delivery(2)).unwrap();
        assert!(matches!(
            tx.try_send(delivery(3)),
            Err(TrySendError::Full(_))
        ));
        assert_eq!(rx.recv().await.unwrap().message, [1]);
        assert_eq!(rx.try_recv().unwrap().message, [2]);
        assert!(rx.try_recv().is_none());
        tx.try_send(delivery(4)).unwrap();
        assert_eq!(rx.recv().await.unwrap().message, [4]);
    }

    #[tokio::test]
    async fn recv_wakes_on_send_and_ends_when_the_router_lets_go() {
        let (tx, rx) = inbox(4);
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await.map(|d| d.message);
            let then = rx.recv().await.map(|d| d.message);
            (first, then)
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        tx.try_send(delivery(7)).unwrap();
        drop(tx);
        assert_eq!(waiting.await.unwrap(), (Some(vec![7]), None));
    }

    #[tokio::test]
    async fn close_refuses_new_messages_and_drains_queued_ones() {
        let (tx, rx) = inbox(4);
        tx.try_send(delivery(1)).unwrap();
        assert!(!tx.is_closed());
        rx.close();
        assert!(tx.is_closed());
        assert!(matches!(
            tx.try_send(delivery(2)),
            Err(TrySendError::Closed(_))
        ));
        assert_eq!(rx.recv().await.unwrap().message, [1]);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn probes_reach_the_session_and_fail_once_it_ended() {
        let (tx, rx) = inbox(1);
        let prober = tx.prober();
        let (reply, answer) = tokio::sync::oneshot::channel();
        prober.probe(reply).unwrap();
        rx.recv_probe().await.send(true).unwrap();
        assert!(answer.await.unwrap());

        // A probe waiting when the session ends gets no answer.
        let (reply, answer) = tokio::sync::oneshot::channel();
        prober.probe(reply).unwrap();
        drop(rx);
        assert!(answer.await.is_err());
        let (reply, _answer) = tokio::sync::oneshot::channel();
        assert!(prober.probe(reply).is_err());
    }

    #[tokio::test]
    async fn stored_notification_is_kept_until_waited_for() {
        let (tx, rx) = inbox(1);
        tx.notify_stored();
        tokio::time::timeout(Duration::from_secs(5), rx.stored())
            .await
            .unwrap();
    }

    #[test]
    fn an_empty_inbox_is_one_small_allocation() {
        // The regression this module fixed: ~1.6 KiB per connected client in channels.
        assert!(
            std::mem::size_of::<Shared>() <= 256,
            "{}",
            std::mem::size_of::<Shared>()
        );
    }
}
