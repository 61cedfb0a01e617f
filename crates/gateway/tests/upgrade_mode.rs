//! Upgrade mode over a real websocket to a whole gateway, with a test attester's attestation
//! served by a local HTTP server standing in for the network's attestation URL: off (metered,
//! flags false, JWTs refused with nym-node's texts), on through a client's JWT (unmetered,
//! flags true in register, authenticate, bandwidth and send responses), and off again when
//! the attestation URL keeps failing or the attestation is withdrawn.

mod util;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use ed25519_dalek::SigningKey;
use gateway_ecash::upgrade_mode::{jwt_signed_by, TestAttester, JWT_ISSUER};
use gateway_protocol::client::{ClientRequest, ServerResponse, TypedError};
use nym_gateway::keys::NodeKeys;
use nym_gateway::network::Network;
use tokio::net::TcpStream;
use util::harness::NextHop;
use util::in_process::{loopback_config, RunningNode};
use util::ws_client::{TestClient, WsClient};

/// Just over a fifth of an entry ticket: what nym-node reports while nothing is metered.
const UNMETERED: i64 = 200_000_000 / 5 + 1;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The attestation URL: serves whatever document is set (`null` at first).
async fn attestation_server(document: Arc<Mutex<String>>) -> String {
    let app = axum::Router::new()
        .route(
            "/.wellknown/upgrade-mode/attestation.json",
            get(|State(doc): State<Arc<Mutex<String>>>| async move {
                let body = doc.lock().unwrap().clone();
                ([("content-type", "application/json")], body)
            }),
        )
        .with_state(document);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.wellknown/upgrade-mode/attestation.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn jwt(ws: &mut WsClient<TcpStream>, token: String) -> Result<(i64, bool), String> {
    ws.send_request(&ClientRequest::UpgradeModeJwt { token })
        .await;
    match ws.next_response().await {
        ServerResponse::Bandwidth {
            available_total,
            upgrade_mode,
        } => Ok((available_total, upgrade_mode)),
        ServerResponse::Error { message } => Err(message),
        other => panic!("expected bandwidth or an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_mode_turns_on_with_a_published_attestation_and_a_clients_jwt_and_off_again() {
    let attester = TestAttester::new([11; 32], [12; 32]);
    let document = Arc::new(Mutex::new("null".to_owned()));
    let url = attestation_server(document.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = loopback_config("upgrade", dir.path(), &Network::mainnet());
    config.gateway.upgrade_mode_attestation_url = Some(url);
    config.gateway.upgrade_mode_attester_public_key = Some(attester.public_key_bs58());
    // Only a client's JWT or the expedited poll (while on) fetch again during the test.
    config.debug.upgrade_mode_poll_interval = Duration::from_secs(3600);
    config.debug.upgrade_mode_expedited_poll_interval = Duration::from_millis(100);
    config.debug.upgrade_mode_min_staleness_recheck = Duration::ZERO;
    config.debug.upgrade_mode_failure_threshold = std::num::NonZeroU32::new(3).unwrap();
    let keys = NodeKeys::generate().unwrap();
    let identity = keys.identity.verifying_key();
    let node = RunningNode::start(&config, keys).await;
    let hop = NextHop::bind().await;

    // Off: registration says so, packets are metered.
    let mut client = TestClient::new();
    let mut ws = WsClient::connect_to(node.clients).await;
    client.register(&mut ws, &identity).await;
    assert!(matches!(
        client.send_forward(&mut ws, hop.addr()).await,
        Err(TypedError::OutOfBandwidth { .. })
    ));

    // A JWT for an attestation nobody published, a forged publication, a JWT from a proxy
    // the attestation does not name: refused, and upgrade mode stays off.
    let attestation = attester.attest(now() - 60);
    assert_eq!(
        jwt(&mut ws, attester.jwt(&attestation, now(), 600)).await,
        Err("the upgrade mode attestation does not appear to have been published".into())
    );
    *document.lock().unwrap() = attestation.to_json().replace(
        &format!("\"starting_time\":\"{}", &attestation_time(&attestation)),
        "\"starting_time\":\"2020-01-01T00:00:00Z",
    );
    assert_eq!(
        jwt(&mut ws, attester.jwt(&attestation, now(), 600)).await,
        Err("the upgrade mode attestation does not appear to have been published".into()),
        "a publication whose signature does not verify is not taken"
    );
    let stranger = SigningKey::from_bytes(&[13; 32]);
    assert_eq!(
        jwt(
            &mut ws,
            jwt_signed_by(&attestation, now(), 600, &stranger, JWT_ISSUER)
        )
        .await,
        Err("provided upgrade mode JWT is invalid: the jwt signer does not appear in the authorised attestation set".into())
    );
    assert_eq!(
        jwt(&mut ws, "not a jwt".into()).await,
        Err("provided upgrade mode JWT is invalid: failed to decode jwt metadata: JWT compact encoding error".into())
    );
    assert!(matches!(
        client.send_forward(&mut ws, hop.addr()).await,
        Err(TypedError::OutOfBandwidth { .. })
    ));

    // Published: a JWT for another attestation is refused, but the fetch it caused turns
    // upgrade mode on; the JWT for the published one is answered as on.
    *document.lock().unwrap() = attestation.to_json();
    let other = attester.attest(now() - 120);
    assert_eq!(
        jwt(&mut ws, attester.jwt(&other, now(), 600)).await,
        Err("the provided upgrade mode attestation is different from the published one".into())
    );
    assert_eq!(
        jwt(&mut ws, attester.jwt(&attestation, now(), 600)).await,
        Ok((UNMETERED, true))
    );
    // Nothing is metered: packets go out with no bandwidth, and the reported allowance is
    // enough that an older client does not spend a ticket.
    for _ in 0..3 {
        assert_eq!(
            client.send_forward(&mut ws, hop.addr()).await,
            Ok((UNMETERED, true))
        );
    }
    ws.send_request(&ClientRequest::ClaimFreeTestnetBandwidth)
        .await;
    assert!(matches!(
        ws.next_response().await,
        ServerResponse::Bandwidth {
            upgrade_mode: true,
            ..
        }
    ));
    ws.close().await;

    // A returning client is told on authentication; a new one on registration.
    let mut ws = WsClient::connect_to(node.clients).await;
    client.send_authenticate(&mut ws).await;
    match ws.next_response().await {
        ServerResponse::Authenticate {
            status: true,
            upgrade_mode: true,
            bandwidth_remaining,
            ..
        } => assert_eq!(bandwidth_remaining, (64 << 30).max(UNMETERED)),
        other => panic!("expected authenticate, got {other:?}"),
    }
    ws.close().await;
    let mut newcomer = TestClient::new();
    let mut ws = WsClient::connect_to(node.clients).await;
    newcomer.handshake(&mut ws, &identity).await;
    assert!(matches!(
        ws.next_response().await,
        ServerResponse::Register {
            status: true,
            upgrade_mode: true,
            ..
        }
    ));

    // The URL starts failing (an error page): upgrade mode holds through a failed fetch or
    // two, and ends after more than `upgrade_mode_failure_threshold` in a row.
    *document.lock().unwrap() = "<html>not found</html>".into();
    assert_eq!(
        newcomer.send_forward(&mut ws, hop.addr()).await,
        Ok((UNMETERED, true))
    );
    wait_until_metered(&newcomer, &mut ws, &hop).await;

    // On again through a JWT; then withdrawn (`null`): the expedited poll notices.
    *document.lock().unwrap() = attestation.to_json();
    assert_eq!(
        jwt(&mut ws, attester.jwt(&attestation, now(), 600)).await,
        Ok((UNMETERED, true))
    );
    *document.lock().unwrap() = "null".into();
    wait_until_metered(&newcomer, &mut ws, &hop).await;
    ws.close().await;
    node.stop().await;
}

/// Sends packets until one is metered again (refused for want of bandwidth), within 5 s.
async fn wait_until_metered(client: &TestClient, ws: &mut WsClient<TcpStream>, hop: &NextHop) {
    for _ in 0..100 {
        match client.send_forward(ws, hop.addr()).await {
            Err(TypedError::OutOfBandwidth { .. }) => return,
            Ok((_, true)) => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("upgrade mode did not end");
}

/// The attestation's start time as written in its JSON.
fn attestation_time(attestation: &gateway_ecash::upgrade_mode::Attestation) -> String {
    let json: serde_json::Value = serde_json::from_str(&attestation.to_json()).unwrap();
    json["starting_time"].as_str().unwrap().to_owned()
}
