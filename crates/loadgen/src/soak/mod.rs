//! Soak: hours of steady mixed load on one gateway, to see what grows. Fresh final-hop
//! packets arrive at a fixed rate ([`feed`]) for clients that come and go ([`churn`]), so
//! messages are pushed to some and stored for others, then drained when they come back. Each
//! SURB-ack is matched to its message ([`ledger`]). Every interval gives a row ([`report`]):
//! the gateway's memory, open files and store size, the interval's traffic, latency and
//! errors. At the end every client comes back until what was stored for it is delivered, and
//! the summary says whether every acked message reached its client.

pub mod churn;
pub mod feed;
pub mod ledger;
pub mod report;

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::churn::{Clients, Spells, Stage};
use self::feed::{Feed, FeedPlan};
use self::ledger::Ledger;
use self::report::{Row, SoakReport, Summary};
use crate::cli::SoakSettings;
use crate::client::Identity;
use crate::packets::Route;
use crate::phases::{clients, Context};
use crate::sink::Sinks;
use crate::target::Target;
use crate::{open_target, procfs, progress, report as main_report};

/// How often acks are moved from the sinks into the books.
const ACK_POLL: Duration = Duration::from_millis(200);
/// Time to start the gateway and register the clients, on top of the run.
const SETUP: Duration = Duration::from_secs(600);
/// Messages-in-store gauge of the gateway.
const STORE_GAUGE: &str = "gateway_store_messages";
/// Mix packets the gateway dropped, by reason.
const DROPS: &str = "gateway_mix_packets_dropped_total";
/// At the end, how long the books may stay unchanged, with nothing acked owed, before the
/// rest is taken as never coming.
const SETTLED_AFTER: Duration = Duration::from_secs(5);

/// Runs a soak and returns its report.
pub async fn run(settings: SoakSettings) -> anyhow::Result<SoakReport> {
    let epoch = Instant::now();
    let file_limit = procfs::raise_file_limit()?;
    let mut run_settings = settings.run.clone();
    run_settings.max_duration = settings.duration + settings.settle + SETUP;
    run_settings.concurrency = run_settings.concurrency.min(settings.clients);
    let (target, gateway) = open_target(&run_settings, file_limit).await?;
    let route = Route {
        sphinx_key: target.sphinx_public,
        mix_addr: target.mix_addr,
    };
    let ctx = Context {
        acks: Sinks::start_recording(4, epoch).await?,
        forwards: Sinks::start(1, epoch).await?,
        deadline: epoch + run_settings.max_duration,
        settings: run_settings,
        target,
        route,
        epoch,
        threads: std::thread::available_parallelism().map_or(1, usize::from),
    };
    let mut report = SoakReport {
        gateway,
        machine: main_report::machine(),
        load_average: [main_report::load_average(), String::new()],
        rate: settings.rate,
        clients: settings.clients,
        spells_s: [
            settings.online.as_secs_f64(),
            settings.offline.as_secs_f64(),
        ],
        interval_s: settings.interval.as_secs_f64(),
        ..SoakReport::default()
    };
    let result = soak(&ctx, &settings, &mut report).await;
    if let Err(e) = &result {
        let log = ctx.target.log_tail();
        if !log.is_empty() {
            progress(&format!("gateway log tail:\n{log}"));
        }
        progress(&format!("soak failed: {e:#}"));
    }
    result?;
    report.load_average[1] = main_report::load_average();
    Ok(report)
}

async fn soak(
    ctx: &Context,
    settings: &SoakSettings,
    report: &mut SoakReport,
) -> anyhow::Result<()> {
    progress(&format!("soak: registering {} clients", settings.clients));
    let mut figures = clients::ClientFigures::default();
    let identities = clients::handshakes(ctx, settings.clients, &mut figures).await?;
    anyhow::ensure!(
        identities.len() == settings.clients,
        "registered {} of {} clients: {}",
        identities.len(),
        settings.clients,
        figures.first_error.unwrap_or_default()
    );
    let ledger = Arc::new(Ledger::default());
    let plan = FeedPlan {
        route: ctx.route,
        recipients: identities.iter().map(Identity::address).collect(),
        ack_hops: ctx.acks.addrs().to_vec(),
        rate: settings.rate,
        connections: settings.mix_connections,
        // Building a packet costs more than sending it; one thread per core keeps up with
        // rates well above what a soak asks for.
        builders: ctx.threads.min(2),
        epoch: ctx.epoch,
    };
    let spells = Spells {
        online: settings.online,
        offline: settings.offline,
    };
    let clients = Clients::start(
        ctx.target.clients_addr,
        identities,
        spells,
        ledger.clone(),
        ctx.epoch,
    );
    let mut sampler = Sampler::new(ledger.clone(), settings.interval);
    progress(&format!(
        "soak: {:.0} packets/s for {:?}, a row every {:?}",
        settings.rate, settings.duration, settings.interval
    ));
    progress(Row::header());
    let feed = Feed::start(plan, ledger.clone())?;
    let load_end = Instant::now() + settings.duration;
    sampler
        .until(ctx, load_end, &mut report.rows, || false)
        .await;
    feed.stop();
    let load_s = sampler.started.elapsed().as_secs_f64();

    sampler.collect_acks(ctx);
    progress(&format!(
        "soak: load stopped with {} messages in flight or stored ({} acked, not yet received); \
         every client comes back for what was stored for it",
        ledger.open(),
        ledger.acked_undelivered()
    ));
    clients.set_stage(Stage::Settle);
    let settle_start = Instant::now();
    let settle_end = settle_start + settings.settle;
    // Done when nothing is open, or when nothing acked is owed and the rest has not moved for
    // a while: packets the gateway dropped (its replay filter's false positives) never come.
    let last_change = Cell::new((ledger.open(), Instant::now()));
    let settled = || {
        let open = ledger.open();
        let (was, since) = last_change.get();
        if open != was {
            last_change.set((open, Instant::now()));
            return open == 0;
        }
        open == 0 || (ledger.acked_undelivered() == 0 && since.elapsed() >= SETTLED_AFTER)
    };
    sampler
        .until(ctx, settle_end, &mut report.rows, settled)
        .await;
    let settle_s = settle_start.elapsed().as_secs_f64();
    clients.finish().await;
    // Acks still on their way, then the last, partial row.
    sampler.collect_acks(ctx);
    report.rows.push(sampler.row(ctx).await);
    report.summary = Summary::of(&report.rows, ledger.leftovers(), load_s, settle_s);
    report.summary.gateway_mix_drops = match ctx.target.metrics().await {
        Ok(metrics) => metrics.series(DROPS),
        Err(e) => vec![(format!("(metrics unreadable: {e:#})"), 0.0)],
    };
    Ok(())
}

/// Takes a row every interval and moves acks from the sinks into the books between rows.
struct Sampler {
    ledger: Arc<Ledger>,
    interval: Duration,
    started: Instant,
    next_row: Instant,
}

impl Sampler {
    fn new(ledger: Arc<Ledger>, interval: Duration) -> Self {
        let started = Instant::now();
        Self {
            ledger,
            interval,
            started,
            next_row: started + interval,
        }
    }

    fn collect_acks(&self, ctx: &Context) {
        for id in ctx.acks.take_ids() {
            self.ledger.acked(id);
        }
    }

    /// Rows until `end`, or until `done` says so.
    async fn until(
        &mut self,
        ctx: &Context,
        end: Instant,
        rows: &mut Vec<Row>,
        done: impl Fn() -> bool,
    ) {
        loop {
            self.collect_acks(ctx);
            let now = Instant::now();
            if now >= end || done() {
                return;
            }
            if now >= self.next_row {
                rows.push(self.row(ctx).await);
                self.next_row += self.interval;
            }
            let wait = ACK_POLL
                .min(end.saturating_duration_since(now))
                .min(self.next_row.saturating_duration_since(now));
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// Ends the interval: its counts and the gateway's state now.
    async fn row(&self, ctx: &Context) -> Row {
        let mut interval = self.ledger.take_interval();
        let latency = interval.latency();
        let pid = ctx.target.pid();
        let stored_messages = match ctx.target.metrics().await {
            Ok(metrics) => metrics.sum(STORE_GAUGE).max(0.0) as u64,
            Err(e) => {
                interval.errors += 1;
                interval
                    .first_error
                    .get_or_insert_with(|| format!("reading the gateway's metrics: {e:#}"));
                0
            }
        };
        let row = Row {
            elapsed_s: self.started.elapsed().as_secs_f64(),
            rss_bytes: pid.and_then(|p| procfs::rss_bytes(p).ok()).unwrap_or(0),
            rss_anon_bytes: pid
                .and_then(|p| procfs::rss_anon_bytes(p).ok())
                .unwrap_or(0),
            open_files: pid.and_then(|p| procfs::open_files(p).ok()).unwrap_or(0),
            store_bytes: store_bytes(&ctx.target),
            stored_messages,
            sent: interval.sent,
            delivered: interval.delivered,
            drained: interval.drained,
            acked: interval.acked,
            repeated: interval.repeated,
            p50_ms: latency.p50_ms,
            p99_ms: latency.p99_ms,
            max_ms: latency.max_ms,
            errors: interval.errors,
            first_error: interval.first_error,
            acked_undelivered: self.ledger.acked_undelivered(),
            loadgen_rss_bytes: procfs::rss_bytes(std::process::id()).unwrap_or(0),
        };
        progress(&row.line());
        if let Some(error) = &row.first_error {
            progress(&format!("  first error of the interval: {error}"));
        }
        row
    }
}

/// Bytes of the gateway's SQLite database and its write-ahead log.
fn store_bytes(target: &Target) -> u64 {
    let Some(store) = &target.store_path else {
        return 0;
    };
    let mut wal = store.clone().into_os_string();
    wal.push("-wal");
    [store.clone(), wal.into()]
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|meta| meta.len())
        .sum()
}
