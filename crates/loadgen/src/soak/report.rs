//! The soak's report: one row per interval, a summary (memory trend, leftovers), and the two
//! ways to print it.

use std::fmt::Write as _;

use serde::Serialize;

use super::ledger::Leftovers;

/// One reporting interval.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    /// Seconds since the load started, at the end of the interval.
    pub elapsed_s: f64,
    /// Gateway resident memory.
    pub rss_bytes: u64,
    /// Of it, anonymous memory (heap and stacks; the rest is mapped files).
    pub rss_anon_bytes: u64,
    /// Gateway open file descriptors.
    pub open_files: u64,
    /// SQLite database + WAL file sizes.
    pub store_bytes: u64,
    /// Messages in the store (the gateway's `gateway_store_messages` gauge).
    pub stored_messages: u64,
    /// Packets written to the mix port.
    pub sent: u64,
    /// Messages received by their clients for the first time (pushed or drained).
    pub delivered: u64,
    /// Of those, drained from the store on authentication.
    pub drained: u64,
    /// SURB-acks counted at the sinks.
    pub acked: u64,
    /// Repeated deliveries or acks.
    pub repeated: u64,
    /// Median latency of pushed messages, mix-port write to client receipt, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// Errors (connects, authentications, writes, unreadable frames).
    pub errors: u64,
    /// The first error of the interval.
    pub first_error: Option<String>,
    /// Messages acked but not yet received (stored for absent clients, or lost).
    pub acked_undelivered: u64,
    /// The load generator's own resident memory.
    pub loadgen_rss_bytes: u64,
}

/// The whole run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakReport {
    /// Which gateway was loaded.
    pub gateway: String,
    /// CPU model, cores and memory of this machine.
    pub machine: String,
    /// `/proc/loadavg` at the start and at the end.
    pub load_average: [String; 2],
    /// Packets per second asked for.
    pub rate: f64,
    /// Clients coming and going.
    pub clients: usize,
    /// Mean seconds online, offline.
    pub spells_s: [f64; 2],
    /// Seconds per row.
    pub interval_s: f64,
    /// Rows.
    pub rows: Vec<Row>,
    /// The summary.
    pub summary: Summary,
}

/// The end of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Seconds of load.
    pub load_s: f64,
    /// Seconds the end took for stored messages to drain (clients all online).
    pub settle_s: f64,
    /// Totals over the rows.
    pub sent: u64,
    /// Delivered in all.
    pub delivered: u64,
    /// Acked in all.
    pub acked: u64,
    /// Repeated in all.
    pub repeated: u64,
    /// Errors in all.
    pub errors: u64,
    /// RSS of the first and the last row.
    pub rss_first_last: [u64; 2],
    /// Mean RSS of the first and of the last quarter of the rows.
    pub rss_quarters: [f64; 2],
    /// (last quarter − first quarter) / the time between their middles, bytes per hour.
    pub rss_slope_bytes_per_hour: f64,
    /// Open files, first and last row.
    pub open_files_first_last: [u64; 2],
    /// Store bytes, first and last row.
    pub store_bytes_first_last: [u64; 2],
    /// Largest p99 of any row, ms.
    pub worst_p99_ms: f64,
    /// What the books hold at the end.
    pub leftovers: Leftovers,
    /// Every acked message was received.
    pub all_acked_delivered: bool,
    /// Mix packets the gateway dropped, by label set (`gateway_mix_packets_dropped_total`):
    /// what explains packets neither acked nor received.
    pub gateway_mix_drops: Vec<(String, f64)>,
}

impl Summary {
    /// Totals and trends of `rows`, with the books' `leftovers`.
    pub fn of(rows: &[Row], leftovers: Leftovers, load_s: f64, settle_s: f64) -> Self {
        let sum = |f: fn(&Row) -> u64| rows.iter().map(f).sum();
        let first_last = |f: fn(&Row) -> u64| [rows.first().map_or(0, f), rows.last().map_or(0, f)];
        let (rss_quarters, rss_slope_bytes_per_hour) = rss_trend(rows);
        Self {
            load_s,
            settle_s,
            sent: sum(|r| r.sent),
            delivered: sum(|r| r.delivered),
            acked: sum(|r| r.acked),
            repeated: sum(|r| r.repeated),
            errors: sum(|r| r.errors),
            rss_first_last: first_last(|r| r.rss_bytes),
            rss_quarters,
            rss_slope_bytes_per_hour,
            open_files_first_last: first_last(|r| r.open_files),
            store_bytes_first_last: first_last(|r| r.store_bytes),
            worst_p99_ms: rows.iter().map(|r| r.p99_ms).fold(0.0, f64::max),
            all_acked_delivered: leftovers.missing == 0,
            leftovers,
            gateway_mix_drops: Vec::new(),
        }
    }
}

/// Mean RSS of the first and last quarter of `rows` (at least one row each), and the slope
/// between them in bytes per hour (0 with fewer than two rows).
pub fn rss_trend(rows: &[Row]) -> ([f64; 2], f64) {
    if rows.is_empty() {
        return ([0.0; 2], 0.0);
    }
    let quarter = (rows.len() / 4).max(1);
    let mean = |part: &[Row]| {
        let rss = part.iter().map(|r| r.rss_bytes as f64).sum::<f64>() / part.len() as f64;
        let at = part.iter().map(|r| r.elapsed_s).sum::<f64>() / part.len() as f64;
        (rss, at)
    };
    let (first, first_at) = mean(&rows[..quarter]);
    let (last, last_at) = mean(&rows[rows.len() - quarter..]);
    let hours = (last_at - first_at) / 3600.0;
    let slope = if hours > 0.0 {
        (last - first) / hours
    } else {
        0.0
    };
    ([first, last], slope)
}

const MIB: f64 = 1024.0 * 1024.0;

impl Row {
    /// The row as a line of [`SoakReport::to_table`] (also the progress line).
    pub fn line(&self) -> String {
        format!(
            "{:>8.0} {:>8.1} {:>5} {:>9.2} {:>8} {:>8} {:>8} {:>7} {:>8} {:>7.2} {:>8.2} {:>6}",
            self.elapsed_s,
            self.rss_bytes as f64 / MIB,
            self.open_files,
            self.store_bytes as f64 / MIB,
            self.stored_messages,
            self.sent,
            self.delivered,
            self.drained,
            self.acked,
            self.p50_ms,
            self.p99_ms,
            self.errors,
        )
    }

    /// The header of [`Row::line`].
    pub fn header() -> &'static str {
        "elapsed_s  rss_MiB   fds store_MiB   stored     sent  deliver drained    acked p50_ms   p99_ms errors"
    }
}

impl SoakReport {
    /// One JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A table for people.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let s = &self.summary;
        let _ = writeln!(
            out,
            "soak: {:.0} packets/s to {} clients (≈{:.1} s on, {:.1} s off), a row every {:.1} s",
            self.rate, self.clients, self.spells_s[0], self.spells_s[1], self.interval_s
        );
        let _ = writeln!(out, "{}", Row::header());
        for row in &self.rows {
            let _ = writeln!(out, "{}", row.line());
        }
        let _ = writeln!(
            out,
            "load {:.0} s, settle {:.1} s: sent {}, delivered {}, acked {}, repeated {}, errors {}",
            s.load_s, s.settle_s, s.sent, s.delivered, s.acked, s.repeated, s.errors
        );
        let _ = writeln!(
            out,
            "RSS {:.1} → {:.1} MiB (quarters {:.1} → {:.1} MiB, {:+.2} MiB/h); fds {} → {}; store {:.2} → {:.2} MiB; worst p99 {:.2} ms",
            s.rss_first_last[0] as f64 / MIB,
            s.rss_first_last[1] as f64 / MIB,
            s.rss_quarters[0] / MIB,
            s.rss_quarters[1] / MIB,
            s.rss_slope_bytes_per_hour / MIB,
            s.open_files_first_last[0],
            s.open_files_first_last[1],
            s.store_bytes_first_last[0] as f64 / MIB,
            s.store_bytes_first_last[1] as f64 / MIB,
            s.worst_p99_ms,
        );
        let left = &s.leftovers;
        let _ = writeln!(
            out,
            "every acked message delivered: {} (acked, not received: {} {:?}; received, not acked: {}; neither: {} {:?})",
            if s.all_acked_delivered { "yes" } else { "NO" },
            left.missing,
            left.missing_ids,
            left.unacked,
            left.unfinished,
            left.unfinished_ids,
        );
        let drops: Vec<String> = s
            .gateway_mix_drops
            .iter()
            .map(|(labels, n)| format!("{labels} {n}"))
            .collect();
        let _ = writeln!(out, "gateway mix drops: {}", drops.join(", "));
        let _ = writeln!(
            out,
            "gateway: {}\nmachine: {}\nload average (1/5/15 min): {} at start, {} at end",
            self.gateway, self.machine, self.load_average[0], self.load_average[1]
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(elapsed_s: f64, rss_mib: u64) -> Row {
        Row {
            elapsed_s,
            rss_bytes: rss_mib << 20,
            ..Row::default()
        }
    }

    #[test]
    fn rss_slope_compares_quarters() {
        let rows: Vec<Row> = (1..=8).map(|n| row(n as f64 * 450.0, 100 + n)).collect();
        let ([first, last], slope) = rss_trend(&rows);
        assert_eq!(first, 101.5 * MIB);
        assert_eq!(last, 107.5 * MIB);
        // 6 MiB between t = 675 s and t = 3375 s: 0.75 h.
        assert!((slope / MIB - 8.0).abs() < 1e-9, "{slope}");
        assert_eq!(rss_trend(&[]), ([0.0; 2], 0.0));
        assert_eq!(rss_trend(&rows[..1]).1, 0.0);
    }

    #[test]
    fn summary_totals_and_verdict() {
        let mut rows = vec![row(60.0, 50), row(120.0, 52)];
        rows[0].sent = 10;
        rows[1].sent = 5;
        rows[1].p99_ms = 3.5;
        let summary = Summary::of(&rows, Leftovers::default(), 120.0, 1.0);
        assert_eq!(summary.sent, 15);
        assert_eq!(summary.worst_p99_ms, 3.5);
        assert_eq!(summary.rss_first_last, [50 << 20, 52 << 20]);
        assert!(summary.all_acked_delivered);
        let lost = Leftovers {
            missing: 1,
            ..Leftovers::default()
        };
        assert!(!Summary::of(&rows, lost, 120.0, 1.0).all_acked_delivered);
    }
}
