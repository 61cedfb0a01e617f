//! What nym-api learns from each node's self-described HTTP API (`/api/v1/...`), and the checks
//! it makes before believing it: the signed host information must carry the identity the node
//! is listed with and a valid signature over its own compact JSON. The described data gives the
//! sphinx key of each rotation, which is what the directory's node lists announce.
//!
//! Unlike nym-api we accept loopback addresses (nym-api's `allow_all_ip_addresses` local-testnet
//! setting) and only the current signature format (nym-node 1.31.0 and our gateway sign it; the
//! legacy formats nym-api still tries are for older nodes).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use anyhow::{bail, ensure, Context as _};
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clock::rfc3339;
use crate::http;

/// How long one node answer may take (nym-api: 5 s).
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The sphinx-key rotation id of a key that never rotates (legacy nodes, and our gateway
/// until nym-api first answers it): such a key is announced whatever the current rotation.
pub use nym_gateway::node::rotation::LEGACY_ROTATION_ID;

/// `/api/v1/host-information`: `data` and the identity key's signature over its compact JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedHostInformation {
    /// What was signed.
    pub data: HostInformation,
    /// bs58 Ed25519 signature.
    pub signature: String,
}

/// nym-node's `HostInformation`, fields in its serialisation order (the signature covers the
/// bytes, so the order matters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInformation {
    /// Announced addresses.
    pub ip_address: Vec<IpAddr>,
    /// Announced host name.
    pub hostname: Option<String>,
    /// Public keys.
    pub keys: HostKeys,
}

/// nym-node's `HostKeys`, bs58 keys, in its serialisation order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKeys {
    /// Identity key.
    pub ed25519_identity: String,
    /// The primary sphinx key again (kept by nym-node for old readers).
    pub x25519_sphinx: String,
    /// The sphinx key of the current rotation (or a legacy static key).
    pub primary_x25519_sphinx_key: SphinxKey,
    /// The next rotation's key, announced an epoch before that rotation begins.
    #[serde(default)]
    pub pre_announced_x25519_sphinx_key: Option<SphinxKey>,
    /// The Noise key of the mix port.
    #[serde(default)]
    pub x25519_versioned_noise: Option<NoiseKey>,
}

/// A sphinx key and its rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SphinxKey {
    /// The rotation, or [`LEGACY_ROTATION_ID`].
    pub rotation_id: u32,
    /// bs58 x25519 key.
    pub public_key: String,
}

/// A versioned Noise key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseKey {
    /// Noise protocol version.
    pub supported_version: u8,
    /// bs58 x25519 key.
    pub x25519_pubkey: String,
}

/// `/api/v1/roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct NodeRoles {
    /// Mixes.
    pub mixnode_enabled: bool,
    /// Serves clients.
    pub gateway_enabled: bool,
    /// Runs a network requester.
    pub network_requester_enabled: bool,
    /// Runs an IP packet router.
    pub ip_packet_router_enabled: bool,
}

/// The sphinx key to announce for `rotation`, as nym-api picks it: a legacy key always, else
/// the key of that rotation (current or pre-announced), else (a node behind) its current key.
pub fn sphinx_key_for(
    current: &SphinxKey,
    pre_announced: Option<&SphinxKey>,
    rotation: u32,
) -> SphinxKey {
    if current.rotation_id == LEGACY_ROTATION_ID || current.rotation_id == rotation {
        return current.clone();
    }
    match pre_announced {
        Some(next) if next.rotation_id == rotation => next.clone(),
        _ => current.clone(),
    }
}

/// A node's self-description, checked.
#[derive(Debug, Clone)]
pub struct Described {
    /// Signed host information (signature verified).
    pub host: HostInformation,
    /// Declared roles.
    pub roles: NodeRoles,
    /// `/api/v1/build-information`, as given.
    pub build_information: Value,
    /// `/api/v1/auxiliary-details`, as given (nym-api's default when the node has none).
    pub auxiliary_details: Value,
    /// `/api/v1/gateway/client-interfaces/mixnet-websockets`, as given.
    pub websockets: Value,
    /// When it was read.
    pub polled: SystemTime,
}

impl Described {
    /// The sphinx key nym-api would list for `rotation`.
    pub fn sphinx_key(&self, rotation: u32) -> SphinxKey {
        let keys = &self.host.keys;
        sphinx_key_for(
            &keys.primary_x25519_sphinx_key,
            keys.pre_announced_x25519_sphinx_key.as_ref(),
            rotation,
        )
    }

    /// nym-api's `NymNodeDescriptionV1` of node `node_id` (`/v1/nym-nodes/described`).
    pub fn description_v1(&self, node_id: u32) -> Value {
        let keys = &self.host.keys;
        let r = &self.roles;
        json!({
            "node_id": node_id,
            "contract_node_type": "nym_node",
            "description": {
                "last_polled": rfc3339(self.polled),
                "host_information": {
                    "ip_address": self.host.ip_address,
                    "hostname": self.host.hostname,
                    "keys": {
                        "ed25519": keys.ed25519_identity,
                        "x25519": keys.x25519_sphinx,
                        "current_x25519_sphinx_key": keys.primary_x25519_sphinx_key,
                        "pre_announced_x25519_sphinx_key": keys.pre_announced_x25519_sphinx_key,
                        "x25519_versioned_noise": keys.x25519_versioned_noise,
                    },
                },
                "declared_role": {
                    "mixnode": r.mixnode_enabled,
                    "entry": r.gateway_enabled,
                    "exit_nr": r.gateway_enabled && r.network_requester_enabled,
                    "exit_ipr": r.gateway_enabled && r.ip_packet_router_enabled,
                },
                "auxiliary_details": self.auxiliary_details,
                "build_information": self.build_information,
                "network_requester": null,
                "ip_packet_router": null,
                "authenticator": null,
                "wireguard": null,
                "mixnet_websockets": self.websockets,
            },
        })
    }
}

/// Checks signed host information: the identity the node is listed with, a valid signature,
/// keys that decode.
pub fn verify(signed: &SignedHostInformation, expected_identity: &str) -> anyhow::Result<()> {
    let keys = &signed.data.keys;
    ensure!(
        keys.ed25519_identity == expected_identity,
        "the node announces identity {} but is listed as {expected_identity}",
        keys.ed25519_identity
    );
    let identity: [u8; 32] = decode(&keys.ed25519_identity).context("identity key")?;
    let identity = VerifyingKey::from_bytes(&identity).context("identity key")?;
    let signature: [u8; 64] = decode(&signed.signature).context("signature")?;
    let signed_bytes = serde_json::to_vec(&signed.data)?;
    identity
        .verify(&signed_bytes, &Signature::from_bytes(&signature))
        .context("the host information's signature is not valid")?;
    let sphinx = std::iter::once(&keys.primary_x25519_sphinx_key)
        .chain(&keys.pre_announced_x25519_sphinx_key)
        .map(|k| &k.public_key)
        .chain(std::iter::once(&keys.x25519_sphinx));
    for key in sphinx {
        decode::<32>(key).with_context(|| format!("sphinx key {key:?}"))?;
    }
    Ok(())
}

/// A bs58 string of exactly `N` bytes.
fn decode<const N: usize>(text: &str) -> anyhow::Result<[u8; N]> {
    let bytes = bs58::decode(text).into_vec().context("not bs58")?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| anyhow::anyhow!("{} bytes, not {N}", b.len()))
}

async fn get_json<T: for<'de> Deserialize<'de>>(
    address: SocketAddr,
    path: &str,
) -> anyhow::Result<T> {
    let body = http::get(address, path, QUERY_TIMEOUT).await?;
    serde_json::from_slice(&body).with_context(|| format!("GET {path}: unexpected answer"))
}

/// Reads and checks the self-description of the node whose HTTP API is at `address` and which
/// is listed with `expected_identity`, as nym-api's describe-cache refresh does.
pub async fn describe(address: SocketAddr, expected_identity: &str) -> anyhow::Result<Described> {
    let signed: SignedHostInformation = get_json(address, "/api/v1/host-information").await?;
    verify(&signed, expected_identity)?;
    let roles: NodeRoles = get_json(address, "/api/v1/roles").await?;
    let build_information: Value = get_json(address, "/api/v1/build-information").await?;
    if !build_information.is_object() {
        bail!("the build information is not an object");
    }
    // Older nodes lack these details; nym-api uses the defaults then.
    let auxiliary_details = get_json(address, "/api/v1/auxiliary-details")
        .await
        .unwrap_or_else(|_: anyhow::Error| {
            json!({
                "location": null,
                "announce_ports": {"verloc_port": null, "mix_port": null},
                "accepted_operator_terms_and_conditions": false,
            })
        });
    let websockets: Value = get_json(
        address,
        "/api/v1/gateway/client-interfaces/mixnet-websockets",
    )
    .await?;
    Ok(Described {
        host: signed.data,
        roles,
        build_information,
        auxiliary_details,
        websockets,
        polled: SystemTime::now(),
    })
}

#[cfg(test)]
pub(crate) mod tests;
