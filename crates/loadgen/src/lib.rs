//! `nym-gateway-loadgen`: drives a running gateway over loopback and reports what the
//! performance targets ask for — final-hop unwrap time (reference path vs ours, in-process),
//! mix-side ingest to connected and to disconnected clients, latency from mix ingress to
//! client receipt, store rates (through the gateway and in-process), client-side handshake,
//! authentication and forward rates, and resident memory per idle authenticated client.
//!
//! Every phase is bounded in count and in time, and the whole run by `--max-seconds`.
//!
//! # Layout
//! - [`cli`]: flags → [`cli::Settings`].
//! - [`target`]: the gateway under load (attached by id, or started in a temporary HOME).
//! - [`nym_node`]: Nym's nym-node as the target, started offline with a fake nym-api.
//! - [`external`]: a target given by its keys (or nym-node's key files) and ports.
//! - [`compare`]: our gateway and nym-node one after the other, side by side.
//! - [`packets`]: pre-built final-hop Sphinx packets.
//! - [`client`]: the client side of the websocket protocol.
//! - [`sink`]: loopback next hops that count what the gateway forwards.
//! - [`phases`]: one module per measurement.
//! - [`hold`]: the helper process that holds idle clients for the memory measurement.
//! - [`soak`]: hours of steady load with client churn, a row of figures per interval.
//! - [`report`]: figures, targets, table and JSON.
//! - [`procfs`], [`stats`]: `/proc` readings and small statistics.
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod compare;
pub mod external;
pub mod hold;
pub mod mix_link;
pub mod nym_node;
pub mod packets;
pub mod phases;
pub mod procfs;
pub mod report;
pub mod sink;
pub mod soak;
pub mod stats;
pub mod target;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::cli::{Phase, Settings};
use crate::client::Identity;
use crate::packets::Route;
use crate::phases::{clients, fairness, ingest, memory, offline, store, unwrap, Context};
use crate::report::{Report, PACKETS_PER_IDLE_CLIENT};
use crate::sink::Sinks;
use crate::target::{OwnSettings, Target};

/// First packet id of the in-process unwrap packets (never sent).
const UNWRAP_FIRST_ID: u64 = 1 << 40;
/// First packet id of the offline run (not tracked per packet).
const OFFLINE_FIRST_ID: u64 = 1 << 41;
/// Clients the in-process store spreads its messages over.
const STORE_CLIENTS: usize = 64;
/// How long an ingest run may take to complete after its last write.
const INGEST_WAIT: Duration = Duration::from_secs(60);

/// Prints a progress line on stderr (stdout carries only the report).
fn progress(text: &str) {
    eprintln!("[loadgen] {text}");
}

/// Runs every phase the settings ask for and returns the report.
pub async fn run(settings: Settings) -> anyhow::Result<Report> {
    let epoch = Instant::now();
    let deadline = epoch + settings.max_duration;
    let file_limit = procfs::raise_file_limit()?;
    let mut report = Report {
        machine: report::machine(),
        load_average: [report::load_average(), String::new()],
        smoke: settings.smoke,
        ..Report::default()
    };
    let (target, gateway) = open_target(&settings, file_limit).await?;
    report.gateway = gateway;
    let route = Route {
        sphinx_key: target.sphinx_public,
        mix_addr: target.mix_addr,
    };
    let mut ctx = Context {
        acks: Sinks::start(4, epoch).await?,
        // One next hop per forwarding client, as clients spread over first hops.
        forwards: Sinks::start(settings.forward_clients.max(1), epoch).await?,
        settings,
        target,
        route,
        epoch,
        deadline,
        threads: std::thread::available_parallelism().map_or(1, usize::from),
    };
    let result = run_phases(&mut ctx, &mut report).await;
    if let Err(e) = &result {
        let log = ctx.target.log_tail();
        if !log.is_empty() {
            progress(&format!("gateway log tail:\n{log}"));
        }
        progress(&format!("failed: {e:#}"));
    }
    result?;
    report.duration_s = epoch.elapsed().as_secs_f64();
    report.load_average[1] = report::load_average();
    // The targets are our issue's, for our gateway.
    if ctx.target.software == target::Software::NymGateway {
        report.check_targets();
    }
    Ok(report)
}

/// The gateway under load, attached or started, and how the report names it.
pub async fn open_target(settings: &Settings, file_limit: u64) -> anyhow::Result<(Target, String)> {
    let (target, name) = if let Some(id) = &settings.gateway_id {
        (
            Target::attach(id, settings.gateway_pid).await?,
            format!("gateway {id}"),
        )
    } else if settings.external.is_given() {
        (
            settings.external.open().await?,
            "a gateway given by its keys and ports".to_owned(),
        )
    } else if let Some(binary) = &settings.nym_node_bin {
        progress(&format!("starting nym-node {}", binary.display()));
        let target = nym_node::start(nym_node::NymNodeSettings {
            binary: binary.clone(),
            log_filter: settings.nym_node_log.clone(),
            replay_packets_per_second: settings.nym_node_replay_pps,
        })
        .await?;
        let name = format!(
            "nym-node {} as an entry gateway in a temporary HOME (fake nym-api, zk-nyms not enforced, replay filter sized for {} packets/s)",
            binary.display(),
            settings.nym_node_replay_pps
        );
        (target, name)
    } else {
        let own = own_settings(settings)?;
        let debug: Vec<String> = own.debug.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let name = format!(
            "own gateway in a temporary HOME, [debug] {}",
            debug.join(" ")
        );
        (Target::start_own(own).await?, name)
    };
    let name = if settings.mix_noise {
        format!("{name}, mix connections over Noise")
    } else {
        name
    };
    progress(&format!(
        "gateway up: mix {}, clients {}, pid {:?}; open-files limit {file_limit}",
        target.mix_addr,
        target.clients_addr,
        target.pid()
    ));
    Ok((target, name))
}

async fn run_phases(ctx: &mut Context, report: &mut Report) -> anyhow::Result<()> {
    let settings = ctx.settings.clone();
    let secret = ctx.target.sphinx_secret;
    if settings.runs(Phase::Unwrap) && secret.is_none() {
        report
            .notes
            .push("unwrap: skipped, the target's sphinx secret is unknown".into());
    }
    if let (true, Some(secret)) = (settings.runs(Phase::Unwrap), secret) {
        progress("unwrap: building packets and timing both paths in-process");
        let recipients: Vec<[u8; 32]> = (0..16).map(|_| client::random()).collect();
        let packets = ingest::build(ctx, &recipients, UNWRAP_FIRST_ID, settings.unwrap_packets);
        let figures = tokio::task::spawn_blocking(move || unwrap::run(secret, &packets)).await??;
        report.final_hop_us_reference = figures.reference_us;
        report.final_hop_us_ours = figures.ours_us;
        report.final_hop_ours_path = figures.ours_path.to_owned();
        report.final_hop_speedup = stats::ratio(figures.reference_us, figures.ours_us);
        report.ingest_target_packets_per_s = 0.75 * 2.0 * 1e6 / figures.ours_us.max(1e-9);
        report.unwrap = Some(figures);
    }
    if settings.runs(Phase::Store) {
        let dir = tempfile::Builder::new().prefix("loadgen-store").tempdir()?;
        for synchronous_full in [true, false] {
            progress(&format!(
                "store: in-process, synchronous_full={synchronous_full}"
            ));
            let figures = store::run(
                dir.path(),
                settings.store_messages,
                STORE_CLIENTS,
                synchronous_full,
            )
            .await?;
            if synchronous_full {
                report.store_inprocess_inserts_per_s = figures.inserts_per_s;
                report.store_inprocess_deliveries_per_s = figures.deliveries_per_s;
            }
            report.store_inprocess.push(figures);
        }
    }
    // Registered clients: the handshake measurement makes them, the other phases use them.
    let needed = settings.online_clients + settings.offline_clients + settings.forward_clients;
    let mut figures = clients::ClientFigures::default();
    let mut identities = Vec::new();
    if settings.runs(Phase::Clients) {
        progress(&format!("clients: {} registrations", settings.handshakes));
        identities = clients::handshakes(ctx, settings.handshakes, &mut figures).await?;
        progress("clients: authentications");
        clients::authentications(ctx, &identities, &mut figures).await;
    }
    let uses_clients = [Phase::Clients, Phase::Ingest, Phase::Fairness];
    if identities.len() < needed && uses_clients.iter().any(|&phase| settings.runs(phase)) {
        let mut extra = clients::ClientFigures::default();
        identities.extend(clients::handshakes(ctx, needed - identities.len(), &mut extra).await?);
        anyhow::ensure!(
            identities.len() >= needed,
            "could not register enough clients: {}",
            extra.first_error.unwrap_or_default()
        );
    }
    let (online, rest) = identities.split_at(settings.online_clients.min(identities.len()));
    let (offline_clients, rest) = rest.split_at(settings.offline_clients.min(rest.len()));
    if settings.runs(Phase::Clients) {
        progress(&format!("clients: {} forward requests", settings.forwards));
        let forwarders = &rest[..settings.forward_clients.min(rest.len())];
        clients::forwards(ctx, forwarders, settings.forwards, &mut figures).await?;
        report.handshakes_per_s = figures.handshakes_per_s;
        report.authentications_per_s = figures.authentications_per_s;
        report.forward_requests_per_s = figures.forward_requests_per_s;
        report.client = Some(figures);
    }
    if settings.runs(Phase::Ingest) {
        run_ingest(ctx, report, online, offline_clients).await?;
    }
    if settings.runs(Phase::Fairness) {
        progress(&format!(
            "fairness: {:.0} packets/s for {} s, without and with a flooding connection",
            settings.fair_rate, settings.fair_seconds
        ));
        report.fairness = Some(fairness::run(ctx, online).await?);
    }
    if settings.runs(Phase::Memory) {
        if ctx.target.is_own() {
            progress("memory: restarting the gateway for a clean baseline");
            ctx.target.restart().await?;
        } else {
            report.notes.push("memory: the attached gateway was not restarted; its baseline includes earlier phases".into());
        }
        progress(&format!("memory: idle clients {:?}", settings.clients));
        let figures = memory::run(ctx).await?;
        if let Some(last) = figures.steps.last() {
            report.rss_bytes_per_idle_client = last.bytes_per_client;
            report.clients = last.clients;
        }
        if let Some(note) = &figures.note {
            report.notes.push(format!("memory: {note}"));
        }
        report.memory = Some(figures);
    }
    Ok(())
}

async fn run_ingest(
    ctx: &Context,
    report: &mut Report,
    online: &[Identity],
    offline_clients: &[Identity],
) -> anyhow::Result<()> {
    let settings = &ctx.settings;
    let count = settings.packets;
    let addresses: Vec<[u8; 32]> = online.iter().map(Identity::address).collect();
    let rate_counts: Vec<usize> = settings
        .rates
        .iter()
        .map(|rate| paced_count(*rate, settings.latency_seconds, count))
        .collect();
    let timeline = std::sync::Arc::new(ingest::Timeline::new(
        0,
        3 * count + rate_counts.iter().sum::<usize>(),
    ));
    let clients = ingest::OnlineClients::connect(ctx, online.to_vec(), timeline).await?;
    let result = async {
        if !settings.paced_only {
            online_runs(ctx, report, &clients, &addresses).await?;
        }
        let mut first_id = 3 * count as u64;
        for (&rate, &n) in settings.rates.iter().zip(&rate_counts) {
            progress(&format!(
                "ingest: paced at {rate:.0} packets/s ({n} packets)"
            ));
            let packets = ingest::build(ctx, &addresses, first_id, n);
            first_id += n as u64;
            report
                .paced
                .push(ingest::online_run(ctx, &clients, &packets, rate, INGEST_WAIT).await?);
        }
        anyhow::Ok(())
    }
    .await;
    let unexpected = clients.timeline.unexpected();
    clients.close().await;
    result?;
    if unexpected > 0 {
        report.notes.push(format!(
            "ingest: {unexpected} pushed messages were unknown or repeated"
        ));
    }
    if settings.paced_only {
        return Ok(());
    }

    progress(&format!(
        "ingest: building {count} packets for {} disconnected clients",
        offline_clients.len()
    ));
    let addresses: Vec<[u8; 32]> = offline_clients.iter().map(Identity::address).collect();
    let packets = ingest::build(ctx, &addresses, OFFLINE_FIRST_ID, count);
    progress("ingest: disconnected clients (stored)");
    let (run, stored) = offline::ingest(ctx, &packets, INGEST_WAIT).await?;
    drop(packets);
    if stored != run.packets as u64 {
        report.notes.push(format!(
            "offline ingest: {stored} of {} messages stored",
            run.packets
        ));
    }
    report.ingest_offline_packets_per_s = run.packets_per_s;
    report.store_inserts_per_s = run.packets_per_s;
    report.ingest_offline = Some(run);
    progress("ingest: drain on authenticate");
    let drain = offline::drain(ctx, offline_clients).await?;
    report.store_deliveries_per_s = drain.deliveries_per_s;
    report.drain = Some(drain);
    Ok(())
}

/// Packets of a paced run at `rate` for `seconds`, at most `max`.
fn paced_count(rate: f64, seconds: u64, max: usize) -> usize {
    ((rate * seconds as f64) as usize).clamp(1, max.max(1))
}

/// The peak to the connected clients, then paced at 50 % and 25 % of it.
async fn online_runs(
    ctx: &Context,
    report: &mut Report,
    clients: &ingest::OnlineClients,
    addresses: &[[u8; 32]],
) -> anyhow::Result<()> {
    let settings = &ctx.settings;
    let count = settings.packets;
    progress(&format!(
        "ingest: building {count} packets for {} connected clients",
        addresses.len()
    ));
    let peak_packets = ingest::build(ctx, addresses, 0, count);
    progress("ingest: connected clients, peak");
    let peak = ingest::online_run(ctx, clients, &peak_packets, 0.0, INGEST_WAIT).await?;
    drop(peak_packets);
    report.ingest_packets_per_s = peak.packets_per_s;
    report.idle_clients_served = peak.packets_per_s / PACKETS_PER_IDLE_CLIENT;
    if peak.cpu.gateway_total > 0.0 && peak.completed > 0 {
        report.gateway_cpu_us_per_packet = 1e6 * peak.cpu.gateway_total / peak.completed as f64;
        report.ingest_two_cores_packets_per_s = 2e6 / report.gateway_cpu_us_per_packet;
    }
    report.ingest_online = Some(peak);

    let rate = report.ingest_packets_per_s / 2.0;
    let latency_count = paced_count(rate, settings.latency_seconds, count);
    progress(&format!(
        "ingest: latency at {rate:.0} packets/s ({latency_count} packets)"
    ));
    let paced_packets = ingest::build(ctx, addresses, count as u64, latency_count);
    let paced = ingest::online_run(ctx, clients, &paced_packets, rate, INGEST_WAIT).await?;
    drop(paced_packets);
    if let Some(latency) = paced.latency {
        report.p50_ms = latency.p50_ms;
        report.p99_ms = latency.p99_ms;
        report.max_ms = latency.max_ms;
    }
    report.latency_load_packets_per_s = rate;
    report.ingest_latency = Some(paced);
    // The same at a quarter of the peak: how the tail depends on how busy the cores are.
    let quarter_rate = rate / 2.0;
    let quarter_count = (latency_count / 2).max(1);
    progress(&format!(
        "ingest: latency at {quarter_rate:.0} packets/s ({quarter_count} packets)"
    ));
    let quarter_packets = ingest::build(
        ctx,
        addresses,
        (count + latency_count) as u64,
        quarter_count,
    );
    let quarter =
        ingest::online_run(ctx, clients, &quarter_packets, quarter_rate, INGEST_WAIT).await?;
    report.ingest_latency_quarter = Some(quarter);
    Ok(())
}

/// How we start our own gateway: the binary, a replay filter sized for this run (the default
/// one is sized for a day of a busy node and would dominate memory), and room for the
/// memory measurement's clients.
fn own_settings(settings: &Settings) -> anyhow::Result<OwnSettings> {
    let binary = match &settings.gateway_bin {
        Some(path) => path.clone(),
        None => sibling_gateway()?,
    };
    let packets = 8 * settings.packets as u64;
    let max_clients = settings.clients.iter().copied().max().unwrap_or(0);
    let mut debug = vec![
        (
            "replay_filter_capacity".to_owned(),
            packets.max(1_000_000).to_string(),
        ),
        (
            "maximum_client_connections".to_owned(),
            (max_clients + 1024).max(8192).to_string(),
        ),
    ];
    // Explicit values win: they are applied after ours.
    debug.extend(settings.gateway_set.iter().cloned());
    Ok(OwnSettings {
        binary,
        debug,
        log_filter: settings.gateway_log.clone(),
    })
}

/// The `nym-gateway` binary next to ours.
fn sibling_gateway() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .context("our executable has no directory")?
        .join("nym-gateway");
    anyhow::ensure!(
        path.exists(),
        "{} not found; build it (cargo build --release -p nym-gateway) or pass --gateway-bin",
        path.display()
    );
    Ok(path)
}
