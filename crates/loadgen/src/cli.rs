//! The command line. Clap stays here: the rest of the crate gets [`Settings`],
//! [`SoakSettings`] or [`HoldSettings`](crate::hold::HoldSettings).
// The flags' doc comments are their --help texts, where `<id>` is a placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::external::ExternalSpec;
use crate::stats::parse_counts;

/// `nym-gateway-loadgen [OPTIONS]`
#[derive(Debug, Parser)]
#[command(
    name = "nym-gateway-loadgen",
    version,
    about = "Drives a nym-gateway over loopback and reports mix-side ingest, latency, store \
             rates, client-side rates and memory per idle client",
    after_help = "Without --gateway-id it starts its own gateway (the nym-gateway binary next to \
                  this one, or --gateway-bin) in a temporary HOME. Every phase is bounded in \
                  packets, clients and time; the whole run stops after --max-seconds."
)]
pub struct Cli {
    /// Load this running gateway (its config and keys under $HOME/.nym/gateways/<id>/)
    #[arg(long, global = true, value_name = "ID")]
    pub gateway_id: Option<String>,

    /// The pid of the gateway given by --gateway-id (found from its command line otherwise)
    #[arg(long, global = true, value_name = "PID", requires = "gateway_id")]
    pub gateway_pid: Option<u32>,

    /// The nym-gateway executable to start when no --gateway-id is given
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        conflicts_with = "gateway_id"
    )]
    pub gateway_bin: Option<PathBuf>,

    /// RUST_LOG for the gateway we start
    #[arg(long, global = true, value_name = "FILTER", default_value = "warn")]
    pub gateway_log: String,

    /// A `[debug]` value for the gateway we start, as TOML (repeatable), e.g.
    /// --gateway-set store_synchronous_full=false
    #[arg(long, global = true, value_name = "KEY=VALUE", value_parser = parse_setting, conflicts_with = "gateway_id")]
    pub gateway_set: Vec<(String, String)>,

    /// Print one JSON object instead of the table
    #[arg(long, global = true)]
    pub json: bool,

    /// Every measurement at tiny scale (CI): about a minute in all
    #[arg(long, global = true)]
    pub smoke: bool,

    /// Idle authenticated clients for the memory measurement, ascending (e.g. 1000,10k,20000)
    #[arg(long, value_name = "N,N,..", value_parser = |s: &str| parse_counts(s).map(ClientCounts))]
    pub clients: Option<ClientCounts>,

    /// Final-hop packets per ingest run (online and offline each)
    #[arg(global = true, long, value_name = "N")]
    pub packets: Option<usize>,

    /// TCP connections on the mix port
    #[arg(long, value_name = "N")]
    pub mix_connections: Option<usize>,

    /// Mix connections speak Noise with the key the gateway announces, as today's mix nodes do
    #[arg(long)]
    pub mix_noise: bool,

    /// Registration handshakes to time
    #[arg(global = true, long, value_name = "N")]
    pub handshakes: Option<usize>,

    /// Forward requests to time (over several clients)
    #[arg(global = true, long, value_name = "N")]
    pub forwards: Option<usize>,

    /// Messages for the in-process store measurement
    #[arg(long, value_name = "N")]
    pub store_messages: Option<usize>,

    /// Seconds of paced load for the latency measurement
    #[arg(global = true, long, value_name = "SECONDS")]
    pub latency_seconds: Option<u64>,

    /// Packets per second of the steady peer in the fairness measurement
    #[arg(long, value_name = "PKT/S")]
    pub fair_rate: Option<f64>,

    /// Seconds the steady peer sends, with the flood and without
    #[arg(long, value_name = "SECONDS")]
    pub fair_seconds: Option<u64>,

    /// Distinct packets the flooding peer repeats (2.4 KB each; later passes are replays)
    #[arg(long, value_name = "N")]
    pub flood_pool: Option<usize>,

    /// Stop the whole run after this many seconds
    #[arg(global = true, long, value_name = "SECONDS")]
    pub max_seconds: Option<u64>,

    /// Phases to leave out
    #[arg(global = true, long, value_name = "PHASE,..", value_delimiter = ',')]
    pub skip: Vec<Phase>,

    /// Write each connected-client ingest run's per-packet times here (one CSV per run:
    /// id, sent and received in ns; received 0 = never), to see where a tail came from
    #[arg(long, global = true, value_name = "DIR")]
    pub latency_trace: Option<PathBuf>,

    /// Paced ingest at exactly these rates (packets/s, e.g. 2000,5000): p50/p99/max latency
    /// and the gateway's CPU per packet at each, besides the runs at 50 % and 25 % of the peak
    #[arg(long, value_name = "PKT/S,..", value_parser = parse_rates)]
    pub rate: Option<Rates>,

    /// Nym's nym-node binary: load a nym-node entry gateway we start (offline, on loopback,
    /// with a fake nym-api) instead of our gateway; `compare` needs it
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        conflicts_with = "gateway_id"
    )]
    pub nym_node_bin: Option<PathBuf>,

    /// RUST_LOG for the nym-node we start
    #[arg(long, global = true, value_name = "FILTER", default_value = "warn")]
    pub nym_node_log: String,

    /// The packet rate the replay filter of the nym-node we start is sized for: its default,
    /// 2000 (a 516 MB filter), or 200 at smoke scale (smaller filters drop fresh packets as
    /// replays once a few thousand went through)
    #[arg(long, global = true, value_name = "PKT/S")]
    pub nym_node_replay_pps: Option<u32>,

    /// Load any running gateway given by its keys and ports: nym-node's key directory
    /// (~/.nym/nym-nodes/<id>/data/, with ed25519_identity.pub and x25519_sphinx_primary)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["gateway_id", "target_identity"])]
    pub target_keys: Option<PathBuf>,

    /// ... or its identity key, base58 (with --target-sphinx)
    #[arg(
        long,
        value_name = "BASE58",
        conflicts_with = "gateway_id",
        requires = "target_sphinx"
    )]
    pub target_identity: Option<String>,

    /// ... and its sphinx public key of the current rotation, base58
    #[arg(long, value_name = "BASE58", requires = "target_identity")]
    pub target_sphinx: Option<String>,

    /// Its mix port (with --target-keys or --target-identity)
    #[arg(long, value_name = "ADDR", conflicts_with = "gateway_id")]
    pub target_mix: Option<SocketAddr>,

    /// Its client websocket port
    #[arg(long, value_name = "ADDR", conflicts_with = "gateway_id")]
    pub target_clients: Option<SocketAddr>,

    /// Its pid, for CPU and memory figures
    #[arg(long, value_name = "PID", conflicts_with = "gateway_id")]
    pub target_pid: Option<u32>,

    /// Its HTTP API, asked `/api/v1/health` (nym-node's) before the run
    #[arg(long, value_name = "ADDR", conflicts_with = "gateway_id")]
    pub target_http: Option<SocketAddr>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Packet rates (a newtype, so clap takes the list as one value).
#[derive(Debug, Clone, PartialEq)]
pub struct Rates(pub Vec<f64>);

/// `2000,5k,7500` → rates in packets/s, each positive.
fn parse_rates(text: &str) -> Result<Rates, String> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            let (number, factor) = match part.strip_suffix(['k', 'K']) {
                Some(number) => (number, 1000.0),
                None => (part, 1.0),
            };
            match number.parse::<f64>() {
                Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate * factor),
                _ => Err(format!("{part:?} is not a positive packet rate")),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Rates)
}

/// The steps of the memory measurement (a newtype, so clap takes the list as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCounts(pub Vec<usize>);

/// Internal subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Holds idle authenticated clients until stdin closes (a helper process of the memory
    /// measurement: each process can only open so many sockets)
    #[command(hide = true)]
    Hold(HoldArgs),
    /// Our gateway and nym-node (--nym-node-bin) one after the other, the same phases at
    /// the same scale and the same paced rates; one table with both and ours/nym-node
    Compare(CompareArgs),
    /// Hours of steady mix-side load with clients coming and going; a row of figures per
    /// interval (memory, open files, store size, traffic, latency, errors) and a summary
    /// (memory trend, whether every acked message was delivered)
    Soak(SoakArgs),
}

/// Arguments of `compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Paced rates for both (packets/s); besides them both are paced at 25 % and 50 % of our
    /// peak and at 50 % of nym-node's
    #[arg(long, value_name = "PKT/S,..", value_parser = parse_rates)]
    pub rate: Option<Rates>,
}

/// Arguments of `soak`.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long to load the gateway: seconds, or with a unit (90s, 30m, 2h)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub duration: Duration,
    /// Final-hop packets per second, spread over the clients
    #[arg(long, value_name = "PKT/S", default_value_t = 2000.0)]
    pub rate: f64,
    /// A row of figures every this long
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Clients coming and going
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub clients: usize,
    /// Mean time a client stays connected (each spell ½× to 1½× of it)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub online: Duration,
    /// Mean time a client stays away, its messages stored meanwhile
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub offline: Duration,
    /// TCP connections on the mix port
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub mix_connections: usize,
    /// At the end, how long every client may take to receive what was stored for it
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub settle: Duration,
}

/// What a soak run does.
#[derive(Debug, Clone)]
pub struct SoakSettings {
    /// The gateway and output settings ([`Settings`] of the main run).
    pub run: Settings,
    /// Time under load.
    pub duration: Duration,
    /// Packets per second.
    pub rate: f64,
    /// Time per row.
    pub interval: Duration,
    /// Clients.
    pub clients: usize,
    /// Mean online spell.
    pub online: Duration,
    /// Mean offline spell.
    pub offline: Duration,
    /// Mix connections.
    pub mix_connections: usize,
    /// Bound on the end's drain.
    pub settle: Duration,
}

impl SoakSettings {
    /// `args` with the gateway settings of `run`.
    pub fn new(args: SoakArgs, run: Settings) -> Self {
        Self {
            run,
            duration: args.duration,
            rate: args.rate,
            interval: args.interval.max(Duration::from_millis(100)),
            clients: args.clients.max(1),
            online: args.online,
            offline: args.offline,
            mix_connections: args.mix_connections.max(1),
            settle: args.settle,
        }
    }
}

/// `90`, `90s`, `30m`, `2h`, `1.5s` → a duration.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let factor = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown unit {other:?} (ms, s, m or h)")),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 30m or 2h"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(value * factor))
}

/// Arguments of `hold`.
#[derive(Debug, clap::Args)]
pub struct HoldArgs {
    /// The gateway's client port
    #[arg(long)]
    pub gateway: SocketAddr,
    /// The gateway's identity key, base58
    #[arg(long)]
    pub identity: String,
    /// Clients to connect
    #[arg(long)]
    pub count: usize,
    /// First of the 127.0.0.x source addresses to use
    #[arg(long)]
    pub first_source: u8,
    /// How many source addresses
    #[arg(long)]
    pub sources: u8,
    /// Handshakes in flight at once
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Exit after this many seconds even if stdin stays open
    #[arg(long)]
    pub max_seconds: u64,
}

/// `key=value` → (key, value); the value is TOML as it goes into the file.
fn parse_setting(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("{key:?} is not a config key"));
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

/// A measurement phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// In-process final-hop unwrap timing.
    Unwrap,
    /// In-process store rates.
    Store,
    /// Handshakes, authentications and forward requests per second.
    Clients,
    /// Mix-side ingest (online, offline), latency, and the drain of stored messages.
    Ingest,
    /// Resident memory per idle authenticated client.
    Memory,
    /// A steady peer's latency while another mix connection floods, and without the flood.
    Fairness,
}

/// Everything a run needs, with the defaults of the chosen scale filled in.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Load a running gateway instead of starting one.
    pub gateway_id: Option<String>,
    /// Its pid, if given.
    pub gateway_pid: Option<u32>,
    /// The binary to start otherwise.
    pub gateway_bin: Option<PathBuf>,
    /// `RUST_LOG` of the gateway we start.
    pub gateway_log: String,
    /// Extra `[debug]` values for the gateway we start.
    pub gateway_set: Vec<(String, String)>,
    /// JSON output.
    pub json: bool,
    /// Smoke scale.
    pub smoke: bool,
    /// Memory steps.
    pub clients: Vec<usize>,
    /// Packets per ingest run.
    pub packets: usize,
    /// Mix connections.
    pub mix_connections: usize,
    /// Mix connections use Noise.
    pub mix_noise: bool,
    /// Connected recipients in the online runs.
    pub online_clients: usize,
    /// Registered but disconnected recipients in the offline run.
    pub offline_clients: usize,
    /// Handshakes to time.
    pub handshakes: usize,
    /// Client connections working at once in the client phases.
    pub concurrency: usize,
    /// Forward requests to time.
    pub forwards: usize,
    /// Clients sending forward requests.
    pub forward_clients: usize,
    /// Messages for the in-process store run.
    pub store_messages: usize,
    /// Packets unwrapped in-process per path.
    pub unwrap_packets: usize,
    /// Seconds of paced load for latency.
    pub latency_seconds: u64,
    /// The fairness measurement's steady rate.
    pub fair_rate: f64,
    /// Its seconds per run.
    pub fair_seconds: u64,
    /// Distinct packets in the flood.
    pub flood_pool: usize,
    /// Bound on the whole run.
    pub max_duration: Duration,
    /// Phases to leave out.
    pub skip: Vec<Phase>,
    /// Paced ingest rates besides 50 % and 25 % of the peak.
    pub rates: Vec<f64>,
    /// Only the paced runs at `rates` in the ingest phase (no peak, no 50 %/25 %, no offline).
    pub paced_only: bool,
    /// Where each online ingest run's per-packet times go, if anywhere.
    pub latency_trace: Option<PathBuf>,
    /// Start nym-node (this binary) as the target.
    pub nym_node_bin: Option<PathBuf>,
    /// `RUST_LOG` of the nym-node we start.
    pub nym_node_log: String,
    /// The rate its replay filter is sized for.
    pub nym_node_replay_pps: u32,
    /// A target given by keys and ports.
    pub external: ExternalSpec,
}

impl Settings {
    /// The settings of `cli`: its values, or the defaults of the full or smoke scale.
    pub fn from_cli(cli: Cli) -> Self {
        let smoke = cli.smoke;
        let pick = |value: Option<usize>, full: usize, tiny: usize| {
            value.unwrap_or(if smoke { tiny } else { full })
        };
        Self {
            gateway_id: cli.gateway_id,
            gateway_pid: cli.gateway_pid,
            gateway_bin: cli.gateway_bin,
            gateway_log: cli.gateway_log,
            gateway_set: cli.gateway_set,
            json: cli.json,
            smoke,
            clients: cli.clients.map(|c| c.0).unwrap_or_else(|| {
                if smoke {
                    vec![50, 100]
                } else {
                    vec![1000, 10_000, 20_000]
                }
            }),
            packets: pick(cli.packets, 60_000, 300),
            mix_connections: pick(cli.mix_connections, 4, 2).max(1),
            mix_noise: cli.mix_noise,
            online_clients: pick(None, 64, 4),
            offline_clients: pick(None, 64, 4),
            handshakes: pick(cli.handshakes, 2000, 40).max(1),
            concurrency: pick(None, 64, 8),
            forwards: pick(cli.forwards, 40_000, 200),
            forward_clients: pick(None, 16, 2),
            store_messages: pick(cli.store_messages, 100_000, 2000),
            unwrap_packets: pick(None, 4000, 100),
            latency_seconds: cli
                .latency_seconds
                .unwrap_or(if smoke { 1 } else { 5 })
                .max(1),
            fair_rate: cli
                .fair_rate
                .filter(|rate| *rate > 0.0)
                .unwrap_or(if smoke { 100.0 } else { 200.0 }),
            fair_seconds: cli
                .fair_seconds
                .unwrap_or(if smoke { 1 } else { 10 })
                .max(1),
            flood_pool: pick(cli.flood_pool, 20_000, 500).max(1),
            max_duration: Duration::from_secs(cli.max_seconds.unwrap_or(if smoke {
                240
            } else {
                1800
            })),
            skip: cli.skip,
            rates: cli.rate.map(|r| r.0).unwrap_or_default(),
            paced_only: false,
            latency_trace: cli.latency_trace,
            nym_node_bin: cli.nym_node_bin,
            nym_node_log: cli.nym_node_log,
            nym_node_replay_pps: cli
                .nym_node_replay_pps
                .unwrap_or(if smoke { 200 } else { 2000 })
                .max(1),
            external: ExternalSpec {
                key_dir: cli.target_keys,
                identity: cli.target_identity,
                sphinx: cli.target_sphinx,
                mix_addr: cli.target_mix,
                clients_addr: cli.target_clients,
                pid: cli.target_pid,
                http_addr: cli.target_http,
            },
        }
    }

    /// Whether `phase` runs.
    pub fn runs(&self, phase: Phase) -> bool {
        !self.skip.contains(&phase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoke_scale_is_tiny_and_flags_win() {
        let cli = Cli::parse_from(["nym-gateway-loadgen", "--smoke", "--packets", "77"]);
        let settings = Settings::from_cli(cli);
        assert!(settings.smoke);
        assert_eq!(settings.packets, 77);
        assert_eq!(settings.clients, vec![50, 100]);
        assert!(settings.handshakes <= 100);
    }

    #[test]
    fn full_scale_defaults() {
        let cli = Cli::parse_from([
            "nym-gateway-loadgen",
            "--clients",
            "1000,10k,20000",
            "--skip",
            "store,memory",
        ]);
        let settings = Settings::from_cli(cli);
        assert_eq!(settings.clients, vec![1000, 10_000, 20_000]);
        assert!(!settings.runs(Phase::Memory));
        assert!(settings.runs(Phase::Ingest));
    }

    #[test]
    fn gateway_settings() {
        let cli = Cli::parse_from([
            "nym-gateway-loadgen",
            "--gateway-set",
            "store_synchronous_full = false",
            "--gateway-set",
            "unwrap_workers=2",
        ]);
        assert_eq!(
            Settings::from_cli(cli).gateway_set,
            vec![
                ("store_synchronous_full".into(), "false".into()),
                ("unwrap_workers".into(), "2".into())
            ]
        );
        assert!(parse_setting("novalue").is_err());
        assert!(parse_setting("a b=1").is_err());
    }

    #[test]
    fn soak_flags() {
        let cli = Cli::parse_from([
            "nym-gateway-loadgen",
            "--gateway-set",
            "unwrap_workers=2",
            "soak",
            "--duration",
            "30m",
            "--interval",
            "2",
            "--json",
        ]);
        assert!(cli.json);
        let Some(Command::Soak(args)) = cli.command else {
            panic!("expected soak");
        };
        assert_eq!(args.duration, Duration::from_secs(1800));
        assert_eq!(args.interval, Duration::from_secs(2));
        assert_eq!(args.rate, 2000.0);
        assert_eq!(cli.gateway_set.len(), 1);
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn rates_and_compare() {
        let cli = Cli::parse_from(["nym-gateway-loadgen", "--rate", "2000,5k"]);
        assert_eq!(Settings::from_cli(cli).rates, vec![2000.0, 5000.0]);
        let cli = Cli::parse_from([
            "nym-gateway-loadgen",
            "compare",
            "--nym-node-bin",
            "/x/nym-node",
            "--smoke",
            "--rate",
            "100",
            "--json",
        ]);
        let Some(Command::Compare(args)) = &cli.command else {
            panic!("expected compare");
        };
        assert_eq!(args.rate, Some(Rates(vec![100.0])));
        assert!(cli.smoke && cli.json);
        assert!(Cli::try_parse_from(["nym-gateway-loadgen", "--rate", "0"]).is_err());
        assert!(Cli::try_parse_from(["nym-gateway-loadgen", "--rate", "fast"]).is_err());
        assert!(Cli::try_parse_from(["nym-gateway-loadgen", "--target-sphinx", "x"]).is_err());
    }

    #[test]
    fn bad_client_lists_are_refused() {
        assert!(Cli::try_parse_from(["nym-gateway-loadgen", "--clients", "10,5"]).is_err());
        assert!(Cli::try_parse_from(["nym-gateway-loadgen", "--gateway-pid", "5"]).is_err());
    }
}
