//! The self-described API nym-api polls, served by a whole node started in-process on port-0
//! listeners: every endpoint answers without a token, with values from the node's keys and
//! config, and host-information's signature verifies over `data` exactly as served.

use std::net::SocketAddr;

use ed25519_dalek::{Signature, Verifier};
use nym_gateway::config::Config;
use nym_gateway::keys::NodeKeys;
use nym_gateway::network::Network;
use nym_gateway::node::{self, Listeners};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Status line and body of a plain HTTP/1.0 GET.
async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

async fn get_json(addr: SocketAddr, path: &str) -> (String, Value) {
    let (status, body) = http_get(addr, path).await;
    assert!(status.contains(" 200 "), "{path}: {status} {body}");
    (body.clone(), serde_json::from_str(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_describes_itself_publicly_with_its_keys_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let network = Network::mainnet();
    let mut config = Config::new("described", dir.path(), &network);
    config.gateway.listening_address = [127, 0, 0, 1].into();
    config.gateway.announce_address = "127.0.0.1".to_owned();
    config.gateway.mix_port = 0;
    config.gateway.clients_port = 0;
    config.gateway.http_api_address = SocketAddr::from(([127, 0, 0, 1], 0));
    config.gateway.http_api_token = Some("s3cret".to_owned());
    config.gateway.accepted_operator_terms_and_conditions = true;
    std::fs::create_dir_all(config.gateway.persistent_storage.parent().unwrap()).unwrap();
    let keys = NodeKeys::generate().unwrap();
    let identity = keys.identity.verifying_key();
    let identity_bs58 = keys.identity_public_bs58();
    let sphinx_bs58 = keys.sphinx_public_bs58();
    let (mix_port, clients_port) = (config.gateway.mix_port, config.gateway.clients_port);

    let listeners = Listeners::bind(&config).await.unwrap();
    let http = listeners.http_address().unwrap();
    let shutdown = CancellationToken::new();
    let node = tokio::spawn(node::run(
        config,
        keys,
        network,
        listeners,
        shutdown.clone(),
    ));

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

    let (raw, host) = get_json(http, "/api/v1/host-information").await;
    assert_eq!(
        host["data"],
        json!({"ip_address": ["127.0.0.1"], "hostname": null, "keys": {
            "ed25519_identity": identity_bs58, "x25519_sphinx": sphinx_bs58,
            "primary_x25519_sphinx_key": {"rotation_id": u32::MAX, "public_key": sphinx_bs58},
            "pre_announced_x25519_sphinx_key": null, "x25519_versioned_noise": null}})
    );
    let data = raw
        .strip_prefix(r#"{"data":"#)
        .and_then(|rest| rest.rsplit_once(r#","signature":"#))
        .unwrap()
        .0;
    let signature = bs58::decode(host["signature"].as_str().unwrap())
        .into_vec()
        .unwrap();
    identity
        .verify(data.as_bytes(), &Signature::from_slice(&signature).unwrap())
        .unwrap();

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

    shutdown.cancel();
    node.await.unwrap().unwrap();
}
