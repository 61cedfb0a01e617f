use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use axum::routing::get;
use axum::Json;

use super::*;
use crate::described::tests::{key, signed_with};
use crate::described::{SignedHostInformation, LEGACY_ROTATION_ID};
use crate::nodes::Implementation;

fn node(role: Role, port: u16) -> Node {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    Node {
        role,
        implementation: Implementation::NymGateway,
        id: role.id(),
        node_id: role.node_id(),
        identity_key: format!("identity{port}"),
        sphinx_key: format!("sphinx{port}"),
        sphinx_rotation_id: LEGACY_ROTATION_ID,
        noise_key: port.is_multiple_of(20).then(|| format!("noise{port}")),
        mix_address: SocketAddr::new(ip, port),
        clients_address: SocketAddr::new(ip, port + 1),
        http_address: SocketAddr::new(ip, port + 2),
        config_file: PathBuf::new(),
        home: PathBuf::new(),
        log_file: PathBuf::new(),
    }
}

fn directory(genesis: SystemTime) -> Directory {
    let directory = Directory::new(Clock::new(genesis, Duration::from_secs(3600), 24));
    directory.set_nodes(
        Role::ALL
            .iter()
            .enumerate()
            .map(|(i, role)| node(*role, 10_000 + 10 * i as u16))
            .collect(),
    );
    directory
}

fn list(d: &Directory, kind: NodeKind, layout: ListLayout, page: u32, now: SystemTime) -> Value {
    d.node_list(kind, layout, false, page, now)
}

#[test]
fn lists_rewarded_set_and_rotation_name_the_same_epoch() {
    let genesis = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let d = directory(genesis);
    let later = genesis + Duration::from_secs(25 * 3600 + 5);
    let info = d.key_rotation_info(later);
    assert_eq!(info["current_absolute_epoch_id"], 25);
    assert_eq!(info["progress"]["current_key_rotation_id"], 1);
    assert_eq!(d.rewarded_set(later)["epoch_id"], 25);
    let all = list(&d, NodeKind::All, ListLayout::V2, 0, later);
    assert_eq!(all["metadata"]["absolute_epoch_id"], 25);
    assert_eq!(all["metadata"]["rotation_id"], 1);
}

#[test]
fn the_rewarded_set_puts_each_node_in_its_place() {
    let d = directory(SystemTime::now());
    let set = d.rewarded_set(SystemTime::now());
    assert_eq!(set["entry_gateways"], json!([4]));
    assert_eq!(set["exit_gateways"], json!([]));
    assert_eq!(set["layer1"], json!([1]));
    assert_eq!(set["layer2"], json!([2]));
    assert_eq!(set["layer3"], json!([3]));
    assert_eq!(set["standby"], json!([]));
}

#[test]
fn skimmed_nodes_carry_what_a_route_needs() {
    let now = SystemTime::now();
    let d = directory(now);
    let mixes = list(&d, NodeKind::Mixnodes, ListLayout::V2, 0, now);
    let data = mixes["nodes"]["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(
        mixes["nodes"]["pagination"],
        json!({"total": 3, "page": 0, "size": 3})
    );
    assert_eq!(
        data[0],
        json!({
            "node_id": 1,
            "ed25519_identity_pubkey": "identity10000",
            "ip_addresses": ["127.0.0.1"],
            "mix_port": 10000,
            "x25519_sphinx_pubkey": "sphinx10000",
            "role": {"Mixnode": {"layer": 1}},
            "supported_roles": {"mixnode": true, "entry": false, "exit_nr": false, "exit_ipr": false},
            "entry": null,
            "performance": "1",
        })
    );

    let gateways = list(&d, NodeKind::Gateways, ListLayout::V1, 0, now);
    assert!(gateways["status"].is_null());
    let gateway = &gateways["nodes"]["data"][0];
    assert_eq!(gateway["role"], "EntryGateway");
    assert_eq!(gateway["supported_roles"]["entry"], true);
    assert_eq!(
        gateway["entry"],
        json!({"hostname": null, "ws_port": 10031, "wss_port": null})
    );

    // Everything is on page 0; a later page is empty but reports the same total.
    let page1 = list(&d, NodeKind::All, ListLayout::V2, 1, now);
    assert_eq!(page1["nodes"]["data"], json!([]));
    assert_eq!(page1["nodes"]["pagination"]["total"], 4);
}

#[test]
fn semi_skimmed_nodes_wrap_the_skimmed_ones_with_their_noise_key() {
    let now = SystemTime::now();
    let d = directory(now);
    let semi = d.node_list(NodeKind::All, ListLayout::V2, true, 0, now);
    let skimmed = list(&d, NodeKind::All, ListLayout::V2, 0, now);
    let data = semi["nodes"]["data"].as_array().unwrap();
    assert_eq!(data.len(), 4);
    for (wrapped, plain) in data
        .iter()
        .zip(skimmed["nodes"]["data"].as_array().unwrap())
    {
        assert_eq!(&wrapped["basic"], plain);
        // Not yet described: the key read when the node was prepared, if it has one.
        let port = plain["mix_port"].as_u64().unwrap();
        let key = &wrapped["x25519_noise_versioned_key"];
        if port.is_multiple_of(20) {
            assert_eq!(
                key,
                &json!({ "supported_version": 1, "x25519_pubkey": format!("noise{port}") })
            );
        } else {
            assert!(key.is_null());
        }
    }
}

/// A node's self-described API, answering with `host`.
async fn serve_node(host: SignedHostInformation) -> SocketAddr {
    let app = axum::Router::new()
        .route(
            "/api/v1/host-information",
            get(move || async move { Json(host) }),
        )
        .route(
            "/api/v1/roles",
            get(|| async {
                Json(json!({"mixnode_enabled": true, "gateway_enabled": false,
                    "network_requester_enabled": false, "ip_packet_router_enabled": false}))
            }),
        )
        .route(
            "/api/v1/build-information",
            get(|| async { Json(json!({"binary_name": "test-node"})) }),
        )
        .route(
            "/api/v1/gateway/client-interfaces/mixnet-websockets",
            get(|| async { Json(json!({"ws_port": 1, "wss_port": null})) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// The directory of [`directory`] whose layer-2 node is the one `host` describes, served.
async fn directory_with_described_node(
    host: SignedHostInformation,
    genesis: SystemTime,
) -> (Directory, Node) {
    let d = directory(genesis);
    let mut nodes = d.nodes();
    let mix2 = &mut nodes[1];
    mix2.identity_key = host.data.keys.ed25519_identity.clone();
    mix2.http_address = serve_node(host).await;
    let mix2 = mix2.clone();
    d.set_nodes(nodes);
    (d, mix2)
}

#[tokio::test]
async fn lists_follow_the_keys_nodes_describe_for_each_rotation() {
    let genesis = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let (k0, k1) = (
        bs58::encode([10; 32]).into_string(),
        bs58::encode([11; 32]).into_string(),
    );
    let host = signed_with(key(0, &k0), Some(key(1, &k1)));
    let (d, mix2) = directory_with_described_node(host, genesis).await;
    let key_of_mix2 = |at: SystemTime| {
        let all = list(&d, NodeKind::Mixnodes, ListLayout::V2, 0, at);
        all["nodes"]["data"][1]["x25519_sphinx_pubkey"].clone()
    };
    let rotation0 = genesis + Duration::from_secs(60);
    let rotation1 = genesis + Duration::from_secs(24 * 3600 + 60);

    // Not yet described: the key read from its files.
    assert_eq!(key_of_mix2(rotation0), json!(mix2.sphinx_key));
    assert!(d.described_nodes(0)["data"].as_array().unwrap().is_empty());

    let failed = d.refresh_all().await;
    assert_eq!(failed.len(), 3, "only mix 2 answers: {failed:?}");
    assert_eq!(key_of_mix2(rotation0), json!(k0));
    assert_eq!(
        key_of_mix2(rotation1),
        json!(k1),
        "the pre-announced key, once due"
    );
    let described = d.described_nodes(0);
    assert_eq!(described["pagination"]["total"], 1);
    assert_eq!(described["data"][0]["node_id"], 2);
    // Other nodes keep their static keys.
    let all = list(&d, NodeKind::Mixnodes, ListLayout::V2, 0, rotation1);
    assert_eq!(
        all["nodes"]["data"][0]["x25519_sphinx_pubkey"],
        "sphinx10000"
    );
}

#[tokio::test]
async fn a_node_announcing_another_identity_is_not_believed() {
    let k0 = bs58::encode([10; 32]).into_string();
    let host = signed_with(key(0, &k0), None);
    let (d, mix2) = directory_with_described_node(host, SystemTime::now()).await;
    let mut nodes = d.nodes();
    nodes[1].identity_key = bs58::encode([3; 32]).into_string();
    d.set_nodes(nodes);
    let err = d.refresh(&d.nodes()[1]).await.unwrap_err();
    assert!(format!("{err:#}").contains("listed as"), "{err:#}");
    assert_eq!(
        list(&d, NodeKind::Mixnodes, ListLayout::V2, 0, SystemTime::now())["nodes"]["data"][1]
            ["x25519_sphinx_pubkey"],
        json!(mix2.sphinx_key)
    );
}

#[tokio::test]
async fn forced_refreshes_are_checked_like_nym_apis() {
    use ed25519_dalek::Signer as _;
    let k0 = bs58::encode([10; 32]).into_string();
    let host = signed_with(key(0, &k0), None);
    let (d, mix2) = directory_with_described_node(host, SystemTime::now()).await;
    let signer = crate::described::tests::test_signer();
    let now = SystemTime::now();
    let ts = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sign = |ts: i64| {
        let mut plaintext = signer.verifying_key().to_bytes().to_vec();
        plaintext.extend_from_slice(&ts.to_be_bytes());
        plaintext.extend_from_slice(b"describe-cache-refresh-request");
        signer.sign(&plaintext).to_bytes().to_vec()
    };
    let id = &mix2.identity_key;

    assert_eq!(
        d.forced_refresh("unknown", ts, &sign(ts), now).await,
        Err(RefreshRefused::UnknownNode)
    );
    assert_eq!(
        d.forced_refresh(id, ts, &sign(ts + 1), now).await,
        Err(RefreshRefused::BadSignature)
    );
    assert_eq!(
        d.forced_refresh(id, ts - 31, &sign(ts - 31), now).await,
        Err(RefreshRefused::Stale)
    );
    assert_eq!(
        d.forced_refresh(id, ts + 5, &sign(ts + 5), now).await,
        Err(RefreshRefused::Stale),
        "from the future"
    );
    assert!(d.described(2).is_none());
    assert_eq!(d.forced_refresh(id, ts, &sign(ts), now).await, Ok(()));
    assert!(d.described(2).is_some(), "described at once");
    assert_eq!(
        d.forced_refresh(id, ts, &sign(ts), now).await,
        Err(RefreshRefused::TooSoon)
    );
}

#[test]
fn addresses_map_to_the_first_node_announcing_them() {
    let d = directory(SystemTime::now());
    let answer = d.by_addresses(&["127.0.0.1".parse().unwrap(), "10.0.0.1".parse().unwrap()]);
    assert_eq!(
        answer,
        json!({"existence": {"127.0.0.1": 1, "10.0.0.1": null}})
    );
}
