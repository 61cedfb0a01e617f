//! Resident memory per idle authenticated client: the gateway's `VmRSS` before any client
//! and after each step of idle clients (e.g. 1 k, 10 k, 20 k), divided by the clients the
//! gateway reports connected. The clients are held by helper processes (`hold`), each with
//! its own file limit and its own range of 127.0.0.x source addresses.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use super::Context;
use crate::hold::Ready;
use crate::procfs;

/// Most clients one helper holds (well under a typical per-process file limit).
const PER_HELPER: usize = 9_000;
/// Source addresses per helper; helper `n` uses 127.0.0.(16 + 4n) and up.
const SOURCES_PER_HELPER: u8 = 4;
const FIRST_HELPER_SOURCE: u8 = 16;
/// Files the gateway needs besides client sockets (listeners, store, egress, logs).
const GATEWAY_FD_RESERVE: u64 = 64;
/// Time the gateway gets to settle after a step before its memory is read.
const SETTLE: Duration = Duration::from_secs(2);

/// Gauge of authenticated sessions.
const CONNECTED_METRIC: &str = "gateway_clients_connected";

/// One step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemoryStep {
    /// Clients asked for.
    pub requested: usize,
    /// Idle authenticated clients the gateway reported.
    pub clients: usize,
    /// The gateway's VmRSS.
    pub rss_bytes: u64,
    /// (VmRSS − baseline) / clients.
    pub bytes_per_client: f64,
}

/// The measurement.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MemoryFigures {
    /// VmRSS with no client connected.
    pub baseline_rss_bytes: u64,
    /// Each step.
    pub steps: Vec<MemoryStep>,
    /// Why a step was cut short, if one was.
    pub note: Option<String>,
}

struct Helper {
    child: Child,
}

/// Runs the steps in `ctx.settings.clients`.
pub async fn run(ctx: &Context) -> anyhow::Result<MemoryFigures> {
    let pid = ctx
        .target
        .pid()
        .context("the gateway's pid is unknown (give --gateway-pid)")?;
    let mut figures = MemoryFigures::default();
    let connected_before = connected(ctx, 0).await?;
    let fd_limit = procfs::file_limit(pid)?.unwrap_or(u64::MAX);
    let fd_room = fd_limit.saturating_sub(procfs::open_files(pid)? + GATEWAY_FD_RESERVE);
    let room = (fd_room as usize).min(ctx.target.max_clients.saturating_sub(connected_before));
    tokio::time::sleep(SETTLE).await;
    figures.baseline_rss_bytes = procfs::rss_bytes(pid)?;
    let baseline_clients = connected_before;

    let mut helpers: Vec<Helper> = Vec::new();
    let mut held = 0usize;
    let mut failures_noted = false;
    let result = async {
        for &requested in &ctx.settings.clients {
            let want = requested.min(room);
            if want < requested {
                figures.note = Some(format!(
                    "{requested} clients requested, {want} possible: the gateway may open {fd_limit} files \
                     (hard limit of this machine) and accept {} clients",
                    ctx.target.max_clients
                ));
            }
            if want <= held {
                break;
            }
            let mut add = want - held;
            let first_new = helpers.len();
            while add > 0 {
                let count = add.min(PER_HELPER);
                helpers.push(spawn_helper(ctx, helpers.len(), count)?);
                add -= count;
            }
            for helper in &mut helpers[first_new..] {
                let ready = wait_ready(helper, ctx.bounded(Duration::from_secs(300))).await?;
                held += ready.connected;
                if ready.failed > 0 && !failures_noted {
                    failures_noted = true;
                    let failure = format!(
                        "{} clients failed to connect: {}",
                        ready.failed,
                        ready.first_error.clone().unwrap_or_default()
                    );
                    figures.note = Some(match figures.note.take() {
                        Some(note) => format!("{note}; {failure}"),
                        None => failure,
                    });
                }
            }
            tokio::time::sleep(SETTLE).await;
            let clients = connected(ctx, baseline_clients + held)
                .await?
                .saturating_sub(baseline_clients);
            let rss_bytes = procfs::rss_bytes(pid)?;
            figures.steps.push(MemoryStep {
                requested,
                clients,
                rss_bytes,
                bytes_per_client: rss_bytes.saturating_sub(figures.baseline_rss_bytes) as f64
                    / clients.max(1) as f64,
            });
            if ctx.out_of_time() {
                figures.note.get_or_insert_with(|| "out of time".into());
                break;
            }
        }
        anyhow::Ok(())
    }
    .await;
    for helper in helpers {
        stop_helper(helper).await;
    }
    result?;
    Ok(figures)
}

/// Clients the gateway reports connected; without its metrics, `held` (the clients our
/// helpers say they authenticated).
async fn connected(ctx: &Context, held: usize) -> anyhow::Result<usize> {
    if !ctx.target.has_metrics() {
        return Ok(held);
    }
    Ok(ctx.target.metrics().await?.sum(CONNECTED_METRIC).max(0.0) as usize)
}

fn spawn_helper(ctx: &Context, index: usize, count: usize) -> anyhow::Result<Helper> {
    let first_source = usize::from(FIRST_HELPER_SOURCE) + index * usize::from(SOURCES_PER_HELPER);
    if first_source + usize::from(SOURCES_PER_HELPER) > 255 {
        bail!("too many helper processes for the 127.0.0.x source addresses");
    }
    let identity = bs58::encode(ctx.target.identity.to_bytes()).into_string();
    let max_seconds = ctx
        .deadline
        .saturating_duration_since(std::time::Instant::now())
        .as_secs()
        .max(10);
    let child = Command::new(std::env::current_exe()?)
        .arg("hold")
        .args(["--gateway", &ctx.target.clients_addr.to_string()])
        .args(["--identity", &identity])
        .args(["--count", &count.to_string()])
        .args(["--first-source", &first_source.to_string()])
        .args(["--sources", &SOURCES_PER_HELPER.to_string()])
        .args(["--concurrency", &ctx.settings.concurrency.to_string()])
        .args(["--max-seconds", &max_seconds.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting a hold helper")?;
    Ok(Helper { child })
}

async fn wait_ready(helper: &mut Helper, timeout: Duration) -> anyhow::Result<Ready> {
    let stdout = helper.child.stdout.take().context("helper stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(timeout, lines.next_line())
        .await
        .context("a hold helper did not get ready in time")??
        .context("a hold helper exited before it was ready")?;
    Ready::parse(&line).with_context(|| format!("unexpected helper output {line:?}"))
}

/// Closes the helper's stdin (its signal to exit) and waits; kills it if it lingers.
async fn stop_helper(mut helper: Helper) {
    drop(helper.child.stdin.take());
    if tokio::time::timeout(Duration::from_secs(30), helper.child.wait())
        .await
        .is_err()
    {
        let _ = helper.child.kill().await;
    }
}
