//! `nym-localnet`: a complete Nym mixnet on one machine, for client developers and for our own
//! end-to-end tests. It runs our `nym-gateway` four times on 127.0.0.1 — the clients' gateway and
//! three mix relays (layers 1, 2, 3, each a gateway with the relay role on) — and serves the
//! nym-api endpoints a client builds its topology from, so a client needs nothing but that
//! address.
//!
//! # Layout
//! - [`cli`]: the command line.
//! - [`nodes`]: the nodes' config, keys and store, written with the gateway's own code.
//! - [`processes`]: starting, watching and stopping the node processes.
//! - [`api`]: the nym-api endpoints (topology, rewarded set, key-rotation info).
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod nodes;
pub mod processes;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::nodes::{Node, Role};
use crate::processes::NodeProcess;

/// File in the directory describing the running nodes (JSON), for scripts and tests.
pub const DESCRIPTION_FILE: &str = "localnet.json";

/// What [`run`] needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the nodes live; `None` for a temporary directory deleted on exit.
    pub dir: Option<PathBuf>,
    /// The gateway binary; `None` for `nym-gateway` next to this program.
    pub gateway_bin: Option<PathBuf>,
    /// Address of the nym-api endpoints.
    pub api_address: SocketAddr,
}

/// Runs the local mixnet until SIGINT or SIGTERM, then stops every node.
pub async fn run(options: Options) -> anyhow::Result<()> {
    // Signal handlers first: a signal during start-up still stops what was started.
    let mut interrupt = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    let bin = gateway_binary(options.gateway_bin)?;
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
    // Creating a store blocks (it runs its own small runtime): off the async workers.
    let nodes = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            Role::ALL
                .iter()
                .map(|role| nodes::prepare(&dir, *role))
                .collect::<anyhow::Result<Vec<Node>>>()
        })
        .await??
    };
    let listener = api::bind(options.api_address).await?;
    let api_url = format!("http://{}/", listener.local_addr()?);

    let mut running: Vec<NodeProcess> = Vec::new();
    let started = async {
        for node in &nodes {
            running.push(processes::spawn(&bin, &dir, node)?);
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
        return Err(e);
    }

    let shutdown = CancellationToken::new();
    let directory = api::Directory::new(nodes.clone(), SystemTime::now());
    let api_task = tokio::spawn(api::serve(listener, directory, shutdown.clone()));
    write_description(&dir, &api_url, &nodes)?;
    print!("{}", banner(&dir, &api_url, &nodes));

    let reason = tokio::select! {
        _ = interrupt.recv() => None,
        _ = terminate.recv() => None,
        crashed = first_exit(&mut running) => Some(crashed),
    };
    println!("nym-localnet: stopping the nodes...");
    shutdown.cancel();
    let _ = api_task.await;
    let clean = stop_all(running).await;
    if let Some(crashed) = reason {
        bail!("{crashed}");
    }
    if !clean {
        bail!("not every node stopped cleanly; see the logs in {dir:?}");
    }
    println!("nym-localnet: stopped");
    Ok(())
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
fn banner(dir: &Path, api_url: &str, nodes: &[Node]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "nym-localnet: a local Nym mixnet is running\n");
    let _ = writeln!(out, "  nym-api      {api_url}");
    for node in nodes {
        let reach = match node.role {
            Role::Gateway => format!("clients ws://{}", node.clients_address),
            Role::Mix(_) => format!("mix {}", node.mix_address),
        };
        let _ = writeln!(
            out,
            "  {:<12} {}  {reach}  metrics http://{}/metrics",
            node.role.label(),
            node.identity_key,
            node.http_address
        );
    }
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
