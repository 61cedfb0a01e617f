//! The four nodes of the local mixnet and their files. Ours are ordinary `nym-gateway`
//! directories (`<dir>/.nym/gateways/<id>/`), written with the gateway's own config and key code,
//! so `nym-gateway run --id <id>` with `HOME=<dir>` runs it; real nym-nodes are prepared by
//! [`crate::nym_node`]. Existing directories are kept as they are: the same `--dir` brings back
//! the same keys and ports (only the nym-api address is rewritten when it changed).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use nym_gateway::config::{self, Config, NoiseMode};
use nym_gateway::keys::{NodeKeys, NoiseKey};
use nym_gateway::network::Network;
use nym_gateway::node::rotation;
use serde::{Deserialize, Serialize};

use crate::described::{SphinxKey, LEGACY_ROTATION_ID};

/// Every node listens here.
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Replay filter size of a local node: a few MB instead of the production default's hundreds.
const LOCAL_REPLAY_FILTER_CAPACITY: NonZeroU64 = NonZeroU64::new(2_000_000).unwrap();

/// What a node does in the mixnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The clients' gateway (entry and exit); relays nothing.
    Gateway,
    /// A mix relay on this layer (1, 2 or 3).
    Mix(u8),
}

impl Role {
    /// The four nodes, in start order.
    pub const ALL: [Self; 4] = [Self::Mix(1), Self::Mix(2), Self::Mix(3), Self::Gateway];

    /// The node's gateway id (its directory name).
    pub fn id(self) -> String {
        match self {
            Self::Gateway => "localnet-gateway".to_owned(),
            Self::Mix(layer) => format!("localnet-mix{layer}"),
        }
    }

    /// The node id the directory announces.
    pub fn node_id(self) -> u32 {
        match self {
            Self::Mix(layer) => u32::from(layer),
            Self::Gateway => 4,
        }
    }

    /// How the node is named to people.
    pub fn label(self) -> String {
        match self {
            Self::Gateway => "gateway".to_owned(),
            Self::Mix(layer) => format!("mix layer {layer}"),
        }
    }
}

/// Which program runs a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Implementation {
    /// Our `nym-gateway` (a mix node is our gateway with the relay role on).
    NymGateway,
    /// Nym's own `nym-node`.
    NymNode,
}

/// A prepared node: what the directory announces and where its files are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// What it does.
    pub role: Role,
    /// Which program runs it.
    pub implementation: Implementation,
    /// Its gateway id.
    pub id: String,
    /// Its node id in the directory.
    pub node_id: u32,
    /// bs58 ed25519 identity key.
    pub identity_key: String,
    /// bs58 x25519 sphinx key, as read from its files when it was prepared.
    pub sphinx_key: String,
    /// The rotation of that key ([`LEGACY_ROTATION_ID`] for a key that never rotates).
    pub sphinx_rotation_id: u32,
    /// bs58 x25519 Noise key of its mix port, as read from its files when it was prepared.
    pub noise_key: Option<String>,
    /// The mix port's address.
    pub mix_address: SocketAddr,
    /// The client websocket's address (a nym-node mix node has one but serves no clients).
    pub clients_address: SocketAddr,
    /// The HTTP API (the self-described `/api/v1/...`; ours also `/health`, `/metrics`).
    pub http_address: SocketAddr,
    /// `config.toml`.
    pub config_file: PathBuf,
    /// The node's `HOME`.
    pub home: PathBuf,
    /// Where the node's output goes.
    pub log_file: PathBuf,
}

impl Node {
    /// The sphinx key read when the node was prepared, with its rotation.
    pub fn sphinx_key(&self) -> SphinxKey {
        SphinxKey {
            rotation_id: self.sphinx_rotation_id,
            public_key: self.sphinx_key.clone(),
        }
    }
}

/// `<dir>/.nym/gateways`: the gateways' root when `HOME=<dir>`.
pub fn root(dir: &Path) -> PathBuf {
    dir.join(".nym").join("gateways")
}

/// Creates our node's config, keys and store unless they exist, and describes it. Its
/// nym-api is `api_url` (the directory), for key-rotation info and e-cash master keys. The
/// gateway grants bandwidth only for tickets when `tickets_required`.
pub fn prepare(
    dir: &Path,
    role: Role,
    api_url: &str,
    tickets_required: bool,
) -> anyhow::Result<Node> {
    let id = role.id();
    let root = root(dir);
    let config_file = config::config_path(&root, &id);
    let mut config = if config_file.exists() {
        Config::load(&config_file)
            .with_context(|| format!("failed to load the existing node {id}"))?
    } else {
        create(&root, &id, role)?
    };
    let api_urls = Some(vec![api_url.to_owned()]);
    let enforce_zk_nyms = role == Role::Gateway && tickets_required;
    // The directory also plays the e-cash signers (it serves verify-ecash-ticket), so tickets
    // the gateway accepts are verified there as on the network, and publishes the upgrade-mode
    // attestation (`null`: none), which the gateway watches instead of the network's.
    let signer_urls = if role == Role::Gateway {
        vec![api_url.to_owned()]
    } else {
        Vec::new()
    };
    let upgrade_mode_url = Some(format!(
        "{}{}",
        api_url.trim_end_matches('/'),
        crate::api::UPGRADE_MODE_ATTESTATION_PATH
    ));
    if config.gateway.nym_api_urls != api_urls
        || config.gateway.enforce_zk_nyms != enforce_zk_nyms
        || config.gateway.zk_nym_signer_urls != signer_urls
        || config.gateway.upgrade_mode_attestation_url != upgrade_mode_url
    {
        config.gateway.nym_api_urls = api_urls;
        config.gateway.enforce_zk_nyms = enforce_zk_nyms;
        config.gateway.zk_nym_signer_urls = signer_urls;
        config.gateway.upgrade_mode_attestation_url = upgrade_mode_url;
        config.save(&config_file)?;
    }
    let keys = NodeKeys::load(&config.key_paths())
        .with_context(|| format!("failed to load the keys of node {id}"))?;
    // Made now (the gateway would make it at its first start) so that the directory lists it
    // from the start: nym-node reads the directory's Noise keys once at start.
    let noise = NoiseKey::load_or_create(rotation::key_dir(&config))
        .with_context(|| format!("failed to load the Noise key of node {id}"))?;
    let g = &config.gateway;
    Ok(Node {
        role,
        implementation: Implementation::NymGateway,
        node_id: role.node_id(),
        identity_key: keys.identity_public_bs58(),
        sphinx_key: keys.sphinx_public_bs58(),
        sphinx_rotation_id: LEGACY_ROTATION_ID,
        noise_key: (config.debug.mix_noise != NoiseMode::Off)
            .then(|| bs58::encode(noise.public).into_string()),
        mix_address: SocketAddr::new(LOOPBACK, g.mix_port),
        clients_address: SocketAddr::new(LOOPBACK, g.clients_port),
        http_address: g.http_api_address,
        config_file,
        home: dir.to_path_buf(),
        log_file: dir.join("logs").join(format!("{id}.log")),
        id,
    })
}

/// A fresh node on free loopback ports: relays have the relay role on, nothing talks to the
/// outside (no validator API, no statistics).
fn create(root: &Path, id: &str, role: Role) -> anyhow::Result<Config> {
    let mut config = Config::new(id, root, &Network::mainnet());
    let [mix, clients, http] = free_ports()?;
    let g = &mut config.gateway;
    g.listening_address = LOOPBACK;
    g.announce_address = LOOPBACK.to_string();
    g.mix_port = mix;
    g.clients_port = clients;
    g.http_api_address = SocketAddr::new(LOOPBACK, http);
    g.validator_api_urls = Vec::new();
    g.validator_nymd_urls = Vec::new();
    g.enabled_statistics = false;
    let d = &mut config.debug;
    d.forward_hop_processing = matches!(role, Role::Mix(_));
    d.replay_filter_capacity = LOCAL_REPLAY_FILTER_CAPACITY;
    config
        .validate()
        .with_context(|| format!("the configuration of node {id} is invalid"))?;

    let key_paths = config.key_paths();
    let keys = NodeKeys::generate().context("failed to generate node keys")?;
    keys.save(&key_paths)
        .with_context(|| format!("failed to save the keys of node {id}"))?;
    config.save(&config::config_path(root, id))?;
    nym_gateway::storage::initialise(&config)
        .with_context(|| format!("failed to create the store of node {id}"))?;
    Ok(config)
}

/// `N` loopback TCP ports that were free a moment ago (held together so they differ).
pub fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = [(); N].map(|()| TcpListener::bind(SocketAddr::new(LOOPBACK, 0)));
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(listeners) {
        *port = listener
            .and_then(|l| l.local_addr())
            .context("failed to find a free loopback port")?
            .port();
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_created_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let api = "http://127.0.0.1:8099/";
        let mix = prepare(dir.path(), Role::Mix(2), api, true).unwrap();
        let again = prepare(dir.path(), Role::Mix(2), api, true).unwrap();
        assert_eq!(mix.identity_key, again.identity_key);
        assert_eq!(mix.sphinx_key, again.sphinx_key);
        assert_eq!(mix.mix_address, again.mix_address);
        assert_eq!(mix.id, "localnet-mix2");
        assert_eq!(mix.node_id, 2);
        assert!(mix.mix_address.ip().is_loopback());

        let config = Config::load(&mix.config_file).unwrap();
        assert!(config.debug.forward_hop_processing, "relays relay");
        assert!(config.gateway.validator_api_urls.is_empty());
        assert_eq!(
            nym_gateway::node::rotation::followed_apis(&config),
            [api],
            "key rotation follows the directory"
        );
        assert_eq!(mix.sphinx_rotation_id, LEGACY_ROTATION_ID);
        // Another run's directory elsewhere: the same node, told the new address.
        let moved = prepare(dir.path(), Role::Mix(2), "http://127.0.0.1:9000/", false).unwrap();
        assert_eq!(moved.identity_key, mix.identity_key);
        let config = Config::load(&mix.config_file).unwrap();
        assert_eq!(
            nym_gateway::node::rotation::followed_apis(&config),
            ["http://127.0.0.1:9000/"]
        );
        let gateway = prepare(dir.path(), Role::Gateway, api, false).unwrap();
        let config = Config::load(&gateway.config_file).unwrap();
        assert!(!config.debug.forward_hop_processing, "the gateway does not");
        assert!(!config.gateway.enforce_zk_nyms, "free bandwidth by default");
        assert_eq!(
            config.gateway.zk_nym_signer_urls,
            [api],
            "the directory verifies accepted tickets as the signers"
        );
        assert_eq!(
            config.gateway.upgrade_mode_attestation_url,
            Some(format!(
                "{}{}",
                api.trim_end_matches('/'),
                crate::api::UPGRADE_MODE_ATTESTATION_PATH
            )),
            "the directory's attestation, not the network's"
        );
        assert!(
            !Config::load(&mix.config_file)
                .unwrap()
                .gateway
                .enforce_zk_nyms,
            "relays serve no clients"
        );
        // The same directory with --tickets-required, and without it again.
        prepare(dir.path(), Role::Gateway, api, true).unwrap();
        let config = Config::load(&gateway.config_file).unwrap();
        assert!(config.gateway.enforce_zk_nyms, "tickets required");
        prepare(dir.path(), Role::Gateway, api, false).unwrap();
        let config = Config::load(&gateway.config_file).unwrap();
        assert!(!config.gateway.enforce_zk_nyms);
        assert_ne!(gateway.identity_key, mix.identity_key);
    }
}
