//! `nym-localnet` as a test peer: our gateway and three relays on loopback, plus the nym-api
//! endpoints and the e-cash authority the clients and the gateway need.
//!
//! Binaries: `$NYM_LOCALNET_BIN`, else `<repo>/target/debug/nym-localnet`; the gateway is
//! `$NYM_GATEWAY_BIN` when set, else the `nym-gateway` next to `nym-localnet`.

use crate::keys::GatewayKeys;
use anyhow::{bail, Context};
use gateway_test_harness::ChildGuard;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(90);

/// Path of `nym-localnet`.
pub fn localnet_binary() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("NYM_LOCALNET_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("interop/ lives inside the repository")
            .join("target/debug/nym-localnet"),
    };
    if !path.is_file() {
        bail!(
            "nym-localnet was not found at {}: build it in the repository root (`cargo build \
             -p nym-gateway -p nym-localnet`) or point NYM_LOCALNET_BIN at it",
            path.display()
        );
    }
    Ok(path)
}

/// The gateway of a running local network, as `localnet.json` describes it.
#[derive(Debug, Clone)]
pub struct LocalGateway {
    /// Where the clients' websocket listens.
    pub clients_address: SocketAddr,
    /// Its mix port.
    pub mix_address: SocketAddr,
    /// Its HTTP API (metrics).
    pub http_address: SocketAddr,
    /// Its key files' directory.
    pub data_dir: PathBuf,
}

impl LocalGateway {
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.clients_address)
    }

    pub fn keys(&self) -> anyhow::Result<GatewayKeys> {
        GatewayKeys::load(&self.data_dir)
    }
}

/// A running `nym-localnet`. Dropping it sends SIGTERM (it then stops its nodes); a passing test
/// ends with [`finish`](Localnet::finish), which requires exit status 0.
pub struct Localnet {
    process: ChildGuard,
    /// Where the nodes live (their logs are in `logs/`).
    pub dir: tempfile::TempDir,
    /// nym-api's address.
    pub api: SocketAddr,
    pub gateway: LocalGateway,
    output: Arc<Mutex<Vec<String>>>,
}

impl Localnet {
    /// Starts `nym-localnet` with `args` in a fresh directory and waits until it runs.
    pub async fn start(args: &[&str]) -> anyhow::Result<Self> {
        let bin = localnet_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("interop-localnet-")
            .tempdir()?;
        let mut command = Command::new(&bin);
        command
            .args(["--api-address", "127.0.0.1:0", "--dir"])
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        if let Some(gateway) = std::env::var_os("NYM_GATEWAY_BIN") {
            command.arg("--gateway-bin").arg(gateway);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let (api_tx, mut api_rx) = tokio::sync::mpsc::channel(1);
        if let Some(stdout) = child.stdout.take() {
            let output = output.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(url) = line.trim().strip_prefix("nym-api") {
                        let _ = api_tx.try_send(url.trim().to_owned());
                    }
                    output.lock().expect("output lock").push(line);
                }
            });
        }
        if let Some(stderr) = child.stderr.take() {
            let output = output.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    output
                        .lock()
                        .expect("output lock")
                        .push(format!("[stderr] {line}"));
                }
            });
        }
        // From here on, every early return stops nym-localnet.
        let process = ChildGuard::new(child, "nym-localnet");
        let Ok(Some(api_url)) = tokio::time::timeout(STARTUP_TIMEOUT, api_rx.recv()).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            bail!(
                "nym-localnet did not come up within {STARTUP_TIMEOUT:?}\n{}",
                output.lock().expect("output lock").join("\n")
            );
        };
        let api = api_url
            .trim_end_matches('/')
            .strip_prefix("http://")
            .context("the nym-api URL is not http")?
            .parse()?;
        let description: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("localnet.json"))?)?;
        let gateway = description["nodes"]
            .as_array()
            .context("localnet.json lists no nodes")?
            .iter()
            .find(|n| n["role"] == "gateway")
            .context("localnet.json lists no gateway")?;
        let address = |field: &str| -> anyhow::Result<SocketAddr> {
            Ok(gateway[field]
                .as_str()
                .with_context(|| format!("the gateway's {field}"))?
                .parse()?)
        };
        let config_file = PathBuf::from(
            gateway["config_file"]
                .as_str()
                .context("the gateway's config_file")?,
        );
        let gateway_dir = config_file
            .parent()
            .and_then(Path::parent)
            .context("the gateway's directory")?;
        let gateway = LocalGateway {
            clients_address: address("clients_address")?,
            mix_address: address("mix_address")?,
            http_address: address("http_address")?,
            data_dir: gateway_dir.join("data"),
        };
        Ok(Self {
            process,
            dir,
            api,
            gateway,
            output,
        })
    }

    /// nym-api's base URL.
    pub fn api_url(&self) -> String {
        format!("http://{}/", self.api)
    }

    /// What nym-localnet printed, and the tail of every node's log, for a failure message.
    pub fn explain(&self, err: anyhow::Error) -> anyhow::Error {
        let mut text = format!(
            "--- nym-localnet output ---\n{}\n",
            self.output.lock().expect("output lock").join("\n")
        );
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("logs")) {
            for entry in entries.flatten() {
                let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let start = lines.len().saturating_sub(25);
                text.push_str(&format!(
                    "--- {} (last lines) ---\n{}\n",
                    entry.path().display(),
                    lines[start..].join("\n")
                ));
            }
        }
        err.context(text)
    }

    /// Ends a test with its `result`: on success SIGTERM, and nym-localnet must exit 0; on
    /// failure the error with nym-localnet's output and the nodes' logs.
    pub async fn finish<T>(mut self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        let value = result.map_err(|err| self.explain(err))?;
        self.process
            .stop(STOP_TIMEOUT)
            .await
            .map_err(|err| self.explain(err))?;
        Ok(value)
    }
}
