//! Which nodes speak Noise: nym-api's semi-skimmed node list names each node's addresses, mix
//! port and Noise key. The view is read at start and every `noise_directory_refresh_interval`,
//! each page bounded in time and size and the pages in number; a failed read keeps the last
//! view (a warning), so a misbehaving nym-api cannot turn Noise off for peers it already knew.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use tracing::{debug, info, warn};

use super::Noise;
use crate::config::Tuning;

/// The only Noise version.
const NOISE_V1: u8 = 1;

/// How the directory is read (`[debug]`).
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    /// Timeout of one page's request (`nym_api_timeout`).
    pub timeout: Duration,
    /// Largest page read, in bytes (`noise_directory_max_answer_size`); a larger one fails
    /// the read.
    pub max_answer_size: usize,
    /// Pages read at most per refresh (`noise_directory_max_pages`).
    pub max_pages: usize,
    /// Wait between reads (`noise_directory_refresh_interval`).
    pub refresh_interval: Duration,
}

impl DirectorySettings {
    /// The settings in `d`.
    pub fn from_config(d: &Tuning) -> Self {
        Self {
            timeout: d.nym_api_timeout,
            max_answer_size: d.noise_directory_max_answer_size.get(),
            max_pages: d.noise_directory_max_pages.get(),
            refresh_interval: d.noise_directory_refresh_interval,
        }
    }
}

/// The Noise keys the directory lists.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NoisePeers {
    /// Key by address and mix port (where an initiator connects).
    keys: HashMap<SocketAddr, [u8; 32]>,
    /// Addresses of nodes with a key (where a responder sees connections from).
    addresses: HashSet<IpAddr>,
}

impl NoisePeers {
    /// Lists `key` for a node at `ips` with mix port `port`.
    pub fn insert(&mut self, ips: &[IpAddr], port: u16, key: [u8; 32]) {
        for ip in ips {
            let ip = ip.to_canonical();
            self.keys.insert(SocketAddr::new(ip, port), key);
            self.addresses.insert(ip);
        }
    }

    /// Whether some node at `ip` announces a Noise key.
    pub fn announces(&self, ip: IpAddr) -> bool {
        self.addresses.contains(&ip.to_canonical())
    }

    /// The Noise key of the node whose mix port is `addr`.
    pub fn key_of(&self, addr: SocketAddr) -> Option<[u8; 32]> {
        self.keys
            .get(&SocketAddr::new(addr.ip().to_canonical(), addr.port()))
            .copied()
    }

    /// Nodes listed with a key (by address and port).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no node is listed with a key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys in a semi-skimmed page; nodes with a malformed or unknown-version key are
    /// left out (as nym-node, which cannot speak a version it does not know).
    pub fn parse_page(body: &[u8], into: &mut Self) -> Result<Page, serde_json::Error> {
        let page: PageBody = serde_json::from_slice(body)?;
        for node in &page.nodes.data {
            let Some(key) = &node.x25519_noise_versioned_key else {
                continue;
            };
            if key.supported_version != NOISE_V1 {
                continue;
            }
            let Some(public) = bs58::decode(&key.x25519_pubkey)
                .into_vec()
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
            else {
                continue;
            };
            into.insert(&node.basic.ip_addresses, node.basic.mix_port, public);
        }
        Ok(Page {
            listed: page.nodes.data.len(),
            total: page.nodes.pagination.total,
        })
    }
}

/// What one page held.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Nodes on this page.
    pub listed: usize,
    /// Nodes on all pages.
    pub total: usize,
}

#[derive(Deserialize)]
struct PageBody {
    nodes: Nodes,
}

#[derive(Deserialize)]
struct Nodes {
    pagination: Pagination,
    data: Vec<SemiSkimmedNode>,
}

#[derive(Deserialize)]
struct Pagination {
    total: usize,
}

#[derive(Deserialize)]
struct SemiSkimmedNode {
    basic: BasicNode,
    #[serde(default)]
    x25519_noise_versioned_key: Option<VersionedKey>,
}

#[derive(Deserialize)]
struct BasicNode {
    ip_addresses: Vec<IpAddr>,
    mix_port: u16,
}

#[derive(Deserialize)]
struct VersionedKey {
    supported_version: u8,
    x25519_pubkey: String,
}

/// Reads every page of `GET /v2/unstable/nym-nodes/semi-skimmed` (up to the settings'
/// limits) from the first of `apis` that answers (blocking).
pub fn fetch(apis: &[String], settings: &DirectorySettings) -> Result<NoisePeers, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(settings.timeout))
        .build()
        .into();
    let mut last = "no nym-api is configured".to_owned();
    for base in apis {
        match fetch_from(&agent, base, settings) {
            Ok(peers) => return Ok(peers),
            Err(e) => last = format!("{base}: {e}"),
        }
    }
    Err(last)
}

fn fetch_from(
    agent: &ureq::Agent,
    base: &str,
    settings: &DirectorySettings,
) -> Result<NoisePeers, String> {
    let url = crate::node::rotation::nym_api::join(base, "v2/unstable/nym-nodes/semi-skimmed");
    let mut peers = NoisePeers::default();
    let mut seen = 0;
    let mut total = 0;
    for page in 0..settings.max_pages {
        let body = agent
            .get(&url)
            .query("page", page.to_string())
            .call()
            .and_then(|mut response| {
                response
                    .body_mut()
                    .with_config()
                    .limit(settings.max_answer_size as u64)
                    .read_to_vec()
            })
            .map_err(|e| e.to_string())?;
        let read = NoisePeers::parse_page(&body, &mut peers).map_err(|e| e.to_string())?;
        seen += read.listed;
        total = read.total;
        if read.listed == 0 || seen >= read.total {
            return Ok(peers);
        }
    }
    // The operator can raise the limit; until then the nodes on the other pages count as
    // announcing no key (plain TCP with them under `auto`).
    warn!(
        pages = settings.max_pages,
        read = seen,
        listed = total,
        "the directory has more pages than noise_directory_max_pages; nodes on the others are taken to announce no Noise key"
    );
    Ok(peers)
}

/// Keeps `noise`'s view of the directory fresh: reads it now, then every refresh interval.
pub async fn refresh(noise: Noise, apis: Vec<String>, settings: DirectorySettings) {
    let mut ticker = tokio::time::interval(settings.refresh_interval);
    let mut known: Option<usize> = None;
    loop {
        ticker.tick().await;
        let (apis_now, settings_now) = (apis.clone(), settings.clone());
        let fetched = tokio::task::spawn_blocking(move || fetch(&apis_now, &settings_now)).await;
        match fetched {
            Ok(Ok(peers)) => {
                if known != Some(peers.len()) {
                    info!(
                        noise_peers = peers.len(),
                        "directory read: mix peers announcing a Noise key"
                    );
                }
                known = Some(peers.len());
                noise.set_peers(peers);
            }
            Ok(Err(e)) => {
                warn!(error = %e, "could not read the directory's Noise keys; keeping the last view")
            }
            Err(e) => debug!(error = %e, "directory read did not finish"),
        }
    }
}
