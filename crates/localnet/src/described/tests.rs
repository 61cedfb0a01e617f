use ed25519_dalek::{Signer as _, SigningKey};

use super::*;

/// Host information as nym-node 1.31.0 served it (rotation 0, with a Noise key).
const NYM_NODE: &str = include_str!("nym-node-1.31.0-host-information.json");
/// Host information as our gateway serves it (a static key, rotation id u32::MAX).
const NYM_GATEWAY: &str = include_str!("nym-gateway-host-information.json");

fn parse(text: &str) -> SignedHostInformation {
    serde_json::from_str(text).unwrap()
}

pub(crate) fn key(rotation_id: u32, public_key: &str) -> SphinxKey {
    SphinxKey {
        rotation_id,
        public_key: public_key.to_owned(),
    }
}

#[test]
fn nym_nodes_and_our_gateways_signatures_verify() {
    for fixture in [NYM_NODE, NYM_GATEWAY] {
        let signed = parse(fixture);
        let identity = signed.data.keys.ed25519_identity.clone();
        verify(&signed, &identity).unwrap();
    }
    let node = parse(NYM_NODE);
    assert_eq!(node.data.keys.primary_x25519_sphinx_key.rotation_id, 0);
    assert!(node.data.keys.x25519_versioned_noise.is_some());
    let gateway = parse(NYM_GATEWAY);
    assert_eq!(
        gateway.data.keys.primary_x25519_sphinx_key.rotation_id,
        LEGACY_ROTATION_ID
    );
}

#[test]
fn a_node_listed_under_another_identity_or_changed_data_is_refused() {
    let signed = parse(NYM_NODE);
    let other = parse(NYM_GATEWAY).data.keys.ed25519_identity;
    let err = verify(&signed, &other).unwrap_err().to_string();
    assert!(err.contains("listed as"), "{err}");

    let identity = signed.data.keys.ed25519_identity.clone();
    let mut moved = signed.clone();
    moved.data.keys.primary_x25519_sphinx_key.rotation_id = 1;
    let err = verify(&moved, &identity).unwrap_err().to_string();
    assert!(err.contains("signature"), "{err}");

    let mut garbled = signed;
    garbled.signature = "not bs58 0OIl".into();
    assert!(verify(&garbled, &identity).is_err());
}

/// The identity key [`signed_with`] signs with.
pub(crate) fn test_signer() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// Host information with these sphinx keys, signed by [`test_signer`].
pub(crate) fn signed_with(current: SphinxKey, next: Option<SphinxKey>) -> SignedHostInformation {
    let signer = test_signer();
    let sphinx = current.public_key.clone();
    let data = HostInformation {
        ip_address: vec!["127.0.0.1".parse().unwrap()],
        hostname: None,
        keys: HostKeys {
            ed25519_identity: bs58::encode(signer.verifying_key().to_bytes()).into_string(),
            x25519_sphinx: sphinx,
            primary_x25519_sphinx_key: current,
            pre_announced_x25519_sphinx_key: next,
            x25519_versioned_noise: None,
        },
    };
    let signature = signer.sign(&serde_json::to_vec(&data).unwrap());
    SignedHostInformation {
        data,
        signature: bs58::encode(signature.to_bytes()).into_string(),
    }
}

fn described(signed: SignedHostInformation) -> Described {
    Described {
        host: signed.data,
        roles: NodeRoles {
            mixnode_enabled: true,
            gateway_enabled: false,
            network_requester_enabled: true,
            ip_packet_router_enabled: false,
        },
        build_information: json!({"binary_name": "nym-node"}),
        auxiliary_details: json!({"location": null}),
        websockets: json!({"ws_port": 9000, "wss_port": null}),
        polled: SystemTime::UNIX_EPOCH,
    }
}

#[test]
fn the_key_of_the_current_rotation_is_announced() {
    // Any 32 bytes make an x25519 key.
    let (k1, k2) = (
        bs58::encode([1; 32]).into_string(),
        bs58::encode([2; 32]).into_string(),
    );
    let signed = signed_with(key(4, &k1), Some(key(5, &k2)));
    let identity = signed.data.keys.ed25519_identity.clone();
    verify(&signed, &identity).unwrap();
    let node = described(signed);
    assert_eq!(node.sphinx_key(4), key(4, &k1), "the current key");
    assert_eq!(
        node.sphinx_key(5),
        key(5, &k2),
        "the pre-announced one, once due"
    );
    assert_eq!(
        node.sphinx_key(9),
        key(4, &k1),
        "a node behind: its current key"
    );

    let legacy = described(signed_with(key(LEGACY_ROTATION_ID, &k1), None));
    for rotation in [0, 5, 1000] {
        assert_eq!(
            legacy.sphinx_key(rotation).public_key,
            k1,
            "a static key, always"
        );
    }
}

#[test]
fn descriptions_take_nym_apis_v1_shape() {
    let k1 = bs58::encode([1; 32]).into_string();
    let node = described(signed_with(key(3, &k1), None));
    let d = node.description_v1(7);
    assert_eq!(d["node_id"], 7);
    assert_eq!(d["contract_node_type"], "nym_node");
    let keys = &d["description"]["host_information"]["keys"];
    assert_eq!(
        keys["current_x25519_sphinx_key"],
        json!({"rotation_id": 3, "public_key": k1})
    );
    assert_eq!(keys["ed25519"], node.host.keys.ed25519_identity);
    assert!(keys["pre_announced_x25519_sphinx_key"].is_null());
    // A network requester without the gateway role is no exit.
    assert_eq!(
        d["description"]["declared_role"],
        json!({"mixnode": true, "entry": false, "exit_nr": false, "exit_ipr": false})
    );
    assert_eq!(d["description"]["last_polled"], "1970-01-01T00:00:00Z");
    assert_eq!(d["description"]["mixnet_websockets"]["ws_port"], 9000);
}
