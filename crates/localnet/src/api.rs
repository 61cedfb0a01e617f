//! The nym-api endpoints a Nym client reads its topology from, answered from the four local
//! nodes: the skimmed node lists (all, active mixnodes, entry and exit gateways, v1 and v2), the
//! rewarded set (who is on which layer) and the key-rotation info. Every answer is JSON, which the
//! client reads whatever encoding it asked for.
//!
//! Epochs are one hour from the moment the directory started, key rotations last 24 epochs, and
//! every node has performance 1, so no client filters any of them out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::nodes::{Node, Role};

/// Length of an epoch.
pub const EPOCH_DURATION: Duration = Duration::from_secs(3600);
/// Epochs a key rotation lasts.
pub const ROTATION_EPOCHS: u32 = 24;

/// A request the directory answers, parsed from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/epoch/key-rotation-info`
    KeyRotationInfo,
    /// `/v1/nym-nodes/rewarded-set`
    RewardedSet,
    /// `/v{1,2}/unstable/nym-nodes/skimmed[/...]`: nodes of a kind, in the v1 or v2 layout.
    Skimmed {
        /// Which nodes.
        kind: NodeKind,
        /// The v2 layout (with metadata) or the v1 one.
        v2: bool,
    },
}

/// Which nodes a skimmed list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Every node.
    All,
    /// The mix relays.
    Mixnodes,
    /// The gateway.
    Gateways,
}

impl Endpoint {
    /// The endpoint at `path`, if it is one we serve.
    pub fn from_path(path: &str) -> Option<Self> {
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        match segments.as_slice() {
            ["v1", "epoch", "key-rotation-info"] => Some(Self::KeyRotationInfo),
            ["v1", "nym-nodes", "rewarded-set"] => Some(Self::RewardedSet),
            [version @ ("v1" | "v2"), "unstable", "nym-nodes", "skimmed", rest @ ..] => {
                let kind = match rest {
                    [] => NodeKind::All,
                    ["mixnodes", "active" | "all"] => NodeKind::Mixnodes,
                    ["entry-gateways" | "exit-gateways"]
                    | ["entry-gateways" | "exit-gateways", "all"] => NodeKind::Gateways,
                    _ => return None,
                };
                Some(Self::Skimmed {
                    kind,
                    v2: *version == "v2",
                })
            }
            _ => None,
        }
    }
}

/// The directory's data: the nodes and when epoch 0 began.
#[derive(Debug, Clone)]
pub struct Directory {
    nodes: Vec<Node>,
    genesis: SystemTime,
}

/// The epoch at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Epoch {
    id: u32,
    start: SystemTime,
    rotation_id: u32,
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

impl Directory {
    /// A directory of `nodes` whose epoch 0 begins at `genesis`.
    pub fn new(nodes: Vec<Node>, genesis: SystemTime) -> Self {
        Self { nodes, genesis }
    }

    fn epoch(&self, now: SystemTime) -> Epoch {
        let elapsed = now.duration_since(self.genesis).unwrap_or_default();
        let id = u32::try_from(elapsed.as_secs() / EPOCH_DURATION.as_secs()).unwrap_or(u32::MAX);
        Epoch {
            id,
            start: self.genesis + EPOCH_DURATION * id,
            rotation_id: id / ROTATION_EPOCHS,
        }
    }

    /// The answer to `endpoint` (`page` as asked) at `now`.
    pub fn answer(&self, endpoint: Endpoint, page: u32, now: SystemTime) -> Value {
        match endpoint {
            Endpoint::KeyRotationInfo => self.key_rotation_info(now),
            Endpoint::RewardedSet => self.rewarded_set(now),
            Endpoint::Skimmed { kind, v2 } => self.skimmed(kind, v2, page, now),
        }
    }

    /// `KeyRotationInfoResponse`.
    fn key_rotation_info(&self, now: SystemTime) -> Value {
        let epoch = self.epoch(now);
        let starting = epoch.rotation_id * ROTATION_EPOCHS;
        json!({
            "key_rotation_state": { "validity_epochs": ROTATION_EPOCHS, "initial_epoch_id": 0 },
            "current_absolute_epoch_id": epoch.id,
            "current_epoch_start": rfc3339(epoch.start),
            "epoch_duration": { "secs": EPOCH_DURATION.as_secs(), "nanos": 0 },
            "progress": {
                "current_key_rotation_id": epoch.rotation_id,
                "current_rotation_starting_epoch": starting,
                "current_rotation_ending_epoch": starting + ROTATION_EPOCHS - 1,
            },
        })
    }

    fn ids(&self, wanted: impl Fn(Role) -> bool) -> Vec<u32> {
        self.nodes
            .iter()
            .filter(|n| wanted(n.role))
            .map(|n| n.node_id)
            .collect()
    }

    /// `RewardedSetResponse`: the gateway is the entry, each relay its layer.
    fn rewarded_set(&self, now: SystemTime) -> Value {
        json!({
            "epoch_id": self.epoch(now).id,
            "entry_gateways": self.ids(|r| r == Role::Gateway),
            "exit_gateways": [],
            "layer1": self.ids(|r| r == Role::Mix(1)),
            "layer2": self.ids(|r| r == Role::Mix(2)),
            "layer3": self.ids(|r| r == Role::Mix(3)),
            "standby": [],
        })
    }

    /// `PaginatedCachedNodesResponseV2<SkimmedNodeV1>` (or its V1 form): every node on page 0.
    fn skimmed(&self, kind: NodeKind, v2: bool, page: u32, now: SystemTime) -> Value {
        let data: Vec<Value> = if page == 0 {
            self.nodes
                .iter()
                .filter(|n| match kind {
                    NodeKind::All => true,
                    NodeKind::Mixnodes => matches!(n.role, Role::Mix(_)),
                    NodeKind::Gateways => n.role == Role::Gateway,
                })
                .map(skimmed_node)
                .collect()
        } else {
            Vec::new()
        };
        let total = if page == 0 {
            data.len()
        } else {
            self.skimmed(kind, v2, 0, now)["nodes"]["data"]
                .as_array()
                .map_or(0, Vec::len)
        };
        let nodes = json!({
            "pagination": { "total": total, "page": page, "size": data.len() },
            "data": data,
        });
        let epoch = self.epoch(now);
        if v2 {
            json!({
                "metadata": {
                    "status": null,
                    "absolute_epoch_id": epoch.id,
                    "rotation_id": epoch.rotation_id,
                    "refreshed_at": rfc3339(now),
                },
                "nodes": nodes,
            })
        } else {
            json!({ "status": null, "refreshed_at": rfc3339(now), "nodes": nodes })
        }
    }
}

/// `SkimmedNodeV1`.
fn skimmed_node(node: &Node) -> Value {
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
        "x25519_sphinx_pubkey": node.sphinx_key,
        "role": role,
        "supported_roles": supported,
        "entry": entry,
        "performance": "1",
    })
}

/// The `page` query parameter (0 when absent or unreadable).
fn page(uri: &Uri) -> u32 {
    uri.query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("page="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn handle(State(directory): State<Arc<Directory>>, method: Method, uri: Uri) -> Response {
    let endpoint = (method == Method::GET)
        .then(|| Endpoint::from_path(uri.path()))
        .flatten();
    match endpoint {
        Some(endpoint) => {
            Json(directory.answer(endpoint, page(&uri), SystemTime::now())).into_response()
        }
        None => {
            eprintln!("nym-api: no such endpoint: {method} {uri}");
            (StatusCode::NOT_FOUND, "not served by nym-localnet").into_response()
        }
    }
}

/// Binds the directory's listener (port 0 picks one).
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context as _;
    TcpListener::bind(address).await.with_context(|| {
        format!("failed to bind the nym-api address {address}; is it in use? (see --api-address)")
    })
}

/// Serves the directory on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, directory: Directory, shutdown: CancellationToken) {
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(Arc::new(directory));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        eprintln!("nym-api stopped: {e}");
    }
}

#[cfg(test)]
mod tests;
