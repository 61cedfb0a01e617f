//! The measurements, one module each, and what they share: the gateway, the sinks, the clock
//! and the deadline of the whole run.
//!
//! - [`unwrap`]: final-hop unwrapping in-process, reference path vs ours.
//! - [`store`]: the store in-process (group-commit inserts, fetch + delete).
//! - [`clients`]: handshakes, authentications and forward requests per second.
//! - [`ingest`]: mix-side ingest to connected clients at peak, latency at half of it.
//! - [`offline`]: ingest to disconnected clients (stored), then their drain on authenticate.
//! - [`fairness`]: a steady peer's latency beside a flooding one, and without it.
//! - [`memory`]: resident memory per idle authenticated client, with helper processes.

pub mod clients;
pub mod fairness;
pub mod ingest;
pub mod memory;
pub mod offline;
pub mod store;
pub mod unwrap;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::cli::Settings;
use crate::packets::Route;
use crate::procfs;
use crate::sink::Sinks;
use crate::target::Target;

/// Source addresses 127.0.0.2 ..= 127.0.0.(1 + MAIN_SOURCES) are this process's; helper
/// processes get their own ranges above.
pub const MAIN_SOURCES: u8 = 8;

/// What every phase works with.
pub struct Context {
    /// The run's settings.
    pub settings: Settings,
    /// The gateway under load.
    pub target: Target,
    /// Where SURB-acks go.
    pub acks: Sinks,
    /// Where clients' forwarded packets go.
    pub forwards: Sinks,
    /// The gateway as a packet destination.
    pub route: Route,
    /// Clock zero of all timestamps.
    pub epoch: Instant,
    /// When the whole run must stop.
    pub deadline: Instant,
    /// Threads for building packets.
    pub threads: usize,
}

impl Context {
    /// `wanted`, cut to what is left of the run (at least a second, so phases fail cleanly
    /// instead of not starting).
    pub fn bounded(&self, wanted: Duration) -> Duration {
        wanted
            .min(self.deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_secs(1))
    }

    /// Whether the run's time is up.
    pub fn out_of_time(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Nanoseconds since the epoch.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Snapshot of the gateway's CPU time per thread name (empty without a pid).
    pub fn gateway_threads(&self) -> std::collections::BTreeMap<String, f64> {
        self.target
            .pid()
            .and_then(|pid| procfs::thread_cpu_seconds(pid).ok())
            .unwrap_or_default()
    }
}

/// The `n`-th source address of this process: 127.0.0.2, .3, … round-robin.
pub fn source_ip(n: usize) -> IpAddr {
    let offset = (n % usize::from(MAIN_SOURCES)) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + offset))
}

/// Results of [`run_concurrent`]: the successes, the number of failures and the first error.
#[derive(Debug)]
pub struct Concurrent<T> {
    /// Each job's output that succeeded, in no particular order.
    pub done: Vec<T>,
    /// Jobs that failed or did not run before the deadline.
    pub failed: usize,
    /// The first failure.
    pub first_error: Option<String>,
    /// From the first job's start to the last job's end.
    pub elapsed: Duration,
}

/// Runs `job(0..count)` with at most `concurrency` at once; jobs not started by `deadline`
/// count as failed.
pub async fn run_concurrent<T, F, Fut>(
    count: usize,
    concurrency: usize,
    deadline: Instant,
    job: F,
) -> Concurrent<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let next = next.clone();
        let job = job.clone();
        workers.spawn(async move {
            let mut done = Vec::new();
            let mut failed = 0;
            let mut first_error = None;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                if Instant::now() >= deadline {
                    failed += 1;
                    first_error.get_or_insert_with(|| "out of time".to_owned());
                    continue;
                }
                match job(n).await {
                    Ok(output) => done.push(output),
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (done, failed, first_error)
        });
    }
    let mut result = Concurrent {
        done: Vec::with_capacity(count),
        failed: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok((done, failed, first_error)) => {
                result.done.extend(done);
                result.failed += failed;
                if result.first_error.is_none() {
                    result.first_error = first_error;
                }
            }
            Err(e) => {
                result.failed += 1;
                result.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    result.elapsed = start.elapsed();
    result
}

/// CPU used by the gateway's threads and by us during a measurement.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CpuUse {
    /// Wall-clock seconds of the measurement.
    pub seconds: f64,
    /// Gateway CPU seconds per thread name, largest first.
    pub gateway_threads: Vec<(String, f64)>,
    /// Gateway CPU seconds in all (100 % of one core = `seconds`).
    pub gateway_total: f64,
    /// Our own CPU seconds.
    pub loadgen: f64,
}

/// Measures CPU use from [`CpuMeter::start`] to [`CpuMeter::stop`].
pub struct CpuMeter {
    started: Instant,
    gateway: std::collections::BTreeMap<String, f64>,
    ours: f64,
}

impl CpuMeter {
    /// Takes the first snapshot.
    pub fn start(ctx: &Context) -> Self {
        Self {
            started: Instant::now(),
            gateway: ctx.gateway_threads(),
            ours: procfs::process_cpu_seconds(std::process::id()).unwrap_or(0.0),
        }
    }

    /// Takes the second snapshot and returns the difference.
    pub fn stop(self, ctx: &Context) -> CpuUse {
        let gateway_threads = procfs::cpu_delta(&self.gateway, &ctx.gateway_threads());
        let ours = procfs::process_cpu_seconds(std::process::id()).unwrap_or(0.0);
        CpuUse {
            seconds: self.started.elapsed().as_secs_f64(),
            gateway_total: gateway_threads.iter().map(|(_, s)| s).sum(),
            gateway_threads,
            loadgen: ours - self.ours,
        }
    }
}
