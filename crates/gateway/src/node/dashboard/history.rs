//! The dashboard's memory of the last minutes: every `dashboard_sample_interval` the sampler
//! renders the metrics exactly as `/metrics` does, keeps the series the page charts, and adds
//! them as one row to a ring of `dashboard_samples()` rows. The page turns counters into rates
//! itself (differences of consecutive rows), so a row is raw exposition values.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::node::metrics::Metrics;

/// The metric families the page charts, as named in the exposition (`gateway_` prefix, counters
/// with `_total`, histograms by `_sum` and `_count`). Every series of these (each label value)
/// becomes a column.
const CHARTED: &[&str] = &[
    "gateway_clients_connected",
    "gateway_mix_connections_active",
    "gateway_mix_packets_received_total",
    "gateway_client_packets_forwarded_total",
    "gateway_egress_packets_sent_total",
    "gateway_messages_pushed_total",
    "gateway_messages_stored_total",
    "gateway_messages_delivered_from_store_total",
    "gateway_acks_forwarded_total",
    "gateway_store_messages",
    "gateway_store_message_bytes",
    "gateway_egress_queue_depth",
    "gateway_relay_queue_depth",
    "gateway_unwrap_seconds_sum",
    "gateway_unwrap_seconds_count",
    "gateway_delivery_seconds_sum",
    "gateway_delivery_seconds_count",
    "gateway_mix_packets_dropped_total",
    "gateway_egress_packets_dropped_total",
    "gateway_client_connections_rejected_total",
    "gateway_mix_connections_closed_total",
];

/// Columns kept at most. The charted families and their label values make about 50; this only
/// guards the history's memory should a family ever grow an unbounded label.
const MAX_COLUMNS: usize = 128;

/// The history; cloning shares it.
#[derive(Clone, Debug)]
pub struct History {
    inner: Arc<Mutex<Rows>>,
}

#[derive(Debug)]
struct Rows {
    capacity: usize,
    /// Series names, in the order they were first seen.
    columns: Vec<String>,
    /// Oldest first. A row shorter than `columns` predates the later columns (whose series
    /// did not exist yet: 0).
    rows: VecDeque<Row>,
}

/// One sample: when it was taken and its value for each column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// One value per column, in the columns' order.
    pub values: Vec<f64>,
}

/// What the data endpoint returns of the history.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// Series names (as in `/metrics`), one per value of each row.
    pub columns: Vec<String>,
    /// Rows newer than the `since` asked for, oldest first.
    pub rows: Vec<Row>,
}

impl History {
    /// An empty history keeping at most `capacity` rows (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Rows {
                capacity: capacity.max(1),
                columns: Vec::new(),
                rows: VecDeque::new(),
            })),
        }
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Rows> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a row from the exposition `text` taken at `at_ms`, dropping the oldest if full.
    pub fn record(&self, at_ms: u64, text: &str) {
        let mut rows = self.rows();
        let mut values = vec![0.0; rows.columns.len()];
        for (series, value) in charted_series(text) {
            let column = match rows.columns.iter().position(|c| c == series) {
                Some(i) => i,
                None if rows.columns.len() < MAX_COLUMNS => {
                    rows.columns.push(series.to_owned());
                    values.push(0.0);
                    rows.columns.len() - 1
                }
                None => continue,
            };
            values[column] = value;
        }
        if rows.rows.len() >= rows.capacity {
            rows.rows.pop_front();
        }
        rows.rows.push_back(Row { at_ms, values });
    }

    /// The columns and the rows taken after `since_ms` (all of them for 0).
    pub fn since(&self, since_ms: u64) -> Snapshot {
        let rows = self.rows();
        Snapshot {
            columns: rows.columns.clone(),
            rows: rows
                .rows
                .iter()
                .filter(|r| r.at_ms > since_ms)
                .cloned()
                .collect(),
        }
    }
}

/// The `(series, value)` pairs of the charted families in Prometheus/OpenMetrics text. Lines
/// that do not parse are skipped: the text is ours, and a chart gap beats a failed sample.
fn charted_series(text: &str) -> impl Iterator<Item = (&str, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let family = series.split_once('{').map_or(series, |(name, _)| name);
            if !CHARTED.contains(&family) {
                return None;
            }
            Some((series, value.parse().ok()?))
        })
}

/// Where the sampler reads from and how often.
pub struct Sampler {
    /// The node's metrics.
    pub metrics: Metrics,
    /// The store, for its totals.
    pub store: gateway_store::Store,
    /// Where the rows go.
    pub history: History,
    /// Time between two rows.
    pub interval: Duration,
    /// Time between two readings of the store's totals.
    pub store_interval: Duration,
}

impl Sampler {
    /// Takes a row every `interval` until aborted.
    pub async fn run(self) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut store_read: Option<Instant> = None;
        loop {
            ticker.tick().await;
            if store_read.is_none_or(|at| at.elapsed() >= self.store_interval) {
                self.metrics.read_store_totals(&self.store).await;
                store_read = Some(Instant::now());
            }
            self.history.record(unix_ms(), &self.metrics.render());
        }
    }
}

/// Now, in milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::metrics::MixDrop;

    #[test]
    fn rows_hold_the_charted_series_of_the_real_exposition() {
        let metrics = Metrics::new();
        let history = History::new(10);
        history.record(1, &metrics.render());
        metrics.mix_packets_received.inc_by(5);
        metrics.clients_connected.set(2);
        metrics.mix_drop(MixDrop::Replay);
        metrics.unwrap_seconds.observe(0.5);
        history.record(2, &metrics.render());

        let snapshot = history.since(0);
        let value = |row: &Row, series: &str| {
            let i = snapshot.columns.iter().position(|c| c == series);
            i.and_then(|i| row.values.get(i).copied()).unwrap_or(0.0)
        };
        let [first, second] = &snapshot.rows[..] else {
            panic!("two rows: {:?}", snapshot.rows)
        };
        assert_eq!(value(first, "gateway_mix_packets_received_total"), 0.0);
        assert_eq!(value(second, "gateway_mix_packets_received_total"), 5.0);
        assert_eq!(value(second, "gateway_clients_connected"), 2.0);
        assert_eq!(value(second, "gateway_unwrap_seconds_count"), 1.0);
        assert_eq!(value(second, "gateway_unwrap_seconds_sum"), 0.5);
        // A drop reason seen for the first time is a new column; the older row predates it.
        let replay = r#"gateway_mix_packets_dropped_total{reason="replay"}"#;
        assert_eq!(value(second, replay), 1.0);
        assert!(first.values.len() < snapshot.columns.len());
        // Buckets and other families are not kept.
        assert!(snapshot.columns.iter().all(|c| !c.contains("_bucket")));
        assert!(!snapshot.columns.iter().any(|c| c.contains("replay_filter")));

        assert_eq!(history.since(1).rows.len(), 1);
        assert!(history.since(2).rows.is_empty());
    }

    #[test]
    fn the_history_is_bounded_in_rows_and_columns() {
        let history = History::new(3);
        for at in 1..=100 {
            history.record(at, "gateway_clients_connected 1\n");
        }
        let rows = history.since(0).rows;
        assert_eq!(
            rows.iter().map(|r| r.at_ms).collect::<Vec<_>>(),
            [98, 99, 100]
        );

        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&format!(
                "gateway_mix_packets_dropped_total{{reason=\"r{i}\"}} 1\n"
            ));
        }
        history.record(101, &text);
        let snapshot = history.since(100);
        assert_eq!(snapshot.columns.len(), MAX_COLUMNS);
        assert_eq!(snapshot.rows[0].values.len(), MAX_COLUMNS);
    }

    #[test]
    fn bad_lines_are_skipped() {
        let history = History::new(2);
        history.record(
            1,
            "gateway_clients_connected\ngateway_clients_connected x\n\
             gateway_store_messages 7\n# EOF\n",
        );
        let snapshot = history.since(0);
        assert_eq!(snapshot.columns, ["gateway_store_messages"]);
        assert_eq!(snapshot.rows[0].values, [7.0]);
    }
}
