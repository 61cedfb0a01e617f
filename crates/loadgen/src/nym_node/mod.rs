//! Nym's own `nym-node` as the target: an entry gateway started offline in a temporary HOME,
//! every port on 127.0.0.1, against a fake nym-api ([`api`]), with zk-nyms not enforced (free
//! bandwidth, as our gateway without a wallet) and its replay filter sized for
//! [`NymNodeSettings::replay_packets_per_second`] (its default, 2000, in full runs: smaller
//! filters drop fresh packets as replays once a few thousand went through). Its keys are read back from its key files, so packets are built for it exactly
//! as for ours.
//!
//! See `shared/peers/nym-node/README.md` of the project for what nym-node needs offline.

pub mod api;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{ensure, Context as _};
use nym_localnet::api::UPGRADE_MODE_ATTESTATION_PATH;

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

/// Its ports.
#[derive(Debug, Clone, Copy)]
struct Ports {
    http: u16,
    mix: u16,
    verloc: u16,
    websockets: u16,
    lp_control: u16,
    lp_data_udp: u16,
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
    let ports = free_ports()?;
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
    let args = run_args(&fake_api.url);
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

fn free_ports() -> anyhow::Result<Ports> {
    let [http, mix, verloc, websockets, lp_control] = nym_localnet::nodes::free_ports()?;
    let lp_data_udp = UdpSocket::bind(SocketAddr::new(LOOPBACK, 0))
        .and_then(|s| s.local_addr())
        .context("no free loopback UDP port")?
        .port();
    Ok(Ports {
        http,
        mix,
        verloc,
        websockets,
        lp_control,
        lp_data_udp,
    })
}

fn attestation_url(api_url: &str) -> String {
    format!(
        "{}{UPGRADE_MODE_ATTESTATION_PATH}",
        api_url.trim_end_matches('/')
    )
}

/// `nym-node run --init-only --mode entry-gateway`, then the config edits it needs.
fn init(
    binary: &Path,
    home: &Path,
    api_url: &str,
    ports: Ports,
    replay_pps: u32,
) -> anyhow::Result<()> {
    let at = |port: u16| SocketAddr::new(LOOPBACK, port).to_string();
    let args = [
        "--no-banner",
        "run",
        "--id",
        ID,
        "--init-only",
        "--local",
        "--mode",
        "entry-gateway",
        "--public-ips",
        "127.0.0.1",
        "--http-bind-address",
        &at(ports.http),
        "--mixnet-bind-address",
        &at(ports.mix),
        "--mixnet-announce-port",
        &ports.mix.to_string(),
        "--entry-bind-address",
        &at(ports.websockets),
        "--verloc-bind-address",
        &at(ports.verloc),
        "--nym-api-urls",
        api_url,
        "--nyxd-urls",
        "http://127.0.0.1:1/",
        "--enforce-zk-nyms",
        "false",
        "--lp-use-mock-ecash",
        "true",
        "--wireguard-enabled",
        "false",
        "--upgrade-mode-attestation-url",
        &attestation_url(api_url),
        "--accept-operator-terms-and-conditions",
    ];
    let output = Command::new(binary)
        .args(args)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {}", binary.display()))?;
    ensure!(
        output.status.success(),
        "nym-node init failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let config_file = home
        .join(".nym/nym-nodes")
        .join(ID)
        .join("config/config.toml");
    let config = std::fs::read_to_string(&config_file)
        .with_context(|| format!("nym-node wrote no {}", config_file.display()))?;
    let config =
        nym_localnet::nym_node::edit_config(&config, &at(ports.lp_control), &at(ports.lp_data_udp))
            .with_context(|| format!("unexpected nym-node config {}", config_file.display()))?;
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

/// The arguments of `nym-node run` (`--local` and the mock ecash are not saved by `init`).
fn run_args(api_url: &str) -> Vec<String> {
    [
        "--no-banner",
        "run",
        "--id",
        ID,
        "--deny-init",
        "--local",
        "--lp-use-mock-ecash",
        "true",
        "--accept-operator-terms-and-conditions",
        "--nym-api-urls",
        api_url,
        "--upgrade-mode-attestation-url",
        &attestation_url(api_url),
    ]
    .map(str::to_owned)
    .to_vec()
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
