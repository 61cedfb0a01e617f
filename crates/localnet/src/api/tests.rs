use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::*;

fn node(role: Role, port: u16) -> Node {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    Node {
        role,
        id: role.id(),
        node_id: role.node_id(),
        identity_key: format!("identity{port}"),
        sphinx_key: format!("sphinx{port}"),
        mix_address: SocketAddr::new(ip, port),
        clients_address: SocketAddr::new(ip, port + 1),
        http_address: SocketAddr::new(ip, port + 2),
        config_file: PathBuf::new(),
        log_file: PathBuf::new(),
    }
}

fn directory(genesis: SystemTime) -> Directory {
    let nodes = Role::ALL
        .iter()
        .enumerate()
        .map(|(i, role)| node(*role, 10_000 + 10 * i as u16))
        .collect();
    Directory::new(nodes, genesis)
}

#[test]
fn the_client_paths_parse_and_others_do_not() {
    let skimmed = |kind, v2| Some(Endpoint::Skimmed { kind, v2 });
    let cases = [
        (
            "/v1/epoch/key-rotation-info",
            Some(Endpoint::KeyRotationInfo),
        ),
        ("/v1/nym-nodes/rewarded-set", Some(Endpoint::RewardedSet)),
        (
            "/v2/unstable/nym-nodes/skimmed",
            skimmed(NodeKind::All, true),
        ),
        (
            "/v2/unstable/nym-nodes/skimmed/mixnodes/active",
            skimmed(NodeKind::Mixnodes, true),
        ),
        (
            "/v1/unstable/nym-nodes/skimmed/mixnodes/all",
            skimmed(NodeKind::Mixnodes, false),
        ),
        (
            "/v2/unstable/nym-nodes/skimmed/entry-gateways",
            skimmed(NodeKind::Gateways, true),
        ),
        (
            "/v1/unstable/nym-nodes/skimmed/exit-gateways/all",
            skimmed(NodeKind::Gateways, false),
        ),
        ("//v1/nym-nodes/rewarded-set/", Some(Endpoint::RewardedSet)),
        ("/v3/unstable/nym-nodes/skimmed", None),
        ("/v2/unstable/nym-nodes/skimmed/mixnodes", None),
        ("/v1/epoch", None),
        ("/", None),
    ];
    for (path, want) in cases {
        assert_eq!(Endpoint::from_path(path), want, "{path}");
    }
}

#[test]
fn the_page_parameter_is_read() {
    let uri = |s: &str| s.parse::<Uri>().unwrap();
    assert_eq!(page(&uri("/x")), 0);
    assert_eq!(page(&uri("/x?page=3&output=bincode")), 3);
    assert_eq!(page(&uri("/x?output=bincode&page=1")), 1);
    assert_eq!(page(&uri("/x?page=lots")), 0);
}

#[test]
fn epochs_and_rotations_follow_the_clock() {
    let genesis = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let d = directory(genesis);
    let at = |secs| genesis + Duration::from_secs(secs);

    let info = d.answer(Endpoint::KeyRotationInfo, 0, at(10));
    assert_eq!(info["current_absolute_epoch_id"], 0);
    assert_eq!(info["current_epoch_start"], "2023-11-14T22:13:20Z");
    assert_eq!(info["epoch_duration"], json!({"secs": 3600, "nanos": 0}));
    assert_eq!(info["key_rotation_state"]["validity_epochs"], 24);
    assert_eq!(info["progress"]["current_rotation_ending_epoch"], 23);

    // 25 hours later: epoch 25, the second rotation.
    let info = d.answer(Endpoint::KeyRotationInfo, 0, at(25 * 3600 + 5));
    assert_eq!(info["current_absolute_epoch_id"], 25);
    assert_eq!(info["current_epoch_start"], "2023-11-15T23:13:20Z");
    assert_eq!(info["progress"]["current_key_rotation_id"], 1);
    assert_eq!(info["progress"]["current_rotation_starting_epoch"], 24);
    assert_eq!(info["progress"]["current_rotation_ending_epoch"], 47);

    // The lists and the rewarded set name the same epoch.
    let set = d.answer(Endpoint::RewardedSet, 0, at(25 * 3600 + 5));
    assert_eq!(set["epoch_id"], 25);
    let all = d.answer(
        Endpoint::Skimmed {
            kind: NodeKind::All,
            v2: true,
        },
        0,
        at(25 * 3600 + 5),
    );
    assert_eq!(all["metadata"]["absolute_epoch_id"], 25);
    assert_eq!(all["metadata"]["rotation_id"], 1);
}

#[test]
fn the_rewarded_set_puts_each_node_in_its_place() {
    let d = directory(SystemTime::now());
    let set = d.answer(Endpoint::RewardedSet, 0, SystemTime::now());
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
    let mixes = d.answer(
        Endpoint::Skimmed {
            kind: NodeKind::Mixnodes,
            v2: true,
        },
        0,
        now,
    );
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

    let gateways = d.answer(
        Endpoint::Skimmed {
            kind: NodeKind::Gateways,
            v2: false,
        },
        0,
        now,
    );
    assert!(gateways["status"].is_null());
    let gateway = &gateways["nodes"]["data"][0];
    assert_eq!(gateway["role"], "EntryGateway");
    assert_eq!(gateway["supported_roles"]["entry"], true);
    assert_eq!(
        gateway["entry"],
        json!({"hostname": null, "ws_port": 10031, "wss_port": null})
    );

    // Everything is on page 0; a later page is empty but reports the same total.
    let page1 = d.answer(
        Endpoint::Skimmed {
            kind: NodeKind::All,
            v2: true,
        },
        1,
        now,
    );
    assert_eq!(page1["nodes"]["data"], json!([]));
    assert_eq!(page1["nodes"]["pagination"]["total"], 4);
}
