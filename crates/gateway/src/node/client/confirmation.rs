//! Client-confirmed delivery: a message written to the client's socket is not yet delivered
//! (the kernel may still lose it with the connection), so after each batch of messages the
//! session sends a websocket Ping and keeps the batch here until the Pong comes back. A
//! websocket peer answers a Ping only after reading every frame before it (and every
//! tungstenite-based client, as Nym's are, answers on its own), so the Pong proves the client
//! read the batch. Only then are its SURB-acks forwarded and its stored copies deleted.
//!
//! If the Pong does not come within the timeout, or the connection ends first, the session
//! ends and everything unconfirmed goes back: pushed messages to the store (their acks follow
//! once committed), stored ones simply stay. The client receives them again on its next
//! connection: at least once, never zero times.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::node::router::Delivery;

/// A batch written and pinged, waiting for its Pong.
struct Batch {
    payload: [u8; 8],
    sent: Instant,
    /// Live messages (with their acks).
    pushed: Vec<Delivery>,
    /// Ids of stored messages, deleted once confirmed.
    stored: Vec<i64>,
}

/// What a Pong confirmed: everything sent up to the batch it answers.
#[derive(Default)]
pub(super) struct Confirmed {
    /// Live messages whose acks may now leave.
    pub(super) pushed: Vec<Delivery>,
    /// Stored messages that may now be deleted.
    pub(super) stored: Vec<i64>,
    /// From each confirmed batch's Ping to now.
    pub(super) latencies: Vec<Duration>,
}

/// The unconfirmed batches of one session, oldest first, at most `max_batches`.
pub(super) struct Unconfirmed {
    batches: VecDeque<Batch>,
    max_batches: usize,
    timeout: Duration,
}

impl Unconfirmed {
    /// At most `max_batches` waiting, each for at most `timeout`.
    pub(super) fn new(max_batches: usize, timeout: Duration) -> Self {
        Self {
            batches: VecDeque::new(),
            max_batches: max_batches.max(1),
            timeout,
        }
    }

    /// Whether another batch may be sent: the session stops taking new messages while the
    /// client has this many batches unconfirmed (the router stores what comes meanwhile).
    pub(super) fn has_room(&self) -> bool {
        self.batches.len() < self.max_batches
    }

    /// When the oldest batch's Pong is overdue.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.batches.front().map(|b| b.sent + self.timeout)
    }

    /// The highest stored message id sent and not yet confirmed: fetching the store resumes
    /// after it, so a batch is not sent twice within a session.
    pub(super) fn last_stored_id(&self) -> Option<i64> {
        self.batches
            .iter()
            .rev()
            .find_map(|b| b.stored.iter().max().copied())
    }

    /// Records a batch just sent with a Ping carrying `payload`.
    pub(super) fn sent(&mut self, payload: [u8; 8], pushed: Vec<Delivery>, stored: Vec<i64>) {
        self.batches.push_back(Batch {
            payload,
            sent: Instant::now(),
            pushed,
            stored,
        });
    }

    /// A Pong carrying `payload`: if it answers one of our Pings, that batch and every one
    /// before it are confirmed (the client read them in order). Otherwise nothing is.
    pub(super) fn pong(&mut self, payload: &[u8]) -> Option<Confirmed> {
        let position = self.batches.iter().position(|b| b.payload == payload)?;
        let now = Instant::now();
        let mut confirmed = Confirmed::default();
        for batch in self.batches.drain(..=position) {
            confirmed.pushed.extend(batch.pushed);
            confirmed.stored.extend(batch.stored);
            confirmed.latencies.push(now - batch.sent);
        }
        Some(confirmed)
    }

    /// Everything unconfirmed, when the session ends: live messages to give back to the
    /// store (stored ones stay where they are).
    pub(super) fn into_pushed(self) -> Vec<Delivery> {
        self.batches.into_iter().flat_map(|b| b.pushed).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(byte: u8) -> Delivery {
        Delivery {
            message: vec![byte],
            ack: None,
            unwrapped_at: std::time::Instant::now(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pong_confirms_its_batch_and_every_earlier_one() {
        let mut unconfirmed = Unconfirmed::new(3, Duration::from_secs(10));
        assert!(unconfirmed.deadline().is_none());
        unconfirmed.sent([1; 8], vec![delivery(1)], vec![]);
        tokio::time::advance(Duration::from_secs(1)).await;
        unconfirmed.sent([2; 8], vec![delivery(2)], vec![7, 8]);
        unconfirmed.sent([3; 8], vec![], vec![9]);
        assert!(!unconfirmed.has_room());
        assert_eq!(unconfirmed.last_stored_id(), Some(9));
        assert_eq!(
            unconfirmed.deadline(),
            Some(Instant::now() - Duration::from_secs(1) + Duration::from_secs(10))
        );

        assert!(unconfirmed.pong(&[9; 8]).is_none(), "not one of ours");
        assert!(unconfirmed.pong(b"short").is_none());
        let confirmed = unconfirmed.pong(&[2; 8]).unwrap();
        let messages: Vec<u8> = confirmed.pushed.iter().map(|d| d.message[0]).collect();
        assert_eq!(messages, [1, 2]);
        assert_eq!(confirmed.stored, [7, 8]);
        assert_eq!(
            confirmed.latencies,
            [Duration::from_secs(1), Duration::ZERO]
        );
        assert!(unconfirmed.has_room());
        assert!(unconfirmed.pong(&[2; 8]).is_none(), "confirmed once");

        unconfirmed.sent([4; 8], vec![delivery(4)], vec![]);
        let left: Vec<u8> = unconfirmed
            .into_pushed()
            .iter()
            .map(|d| d.message[0])
            .collect();
        assert_eq!(left, [4], "batch 3 held only a stored message");
    }
}
