//! What tests that run a node inside their own process share: a loopback config with every
//! port left to the kernel, starting and stopping the node, a plain HTTP client for its API
//! and reading its metrics, and a next hop that swallows what it is sent.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nym_gateway::config::Config;
use nym_gateway::keys::NodeKeys;
use nym_gateway::network::Network;
use nym_gateway::node::{self, Listeners};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A whole node running in this process (mainnet network settings), on the ports the kernel
/// chose for `config`'s port-0 listeners.
pub struct RunningNode {
    pub mix: SocketAddr,
    pub clients: SocketAddr,
    /// The wss port, when the config has one.
    pub wss: Option<SocketAddr>,
    pub http: SocketAddr,
    /// Notified: the node re-reads its wss certificate (what SIGHUP does in the binary).
    pub reload: Arc<Notify>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningNode {
    /// Binds `config`'s listeners and runs the node on them.
    pub async fn start(config: &Config, keys: NodeKeys) -> Self {
        let listeners = Listeners::bind(config).await.unwrap();
        let (mix, clients, http) = (
            listeners.mix_address().unwrap(),
            listeners.clients_address().unwrap(),
            listeners.http_address().unwrap(),
        );
        let wss = listeners.wss_address().unwrap();
        let shutdown = CancellationToken::new();
        let reload = Arc::new(Notify::new());
        let task = tokio::spawn(node::run(
            config.clone(),
            keys,
            Network::mainnet(),
            listeners,
            shutdown.clone(),
            reload.clone(),
        ));
        Self {
            mix,
            clients,
            wss,
            http,
            reload,
            shutdown,
            task,
        }
    }

    /// Cancels the node's token; it must stop cleanly within 30 s.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the node stops in time")
            .unwrap()
            .unwrap();
    }

    /// The value of `series` in the node's `/metrics` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        metric(&http_get(self.http, "/metrics").await.1, series)
    }
}

/// The value of the line for `series` (name and labels, as exposed) in Prometheus text, 0 when
/// absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// The `data` of a `/api/v1/host-information` body, after checking `identity`'s signature over
/// `data` exactly as served (what nym-api re-serialises and checks).
pub fn verified_host_data(body: &str, identity: &ed25519_dalek::VerifyingKey) -> serde_json::Value {
    use ed25519_dalek::{Signature, Verifier as _};
    let (data, rest) = body
        .strip_prefix(r#"{"data":"#)
        .and_then(|rest| rest.rsplit_once(r#","signature":"#))
        .unwrap_or_else(|| panic!("host-information is not {{data, signature}}: {body}"));
    let signature: String = serde_json::from_str(rest.strip_suffix('}').unwrap()).unwrap();
    let signature = bs58::decode(signature).into_vec().unwrap();
    identity
        .verify(data.as_bytes(), &Signature::from_slice(&signature).unwrap())
        .expect("host-information is signed by the identity key");
    serde_json::from_str(data).unwrap()
}

/// A loopback next hop that accepts every connection and discards what it is sent, so
/// SURB-acks never back up in egress.
pub async fn discarding_sink() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
            });
        }
    });
    addr
}

/// A config for node `id` under `root` on loopback, every port 0 (chosen at bind), with its
/// storage directory created.
pub fn loopback_config(id: &str, root: &Path, network: &Network) -> Config {
    let mut config = Config::new(id, root, network);
    config.gateway.listening_address = [127, 0, 0, 1].into();
    config.gateway.mix_port = 0;
    config.gateway.clients_port = 0;
    config.gateway.http_api_address = SocketAddr::from(([127, 0, 0, 1], 0));
    // Tests that follow a local nym-api must not poll the network's attestation URL.
    config.gateway.upgrade_mode_attestation_url = Some(String::new());
    std::fs::create_dir_all(config.gateway.persistent_storage.parent().unwrap()).unwrap();
    config
}

/// Status line and body of a plain HTTP/1.0 GET.
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}
