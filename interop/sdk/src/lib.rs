//! Harness for the end-to-end tests: runs `nym-localnet` (our gateway and three mix nodes on
//! loopback, plus their nym-api endpoints), reads the nodes' Prometheus metrics, and fetches the
//! directory's JSON.
//!
//! Binaries: `$NYM_LOCALNET_BIN`, else `<repo>/target/debug/nym-localnet`; the gateway binary is
//! `$NYM_GATEWAY_BIN`, else the `nym-gateway` next to `nym-localnet`; nym-node (for the mix
//! nodes, when a test asks for it) is `$NYM_NODE_BIN`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use gateway_test_harness::LocalnetProcess;
pub use gateway_test_harness::{http_get, http_post};

pub mod clients;

fn repo_binary(env: &str, name: &str) -> PathBuf {
    match std::env::var_os(env) {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/debug")
            .join(name),
    }
}

/// The nym-node binary named by `$NYM_NODE_BIN`, or how to get one.
pub fn nym_node_bin() -> anyhow::Result<PathBuf> {
    match std::env::var_os("NYM_NODE_BIN") {
        Some(path) if Path::new(&path).is_file() => Ok(PathBuf::from(path)),
        Some(path) => bail!("NYM_NODE_BIN names {path:?}, which is not a file"),
        None => bail!(
            "this test runs Nym's nym-node 1.31.0 as the mix nodes: set NYM_NODE_BIN to it. \
             From the repository root, with DIR any directory:\n    \
             gunzip -c ../shared/peers/nym-node/nym-node-1.31.0-x86_64-linux-gnu.gz > DIR/nym-node \
             && chmod +x DIR/nym-node\nthen NYM_NODE_BIN=DIR/nym-node (see \
             ../shared/peers/nym-node/README.md)"
        ),
    }
}

/// `scenario`'s result, or an error once `limit` has passed.
pub async fn within(
    limit: Duration,
    scenario: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::time::timeout(limit, scenario)
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the test did not finish within {limit:?}")))
}

/// A node as `localnet.json` describes it.
#[derive(Debug, Clone)]
pub struct Node {
    /// `gateway` or `mix`.
    pub kind: String,
    /// `nym-gateway` or `nym-node`.
    pub implementation: String,
    /// Mix layer (relays only).
    pub layer: Option<u64>,
    /// bs58 identity key.
    pub identity_key: String,
    /// The HTTP API (metrics).
    pub http_address: SocketAddr,
    /// Where its output goes.
    pub log_file: PathBuf,
    /// Where it takes Sphinx packets from the mixnet.
    pub mix_address: SocketAddr,
}

/// A running `nym-localnet`. Dropping it sends SIGTERM, so nym-localnet still stops its nodes;
/// a passing test ends with [`stop`](Localnet::stop), which also checks the exit status.
pub struct Localnet {
    process: LocalnetProcess,
    /// The nodes.
    pub nodes: Vec<Node>,
}

impl Localnet {
    /// Starts `nym-localnet` in a fresh directory and waits until it says it runs.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// [`start`](Self::start) with more `nym-localnet` arguments.
    pub async fn start_with(args: &[std::ffi::OsString]) -> anyhow::Result<Self> {
        let bin = repo_binary("NYM_LOCALNET_BIN", "nym-localnet");
        if !bin.is_file() {
            bail!(
                "{bin:?} not found: build it in the repository root (`cargo build -p nym-gateway \
                 -p nym-localnet`) or point NYM_LOCALNET_BIN at it"
            );
        }
        let process = LocalnetProcess::start(&bin, "sdk-localnet-", args).await?;
        let description = process.description()?;
        let nodes = description["nodes"]
            .as_array()
            .context("localnet.json lists no nodes")?
            .iter()
            .map(|n| {
                let (kind, layer) = match &n["role"] {
                    serde_json::Value::String(kind) => (kind.clone(), None),
                    role => ("mix".to_owned(), role["mix"].as_u64()),
                };
                Ok(Node {
                    kind,
                    implementation: n["implementation"]
                        .as_str()
                        .context("implementation")?
                        .to_owned(),
                    layer,
                    identity_key: n["identity_key"].as_str().context("identity")?.to_owned(),
                    http_address: n["http_address"].as_str().context("http")?.parse()?,
                    log_file: n["log_file"].as_str().context("log_file")?.into(),
                    mix_address: n["mix_address"].as_str().context("mix")?.parse()?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { process, nodes })
    }

    /// The gateway.
    pub fn gateway(&self) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.kind == "gateway")
            .expect("a gateway")
    }

    /// The relay on `layer`.
    pub fn mix(&self, layer: u64) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.layer == Some(layer))
            .expect("a relay per layer")
    }

    /// What nym-localnet printed, and the tail of every node's log, for a failure message.
    pub fn explain(&self, err: anyhow::Error) -> anyhow::Error {
        self.process.explain(err)
    }

    /// Ends a test with its `result`: on success stops nym-localnet, which must exit 0; on
    /// failure returns the error with nym-localnet's output and the nodes' logs.
    pub async fn finish(self, result: anyhow::Result<()>) -> anyhow::Result<()> {
        match result {
            Ok(()) => self.stop().await,
            Err(err) => Err(self.explain(err)),
        }
    }

    /// SIGTERM; nym-localnet stops every node and must exit 0.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.process.stop().await
    }
}

impl Localnet {
    /// The nym-api URL, e.g. `http://127.0.0.1:41234/`.
    pub fn api_url(&self) -> &str {
        &self.process.api_url
    }

    /// `host:port` of the directory.
    pub fn api_address(&self) -> anyhow::Result<SocketAddr> {
        self.process.api_address()
    }

    /// `GET <nym-api><path>`, parsed from JSON as `T` (nym-api's own types, or a `Value`).
    pub async fn api_get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let body = http_get(self.api_address()?, path).await?;
        serde_json::from_str(&body).with_context(|| format!("GET {path}: not the expected JSON"))
    }
}

/// One node's metrics: `series` (name with labels) → value.
pub type Metrics = BTreeMap<String, f64>;

/// Reads a node's `/metrics`.
pub async fn metrics(node: &Node) -> anyhow::Result<Metrics> {
    let text = http_get(node.http_address, "/metrics").await?;
    Ok(parse_metrics(&text))
}

/// The samples of a Prometheus text exposition.
pub fn parse_metrics(text: &str) -> Metrics {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The value of `series` (0 when absent).
pub fn value(metrics: &Metrics, series: &str) -> f64 {
    metrics.get(series).copied().unwrap_or(0.0)
}

/// Every non-zero `gateway_mix_packets_dropped_total{reason=…}` series.
pub fn mix_drops(metrics: &Metrics) -> BTreeMap<String, f64> {
    metrics
        .iter()
        .filter(|(k, v)| k.starts_with("gateway_mix_packets_dropped_total") && **v > 0.0)
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// A counter of the SDK's packet statistics in this process (0 when never incremented).
pub fn client_statistic(name: &str) -> f64 {
    let text = String::from_utf8_lossy(&nym_metrics::metrics_registry().gather()).into_owned();
    value(
        &parse_metrics(&text),
        &format!("nym_statistics_common_{name}"),
    )
}
