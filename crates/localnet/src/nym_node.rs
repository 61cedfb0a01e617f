//! Real nym-node mix nodes (`--nym-node-bin`): each in a `HOME` of its own
//! (`<dir>/nym-node/<id>`), initialised offline against the directory on loopback ports, its
//! keys read back with `nym-node node-details`.
//!
//! What nym-node needs to run offline (see `shared/peers/nym-node/README.md` of the project):
//! `--local` (loopback addresses allowed) and `--lp-use-mock-ecash true` (no blockchain) on every
//! run, as they are not saved; the Lewes-protocol listeners' addresses edited into its
//! `config.toml` (its `--lp-*-bind-address` flags are ignored, and the defaults on `[::]` would
//! collide between nodes); the upgrade-mode attestation fetched from the directory.

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::api::UPGRADE_MODE_ATTESTATION_PATH;
use crate::nodes::{self, Implementation, Node, Role, LOOPBACK};

/// Where nym-node's files live, within its `HOME`.
pub fn node_dir(home: &Path, id: &str) -> PathBuf {
    home.join(".nym").join("nym-nodes").join(id)
}

/// A replay filter sized for a few packets a second instead of mainnet's 2000 (about 2.5 MB
/// instead of 516 MB per node and rotation: three nodes each holding two filters otherwise cost
/// 3 GB and seconds of disk writes at every stop).
const REPLAY_FILTER_SETTINGS: &str = "\n[mixnet.replay_protection.debug]\n\
    initial_expected_packets_per_second = 20\n\
    bloomfilter_minimum_packets_per_second_size = 20\n";

/// The loopback ports a nym-node listens on, chosen once and kept in `localnet-node.json`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Ports {
    /// Its HTTP API.
    pub http: u16,
    /// The mix port.
    pub mix: u16,
    /// Verloc.
    pub verloc: u16,
    /// The clients' websocket port.
    pub websockets: u16,
    /// The Lewes protocol's control listener (TCP).
    pub lp_control: u16,
    /// The Lewes protocol's data listener (UDP).
    pub lp_data_udp: u16,
}

/// `nym-node node-details --output json`, the fields we use.
#[derive(Debug, Deserialize)]
struct NodeDetails {
    ed25519_identity_key: String,
    x25519_primary_sphinx_key: PrimarySphinxKey,
    /// bs58; nym-node announces it (version 1) in its host-information.
    x25519_noise_key: String,
}

#[derive(Debug, Deserialize)]
struct PrimarySphinxKey {
    public_key: String,
    rotation_id: u32,
}

/// The arguments of `nym-node run` for node `id`, whose nym-api is `api_url` (ending in `/`):
/// `--local` and the mock e-cash are not saved by its initialisation.
pub fn run_args(id: &str, api_url: &str) -> Vec<String> {
    [
        "--no-banner",
        "run",
        "--id",
        id,
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

fn attestation_url(api_url: &str) -> String {
    format!(
        "{}{UPGRADE_MODE_ATTESTATION_PATH}",
        api_url.trim_end_matches('/')
    )
}

/// Initialises the nym-node for `role` with `bin` unless it exists, and describes it. Blocks
/// (runs `nym-node`, which asks the directory at `api_url` for the key rotation: it must
/// already be served).
pub fn prepare(bin: &Path, dir: &Path, role: Role, api_url: &str) -> anyhow::Result<Node> {
    let id = role.id();
    let home = dir.join("nym-node").join(&id);
    let state_file = home.join("localnet-node.json");
    let ports: Ports = if state_file.exists() {
        // An earlier run's node: its config may name an earlier directory address, which
        // `node-details` would ask (`run` is told the address on its command line).
        let config_file = node_dir(&home, &id).join("config").join("config.toml");
        let config = fs::read_to_string(&config_file)
            .with_context(|| format!("failed to read {config_file:?}"))?;
        let updated = set_nym_api_url(&config, api_url)
            .with_context(|| format!("unexpected nym-node config {config_file:?}"))?;
        if updated != config {
            fs::write(&config_file, updated)
                .with_context(|| format!("failed to write {config_file:?}"))?;
        }
        serde_json::from_slice(&fs::read(&state_file)?)
            .with_context(|| format!("failed to read {state_file:?}"))?
    } else {
        let ports = init(bin, &home, &id, role, api_url)?;
        fs::write(&state_file, serde_json::to_vec_pretty(&ports)?)?;
        ports
    };
    let details = node_details(bin, &home, &id)?;
    Ok(Node {
        role,
        implementation: Implementation::NymNode,
        node_id: role.node_id(),
        identity_key: details.ed25519_identity_key,
        sphinx_key: details.x25519_primary_sphinx_key.public_key,
        sphinx_rotation_id: details.x25519_primary_sphinx_key.rotation_id,
        noise_key: Some(details.x25519_noise_key),
        mix_address: SocketAddr::new(LOOPBACK, ports.mix),
        clients_address: SocketAddr::new(LOOPBACK, ports.websockets),
        http_address: SocketAddr::new(LOOPBACK, ports.http),
        config_file: node_dir(&home, &id).join("config").join("config.toml"),
        log_file: dir.join("logs").join(format!("{id}.log")),
        home,
        id,
    })
}

/// `nym-node run --init-only` on fresh loopback ports, then the config edits it needs.
fn init(bin: &Path, home: &Path, id: &str, role: Role, api_url: &str) -> anyhow::Result<Ports> {
    let Role::Mix(_) = role else {
        bail!(
            "nym-localnet runs nym-node as mix nodes only, not as {}",
            role.label()
        );
    };
    let ports = free_ports()?;
    init_node(bin, home, id, "mixnode", ports, api_url)?;
    Ok(ports)
}

/// Free loopback ports for a nym-node (TCP, and UDP for the Lewes protocol's data).
pub fn free_ports() -> anyhow::Result<Ports> {
    let [http, mix, verloc, websockets, lp_control] = nodes::free_ports()?;
    let lp_data_udp = UdpSocket::bind(SocketAddr::new(LOOPBACK, 0))
        .and_then(|s| s.local_addr())
        .context("failed to find a free loopback UDP port")?
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

/// `nym-node run --init-only --mode <mode>` of node `id` in `home`, offline on `ports` against
/// the directory at `api_url` (free bandwidth, mock e-cash, the directory's upgrade-mode
/// attestation), then the config edits it needs ([`edit_config`]); returns its config file.
pub fn init_node(
    bin: &Path,
    home: &Path,
    id: &str,
    mode: &str,
    ports: Ports,
    api_url: &str,
) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(home).with_context(|| format!("failed to create {home:?}"))?;
    let at = |port: u16| SocketAddr::new(LOOPBACK, port).to_string();
    let attestation = attestation_url(api_url);
    let args = [
        "--no-banner",
        "run",
        "--id",
        id,
        "--init-only",
        "--local",
        "--mode",
        mode,
        "--public-ips",
        &LOOPBACK.to_string(),
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
        &attestation,
        "--accept-operator-terms-and-conditions",
    ];
    run(bin, home, &args).with_context(|| format!("failed to initialise nym-node {id}"))?;
    let config_file = node_dir(home, id).join("config").join("config.toml");
    let config = fs::read_to_string(&config_file)
        .with_context(|| format!("nym-node {id} wrote no {config_file:?}"))?;
    let config = edit_config(&config, &at(ports.lp_control), &at(ports.lp_data_udp))
        .with_context(|| format!("unexpected nym-node config {config_file:?}"))?;
    fs::write(&config_file, config).with_context(|| format!("failed to write {config_file:?}"))?;
    Ok(config_file)
}

/// `config` with the `[lp]` listeners on the given addresses and a small replay filter.
pub fn edit_config(config: &str, lp_control: &str, lp_data: &str) -> anyhow::Result<String> {
    let mut section = "";
    let mut replaced = 0;
    let mut out = String::with_capacity(config.len() + REPLAY_FILTER_SETTINGS.len());
    for line in config.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed;
        }
        let key = trimmed.split('=').next().unwrap_or_default().trim();
        match (section, key) {
            ("[lp]", "control_bind_address") => {
                out.push_str(&format!("control_bind_address = '{lp_control}'"));
                replaced += 1;
            }
            ("[lp]", "data_bind_address") => {
                out.push_str(&format!("data_bind_address = '{lp_data}'"));
                replaced += 1;
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    if replaced != 2 {
        bail!("its [lp] section lacks control_bind_address or data_bind_address");
    }
    if config.contains("[mixnet.replay_protection.debug]") {
        bail!("it already has a [mixnet.replay_protection.debug] section");
    }
    out.push_str(REPLAY_FILTER_SETTINGS);
    Ok(out)
}

/// `config` with `[mixnet] nym_api_urls` (a TOML array, possibly over several lines) set to
/// `api_url` alone.
pub fn set_nym_api_url(config: &str, api_url: &str) -> anyhow::Result<String> {
    let mut section = "";
    let mut in_array = false;
    let mut replaced = false;
    let mut out = String::with_capacity(config.len());
    for line in config.lines() {
        let trimmed = line.trim();
        if in_array {
            in_array = !trimmed.starts_with(']');
            continue;
        }
        if trimmed.starts_with('[') {
            section = trimmed;
        }
        let key = trimmed.split('=').next().unwrap_or_default().trim();
        if section == "[mixnet]" && key == "nym_api_urls" {
            out.push_str(&format!("nym_api_urls = ['{api_url}']\n"));
            in_array = !trimmed.ends_with(']');
            replaced = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !replaced || in_array {
        bail!("its [mixnet] section has no complete nym_api_urls");
    }
    Ok(out)
}

fn node_details(bin: &Path, home: &Path, id: &str) -> anyhow::Result<NodeDetails> {
    let output = run(
        bin,
        home,
        &[
            "--no-banner",
            "node-details",
            "--id",
            id,
            "--output",
            "json",
        ],
    )
    .with_context(|| format!("failed to read the keys of nym-node {id}"))?;
    // The JSON is the last line: nym-node may log before it.
    let json = output
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("node-details printed no JSON")?;
    serde_json::from_str(json).context("unexpected node-details JSON")
}

/// Runs `bin args` with `HOME=home`; its stdout, or an error with its output.
fn run(bin: &Path, home: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(bin)
        .args(args)
        .env("HOME", home)
        // nym-node colours its logs on a terminal only, but be sure.
        .env("NO_COLOR", "1")
        .output()
        .with_context(|| format!("failed to start {bin:?}"))?;
    if !output.status.success() {
        bail!(
            "{bin:?} {} exited with {}\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "id = 'mix1'\n\n[mixnet]\nbind_address = '127.0.0.1:1789'\n\n\
        [lp]\n# Bind address for the TCP LP control traffic.\ncontrol_bind_address = '[::]:41264'\n\
        data_bind_address = '[::]:51264'\nannounce_control_port = 0\n\n\
        [verloc]\nbind_address = '127.0.0.1:1790'\n";

    #[test]
    fn the_lp_listeners_move_to_loopback_and_the_replay_filter_shrinks() {
        let edited = edit_config(CONFIG, "127.0.0.1:5000", "127.0.0.1:5001").unwrap();
        assert!(edited.contains("\ncontrol_bind_address = '127.0.0.1:5000'\n"));
        assert!(edited.contains("\ndata_bind_address = '127.0.0.1:5001'\n"));
        assert!(!edited.contains("[::]"));
        assert!(edited.contains("[verloc]\nbind_address = '127.0.0.1:1790'"));
        assert!(edited.ends_with(REPLAY_FILTER_SETTINGS));
        // Editing twice would write the section twice: refused.
        assert!(edit_config(&edited, "a", "b").is_err());
        assert!(
            edit_config("[lp]\n", "a", "b").is_err(),
            "no listeners to move"
        );
    }

    #[test]
    fn a_reused_node_is_told_the_new_directory_address() {
        let config =
            "[mixnet]\nbind_address = 'x'\nnym_api_urls = [\n'http://127.0.0.1:1/',\n]\n\n\
            nyxd_urls = [\n    'http://127.0.0.1:1/',\n]\n[http]\nbind_address = 'y'\n";
        let updated = set_nym_api_url(config, "http://127.0.0.1:2/").unwrap();
        assert_eq!(
            updated,
            "[mixnet]\nbind_address = 'x'\nnym_api_urls = ['http://127.0.0.1:2/']\n\n\
             nyxd_urls = [\n    'http://127.0.0.1:1/',\n]\n[http]\nbind_address = 'y'\n"
        );
        // One line already, and idempotent.
        assert_eq!(
            set_nym_api_url(&updated, "http://127.0.0.1:2/").unwrap(),
            updated
        );
        assert!(set_nym_api_url("[mixnet]\nnym_api_urls = [\n'a',\n", "b").is_err());
        assert!(set_nym_api_url("[http]\nnym_api_urls = []\n", "b").is_err());
    }

    #[test]
    fn runs_name_the_directory_and_its_attestation() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "role": {"mix": 2}, "implementation": "nym-node", "id": "localnet-mix2",
            "node_id": 2, "identity_key": "i", "sphinx_key": "s", "sphinx_rotation_id": 0,
            "mix_address": "127.0.0.1:1", "clients_address": "127.0.0.1:2",
            "http_address": "127.0.0.1:3", "config_file": "c", "home": "h", "log_file": "l",
        }))
        .unwrap();
        let args = run_args(&node.id, "http://127.0.0.1:8099/").join(" ");
        assert!(
            args.contains("run --id localnet-mix2 --deny-init --local"),
            "{args}"
        );
        assert!(args.contains("--lp-use-mock-ecash true"));
        assert!(args.contains("--nym-api-urls http://127.0.0.1:8099/ "));
        assert!(args.ends_with(
            "--upgrade-mode-attestation-url \
             http://127.0.0.1:8099/.wellknown/upgrade-mode/attestation.json"
        ));
    }
}
