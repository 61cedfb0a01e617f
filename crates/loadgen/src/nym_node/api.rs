//! The nym-api a nym-node entry gateway needs to start offline: nym-localnet's directory,
//! listing the entry gateway and three placeholder mix nodes (nym-node refuses a topology
//! without all three layers; nothing is ever routed to them).
//!
//! Every node is listed on an address of its own, none on 127.0.0.1: nym-node demands Noise
//! from every connection coming from an address the directory lists with a Noise key, and our
//! mix connections come from 127.0.0.1 over plain TCP. The placeholders have no Noise key, so
//! nym-node reaches our sinks (on 127.0.0.1) over plain TCP too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nym_localnet::clock::Clock;
use nym_localnet::directory::Directory;
use nym_localnet::nodes::{Implementation, Node, Role};
use tokio_util::sync::CancellationToken;

/// An hour per epoch and 24 epochs per key rotation, as mainnet: no rotation during a run.
const EPOCH: Duration = Duration::from_secs(3600);
const ROTATION_EPOCHS: u32 = 24;
/// How far into its epoch the clock starts: nym-node refuses an epoch that looks stuck.
const INTO_EPOCH: Duration = Duration::from_secs(60);

/// The directory's listing address of the entry gateway (not where it listens).
pub const GATEWAY_LISTED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 250);

/// A served fake nym-api.
pub struct FakeApi {
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
    directory: Arc<Directory>,
    shutdown: CancellationToken,
}

/// What the directory lists for the entry gateway.
#[derive(Debug, Clone)]
pub struct ListedGateway {
    /// bs58 identity key.
    pub identity_key: String,
    /// bs58 sphinx public key.
    pub sphinx_key: String,
    /// Its rotation.
    pub rotation_id: u32,
    /// Its mix port (listed at [`GATEWAY_LISTED_IP`]).
    pub mix_port: u16,
    /// Its websocket port.
    pub clients_port: u16,
    /// Its HTTP API (where the directory reads its self-description).
    pub http_address: SocketAddr,
}

impl FakeApi {
    /// Serves the directory, with the placeholder mix nodes only, on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let genesis = SystemTime::now() - INTO_EPOCH;
        let directory = Arc::new(Directory::new(Clock::new(genesis, EPOCH, ROTATION_EPOCHS)));
        directory.set_nodes(placeholder_mixes());
        let listener =
            nym_localnet::api::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).await?;
        let url = format!("http://{}/", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        tokio::spawn(nym_localnet::api::serve(
            listener,
            directory.clone(),
            // nym-node runs with mock e-cash here: no authority
            None,
            shutdown.clone(),
        ));
        Ok(Self {
            url,
            directory,
            shutdown,
        })
    }

    /// Lists the entry gateway beside the placeholders.
    pub fn list_gateway(&self, gateway: ListedGateway, home: &Path) {
        let mut nodes = placeholder_mixes();
        nodes.push(Node {
            role: Role::Gateway,
            implementation: Implementation::NymNode,
            id: "loadgen-nym-node".into(),
            node_id: Role::Gateway.node_id(),
            identity_key: gateway.identity_key,
            sphinx_key: gateway.sphinx_key,
            sphinx_rotation_id: gateway.rotation_id,
            noise_key: None,
            mix_address: SocketAddr::new(IpAddr::V4(GATEWAY_LISTED_IP), gateway.mix_port),
            clients_address: SocketAddr::new(IpAddr::V4(GATEWAY_LISTED_IP), gateway.clients_port),
            http_address: gateway.http_address,
            config_file: home.join("config.toml"),
            home: home.to_path_buf(),
            log_file: home.join("nym-node.log"),
        });
        self.directory.set_nodes(nodes);
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Mix nodes of layers 1–3 with fresh keys on addresses nobody listens on.
fn placeholder_mixes() -> Vec<Node> {
    (1..=3u8)
        .map(|layer| {
            let identity = ed25519_dalek::SigningKey::from_bytes(&crate::client::random());
            let sphinx = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(
                crate::client::random::<32>(),
            ));
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 250 + layer));
            let unused = SocketAddr::new(ip, 9);
            Node {
                role: Role::Mix(layer),
                implementation: Implementation::NymGateway,
                id: format!("placeholder-mix{layer}"),
                node_id: Role::Mix(layer).node_id(),
                identity_key: bs58::encode(identity.verifying_key().as_bytes()).into_string(),
                sphinx_key: bs58::encode(sphinx.as_bytes()).into_string(),
                sphinx_rotation_id: 0,
                noise_key: None,
                mix_address: unused,
                clients_address: unused,
                http_address: unused,
                config_file: "/nonexistent".into(),
                home: "/nonexistent".into(),
                log_file: "/nonexistent".into(),
            }
        })
        .collect()
}
