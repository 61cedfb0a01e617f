//! The soak's books: every message sent, whether its SURB-ack reached a sink, whether its
//! client received it, and the counts of the current reporting interval.
//!
//! A message leaves the books once it was both acked and received, so they hold only what is
//! in flight or stored. What is left at the end says what went wrong: acked but never
//! received is a lost message (the gateway promised delivery), received but never acked a lost
//! ack, neither a packet the gateway never took.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::stats::Latency;

/// How many ids of each kind of leftover the summary lists.
const LISTED: usize = 20;

/// How a client got a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Pushed to a connected client: its latency counts.
    Push,
    /// Delivered from the store when the client authenticated.
    Drain,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    sent_ns: u64,
    acked: bool,
    received: bool,
}

/// Counts of one reporting interval.
#[derive(Debug, Clone, Default)]
pub struct Interval {
    /// Packets written to the mix port.
    pub sent: u64,
    /// Messages clients received for the first time (pushed or drained).
    pub delivered: u64,
    /// Of those, delivered from the store on authentication.
    pub drained: u64,
    /// SURB-acks that reached a sink for the first time.
    pub acked: u64,
    /// Messages received again, or acks seen again (the gateway may deliver twice when a
    /// client leaves before confirming; that is not a loss).
    pub repeated: u64,
    /// Failed connects, authentications, writes and unreadable frames.
    pub errors: u64,
    /// The first error of the interval.
    pub first_error: Option<String>,
    /// Latency of pushed messages, mix-port write to client receipt, µs.
    latencies_us: Vec<u64>,
}

impl Interval {
    /// Latency percentiles of the pushed messages (sorts the samples).
    pub fn latency(&mut self) -> Latency {
        Latency::from_micros(&mut self.latencies_us)
    }
}

/// What the books hold at the end of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Leftovers {
    /// Acked but never received: lost messages.
    pub missing: u64,
    /// Some of their ids.
    pub missing_ids: Vec<u64>,
    /// Received but never acked.
    pub unacked: u64,
    /// Neither acked nor received.
    pub unfinished: u64,
    /// Some of their ids.
    pub unfinished_ids: Vec<u64>,
}

/// The books, shared by the sender, the clients and the ack collector.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    open: HashMap<u64, Entry>,
    interval: Interval,
}

impl Ledger {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A poisoned lock means a panic elsewhere; the books are still consistent enough to
        // report.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inner)
    }

    /// Packet `id` was written to the mix port at `ns`.
    pub fn sent(&self, id: u64, ns: u64) {
        self.with(|inner| {
            inner.interval.sent += 1;
            inner.open.insert(
                id,
                Entry {
                    sent_ns: ns,
                    ..Entry::default()
                },
            );
        });
    }

    /// A client received message `id` at `ns`.
    pub fn received(&self, id: u64, ns: u64, via: Via) {
        self.with(|inner| {
            let Some(entry) = inner.open.get_mut(&id).filter(|e| !e.received) else {
                inner.interval.repeated += 1;
                return;
            };
            entry.received = true;
            let (sent_ns, done) = (entry.sent_ns, entry.acked);
            if done {
                inner.open.remove(&id);
            }
            inner.interval.delivered += 1;
            match via {
                Via::Push => inner
                    .interval
                    .latencies_us
                    .push(ns.saturating_sub(sent_ns) / 1000),
                Via::Drain => inner.interval.drained += 1,
            }
        });
    }

    /// The SURB-ack of message `id` reached a sink.
    pub fn acked(&self, id: u64) {
        self.with(|inner| {
            let Some(entry) = inner.open.get_mut(&id).filter(|e| !e.acked) else {
                inner.interval.repeated += 1;
                return;
            };
            entry.acked = true;
            if entry.received {
                inner.open.remove(&id);
            }
            inner.interval.acked += 1;
        });
    }

    /// Counts an error, keeping the interval's first.
    pub fn error(&self, what: impl FnOnce() -> String) {
        self.with(|inner| {
            inner.interval.errors += 1;
            if inner.interval.first_error.is_none() {
                inner.interval.first_error = Some(what());
            }
        });
    }

    /// Ends the interval: its counts, and a fresh one begins.
    pub fn take_interval(&self) -> Interval {
        self.with(|inner| std::mem::take(&mut inner.interval))
    }

    /// Messages acked and not yet received.
    pub fn acked_undelivered(&self) -> u64 {
        self.with(|inner| {
            inner
                .open
                .values()
                .filter(|e| e.acked && !e.received)
                .count() as u64
        })
    }

    /// Messages in the books: in flight, stored, or lost.
    pub fn open(&self) -> u64 {
        self.with(|inner| inner.open.len() as u64)
    }

    /// What is left, ids in ascending order.
    pub fn leftovers(&self) -> Leftovers {
        self.with(|inner| {
            let mut ids: Vec<(&u64, &Entry)> = inner.open.iter().collect();
            ids.sort_unstable_by_key(|(id, _)| **id);
            let mut left = Leftovers::default();
            for (&id, entry) in ids {
                match (entry.acked, entry.received) {
                    (true, false) => {
                        left.missing += 1;
                        if left.missing_ids.len() < LISTED {
                            left.missing_ids.push(id);
                        }
                    }
                    (false, true) => left.unacked += 1,
                    (false, false) => {
                        left.unfinished += 1;
                        if left.unfinished_ids.len() < LISTED {
                            left.unfinished_ids.push(id);
                        }
                    }
                    (true, true) => {}
                }
            }
            left
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_messages_leave_the_books() {
        let ledger = Ledger::default();
        for id in 1..=4 {
            ledger.sent(id, 1_000);
        }
        ledger.acked(1);
        ledger.received(1, 3_000_000, Via::Push);
        ledger.received(2, 5_000_000, Via::Drain);
        ledger.acked(2);
        ledger.acked(3);
        ledger.received(2, 6_000_000, Via::Drain);
        ledger.acked(9);

        let mut interval = ledger.take_interval();
        assert_eq!(
            (
                interval.sent,
                interval.delivered,
                interval.drained,
                interval.acked
            ),
            (4, 2, 1, 3)
        );
        assert_eq!(interval.repeated, 2);
        assert_eq!(interval.latency().samples, 1);
        assert_eq!(interval.latency().p50_ms, 2.999);
        assert_eq!(ledger.take_interval().sent, 0);

        assert_eq!(ledger.open(), 2);
        assert_eq!(ledger.acked_undelivered(), 1);
        let left = ledger.leftovers();
        assert_eq!((left.missing, left.unacked, left.unfinished), (1, 0, 1));
        assert_eq!(left.missing_ids, vec![3]);
        assert_eq!(left.unfinished_ids, vec![4]);
    }

    #[test]
    fn errors_keep_the_first() {
        let ledger = Ledger::default();
        ledger.error(|| "first".into());
        ledger.error(|| "second".into());
        let interval = ledger.take_interval();
        assert_eq!(interval.errors, 2);
        assert_eq!(interval.first_error.as_deref(), Some("first"));
    }
}
