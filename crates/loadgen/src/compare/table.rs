//! The comparison's figures, side by side: one row per figure with ours, nym-node's and the
//! ratio ours / nym-node, one row per common paced rate with both sides' latency, and the
//! two full reports beside them in the JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::Settings;
use crate::phases::ingest::IngestRun;
use crate::report::Report;

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Rates.
    Higher,
    /// Costs and latencies.
    Lower,
}

/// One figure of both.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What it is.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// Ours.
    pub ours: f64,
    /// nym-node's.
    pub nym_node: f64,
    /// Ours / nym-node's (0 when either is missing).
    pub ratio: f64,
    /// Which way is better.
    pub better: Better,
}

/// One side of a paced run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PacedSide {
    /// Median mix ingress → client receipt, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// Messages received of those sent.
    pub received: u64,
    /// Packets sent.
    pub packets: usize,
    /// The gateway's CPU per packet, µs.
    pub gateway_cpu_us_per_packet: f64,
    /// The load generator's own CPU, % of one core.
    pub loadgen_cpu_percent: f64,
}

impl PacedSide {
    fn of(run: &IngestRun) -> Self {
        let latency = run.latency.unwrap_or_default();
        Self {
            p50_ms: latency.p50_ms,
            p99_ms: latency.p99_ms,
            max_ms: latency.max_ms,
            received: run.completed,
            packets: run.packets,
            gateway_cpu_us_per_packet: 1e6 * run.cpu.gateway_total / run.packets.max(1) as f64,
            loadgen_cpu_percent: 100.0 * run.cpu.loadgen / run.cpu.seconds.max(1e-9),
        }
    }
}

/// Both sides at one paced rate.
#[derive(Debug, Clone, Serialize)]
pub struct PacedRow {
    /// Packets per second.
    pub rate: f64,
    /// Where the rate comes from (e.g. "50 % of our peak").
    pub origin: String,
    /// Ours.
    pub ours: PacedSide,
    /// nym-node's.
    pub nym_node: PacedSide,
    /// Whether our p99 is lower than nym-node's.
    pub ours_p99_lower: bool,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// CPU model, cores and memory of this machine.
    pub machine: String,
    /// `/proc/loadavg` at the start and at the end.
    pub load_average: [String; 2],
    /// Tiny scale.
    pub smoke: bool,
    /// Wall-clock seconds of the whole comparison.
    pub duration_s: f64,
    /// Final-hop packets per ingest run, mix connections, connected clients.
    pub scale: String,
    /// The figures.
    pub rows: Vec<Row>,
    /// The paced runs at the common rates.
    pub paced: Vec<PacedRow>,
    /// Our full report.
    pub ours: Report,
    /// nym-node's full report.
    pub nym_node: Report,
}

impl Comparison {
    /// Puts the two reports side by side.
    pub fn new(
        ours: Report,
        nym_node: Report,
        settings: &Settings,
        load_average: [String; 2],
        duration_s: f64,
    ) -> Self {
        let rows = rows(&ours, &nym_node);
        let paced = paced_rows(&ours, &nym_node);
        Self {
            machine: ours.machine.clone(),
            load_average,
            smoke: settings.smoke,
            duration_s,
            scale: format!(
                "{} packets per ingest run over {} mix connections, {} connected and {} offline clients, {} s per paced run",
                settings.packets,
                settings.mix_connections,
                settings.online_clients,
                settings.offline_clients,
                settings.latency_seconds
            ),
            rows,
            paced,
            ours,
            nym_node,
        }
    }

    /// The JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "machine: {}", self.machine);
        let _ = writeln!(
            out,
            "load average: {} (start) / {} (end); {:.0} s{}",
            self.load_average[0],
            self.load_average[1],
            self.duration_s,
            if self.smoke { "; smoke scale" } else { "" }
        );
        let _ = writeln!(out, "scale: {}", self.scale);
        let _ = writeln!(out, "ours: {}", self.ours.gateway);
        let _ = writeln!(out, "nym-node: {}", self.nym_node.gateway);
        let _ = writeln!(out);
        let name_width = self
            .rows
            .iter()
            .map(|r| r.name.chars().count() + r.unit.chars().count() + 3)
            .max()
            .unwrap_or(10)
            .max(40);
        let _ = writeln!(
            out,
            "{:<name_width$}  {:>12}  {:>12}  {:>14}",
            "figure", "ours", "nym-node", "ours/nym-node"
        );
        for row in &self.rows {
            let name = format!("{} ({})", row.name, row.unit);
            let better = match row.better {
                Better::Higher => "higher is better",
                Better::Lower => "lower is better",
            };
            let _ = writeln!(
                out,
                "{name:<name_width$}  {:>12}  {:>12}  {:>14}  {better}",
                number(row.ours),
                number(row.nym_node),
                ratio(row.ratio)
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "latency, mix ingress → client receipt, ms: p50 / p99 / max (gateway CPU µs per packet; load generator CPU % of a core)"
        );
        for row in &self.paced {
            let side = |s: &PacedSide| {
                format!(
                    "{:.2} / {:.2} / {:.2} ({:.0} µs; {:.0} %){}",
                    s.p50_ms,
                    s.p99_ms,
                    s.max_ms,
                    s.gateway_cpu_us_per_packet,
                    s.loadgen_cpu_percent,
                    if s.received < s.packets as u64 {
                        format!(" {} of {} received", s.received, s.packets)
                    } else {
                        String::new()
                    }
                )
            };
            let _ = writeln!(
                out,
                "  {:>7.0} packets/s ({}):\n      ours      {}\n      nym-node  {}\n      p99 ours/nym-node {}{}",
                row.rate,
                row.origin,
                side(&row.ours),
                side(&row.nym_node),
                ratio(row.ours.p99_ms / row.nym_node.p99_ms.max(1e-9)),
                if row.ours_p99_lower { "" } else { "  (ours is NOT lower)" }
            );
        }
        for (side, report) in [("ours", &self.ours), ("nym-node", &self.nym_node)] {
            for note in &report.notes {
                let _ = writeln!(out, "note ({side}): {note}");
            }
        }
        out
    }
}

fn number(value: f64) -> String {
    if value == 0.0 {
        "-".into()
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn ratio(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        "-".into()
    } else {
        format!("{value:.2}×")
    }
}

fn row(name: &str, unit: &str, ours: f64, nym_node: f64, better: Better) -> Row {
    Row {
        name: name.into(),
        unit: unit.into(),
        ours,
        nym_node,
        ratio: if ours > 0.0 && nym_node > 0.0 {
            ours / nym_node
        } else {
            0.0
        },
        better,
    }
}

fn rows(ours: &Report, nym: &Report) -> Vec<Row> {
    use Better::{Higher, Lower};
    let mut rows = vec![
        row(
            "ingest to connected clients, peak",
            "packets/s",
            ours.ingest_packets_per_s,
            nym.ingest_packets_per_s,
            Higher,
        ),
        row(
            "gateway CPU per packet at peak",
            "µs",
            ours.gateway_cpu_us_per_packet,
            nym.gateway_cpu_us_per_packet,
            Lower,
        ),
        row(
            "ingest to offline clients (stored)",
            "packets/s",
            ours.ingest_offline_packets_per_s,
            nym.ingest_offline_packets_per_s,
            Higher,
        ),
        row(
            "stored messages drained on authenticate",
            "messages/s",
            ours.store_deliveries_per_s,
            nym.store_deliveries_per_s,
            Higher,
        ),
        row(
            "registration handshakes",
            "/s",
            ours.handshakes_per_s,
            nym.handshakes_per_s,
            Higher,
        ),
        row(
            "authentications",
            "/s",
            ours.authentications_per_s,
            nym.authentications_per_s,
            Higher,
        ),
        row(
            "forward requests",
            "/s",
            ours.forward_requests_per_s,
            nym.forward_requests_per_s,
            Higher,
        ),
    ];
    if let (Some(o), Some(n)) = (&ours.memory, &nym.memory) {
        rows.push(row(
            "resident memory, no client (after a restart)",
            "MiB",
            o.baseline_rss_bytes as f64 / 1048576.0,
            n.baseline_rss_bytes as f64 / 1048576.0,
            Lower,
        ));
        rows.push(row(
            &format!(
                "resident memory per idle client ({} / {} clients)",
                ours.clients, nym.clients
            ),
            "KiB",
            ours.rss_bytes_per_idle_client / 1024.0,
            nym.rss_bytes_per_idle_client / 1024.0,
            Lower,
        ));
    }
    if let (Some(o), Some(n)) = (&ours.fairness, &nym.fairness) {
        rows.push(row(
            "fairness: steady peer's p99 alone",
            "ms",
            o.quiet.p99_ms,
            n.quiet.p99_ms,
            Lower,
        ));
        rows.push(row(
            "fairness: steady peer's p99 beside a flood",
            "ms",
            o.flooded.p99_ms,
            n.flooded.p99_ms,
            Lower,
        ));
    }
    rows
}

/// The rates both were paced at, ascending, with each side's run.
fn paced_rows(ours: &Report, nym: &Report) -> Vec<PacedRow> {
    let ours_runs = super::paced_runs(ours);
    let nym_runs = super::paced_runs(nym);
    let same = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(1.0);
    let origin = |rate: f64| {
        let of = |fraction: f64, peak: f64| peak > 0.0 && same(rate, fraction * peak);
        if of(0.5, ours.ingest_packets_per_s) {
            "50 % of our peak".to_owned()
        } else if of(0.25, ours.ingest_packets_per_s) {
            "25 % of our peak".to_owned()
        } else if of(0.5, nym.ingest_packets_per_s) {
            "50 % of nym-node's peak".to_owned()
        } else if of(0.25, nym.ingest_packets_per_s) {
            "25 % of nym-node's peak".to_owned()
        } else {
            "--rate".to_owned()
        }
    };
    let mut rows: Vec<PacedRow> = Vec::new();
    for o in &ours_runs {
        let rate = o.paced_packets_per_s;
        if rows.iter().any(|r| same(r.rate, rate)) {
            continue;
        }
        let Some(n) = nym_runs.iter().find(|n| same(n.paced_packets_per_s, rate)) else {
            continue;
        };
        let (ours, nym_node) = (PacedSide::of(o), PacedSide::of(n));
        rows.push(PacedRow {
            rate,
            origin: origin(rate),
            ours_p99_lower: ours.p99_ms < nym_node.p99_ms,
            ours,
            nym_node,
        });
    }
    rows.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Latency;

    fn paced(rate: f64, p99_ms: f64) -> IngestRun {
        IngestRun {
            packets: 10,
            paced_packets_per_s: rate,
            completed: 10,
            latency: Some(Latency {
                samples: 10,
                p50_ms: p99_ms / 2.0,
                p99_ms,
                max_ms: p99_ms,
            }),
            ..IngestRun::default()
        }
    }

    #[test]
    fn common_rates_are_paired_and_ratios_taken() {
        let ours = Report {
            ingest_packets_per_s: 4000.0,
            handshakes_per_s: 300.0,
            ingest_latency: Some(paced(2000.0, 1.0)),
            ingest_latency_quarter: Some(paced(1000.0, 0.5)),
            paced: vec![paced(500.0, 0.4), paced(777.0, 0.1)],
            ..Report::default()
        };
        let nym = Report {
            ingest_packets_per_s: 1000.0,
            handshakes_per_s: 100.0,
            ingest_latency: Some(paced(500.0, 2.0)),
            paced: vec![paced(1000.0, 3.0), paced(2000.0, 0.8)],
            ..Report::default()
        };
        let rows = paced_rows(&ours, &nym);
        let rates: Vec<f64> = rows.iter().map(|r| r.rate).collect();
        assert_eq!(rates, vec![500.0, 1000.0, 2000.0]);
        assert_eq!(rows[0].origin, "50 % of nym-node's peak");
        assert_eq!(rows[1].origin, "25 % of our peak");
        assert!(rows[0].ours_p99_lower && rows[1].ours_p99_lower);
        assert!(!rows[2].ours_p99_lower);
        let figures = super::rows(&ours, &nym);
        assert_eq!(figures[0].ratio, 4.0);
        let handshakes = figures.iter().find(|r| r.name == "registration handshakes");
        assert_eq!(handshakes.map(|r| r.ratio), Some(3.0));
        // A figure missing on one side has no ratio.
        assert_eq!(figures[1].ratio, 0.0);
    }
}
