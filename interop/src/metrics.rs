//! Scraping `GET /metrics` and reading the Prometheus text exposition format.

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const RECEIVED: &str = "gateway_mix_packets_received_total";
pub const DROPPED: &str = "gateway_mix_packets_dropped_total";
pub const CONNECTIONS_CLOSED: &str = "gateway_mix_connections_closed_total";
pub const PUSHED: &str = "gateway_messages_pushed_total";
pub const STORED: &str = "gateway_messages_stored_total";
pub const DELIVERED_FROM_STORE: &str = "gateway_messages_delivered_from_store_total";
pub const ACKS_FORWARDED: &str = "gateway_acks_forwarded_total";

/// One scrape: every sample, keyed by metric name, then by its sorted label set.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    samples: BTreeMap<String, BTreeMap<Vec<(String, String)>, f64>>,
}

impl Metrics {
    /// Parses the text format: `name{label="value",…} value [timestamp]`; `#` lines are skipped.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut samples: BTreeMap<String, BTreeMap<Vec<(String, String)>, f64>> = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, labels, rest) =
                split_sample(line).with_context(|| format!("metrics line {}: `{line}`", n + 1))?;
            let value = rest
                .split_whitespace()
                .next()
                .context("missing value")
                .and_then(|v| parse_value(v).context("bad value"))
                .with_context(|| format!("metrics line {}: `{line}`", n + 1))?;
            samples
                .entry(name.to_string())
                .or_default()
                .insert(labels, value);
        }
        Ok(Metrics { samples })
    }

    /// Whether any sample of this metric is present.
    pub fn has(&self, name: &str) -> bool {
        self.samples.contains_key(name)
    }

    /// The sample with exactly these labels; absent samples read as 0 (an untouched counter).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        key.sort();
        self.samples
            .get(name)
            .and_then(|m| m.get(&key))
            .copied()
            .unwrap_or(0.0)
    }

    /// Unlabelled sample.
    pub fn value(&self, name: &str) -> f64 {
        self.get(name, &[])
    }

    /// `gateway_mix_packets_dropped_total{reason=…}`.
    pub fn dropped(&self, reason: &str) -> f64 {
        self.get(DROPPED, &[("reason", reason)])
    }

    /// Sum over all label sets of a metric.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples.get(name).map_or(0.0, |m| m.values().sum())
    }
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

type Sample<'a> = (&'a str, Vec<(String, String)>, &'a str);

fn split_sample(line: &str) -> anyhow::Result<Sample<'_>> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .context("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        bail!("empty metric name");
    }
    let rest = &line[name_end..];
    let Some(mut labels_text) = rest.strip_prefix('{') else {
        return Ok((name, Vec::new(), rest));
    };
    let mut labels = Vec::new();
    loop {
        labels_text = labels_text.trim_start_matches([',', ' ']);
        if let Some(after) = labels_text.strip_prefix('}') {
            labels.sort();
            return Ok((name, labels, after));
        }
        let eq = labels_text.find('=').context("label without `=`")?;
        let key = labels_text[..eq].trim().to_string();
        let quoted = labels_text[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .context("label value not quoted")?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => bail!("unterminated escape"),
                },
                Some((_, c)) => value.push(c),
                None => bail!("unterminated label value"),
            }
        };
        labels.push((key, value));
        labels_text = &quoted[end + 1..];
    }
}

/// `GET http://<addr>/metrics`.
pub async fn scrape(addr: SocketAddr) -> anyhow::Result<Metrics> {
    let body = gateway_test_harness::http_get(addr, "/metrics").await?;
    Metrics::parse(&body)
}
