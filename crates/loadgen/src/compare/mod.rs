//! `compare`: our gateway and nym-node, one after the other (never both loaded at once), the
//! same phases at the same scale, then one table with both and the ratio ours / nym-node.
//!
//! Paced latency is compared at the same rates for both: 25 % and 50 % of our peak, 50 % of
//! nym-node's peak, and any `--rate`. So the runs go: ours (its peak gives our rates), then
//! nym-node (paced at ours as well as at its own), then ours again, paced only, at 50 % of
//! nym-node's peak. The in-process phases (unwrap, store) do not involve the target and run
//! once, on our side.

pub mod table;

use std::time::Instant;

use crate::cli::{Phase, Settings};
use crate::report::{self, Report};
use table::Comparison;

/// Runs the comparison. `settings.nym_node_bin` must name nym-node.
pub async fn run(settings: Settings) -> anyhow::Result<Comparison> {
    let started = Instant::now();
    let load_start = report::load_average();
    anyhow::ensure!(
        settings.nym_node_bin.is_some(),
        "compare needs --nym-node-bin PATH (unpack ../shared/peers/nym-node/nym-node-1.31.0-x86_64-linux-gnu.gz)"
    );
    anyhow::ensure!(
        settings.gateway_id.is_none() && !settings.external.is_given(),
        "compare starts both gateways itself: --gateway-id and --target-* do not apply"
    );
    if let Some(binary) = &settings.nym_node_bin {
        anyhow::ensure!(
            binary.is_file(),
            "{} not found; unpack it: gunzip -c ../shared/peers/nym-node/nym-node-1.31.0-x86_64-linux-gnu.gz > /tmp/nym-node && chmod +x /tmp/nym-node",
            binary.display()
        );
    }

    progress("compare 1/3: our gateway");
    let mut ours_settings = settings.clone();
    ours_settings.nym_node_bin = None;
    let mut ours = crate::run(ours_settings.clone()).await?;

    progress("compare 2/3: nym-node");
    let mut nym_settings = settings.clone();
    nym_settings.skip.extend([Phase::Unwrap, Phase::Store]);
    if ours.ingest_packets_per_s > 0.0 {
        let half = ours.ingest_packets_per_s / 2.0;
        nym_settings.rates.extend([half / 2.0, half]);
    }
    let nym = crate::run(nym_settings).await?;

    if nym.ingest_packets_per_s > 0.0 && settings.runs(Phase::Ingest) {
        progress("compare 3/3: our gateway, paced at 50 % of nym-node's peak");
        let mut again = ours_settings;
        again.paced_only = true;
        again.skip = vec![
            Phase::Unwrap,
            Phase::Store,
            Phase::Clients,
            Phase::Memory,
            Phase::Fairness,
        ];
        again.rates = vec![nym.ingest_packets_per_s / 2.0];
        let extra = crate::run(again).await?;
        ours.paced.extend(extra.paced);
        ours.notes.extend(extra.notes);
    }

    Ok(Comparison::new(
        ours,
        nym,
        &settings,
        [load_start, report::load_average()],
        started.elapsed().as_secs_f64(),
    ))
}

fn progress(text: &str) {
    eprintln!("[loadgen] {text}");
}

/// The paced runs of a report, rate first: 50 % and 25 % of its peak, then the others.
pub fn paced_runs(report: &Report) -> Vec<&crate::phases::ingest::IngestRun> {
    [&report.ingest_latency, &report.ingest_latency_quarter]
        .into_iter()
        .flatten()
        .chain(&report.paced)
        .collect()
}
