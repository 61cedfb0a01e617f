//! Nym's own `nym-node` as the target: an entry gateway started offline in a temporary HOME,
//! every port on 127.0.0.1, against a fake nym-api ([`api`]), with zk-nyms not enforced (free
//! bandwidth, as our gateway without a wallet) and its replay filter sized for
//! [`NymNodeSettings::replay_packets_per_second`] (its default, 2000, in full runs: smaller
//! filters drop fresh packets as replays once a few thousand went through). Its keys are read back from its key files, so packets are built for it exactly
//! as for ours.
//!
//! See `shared/peers/nym-node/README.md` of the project for what nym-node needs offline.

pub mod api;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{ensure, Context as _};
use nym_localnet::nym_node::{self, Ports};

use crate::external::NymNodeKeys;
use crate::target::{HttpApi, Process, Software, Target, START_TIMEOUT};
use api::{FakeApi, ListedGateway};

/// The node's id (its directory under `~/.nym/nym-nodes/`).
const ID: &str = "loadgen";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// How to start nym-node.
#[derive(Debug, Clone)]
pub struct NymNodeSettings {
    /// The `nym-node` executable.
    pub binary: PathBuf,
    /// `RUST_LOG` for it.
    pub log_filter: String,
    /// The packet rate its replay filter is sized for (mainnet's default is 2000, 516 MB).
    pub replay_packets_per_second: u32,
}

/// Initialises and starts a nym-node entry gateway; the target, once its ports answer.
pub async fn start(settings: NymNodeSettings) -> anyhow::Result<Target> {
    ensure!(
        settings.binary.is_file(),
        "{} not found; unpack it: gunzip -c ../shared/peers/nym-node/nym-node-1.31.0-x86_64-linux-gnu.gz \
         > /tmp/nym-node && chmod +x /tmp/nym-node (see shared/peers/nym-node/README.md)",
        settings.binary.display()
    );
    let home = tempfile::Builder::new()
        .prefix("loadgen-nym-node")
        .tempdir()?;
    let fake_api = FakeApi::start().await?;
    let ports = nym_node::free_ports()?;
    let binary = settings.binary.clone();
    let (home_path, api_url) = (home.path().to_path_buf(), fake_api.url.clone());
    let node_dir = home_path.join(".nym/nym-nodes").join(ID);
    let pps = settings.replay_packets_per_second;
    tokio::task::spawn_blocking(move || init(&binary, &home_path, &api_url, ports, pps)).await??;
    let keys = NymNodeKeys::read(&node_dir.join("data"))?;
    let sphinx_public = keys.sphinx_public();
    fake_api.list_gateway(
        ListedGateway {
            identity_key: bs58::encode(keys.identity.as_bytes()).into_string(),
            sphinx_key: bs58::encode(sphinx_public).into_string(),
            rotation_id: keys.rotation_id,
            mix_port: ports.mix,
            clients_port: ports.websockets,
            http_address: SocketAddr::new(LOOPBACK, ports.http),
        },
        home.path(),
    );

    let log = home.path().join("nym-node.log");
    let args = nym_node::run_args(ID, &fake_api.url);
    let (binary, home_path, log_path) = (
        settings.binary.clone(),
        home.path().to_path_buf(),
        log.clone(),
    );
    let log_filter = settings.log_filter.clone();
    let spawn = move || spawn_run(&binary, &home_path, &log_path, &args, &log_filter);
    let child = spawn()?;
    let mut target = Target {
        software: Software::NymNode,
        mix_addr: SocketAddr::new(LOOPBACK, ports.mix),
        clients_addr: SocketAddr::new(LOOPBACK, ports.websockets),
        http: Some(HttpApi {
            addr: SocketAddr::new(LOOPBACK, ports.http),
            token: None,
            health_path: "/api/v1/health",
            metrics_path: None,
        }),
        identity: keys.identity,
        sphinx_public,
        sphinx_secret: Some(keys.sphinx_secret),
        key_dir: None,
        max_clients: 1 << 20,
        store_path: None,
        pid: Some(child.id()),
        process: Some(Process {
            home,
            log,
            spawn: Box::new(spawn),
            child,
            name: "nym-node",
            companion: Some(Box::new(fake_api)),
        }),
    };
    target
        .wait_healthy(START_TIMEOUT)
        .await
        .context("nym-node did not start")?;
    Ok(target)
}

/// `nym-node run --init-only --mode entry-gateway` as nym-localnet initialises its nym-nodes,
/// with the replay filter sized for `replay_pps`.
fn init(
    binary: &Path,
    home: &Path,
    api_url: &str,
    ports: Ports,
    replay_pps: u32,
) -> anyhow::Result<()> {
    let config_file = nym_node::init_node(binary, home, ID, "entry-gateway", ports, api_url)?;
    let config = std::fs::read_to_string(&config_file)
        .with_context(|| format!("nym-node wrote no {}", config_file.display()))?;
    std::fs::write(&config_file, size_replay_filter(&config, replay_pps))?;
    Ok(())
}

/// `config` (edited by nym-localnet, whose replay filter is sized for 20 packets/s) with the
/// filter sized for `pps` packets/s.
fn size_replay_filter(config: &str, pps: u32) -> String {
    config
        .lines()
        .map(|line| match line.split('=').next().map(str::trim) {
            Some(
                key @ ("initial_expected_packets_per_second"
                | "bloomfilter_minimum_packets_per_second_size"),
            ) => format!("{key} = {pps}"),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn spawn_run(
    binary: &Path,
    home: &Path,
    log: &Path,
    args: &[String],
    log_filter: &str,
) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Command::new(binary)
        .args(args)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", log_filter)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}
