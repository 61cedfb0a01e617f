//! zk-nym tickets over a real websocket to a whole gateway (listeners, store, session code),
//! with tickets from a test e-cash authority and its master key served by a local nym-api.
//! Every refused ticket gets nym-node's error text, grants nothing, and leaves the session
//! usable; spent serial numbers survive a restart.

mod util;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use gateway_ecash::authority::{Authority, TicketBook};
use gateway_ecash::keys::key_response_json;
use gateway_ecash::verify::utc_date;
use gateway_ecash::{PayInfoFields, SpendingData, TicketType};
use gateway_protocol::client::{ClientRequest, ServerResponse, SharedKey};
use nym_gateway::config::Config;
use nym_gateway::keys::NodeKeys;
use nym_gateway::network::Network;
use serde_json::json;
use tokio::net::TcpStream;
use util::harness::{read_exact, NextHop};
use util::in_process::{loopback_config, RunningNode};
use util::ws_client::{random, TestClient, WsClient};

/// The epoch the local nym-api knows.
const EPOCH: u64 = 7;
const ENTRY: i64 = 200_000_000;

fn authority() -> &'static Authority {
    static AUTHORITY: OnceLock<Authority> = OnceLock::new();
    AUTHORITY.get_or_init(|| Authority::new(EPOCH, 2, 3).unwrap())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn book(ticket_type: TicketType) -> TicketBook {
    authority().issue_current(ticket_type, now()).unwrap()
}

/// A nym-api serving the master key of [`EPOCH`] (404 for others) and the key-rotation
/// information the gateway also reads from it.
async fn nym_api() -> String {
    let key = Arc::new(key_response_json(authority().master_key()));
    let app = axum::Router::new()
        .route("/v1/ecash/master-verification-key", get(master_key))
        .route("/v1/epoch/key-rotation-info", get(rotation_info))
        .with_state(key);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn master_key(State(key): State<Arc<String>>, RawQuery(query): RawQuery) -> Response {
    if query != Some(format!("epoch_id={EPOCH}")) {
        return (StatusCode::NOT_FOUND, "\"no key for this epoch\"").into_response();
    }
    ([("content-type", "application/json")], key.to_string()).into_response()
}

/// Rotation 0 of a one-hour epoch that started a minute ago.
async fn rotation_info() -> Json<serde_json::Value> {
    let start = std::time::SystemTime::now() - Duration::from_secs(60);
    Json(json!({
        "key_rotation_state": { "validity_epochs": 24, "initial_epoch_id": 0 },
        "current_absolute_epoch_id": 1,
        "current_epoch_start": humantime::format_rfc3339_nanos(start).to_string(),
        "epoch_duration": { "secs": 3600, "nanos": 0 },
        "progress": {
            "current_key_rotation_id": 0,
            "current_rotation_starting_epoch": 0,
            "current_rotation_ending_epoch": 23,
        },
    }))
}

struct Gateway {
    config: Config,
    keys: NodeKeys,
    node: RunningNode,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(nym_api: &str, enforce_zk_nyms: bool) -> Self {
        Self::start_with(nym_api, enforce_zk_nyms, |_| {}).await
    }

    async fn start_with(
        nym_api: &str,
        enforce_zk_nyms: bool,
        change: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = loopback_config("tickets", dir.path(), &Network::mainnet());
        config.gateway.nym_api_urls = Some(vec![nym_api.to_owned()]);
        config.gateway.enforce_zk_nyms = enforce_zk_nyms;
        config.debug.nym_api_timeout = Duration::from_secs(2);
        config.debug.replay_filter_capacity = std::num::NonZeroU64::new(100_000).unwrap();
        change(&mut config);
        let keys = NodeKeys::generate().unwrap();
        let node = RunningNode::start(&config, clone_keys(&keys)).await;
        Self {
            config,
            keys,
            node,
            _dir: dir,
        }
    }

    async fn restart(self) -> Self {
        let Self {
            config,
            keys,
            node,
            _dir,
        } = self;
        node.stop().await;
        let node = RunningNode::start(&config, clone_keys(&keys)).await;
        Self {
            config,
            keys,
            node,
            _dir,
        }
    }

    fn identity(&self) -> [u8; 32] {
        self.keys.identity.verifying_key().to_bytes()
    }

    async fn client(&self) -> (TestClient, WsClient<TcpStream>) {
        let mut client = TestClient::new();
        let mut ws = WsClient::connect_to(self.node.clients).await;
        client
            .register(&mut ws, &self.keys.identity.verifying_key())
            .await;
        (client, ws)
    }
}

fn clone_keys(keys: &NodeKeys) -> NodeKeys {
    NodeKeys {
        identity: keys.identity.clone(),
        sphinx: keys.sphinx.clone(),
    }
}

/// `ecashCredential` with `plaintext` encrypted under the client's key.
fn credential_request(client: &TestClient, plaintext: &[u8]) -> ClientRequest {
    let iv = random::<12>();
    ClientRequest::EcashCredential {
        enc_credential: client.key().encrypt(&iv, plaintext).unwrap(),
        iv: iv.to_vec(),
    }
}

/// Spends `data`: the new total, or the error text.
async fn spend(
    client: &TestClient,
    ws: &mut WsClient<TcpStream>,
    data: &SpendingData,
) -> Result<i64, String> {
    send_credential(ws, credential_request(client, &data.encode())).await
}

async fn send_credential(
    ws: &mut WsClient<TcpStream>,
    request: ClientRequest,
) -> Result<i64, String> {
    ws.send_request(&request).await;
    match ws.next_response().await {
        ServerResponse::Bandwidth {
            available_total,
            upgrade_mode,
        } => {
            assert!(!upgrade_mode);
            Ok(available_total)
        }
        ServerResponse::Error { message } => Err(message),
        other => panic!("expected bandwidth or an error, got {other:?}"),
    }
}

fn pay_info(gateway: [u8; 32], timestamp: i64) -> PayInfoFields {
    PayInfoFields {
        randomness: random(),
        timestamp,
        provider: gateway,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_buy_their_bandwidth_and_every_bad_one_is_refused_with_nym_nodes_text() {
    let api = nym_api().await;
    let gateway = Gateway::start(&api, false).await;
    let identity = gateway.identity();
    let (client, mut ws) = gateway.client().await;
    let mut entry = book(TicketType::V1MixnetEntry);

    let first = entry.spend(identity, now()).unwrap();
    assert_eq!(
        spend(&client, &mut ws, &first).await,
        Ok(ENTRY),
        "exactly one ticket's worth"
    );

    // Each refused with its text; none grants anything.
    // Issued and spent on the same clock reading, so a test across midnight still agrees.
    let issued_at = now();
    let yesterday = utc_date(issued_at - 86_400);
    let today = utc_date(now());
    let mut tampered = entry.spend(identity, now()).unwrap();
    tampered.pay_info.pay_info_bytes[0] ^= 1;
    let stranger = Authority::new(EPOCH + 92, 1, 1).unwrap();
    let mut unknown_epoch = stranger
        .issue_current(TicketType::V1MixnetEntry, now())
        .unwrap();
    let mut multiple = entry.spend(identity, now()).unwrap();
    // A book issued yesterday can still spend on yesterday's date.
    let mut older = authority()
        .issue_current(TicketType::V1MixnetEntry, issued_at - 86_400)
        .unwrap();
    multiple.payment.spend_value = 2;
    let cases: Vec<(&str, ClientRequest, String)> = vec![
        (
            "double spend",
            credential_request(&client, &first.encode()),
            "the provided bandwidth credential has already been spent before at this gateway".into(),
        ),
        (
            "another gateway's ticket",
            credential_request(&client, &entry.spend([9; 32], now()).unwrap().encode()),
            "provided payinfo's public key does not match provider's".into(),
        ),
        (
            "spent yesterday (expired)",
            credential_request(
                &client,
                &older.spend_with(pay_info(identity, now()), yesterday).unwrap().encode(),
            ),
            format!("the provided credential has an invalid spending date. got {yesterday} but expected {today}"),
        ),
        (
            "stale pay info",
            credential_request(
                &client,
                &entry
                    .spend_with(pay_info(identity, now() - 120), utc_date(now()))
                    .unwrap()
                    .encode(),
            ),
            "provided payinfo's timestamp is invalid".into(),
        ),
        (
            "bad signature (tampered payment)",
            credential_request(&client, &tampered.encode()),
            "the provided ticket failed to get verified".into(),
        ),
        (
            "unknown epoch",
            credential_request(&client, &unknown_epoch.spend(identity, now()).unwrap().encode()),
            format!("the DKG threshold value for epoch {} is currently unavailable. we're probably mid-epoch transition", EPOCH + 92),
        ),
        (
            "several tickets",
            credential_request(&client, &multiple.encode()),
            "the received payment contained more than a single ticket. that's currently not supported".into(),
        ),
        (
            "garbage",
            credential_request(&client, &random::<300>()),
            "Provided binary request was malformed - the received encrypted data was malformed".into(),
        ),
        (
            "bad iv",
            ClientRequest::EcashCredential {
                enc_credential: vec![1, 2, 3],
                iv: vec![0; 11],
            },
            "Provided binary request was malformed - the provided nonce (or legacy IV) did not have the expected length".into(),
        ),
        (
            "another key",
            ClientRequest::EcashCredential {
                enc_credential: SharedKey::from_bytes(random())
                    .encrypt(&[0; 12], &first.encode())
                    .unwrap(),
                iv: vec![0; 12],
            },
            "Provided binary request was malformed - failed to either encrypt or decrypt provided message".into(),
        ),
    ];
    let mut failed = Vec::new();
    for (name, request, expected) in cases {
        match send_credential(&mut ws, request).await {
            Err(message) if message == expected => {}
            other => failed.push(format!("{name}: {other:?}")),
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
    // Only the first ticket was recorded: no refused one spent its serial number.
    let recorded: i64 = rusqlite::Connection::open(&gateway.config.gateway.persistent_storage)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM ticket_data", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recorded, 1);

    // The session still works, and nothing was granted meanwhile.
    let second = entry.spend(identity, now()).unwrap();
    assert_eq!(spend(&client, &mut ws, &second).await, Ok(2 * ENTRY));
    let mut wireguard = book(TicketType::V1WireguardExit);
    let third = wireguard.spend(identity, now()).unwrap();
    assert_eq!(
        spend(&client, &mut ws, &third).await,
        Ok(2 * ENTRY + 500_000_000)
    );

    // The bandwidth pays for packets.
    let hop = NextHop::bind().await;
    let (remaining, _) = client.send_forward(&mut ws, hop.addr()).await.unwrap();
    assert_eq!(remaining, 2 * ENTRY + 500_000_000 - 2413);
    let mut next_hop = hop.accept().await;
    assert!(!read_exact(&mut next_hop, 8).await.is_empty());

    // Spent serial numbers survive a restart.
    ws.close().await;
    let gateway = gateway.restart().await;
    let (client, mut ws) = gateway.client().await;
    assert_eq!(
        spend(&client, &mut ws, &second).await,
        Err(
            "the provided bandwidth credential has already been spent before at this gateway"
                .into()
        )
    );
    let fourth = entry.spend(identity, now()).unwrap();
    assert_eq!(spend(&client, &mut ws, &fourth).await, Ok(ENTRY));
    ws.close().await;
    gateway.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcing_refuses_free_bandwidth_but_takes_tickets() {
    let api = nym_api().await;
    let gateway = Gateway::start(&api, true).await;
    let (client, mut ws) = gateway.client().await;
    ws.send_request(&ClientRequest::ClaimFreeTestnetBandwidth)
        .await;
    assert_eq!(
        ws.next_error().await,
        "This gateway is only accepting coconut credentials for bandwidth"
    );
    let data = book(TicketType::V1MixnetExit)
        .spend(gateway.identity(), now())
        .unwrap();
    assert_eq!(spend(&client, &mut ws, &data).await, Ok(100_000_000));
    ws.close().await;
    gateway.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nym_api_nothing_is_granted() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let gateway = Gateway::start(&dead, false).await;
    let (client, mut ws) = gateway.client().await;
    let data = book(TicketType::V1MixnetEntry)
        .spend(gateway.identity(), now())
        .unwrap();
    let error = spend(&client, &mut ws, &data).await.unwrap_err();
    assert!(
        error.starts_with(&format!(
            "failed to query the nym API for the verification key of epoch {EPOCH}: "
        )),
        "{error}"
    );
    // Free claims still work, from zero: the ticket granted nothing.
    ws.send_request(&ClientRequest::ClaimFreeTestnetBandwidth)
        .await;
    assert!(matches!(
        ws.next_response().await,
        ServerResponse::Bandwidth { available_total, .. } if available_total == 64 << 30
    ));
    ws.close().await;
    gateway.node.stop().await;
}

/// Signers answering with `verdict` (`{"verified":…}`); each first request to the last one
/// fails with HTTP 500, so it is asked again.
#[derive(Clone)]
struct Signers {
    verdict: Arc<std::sync::Mutex<serde_json::Value>>,
    requests: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    failed_once: Arc<std::sync::atomic::AtomicBool>,
}

async fn signer(
    State((signers, flaky)): State<(Signers, bool)>,
    Json(body): Json<serde_json::Value>,
) -> Response {
    if flaky
        && !signers
            .failed_once
            .swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    signers.requests.lock().unwrap().push(body);
    Json(json!({ "verified": signers.verdict.lock().unwrap().clone() })).into_response()
}

async fn start_signers(signers: &Signers, count: usize) -> Vec<String> {
    let mut urls = Vec::new();
    for i in 0..count {
        let app = axum::Router::new()
            .route(
                "/api/v1/ecash/verify-ecash-ticket",
                axum::routing::post(signer),
            )
            .with_state((signers.clone(), i == count - 1));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("http://{}/api/", listener.local_addr().unwrap()));
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    urls
}

/// `(rejected, data present)` of ticket `id`, once `done` holds for it (within 10 s).
async fn ticket_row(
    db: &std::path::Path,
    id: i64,
    done: impl Fn(Option<bool>, bool) -> bool,
) -> (Option<bool>, bool) {
    for _ in 0..200 {
        let conn = rusqlite::Connection::open(db).unwrap();
        let row: (Option<bool>, bool) = conn
            .query_row(
                "SELECT r.rejected, d.data IS NOT NULL FROM received_ticket r
                 JOIN ticket_data d ON d.ticket_id = r.id WHERE r.id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        if done(row.0, row.1) {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("ticket {id} was not settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signers_verify_accepted_tickets_later_and_a_rejection_revokes_bandwidth() {
    let api = nym_api().await;
    let signers = Signers {
        verdict: Arc::new(std::sync::Mutex::new(json!({ "Ok": null }))),
        requests: Arc::default(),
        failed_once: Arc::default(),
    };
    let urls = start_signers(&signers, 3).await;
    let gateway = Gateway::start_with(&api, false, |config| {
        config.gateway.zk_nym_signer_urls = urls;
        config.gateway.wallet_address = "n10yyd98e2tuwu0f7ypz9dy3hhjw7v772q6287gy".into();
        config.debug.zk_nym_signer_retry_interval = Duration::from_millis(200);
    })
    .await;
    let db = gateway.config.gateway.persistent_storage.clone();
    let identity = gateway.identity();
    let (client, mut ws) = gateway.client().await;
    let mut entry = book(TicketType::V1MixnetEntry);

    let good = entry.spend(identity, now()).unwrap();
    assert_eq!(
        spend(&client, &mut ws, &good).await,
        Ok(ENTRY),
        "granted before any signer answers"
    );
    // Verified by all three, the flaky one on its retry: the credential bytes go.
    assert_eq!(ticket_row(&db, 1, |_, data| !data).await, (None, false));
    let requests = signers.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        requests[0]["gateway_cosmos_addr"],
        "n10yyd98e2tuwu0f7ypz9dy3hhjw7v772q6287gy"
    );
    assert_eq!(requests[0]["credential"]["epoch_id"], EPOCH);
    assert_eq!(
        requests[0]["credential"]["spend_date"],
        utc_date(now()).to_string()
    );

    *signers.verdict.lock().unwrap() = json!({ "Err": "InvalidTicket" });
    let bad = entry.spend(identity, now()).unwrap();
    assert_eq!(spend(&client, &mut ws, &bad).await, Ok(2 * ENTRY));
    assert_eq!(
        ticket_row(&db, 2, |rejected, _| rejected.is_some()).await,
        (Some(true), false)
    );
    // Ten times the ticket's bandwidth is revoked from the stored allowance.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let available: i64 = conn
        .query_row("SELECT available FROM available_bandwidth", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(available, 2 * ENTRY - 10 * ENTRY);
    // The connected client's next save picks the revocation up (it is not overwritten): its
    // third ticket leaves it at what it had, less the penalty, plus that ticket.
    *signers.verdict.lock().unwrap() = json!({ "Ok": null });
    let third = entry.spend(identity, now()).unwrap();
    assert_eq!(
        spend(&client, &mut ws, &third).await,
        Ok(3 * ENTRY - 10 * ENTRY)
    );
    ws.close().await;
    gateway.node.stop().await;
    let available: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT available FROM available_bandwidth", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        available,
        3 * ENTRY - 10 * ENTRY,
        "kept after the session ended"
    );
}
