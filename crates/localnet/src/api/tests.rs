use std::time::Duration;

use super::*;
use crate::clock::Clock;

#[test]
fn the_client_and_node_paths_parse_and_others_do_not() {
    let get = Method::GET;
    let post = Method::POST;
    let nodes = |kind, layout, semi| Some(Endpoint::Nodes { kind, layout, semi });
    let (v1, v2) = (ListLayout::V1, ListLayout::V2);
    let cases = [
        (
            &get,
            "/v1/epoch/key-rotation-info",
            Some(Endpoint::KeyRotationInfo),
        ),
        (
            &get,
            "/v1/nym-nodes/rewarded-set",
            Some(Endpoint::RewardedSet),
        ),
        (
            &get,
            "/v2/unstable/nym-nodes/skimmed",
            nodes(NodeKind::All, v2, false),
        ),
        (
            &get,
            "/v2/unstable/nym-nodes/skimmed/mixnodes/active",
            nodes(NodeKind::Mixnodes, v2, false),
        ),
        (
            &get,
            "/v1/unstable/nym-nodes/skimmed/mixnodes/all",
            nodes(NodeKind::Mixnodes, v1, false),
        ),
        (
            &get,
            "/v2/unstable/nym-nodes/skimmed/entry-gateways",
            nodes(NodeKind::Gateways, v2, false),
        ),
        (
            &get,
            "/v1/unstable/nym-nodes/skimmed/exit-gateways/all",
            nodes(NodeKind::Gateways, v1, false),
        ),
        (
            &get,
            "/v2/unstable/nym-nodes/semi-skimmed",
            nodes(NodeKind::All, v2, true),
        ),
        (
            &get,
            "/v1/unstable/nym-nodes/semi-skimmed",
            nodes(NodeKind::All, v1, true),
        ),
        (&get, "/v1/nym-nodes/described", Some(Endpoint::Described)),
        (
            &get,
            UPGRADE_MODE_ATTESTATION_PATH,
            Some(Endpoint::UpgradeModeAttestation),
        ),
        (
            &post,
            "/v1/nym-nodes/refresh-described",
            Some(Endpoint::RefreshDescribed),
        ),
        (
            &post,
            "/v1/unstable/nym-nodes/by-addresses",
            Some(Endpoint::ByAddresses),
        ),
        (
            &get,
            "//v1/nym-nodes/rewarded-set/",
            Some(Endpoint::RewardedSet),
        ),
        // Wrong method, unknown or partial paths.
        (&post, "/v1/nym-nodes/rewarded-set", None),
        (&get, "/v1/nym-nodes/refresh-described", None),
        (&Method::PUT, "/v1/nym-nodes/described", None),
        (
            &get,
            "/v2/unstable/nym-nodes/semi-skimmed/mixnodes/active",
            None,
        ),
        (&get, "/v3/unstable/nym-nodes/skimmed", None),
        (&get, "/v2/unstable/nym-nodes/skimmed/mixnodes", None),
        (&get, "/v1/epoch", None),
        (&get, "/", None),
    ];
    for (method, path, want) in cases {
        assert_eq!(
            Endpoint::from_request(method, path),
            want,
            "{method} {path}"
        );
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
fn refreshes_come_between_one_second_and_a_minute_and_several_per_epoch() {
    assert_eq!(
        refresh_interval(Duration::from_secs(40)),
        Duration::from_secs(5)
    );
    assert_eq!(
        refresh_interval(Duration::from_secs(3600)),
        Duration::from_secs(60)
    );
    assert_eq!(
        refresh_interval(Duration::from_secs(2)),
        Duration::from_secs(1)
    );
}

fn empty_directory() -> Directory {
    Directory::new(Clock::new(SystemTime::now(), Duration::from_secs(60), 2))
}

#[tokio::test]
async fn bad_bodies_get_nym_apis_errors_not_a_crash() {
    let d = empty_directory();
    let now = SystemTime::now();
    let ask = |endpoint, body: &'static [u8]| answer(&d, endpoint, 0, body, now);
    for body in [&b""[..], b"{", b"[]", b"{\"addresses\": [\"not an ip\"]}"] {
        let (status, _) = ask(Endpoint::ByAddresses, body).await.unwrap_err();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let many = format!(
        "{{\"addresses\": [{}]}}",
        vec!["\"127.0.0.1\""; 101].join(",")
    );
    let (status, _) = answer(&d, Endpoint::ByAddresses, 0, many.as_bytes(), now)
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _) = ask(Endpoint::RefreshDescribed, b"{\"node_identity\": 5}")
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = b"{\"node_identity\": \"x\", \"request_timestamp\": 1, \"signature\": [1, 2]}";
    let (status, message) = ask(Endpoint::RefreshDescribed, unknown).await.unwrap_err();
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(message.contains("does not seem to exist"), "{message}");
}

#[tokio::test]
async fn the_upgrade_mode_attestation_is_null_and_served_over_http() {
    let d = Arc::new(empty_directory());
    let attestation = answer(
        &d,
        Endpoint::UpgradeModeAttestation,
        0,
        b"",
        SystemTime::now(),
    )
    .await
    .unwrap();
    assert_eq!(attestation, Value::Null);

    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    // No e-cash authority (as the load generator's directory for nym-node): its endpoints are
    // not found, the directory's are served.
    let server = tokio::spawn(serve(listener, d, None, shutdown.clone()));
    let timeout = Duration::from_secs(5);
    let body = crate::http::get(address, UPGRADE_MODE_ATTESTATION_PATH, timeout)
        .await
        .unwrap();
    assert_eq!(body, b"null");
    let info = crate::http::get(address, "/v1/epoch/key-rotation-info", timeout)
        .await
        .unwrap();
    let info: Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info["key_rotation_state"]["validity_epochs"], 2);
    let missing = crate::http::get(address, "/v1/nope", timeout).await;
    assert!(format!("{:#}", missing.unwrap_err()).contains("404"));
    let no_authority =
        crate::http::get(address, "/v1/ecash/master-verification-key", timeout).await;
    assert!(format!("{:#}", no_authority.unwrap_err()).contains("404"));
    shutdown.cancel();
    server.await.unwrap();
}
