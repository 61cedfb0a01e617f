//! The directory's data and answers, as nym-api would give them for this network: the nodes
//! (each "bonded" with its identity, role and HTTP address), what they last said about
//! themselves, and the clock. The sphinx key each list announces is the one of the current key
//! rotation, picked from the node's self-description like nym-api picks it.
//!
//! Until a node has been described the lists announce the key read from its files when it was
//! prepared: nym-api would leave such a node out, but here the nodes start together and
//! nym-node refuses to run without a full topology, so the first node up would wait on the rest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::clock::{rfc3339, Clock};
use crate::described::{self, Described, SphinxKey};
use crate::nodes::{Node, Role};

/// How often one node may ask for its refresh (nym-api: once a minute).
const FORCED_REFRESH_SPACING: Duration = Duration::from_secs(60);

/// Which nodes a node list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Every node.
    All,
    /// The mix nodes.
    Mixnodes,
    /// The gateway.
    Gateways,
}

/// The layout of a node list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListLayout {
    /// `PaginatedCachedNodesResponseV1`: status, refreshed_at, nodes.
    V1,
    /// `PaginatedCachedNodesResponseV2`: metadata (epoch, rotation), nodes.
    V2,
}

/// Why a refresh request was refused, with nym-api's status for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRefused {
    /// No node has that identity (404).
    UnknownNode,
    /// Bad signature (401).
    BadSignature,
    /// Timestamp in the future or older than 30 s (400).
    Stale,
    /// Refreshed less than a minute ago (429).
    TooSoon,
    /// The node could not be described (422).
    Unprocessable(String),
}

/// The directory. Shared between the HTTP handlers and the refresher.
#[derive(Debug)]
pub struct Directory {
    clock: Clock,
    nodes: RwLock<Vec<Node>>,
    described: RwLock<HashMap<u32, Described>>,
    forced: Mutex<HashMap<u32, Instant>>,
}

impl Directory {
    /// An empty directory keeping `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            nodes: RwLock::default(),
            described: RwLock::default(),
            forced: Mutex::default(),
        }
    }

    /// The clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Lists `nodes` (the network's bonded nodes).
    pub fn set_nodes(&self, nodes: Vec<Node>) {
        *self.nodes.write().unwrap_or_else(PoisonError::into_inner) = nodes;
    }

    /// The listed nodes.
    pub fn nodes(&self) -> Vec<Node> {
        self.nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps `described` as node `node_id`'s self-description.
    pub fn record(&self, node_id: u32, described: Described) {
        self.described
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node_id, described);
    }

    /// Node `node_id`'s last self-description.
    pub fn described(&self, node_id: u32) -> Option<Described> {
        self.described
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&node_id)
            .cloned()
    }

    /// Reads node's self-description again and keeps it if it checks out.
    pub async fn refresh(&self, node: &Node) -> anyhow::Result<()> {
        let described = described::describe(node.http_address, &node.identity_key).await?;
        self.record(node.node_id, described);
        Ok(())
    }

    /// Refreshes every node, one after the other (a handful of loopback requests); the errors
    /// of those that failed, by node id.
    pub async fn refresh_all(&self) -> Vec<(String, anyhow::Error)> {
        let mut failed = Vec::new();
        for node in self.nodes() {
            if let Err(e) = self.refresh(&node).await {
                failed.push((node.id.clone(), e));
            }
        }
        failed
    }

    /// `POST /v1/nym-nodes/refresh-described`: the node signed `identity ‖ timestamp (i64 BE) ‖
    /// "describe-cache-refresh-request"`; nym-api checks it, rate-limits, then describes the
    /// node at once.
    pub async fn forced_refresh(
        &self,
        identity: &str,
        timestamp: i64,
        signature: &[u8],
        now: SystemTime,
    ) -> Result<(), RefreshRefused> {
        let node = self
            .nodes()
            .into_iter()
            .find(|n| n.identity_key == identity)
            .ok_or(RefreshRefused::UnknownNode)?;
        if !refresh_signature_valid(identity, timestamp, signature) {
            return Err(RefreshRefused::BadSignature);
        }
        let now_secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if timestamp > now_secs || timestamp.saturating_add(30) < now_secs {
            return Err(RefreshRefused::Stale);
        }
        {
            let mut forced = self.forced.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(last) = forced.get(&node.node_id) {
                if last.elapsed() < FORCED_REFRESH_SPACING {
                    return Err(RefreshRefused::TooSoon);
                }
            }
            forced.insert(node.node_id, Instant::now());
        }
        self.refresh(&node)
            .await
            .map_err(|e| RefreshRefused::Unprocessable(format!("{e:#}")))
    }

    /// `KeyRotationInfoResponse`.
    pub fn key_rotation_info(&self, now: SystemTime) -> Value {
        self.clock.key_rotation_info(now)
    }

    fn ids(&self, wanted: impl Fn(Role) -> bool) -> Vec<u32> {
        self.nodes()
            .iter()
            .filter(|n| wanted(n.role))
            .map(|n| n.node_id)
            .collect()
    }

    /// `RewardedSetResponse`: the gateway is the entry, each mix node its layer.
    pub fn rewarded_set(&self, now: SystemTime) -> Value {
        json!({
            "epoch_id": self.clock.epoch(now).id,
            "entry_gateways": self.ids(|r| r == Role::Gateway),
            "exit_gateways": [],
            "layer1": self.ids(|r| r == Role::Mix(1)),
            "layer2": self.ids(|r| r == Role::Mix(2)),
            "layer3": self.ids(|r| r == Role::Mix(3)),
            "standby": [],
        })
    }

    /// The sphinx key announced for `node` in `rotation`.
    pub fn sphinx_key(&self, node: &Node, rotation: u32) -> SphinxKey {
        match self.described(node.node_id) {
            Some(described) => described.sphinx_key(rotation),
            None => described::sphinx_key_for(&node.sphinx_key(), None, rotation),
        }
    }

    /// The Noise key listed for `node`: the one it announces, or before it was first described
    /// the one read from its files when it was prepared. Every node here shares 127.0.0.1 and
    /// nym-node decides by address whether a peer must speak Noise, so every node has a key
    /// listed from the start (nym-node reads the list once when it starts).
    fn noise_key(&self, node: &Node) -> Value {
        let announced = self
            .described(node.node_id)
            .map(|d| d.host.keys.x25519_versioned_noise);
        match announced {
            Some(Some(key)) => json!(key),
            Some(None) => Value::Null,
            None => match &node.noise_key {
                Some(key) => json!({ "supported_version": 1, "x25519_pubkey": key }),
                None => Value::Null,
            },
        }
    }

    /// A page of skimmed nodes (`semi`: semi-skimmed, i.e. wrapped with their Noise key).
    pub fn node_list(
        &self,
        kind: NodeKind,
        layout: ListLayout,
        semi: bool,
        page: u32,
        now: SystemTime,
    ) -> Value {
        let epoch = self.clock.epoch(now);
        let all: Vec<Value> = self
            .nodes()
            .iter()
            .filter(|n| match kind {
                NodeKind::All => true,
                NodeKind::Mixnodes => matches!(n.role, Role::Mix(_)),
                NodeKind::Gateways => n.role == Role::Gateway,
            })
            .map(|n| {
                let basic = skimmed_node(n, &self.sphinx_key(n, epoch.rotation_id));
                if semi {
                    json!({ "basic": basic, "x25519_noise_versioned_key": self.noise_key(n) })
                } else {
                    basic
                }
            })
            .collect();
        let total = all.len();
        // Everything is on page 0, as nym-api's `new_full`.
        let data = if page == 0 { all } else { Vec::new() };
        let nodes = json!({
            "pagination": { "total": total, "page": page, "size": data.len() },
            "data": data,
        });
        match layout {
            ListLayout::V2 => json!({
                "metadata": {
                    "status": null,
                    "absolute_epoch_id": epoch.id,
                    "rotation_id": epoch.rotation_id,
                    "refreshed_at": rfc3339(now),
                },
                "nodes": nodes,
            }),
            ListLayout::V1 => {
                json!({ "status": null, "refreshed_at": rfc3339(now), "nodes": nodes })
            }
        }
    }

    /// `PaginatedResponse<NymNodeDescriptionV1>`: the described nodes, all on page 0.
    pub fn described_nodes(&self, page: u32) -> Value {
        let all: Vec<Value> = self
            .nodes()
            .iter()
            .filter_map(|n| {
                self.described(n.node_id)
                    .map(|d| d.description_v1(n.node_id))
            })
            .collect();
        let total = all.len();
        let data = if page == 0 { all } else { Vec::new() };
        json!({
            "pagination": { "total": total, "page": page, "size": data.len() },
            "data": data,
        })
    }

    /// `NodesByAddressesResponse`: for each address, the first node announcing it.
    pub fn by_addresses(&self, addresses: &[IpAddr]) -> Value {
        let nodes = self.nodes();
        let existence: serde_json::Map<String, Value> = addresses
            .iter()
            .map(|ip| {
                let id = nodes
                    .iter()
                    .find(|n| n.mix_address.ip() == *ip)
                    .map(|n| n.node_id);
                (ip.to_string(), json!(id))
            })
            .collect();
        json!({ "existence": existence })
    }
}

/// nym-api's `NodeRefreshBody::verify_signature`.
fn refresh_signature_valid(identity: &str, timestamp: i64, signature: &[u8]) -> bool {
    use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
    let Ok(key) = bs58::decode(identity).into_vec() else {
        return false;
    };
    let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&key) else {
        return false;
    };
    let Ok(signature) = <[u8; 64]>::try_from(signature) else {
        return false;
    };
    let plaintext =
        nym_gateway::node::rotation::nym_api::refresh_plaintext(&key.to_bytes(), timestamp);
    key.verify(&plaintext, &Signature::from_bytes(&signature))
        .is_ok()
}

/// `SkimmedNodeV1` announcing `sphinx`.
fn skimmed_node(node: &Node, sphinx: &SphinxKey) -> Value {
    let (role, supported, entry) = match node.role {
        Role::Mix(layer) => (
            json!({ "Mixnode": { "layer": layer } }),
            json!({ "mixnode": true, "entry": false, "exit_nr": false, "exit_ipr": false }),
            Value::Null,
        ),
        Role::Gateway => (
            json!("EntryGateway"),
            json!({ "mixnode": false, "entry": true, "exit_nr": false, "exit_ipr": false }),
            json!({ "hostname": null, "ws_port": node.clients_address.port(), "wss_port": null }),
        ),
    };
    json!({
        "node_id": node.node_id,
        "ed25519_identity_pubkey": node.identity_key,
        "ip_addresses": [node.mix_address.ip()],
        "mix_port": node.mix_address.port(),
        "x25519_sphinx_pubkey": sphinx.public_key,
        "role": role,
        "supported_roles": supported,
        "entry": entry,
        "performance": "1",
    })
}

#[cfg(test)]
mod tests;
