//! The self-described API that nym-api polls (`/api/v1/...`): the response bodies, shaped field
//! for field like nym-node 1.31.0's (`nym-node-requests`), built once from `Config` and
//! `NodeKeys` at start-up, except `host-information`, signed at each request with the sphinx
//! keys held then (they rotate).
//!
//! Field order matters for `host-information`: nym-api checks the signature by serialising
//! `data` again with its own types, so ours must serialise to the same bytes.

use std::net::IpAddr;

use serde::Serialize;
use tracing::{debug, warn};

use super::rotation::key_ring::{KeyRing, KeySet, RotationKey};
use crate::build_info;
use crate::config::Config;
use crate::keys::NodeKeys;

pub use super::rotation::LEGACY_ROTATION_ID;

/// `/api/v1/health`. nym-node serialises its `Up` status in camelCase: `"up"`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeHealth {
    /// Always `"up"` while the server answers.
    pub status: &'static str,
    /// Seconds since the HTTP API started.
    pub uptime: u64,
}

/// `/api/v1/build-information` (nym's `BinaryBuildInformationOwned`).
#[derive(Debug, Clone, Serialize)]
pub struct BuildInformation {
    /// `nym-gateway`: we do not claim to be nym-node.
    pub binary_name: String,
    /// When the binary was built.
    pub build_timestamp: String,
    /// The package version.
    pub build_version: String,
    /// The git commit built.
    pub commit_sha: String,
    /// That commit's date.
    pub commit_timestamp: String,
    /// That commit's branch.
    pub commit_branch: String,
    /// rustc's version.
    pub rustc_version: String,
    /// stable, beta or nightly.
    pub rustc_channel: String,
    /// debug or release (nym kept the name `cargo_profile`).
    pub cargo_profile: String,
    /// The target triple.
    pub cargo_triple: String,
}

/// `/api/v1/roles`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NodeRoles {
    /// Always false: we do not mix.
    pub mixnode_enabled: bool,
    /// Always true.
    pub gateway_enabled: bool,
    /// Always false: no exit services.
    pub network_requester_enabled: bool,
    /// Always false: no exit services.
    pub ip_packet_router_enabled: bool,
}

/// `/api/v1/host-information`: `data` and its signature.
#[derive(Debug, Clone, Serialize)]
pub struct SignedHostInformation {
    /// What was signed.
    pub data: HostInformation,
    /// Ed25519 over the compact JSON of `data`, bs58.
    pub signature: String,
}

/// Where the node is and which keys it uses.
#[derive(Debug, Clone, Serialize)]
pub struct HostInformation {
    /// The announce host, parsed or resolved.
    pub ip_address: Vec<IpAddr>,
    /// The announce host, if it is a name.
    pub hostname: Option<String>,
    /// The public keys.
    pub keys: HostKeys,
}

/// Public keys, bs58.
#[derive(Debug, Clone, Serialize)]
pub struct HostKeys {
    /// The identity key.
    pub ed25519_identity: String,
    /// The sphinx key (nym-node keeps this deprecated copy of the primary key).
    pub x25519_sphinx: String,
    /// The sphinx key in use.
    pub primary_x25519_sphinx_key: SphinxKey,
    /// The next rotation's key, from the last epoch of a rotation until its boundary.
    pub pre_announced_x25519_sphinx_key: Option<SphinxKey>,
    /// The Noise key of the mix port; `null` when `mix_noise` is off.
    pub x25519_versioned_noise: Option<VersionedNoiseKey>,
}

/// nym-node's `VersionedNoiseKeyV1`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionedNoiseKey {
    /// The Noise version spoken (1).
    pub supported_version: u8,
    /// bs58.
    pub x25519_pubkey: String,
}

/// A sphinx key and the rotation it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct SphinxKey {
    /// The rotation; [`LEGACY_ROTATION_ID`] for a static key.
    pub rotation_id: u32,
    /// bs58.
    pub public_key: String,
}

/// `/api/v1/auxiliary-details`.
#[derive(Debug, Clone, Serialize)]
pub struct AuxiliaryDetails {
    /// Two-letter country code; we announce none.
    pub location: Option<String>,
    /// Ports other nodes should use.
    pub announce_ports: AnnouncePorts,
    /// `accepted_operator_terms_and_conditions` from `config.toml`.
    pub accepted_operator_terms_and_conditions: bool,
}

/// Announced ports; `null` means "the default".
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AnnouncePorts {
    /// We run no verloc listener.
    pub verloc_port: Option<u16>,
    /// The configured mix port.
    pub mix_port: Option<u16>,
}

/// `/api/v1/gateway/client-interfaces/mixnet-websockets`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WebSockets {
    /// The configured clients port.
    pub ws_port: u16,
    /// The wss port, when the wss listener is on (clients use it with `hostname`).
    pub wss_port: Option<u16>,
}

/// The mix and client ports the node listens on: the configured ones, or those the kernel
/// chose when the config says 0 (tests). The announced ports are these, never a 0.
#[derive(Debug, Clone, Copy)]
pub struct ServedPorts {
    /// The mix port.
    pub mix: u16,
    /// The client websocket port.
    pub clients: u16,
    /// The client wss port, if that listener is on.
    pub wss: Option<u16>,
}

/// Every self-described body except health.
#[derive(Clone)]
pub struct Described {
    /// `/api/v1/build-information`
    pub build_information: BuildInformation,
    /// `/api/v1/roles`
    pub roles: NodeRoles,
    /// `/api/v1/host-information` without its sphinx keys, which come from `keys`.
    host: HostInformation,
    /// The sphinx keys held.
    keys: KeyRing,
    /// Signs host-information.
    identity: std::sync::Arc<ed25519_dalek::SigningKey>,
    /// `/api/v1/auxiliary-details`
    pub auxiliary_details: AuxiliaryDetails,
    /// `/api/v1/gateway/client-interfaces/mixnet-websockets`
    pub websockets: WebSockets,
}

impl Described {
    /// The bodies for `config` and `keys`; `announce_ips` are the announce host's addresses
    /// (see [`announce_ips`]), `ports` where the node listens, `sphinx` the rotating keys,
    /// `noise` the mix port's Noise key if it speaks Noise.
    pub fn new(
        config: &Config,
        keys: &NodeKeys,
        announce_ips: Vec<IpAddr>,
        ports: ServedPorts,
        sphinx: KeyRing,
        noise: Option<[u8; 32]>,
    ) -> Self {
        let g = &config.gateway;
        let host = g.announce_address.trim();
        let hostname = host.parse::<IpAddr>().is_err().then(|| host.to_owned());
        // The sphinx keys are filled in at each request.
        let data = HostInformation {
            ip_address: announce_ips,
            hostname,
            keys: HostKeys {
                ed25519_identity: keys.identity_public_bs58(),
                x25519_sphinx: String::new(),
                primary_x25519_sphinx_key: SphinxKey {
                    rotation_id: LEGACY_ROTATION_ID,
                    public_key: String::new(),
                },
                pre_announced_x25519_sphinx_key: None,
                x25519_versioned_noise: noise.map(|key| VersionedNoiseKey {
                    supported_version: super::noise::frame::VERSION,
                    x25519_pubkey: bs58::encode(key).into_string(),
                }),
            },
        };
        Self {
            build_information: BuildInformation::ours(),
            roles: NodeRoles {
                mixnode_enabled: false,
                gateway_enabled: true,
                network_requester_enabled: false,
                ip_packet_router_enabled: false,
            },
            host: data,
            keys: sphinx,
            identity: std::sync::Arc::new(keys.identity.clone()),
            auxiliary_details: AuxiliaryDetails {
                location: None,
                announce_ports: AnnouncePorts {
                    verloc_port: None,
                    mix_port: Some(ports.mix),
                },
                accepted_operator_terms_and_conditions: g.accepted_operator_terms_and_conditions,
            },
            websockets: WebSockets {
                ws_port: ports.clients,
                wss_port: ports.wss,
            },
        }
    }
}

impl Described {
    /// `/api/v1/host-information` now: the primary key, the pre-announced one if any, signed.
    pub fn host_information(&self) -> SignedHostInformation {
        let keys = self.keys.current();
        self.host_information_with(&keys)
    }

    /// Signed host-information announcing `keys`.
    pub fn host_information_with(&self, keys: &KeySet) -> SignedHostInformation {
        let mut data = self.host.clone();
        data.keys.x25519_sphinx = bs58::encode(keys.primary.public).into_string();
        data.keys.primary_x25519_sphinx_key = SphinxKey::of(&keys.primary);
        data.keys.pre_announced_x25519_sphinx_key = keys.pre_announced().map(|k| SphinxKey::of(k));
        let signature = bs58::encode(
            ed25519_dalek::Signer::sign(self.identity.as_ref(), &signed_bytes(&data)).to_bytes(),
        )
        .into_string();
        SignedHostInformation { data, signature }
    }
}

impl SphinxKey {
    fn of(key: &RotationKey) -> Self {
        Self {
            rotation_id: key.rotation_id,
            public_key: bs58::encode(key.public).into_string(),
        }
    }
}

/// The exact bytes the signature covers: compact `serde_json` of `data`.
pub fn signed_bytes(data: &HostInformation) -> Vec<u8> {
    // Serialising plain strings, numbers and IPs cannot fail.
    serde_json::to_vec(data).unwrap_or_default()
}

impl BuildInformation {
    /// This binary's facts, from `build.rs`.
    pub fn ours() -> Self {
        Self {
            binary_name: build_info::BINARY_NAME.to_owned(),
            build_timestamp: build_info::BUILD_TIMESTAMP.to_owned(),
            build_version: build_info::VERSION.to_owned(),
            commit_sha: build_info::COMMIT_SHA.to_owned(),
            commit_timestamp: build_info::COMMIT_DATE.to_owned(),
            commit_branch: build_info::COMMIT_BRANCH.to_owned(),
            rustc_version: build_info::RUSTC_VERSION.to_owned(),
            rustc_channel: build_info::RUSTC_CHANNEL.to_owned(),
            cargo_profile: build_info::CARGO_PROFILE.to_owned(),
            cargo_triple: build_info::CARGO_TRIPLE.to_owned(),
        }
    }
}

/// How long resolving the announce host may take at start.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The announce host's IP addresses: the host itself if it is an IP, else what DNS returns.
/// nym-api rejects loopback, unspecified and multicast addresses, so those are warned about.
pub async fn announce_ips(host: &str) -> Vec<IpAddr> {
    let host = host.trim();
    let ips = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        // Bounded: an offline machine's resolver must not hold up the start.
        Err(_) => {
            match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, 0))).await {
                Ok(Ok(addrs)) => {
                    let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                    ips.dedup();
                    ips
                }
                Ok(Err(e)) => {
                    warn!(host, error = %e, "could not resolve announce_address; /api/v1/host-information lists no IP");
                    Vec::new()
                }
                Err(_) => {
                    warn!(host, "resolving announce_address timed out; /api/v1/host-information lists no IP");
                    Vec::new()
                }
            }
        }
    };
    if ips.iter().any(|ip| ip.is_loopback()) {
        // A local gateway (the default): nothing for nym-api to describe, nothing to warn about.
        debug!(
            host,
            "announce_address is a loopback address; nym-api will not describe this node"
        );
    } else if ips
        .iter()
        .any(|ip| ip.is_unspecified() || ip.is_multicast())
    {
        warn!(
            host,
            "announce_address is unspecified or multicast; nym-api will not describe this node"
        );
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Network;
    use ed25519_dalek::{Signature, SigningKey, Verifier};
    use x25519_dalek::StaticSecret;

    fn fixed_keys() -> NodeKeys {
        NodeKeys {
            identity: SigningKey::from_bytes(&[1; 32]),
            sphinx: StaticSecret::from([2; 32]),
        }
    }

    /// The static key alone, as a gateway without nym-api holds it.
    pub(crate) fn static_ring(secret: [u8; 32]) -> KeyRing {
        let maker = crate::node::rotation::KeyMaker {
            implementation: crate::config::FinalHopImplementation::Reference,
            replay: crate::node::replay::ReplaySettings::from_config(&Default::default()),
            store: "/nonexistent/db.sqlite".into(),
        };
        let key = maker
            .make(LEGACY_ROTATION_ID, &StaticSecret::from(secret))
            .unwrap();
        KeyRing::new(KeySet::single(std::sync::Arc::new(key)))
    }

    fn fixed() -> Described {
        let dir = std::path::Path::new("/nonexistent");
        let mut config = Config::new("described", dir, &Network::mainnet());
        config.gateway.announce_address = "gateway.example.org".to_owned();
        config.gateway.accepted_operator_terms_and_conditions = true;
        let ports = ServedPorts {
            mix: 1789,
            clients: 9000,
            wss: None,
        };
        Described::new(
            &config,
            &fixed_keys(),
            vec!["203.0.113.7".parse().unwrap()],
            ports,
            static_ring([2; 32]),
            None,
        )
    }

    fn json(value: &impl Serialize) -> String {
        serde_json::to_string(value).unwrap()
    }

    #[test]
    fn host_information_signature_verifies_over_the_served_data() {
        let served = json(&fixed().host_information());
        // The signed bytes are `data` exactly as served (compact, in nym-node's field order).
        let (data, signature) = served
            .strip_prefix(r#"{"data":"#)
            .and_then(|rest| rest.rsplit_once(r#","signature":""#))
            .unwrap();
        let signature = bs58::decode(signature.trim_end_matches("\"}"))
            .into_vec()
            .unwrap();
        let signature = Signature::from_slice(&signature).unwrap();
        let identity = fixed_keys().identity.verifying_key();
        identity.verify(data.as_bytes(), &signature).unwrap();
        assert!(identity.verify(b"other", &signature).is_err());
    }

    #[test]
    fn host_information_matches_nym_node_field_for_field() {
        let expected = concat!(
            r#"{"data":{"ip_address":["203.0.113.7"],"hostname":"gateway.example.org","#,
            r#""keys":{"ed25519_identity":"IDENTITY","x25519_sphinx":"SPHINX","#,
            r#""primary_x25519_sphinx_key":{"rotation_id":4294967295,"public_key":"SPHINX"},"#,
            r#""pre_announced_x25519_sphinx_key":null,"x25519_versioned_noise":null}},"#,
            r#""signature":"SIGNATURE"}"#
        );
        let keys = fixed_keys();
        let expected = expected
            .replace("IDENTITY", &keys.identity_public_bs58())
            .replace("SPHINX", &keys.sphinx_public_bs58())
            .replace("SIGNATURE", &fixed().host_information().signature);
        assert_eq!(json(&fixed().host_information()), expected);
    }

    #[test]
    fn host_information_for_fixed_keys_is_byte_exact() {
        assert_eq!(json(&fixed().host_information()), HOST_INFORMATION_VECTOR);
    }

    /// Identity key bytes [1; 32], sphinx secret [2; 32], announce host gateway.example.org
    /// resolved to 203.0.113.7. Ed25519 is deterministic, so the signature is fixed too.
    const HOST_INFORMATION_VECTOR: &str = concat!(
        r#"{"data":{"ip_address":["203.0.113.7"],"hostname":"gateway.example.org","keys":{"#,
        r#""ed25519_identity":"AKnL4NNf3DGWZJS6cPknBuEGnVsV4A4m5tgebLHaRSZ9","#,
        r#""x25519_sphinx":"EuHtd9yCn95edmJqLKFeyXeoPw9nPzp1HTwdJEWEw9YL","#,
        r#""primary_x25519_sphinx_key":{"rotation_id":4294967295,"#,
        r#""public_key":"EuHtd9yCn95edmJqLKFeyXeoPw9nPzp1HTwdJEWEw9YL"},"#,
        r#""pre_announced_x25519_sphinx_key":null,"x25519_versioned_noise":null}},"#,
        r#""signature":"AFuJ6hv5Hkm3tmmBLEefqWfuc3KGLJMUe9AbLkCXpu33AermAEBt1Xg6KHtdyQDHzEk22bFJi8KjoDhXAWyjgTz"}"#
    );

    #[test]
    fn the_other_bodies_match_nym_node_field_for_field() {
        let d = fixed();
        assert_eq!(
            json(&d.roles),
            r#"{"mixnode_enabled":false,"gateway_enabled":true,"network_requester_enabled":false,"ip_packet_router_enabled":false}"#
        );
        assert_eq!(
            json(&d.auxiliary_details),
            r#"{"location":null,"announce_ports":{"verloc_port":null,"mix_port":1789},"accepted_operator_terms_and_conditions":true}"#
        );
        assert_eq!(json(&d.websockets), r#"{"ws_port":9000,"wss_port":null}"#);
        assert_eq!(
            json(&NodeHealth {
                status: "up",
                uptime: 42
            }),
            r#"{"status":"up","uptime":42}"#
        );
        let build = serde_json::to_value(&d.build_information).unwrap();
        let keys: Vec<&str> = build
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "binary_name",
            "build_timestamp",
            "build_version",
            "commit_sha",
            "commit_timestamp",
            "commit_branch",
            "rustc_version",
            "rustc_channel",
            "cargo_profile",
            "cargo_triple",
        ];
        let mut keys = keys;
        keys.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(build["binary_name"], "nym-gateway");
        assert_eq!(build["build_version"], build_info::VERSION);
    }

    /// A node announcing the IP 198.51.100.1, with Noise key `noise` if any.
    fn on_an_ip(noise: Option<[u8; 32]>) -> Described {
        let mut config = Config::new("d", std::path::Path::new("/x"), &Network::mainnet());
        config.gateway.announce_address = "198.51.100.1".to_owned();
        Described::new(
            &config,
            &fixed_keys(),
            vec!["198.51.100.1".parse().unwrap()],
            ServedPorts {
                mix: 1789,
                clients: 9000,
                wss: None,
            },
            static_ring([2; 32]),
            noise,
        )
    }

    #[test]
    fn an_ip_announce_host_has_no_hostname() {
        assert_eq!(on_an_ip(None).host_information().data.hostname, None);
    }

    #[test]
    fn a_noise_key_is_announced_as_nym_nodes_versioned_key() {
        let d = on_an_ip(Some([9; 32]));
        let served = json(&d.host_information());
        let expected = format!(
            r#""pre_announced_x25519_sphinx_key":null,"x25519_versioned_noise":{{"supported_version":1,"x25519_pubkey":"{}"}}}}}},"signature":"#,
            bs58::encode([9u8; 32]).into_string()
        );
        assert!(served.contains(&expected), "{served}");
    }

    #[tokio::test]
    async fn an_ip_announce_host_is_its_own_address() {
        assert_eq!(
            announce_ips(" 2001:db8::1 ").await,
            vec!["2001:db8::1".parse::<IpAddr>().unwrap()]
        );
    }
}
