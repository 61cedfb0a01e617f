//! The self-described API nym-api polls, served by a whole node started in-process on port-0
//! listeners: every endpoint answers without a token, with values from the node's keys and
//! config, and host-information's signature verifies over `data` exactly as served.

mod util;

use std::net::SocketAddr;

use nym_gateway::keys::NodeKeys;
use nym_gateway::network::Network;
use serde_json::{json, Value};
use util::in_process::{http_get, loopback_config, verified_host_data, RunningNode};

async fn get_json(addr: SocketAddr, path: &str) -> (String, Value) {
    let (status, body) = http_get(addr, path).await;
    assert!(status.contains(" 200 "), "{path}: {status} {body}");
    (body.clone(), serde_json::from_str(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_describes_itself_publicly_with_its_keys_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = loopback_config("described", dir.path(), &Network::mainnet());
    config.gateway.announce_address = "127.0.0.1".to_owned();
    config.gateway.http_api_token = Some("s3cret".to_owned());
    config.gateway.accepted_operator_terms_and_conditions = true;
    let keys = NodeKeys::generate().unwrap();
    let identity = keys.identity.verifying_key();
    let identity_bs58 = keys.identity_public_bs58();
    let sphinx_bs58 = keys.sphinx_public_bs58();

    let node = RunningNode::start(&config, keys).await;
    // Configured as 0: what is announced must be the ports the kernel chose.
    let (mix_port, clients_port, http) = (node.mix.port(), node.clients.port(), node.http);

    let (_, health) = get_json(http, "/api/v1/health").await;
    assert_eq!(health["status"], "up");
    assert!(health["uptime"].is_u64());

    let (_, build) = get_json(http, "/api/v1/build-information").await;
    assert_eq!(build["binary_name"], "nym-gateway");
    assert_eq!(build["build_version"], nym_gateway::build_info::VERSION);

    let (_, roles) = get_json(http, "/api/v1/roles").await;
    assert_eq!(
        roles,
        json!({"mixnode_enabled": false, "gateway_enabled": true,
               "network_requester_enabled": false, "ip_packet_router_enabled": false})
    );

    // The Noise key the node made at start, beside the sphinx key.
    let noise_bs58 = bs58::encode(
        nym_gateway::keys::NoiseKey::load_or_create(nym_gateway::node::rotation::key_dir(&config))
            .unwrap()
            .public,
    )
    .into_string();
    let (raw, _) = get_json(http, "/api/v1/host-information").await;
    assert_eq!(
        verified_host_data(&raw, &identity),
        json!({"ip_address": ["127.0.0.1"], "hostname": null, "keys": {
            "ed25519_identity": identity_bs58, "x25519_sphinx": sphinx_bs58,
            "primary_x25519_sphinx_key": {"rotation_id": u32::MAX, "public_key": sphinx_bs58},
            "pre_announced_x25519_sphinx_key": null,
            "x25519_versioned_noise": {"supported_version": 1, "x25519_pubkey": noise_bs58}}})
    );

    let (_, aux) = get_json(http, "/api/v1/auxiliary-details").await;
    assert_eq!(
        aux,
        json!({"location": null, "announce_ports": {"verloc_port": null, "mix_port": mix_port},
               "accepted_operator_terms_and_conditions": true})
    );

    let (_, ws) = get_json(http, "/api/v1/gateway/client-interfaces/mixnet-websockets").await;
    assert_eq!(ws, json!({"ws_port": clients_port, "wss_port": null}));

    // The old routes are unchanged: /health public, /metrics behind the token.
    let (_, old_health) = get_json(http, "/health").await;
    assert_eq!(old_health, json!({"status": "ok"}));
    let (status, _) = http_get(http, "/metrics").await;
    assert!(status.contains(" 401 "), "{status}");

    node.stop().await;
}
