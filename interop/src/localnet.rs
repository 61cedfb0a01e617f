//! `nym-localnet` as a test peer: our gateway and three relays on loopback, plus the nym-api
//! endpoints and the e-cash authority the clients and the gateway need.
//!
//! Binaries: `$NYM_LOCALNET_BIN`, else `<repo>/target/debug/nym-localnet`; the gateway is
//! `$NYM_GATEWAY_BIN` when set, else the `nym-gateway` next to `nym-localnet`.

use crate::keys::GatewayKeys;
use anyhow::{bail, Context};
use gateway_test_harness::LocalnetProcess;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    process: LocalnetProcess,
    /// nym-api's address.
    pub api: SocketAddr,
    pub gateway: LocalGateway,
}

impl Localnet {
    /// Starts `nym-localnet` with `args` in a fresh directory and waits until it runs.
    pub async fn start(args: &[&str]) -> anyhow::Result<Self> {
        let process =
            LocalnetProcess::start(&localnet_binary()?, "interop-localnet-", args).await?;
        let api = process.api_address()?;
        let description = process.description()?;
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
            api,
            gateway,
        })
    }

    /// nym-api's base URL, as nym-localnet announced it.
    pub fn api_url(&self) -> &str {
        &self.process.api_url
    }

    /// What nym-localnet printed, and the tail of every node's log, for a failure message.
    pub fn explain(&self, err: anyhow::Error) -> anyhow::Error {
        self.process.explain(err)
    }

    /// Ends a test with its `result`: on success SIGTERM, and nym-localnet must exit 0; on
    /// failure the error with nym-localnet's output and the nodes' logs.
    pub async fn finish<T>(mut self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        let value = result.map_err(|err| self.explain(err))?;
        self.process.stop().await?;
        Ok(value)
    }
}
