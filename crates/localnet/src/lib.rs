//! `nym-localnet`: a complete Nym mixnet on one machine, for client developers and for our own
//! end-to-end tests. It runs our `nym-gateway` as the clients' gateway and three mix nodes
//! (layers 1, 2, 3) on 127.0.0.1 — by default ours too (a gateway with the relay role on), with
//! `--nym-node-bin` Nym's own `nym-node` — and serves the nym-api endpoints clients and nodes
//! need, so a client needs nothing but that address. Like nym-api, the directory reads every
//! node's self-description and lists the sphinx key of the current key rotation; epochs and
//! rotations can be short (`--epoch-seconds`, `--rotation-epochs`), so keys really rotate.
//! A small e-cash authority serves nym-api's and the signers' ticket endpoints and hands out
//! zk-nym tickets, so clients that pay work too (`--tickets-required` makes the gateway insist).
//!
//! # Layout
//! - [`cli`]: the command line.
//! - [`clock`]: epochs and key rotations.
//! - [`nodes`]: our nodes' config, keys and store, written with the gateway's own code.
//! - [`nym_node`]: real nym-node mix nodes, initialised offline.
//! - [`processes`]: starting, watching and stopping the node processes.
//! - [`described`]: reading and checking a node's self-description.
//! - [`directory`]: what the nym-api knows and answers.
//! - [`ecash`]: the e-cash authority: master key, ticket verification, tickets for clients.
//! - [`api`]: the nym-api endpoints over HTTP, and the periodic refresh of descriptions.
//! - [`http`]: the small HTTP client the refresh uses.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod clock;
pub mod described;
pub mod directory;
pub mod ecash;
pub mod http;
pub mod nodes;
pub mod nym_node;
pub mod processes;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::directory::Directory;
use crate::nodes::{Implementation, Node, Role};
use crate::processes::NodeProcess;

/// File in the directory describing the running nodes (JSON), for scripts and tests.
pub const DESCRIPTION_FILE: &str = "localnet.json";
/// File in the directory holding the start of epoch 0 (Unix seconds), so that a reused directory
/// continues its epochs and key rotations instead of starting them again.
const GENESIS_FILE: &str = "genesis";

/// What [`run`] needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the nodes live; `None` for a temporary directory deleted on exit.
    pub dir: Option<PathBuf>,
    /// The gateway binary; `None` for `nym-gateway` next to this program.
    pub gateway_bin: Option<PathBuf>,
    /// nym-node's binary: when given, the mix nodes are nym-nodes.
    pub nym_node_bin: Option<PathBuf>,
    /// Address of the nym-api endpoints.
    pub api_address: SocketAddr,
    /// Length of an epoch.
    pub epoch: Duration,
    /// Epochs per key rotation.
    pub rotation_epochs: u32,
    /// The gateway grants bandwidth only for zk-nym tickets (`enforce_zk_nyms`).
    pub tickets_required: bool,
}

/// Runs the local mixnet until SIGINT or SIGTERM, then stops every node.
pub async fn run(options: Options) -> anyhow::Result<()> {
    // Signal handlers first: a signal during start-up still stops what was started.
    let mut interrupt = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    let bin = gateway_binary(options.gateway_bin)?;
    let nym_node_bin = match options.nym_node_bin {
        Some(path) if !path.is_file() => bail!("the nym-node binary {path:?} does not exist"),
        Some(path) => Some(path.canonicalize()?),
        None => None,
    };
    let (dir, _temporary) = match options.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {dir:?}"))?;
            (dir.canonicalize()?, None)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("nym-localnet-")
                .tempdir()
                .context("failed to create a temporary directory")?;
            (temp.path().canonicalize()?, Some(temp))
        }
    };

    // The directory serves before any node is prepared: nym-node asks it for the key rotation
    // while it initialises, and our nodes' configs name its address.
    let clock = Clock::new(genesis(&dir)?, options.epoch, options.rotation_epochs);
    let directory = Arc::new(Directory::new(clock));
    let listener = api::bind(options.api_address).await?;
    let api_url = format!("http://{}/", listener.local_addr()?);
    // Key generation and the coin-index signatures take a moment: off the async workers.
    let ecash = tokio::task::spawn_blocking(ecash::Ecash::new)
        .await
        .context("creating the e-cash authority panicked")??;
    let shutdown = CancellationToken::new();
    let api_task = tokio::spawn(api::serve(
        listener,
        directory.clone(),
        Some(Arc::new(ecash)),
        shutdown.clone(),
    ));

    // Creating a store and initialising a nym-node block: off the async workers.
    let tickets_required = options.tickets_required;
    let prepared = {
        let (dir, api_url, nym_node_bin) = (dir.clone(), api_url.clone(), nym_node_bin.clone());
        tokio::task::spawn_blocking(move || {
            Role::ALL
                .iter()
                .map(|role| match (&nym_node_bin, role) {
                    (Some(nym_node), Role::Mix(_)) => {
                        nym_node::prepare(nym_node, &dir, *role, &api_url)
                    }
                    _ => nodes::prepare(&dir, *role, &api_url, tickets_required),
                })
                .collect::<anyhow::Result<Vec<Node>>>()
        })
        .await
        .context("preparing the nodes panicked")
        .and_then(|nodes| nodes)
    };
    let nodes = match prepared {
        Ok(nodes) => nodes,
        Err(e) => {
            shutdown.cancel();
            let _ = api_task.await;
            return Err(e);
        }
    };
    directory.set_nodes(nodes.clone());

    let mut running: Vec<NodeProcess> = Vec::new();
    let started = async {
        for node in &nodes {
            let (program, args) = match (node.implementation, &nym_node_bin) {
                (Implementation::NymNode, Some(nym_node)) => {
                    (nym_node, nym_node::run_args(&node.id, &api_url))
                }
                _ => (
                    &bin,
                    vec!["run".to_owned(), "--id".to_owned(), node.id.clone()],
                ),
            };
            running.push(processes::spawn(node, program, &args)?);
        }
        for process in &mut running {
            process.wait_ready().await?;
        }
        anyhow::Ok(())
    };
    let started = tokio::select! {
        result = started => result,
        _ = interrupt.recv() => Err(anyhow::anyhow!("interrupted during start-up")),
        _ = terminate.recv() => Err(anyhow::anyhow!("terminated during start-up")),
    };
    if let Err(e) = started {
        stop_all(running).await;
        shutdown.cancel();
        let _ = api_task.await;
        return Err(e);
    }

    let refresher = tokio::spawn(api::refresher(
        directory.clone(),
        api::refresh_interval(clock.epoch),
        shutdown.clone(),
    ));
    write_description(&dir, &api_url, &nodes)?;
    print!(
        "{}",
        banner(&dir, &api_url, &nodes, clock, tickets_required)
    );

    let reason = tokio::select! {
        _ = interrupt.recv() => None,
        _ = terminate.recv() => None,
        crashed = first_exit(&mut running) => Some(crashed),
    };
    println!("nym-localnet: stopping the nodes...");
    // The directory stays up while the nodes stop: nym-node still asks it things on its way out.
    let clean = stop_all(running).await;
    shutdown.cancel();
    let _ = refresher.await;
    let _ = api_task.await;
    if let Some(crashed) = reason {
        bail!("{crashed}");
    }
    if !clean {
        bail!("not every node stopped cleanly; see the logs in {dir:?}");
    }
    println!("nym-localnet: stopped");
    Ok(())
}

/// The start of epoch 0: read from `dir` if an earlier run left it, else now (and kept).
fn genesis(dir: &Path) -> anyhow::Result<SystemTime> {
    let path = dir.join(GENESIS_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let secs: u64 = text
            .trim()
            .parse()
            .with_context(|| format!("{path:?} does not hold Unix seconds"))?;
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    std::fs::write(&path, format!("{now}\n"))
        .with_context(|| format!("failed to write {path:?}"))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(now))
}

/// `nym-gateway` next to this program, unless given.
fn gateway_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path,
        None => std::env::current_exe()
            .context("failed to find this program's location")?
            .with_file_name("nym-gateway"),
    };
    if !path.is_file() {
        bail!(
            "the gateway binary {path:?} does not exist: build it (`cargo build -p nym-gateway`) \
             or name it with --gateway-bin"
        );
    }
    Ok(path)
}

/// Resolves when a node exits on its own, naming it.
async fn first_exit(running: &mut [NodeProcess]) -> String {
    loop {
        for process in running.iter_mut() {
            if let Some(status) = process.exited() {
                return format!(
                    "node {} exited unexpectedly ({status})\n{}",
                    process.node.id,
                    processes::log_tail(&process.node.log_file, 30)
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// SIGTERM to every node, gateway first (it stops sending into the relays), then waits for all;
/// true if every one exited with status 0.
async fn stop_all(mut running: Vec<NodeProcess>) -> bool {
    running.sort_by_key(|p| p.node.role != Role::Gateway);
    for process in &running {
        process.terminate();
    }
    let mut clean = true;
    for process in running {
        let id = process.node.id.clone();
        match process.wait_stopped().await {
            Ok(status) if status.success() => {}
            Ok(status) => {
                clean = false;
                eprintln!("nym-localnet: node {id} exited with {status}");
            }
            Err(e) => {
                clean = false;
                eprintln!("nym-localnet: {e:#}");
            }
        }
    }
    clean
}

fn write_description(dir: &Path, api_url: &str, nodes: &[Node]) -> anyhow::Result<()> {
    let description = serde_json::json!({ "nym_api": api_url, "nodes": nodes });
    let path = dir.join(DESCRIPTION_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(&description)?)
        .with_context(|| format!("failed to write {path:?}"))
}

/// What is printed once everything runs.
fn banner(
    dir: &Path,
    api_url: &str,
    nodes: &[Node],
    clock: Clock,
    tickets_required: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "nym-localnet: a local Nym mixnet is running\n");
    let _ = writeln!(out, "  nym-api      {api_url}");
    for node in nodes {
        let reach = match node.role {
            Role::Gateway => format!("clients ws://{}", node.clients_address),
            Role::Mix(_) => format!("mix {}", node.mix_address),
        };
        let http = match node.implementation {
            Implementation::NymGateway => format!(
                "dashboard http://{0}/dashboard  metrics http://{0}/metrics",
                node.http_address
            ),
            Implementation::NymNode => format!("nym-node http://{}/api/v1", node.http_address),
        };
        let _ = writeln!(
            out,
            "  {:<12} {}  {reach}  {http}",
            node.role.label(),
            node.identity_key,
        );
    }
    let api = api_url.trim_end_matches('/');
    let _ = writeln!(
        out,
        "  e-cash       DKG epoch {}, tickets: POST {api}{}  ticketbooks: POST {api}{}  ({})",
        ecash::DKG_EPOCH,
        ecash::TICKET_PATH,
        ecash::TICKETBOOK_PATH,
        if tickets_required {
            "the gateway requires tickets"
        } else {
            "the gateway also grants free bandwidth"
        }
    );
    let _ = writeln!(
        out,
        "\nEpochs last {} s, key rotations {} epochs.",
        clock.epoch.as_secs_f64(),
        clock.rotation_epochs
    );
    let _ = writeln!(
        out,
        "\nPoint a nym-sdk client at it (MixnetClientBuilder::network_details):\n    \
         NymNetworkDetails::new_empty()\n        \
         .with_nym_api_urls(vec![url::Url::parse(\"{api_url}\")?])\n        \
         .with_validator_endpoint(ValidatorDetails::new(\"{api_url}\", Some(\"{api_url}\"), None))\n\
         (nym-sdk 1.21.6 finds gateways through the validator endpoint's api_url; no nyxd is used.)\n\n\
         Keys, stores and logs: {}\n\
         Press Ctrl-C to stop.",
        dir.display()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_names_each_gateways_dashboard() {
        let dir = tempfile::tempdir().unwrap();
        let api = "http://127.0.0.1:9/";
        let nodes = vec![
            nodes::prepare(dir.path(), Role::Gateway, api, false).unwrap(),
            nodes::prepare(dir.path(), Role::Mix(1), api, false).unwrap(),
        ];
        let clock = clock::Clock {
            genesis: SystemTime::now(),
            epoch: Duration::from_secs(60),
            rotation_epochs: 2,
        };
        let text = banner(dir.path(), api, &nodes, clock, true);
        for node in &nodes {
            let url = format!("dashboard http://{}/dashboard", node.http_address);
            assert!(text.contains(&url), "{url} missing from:\n{text}");
        }
        for path in ["ticket ", "ticketbook "] {
            let endpoint = format!("POST http://127.0.0.1:9/localnet/v1/ecash/{path}");
            assert!(text.contains(&endpoint), "{endpoint} missing from:\n{text}");
        }
        assert!(text.contains("requires tickets"), "{text}");
    }
}
