//! Sphinx key rotation against a nym-api served by the test (real HTTP, wall-clock epochs of
//! three seconds, rotations of two epochs), with whole nodes started in-process: the keys a node
//! announces in its signed host-information, which packets it accepts across the boundaries,
//! what it keeps on disk across a restart, and what an unreachable, garbage, stuck or jumping
//! nym-api does to it (nothing that stops it or loses a packet it could open).

mod util;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use gateway_protocol::framing::{FrameVersion, KeyRotation};
use gateway_protocol::test_support::sphinx::{final_hop_packet, frame, ACK_PACKET_LEN};
use nym_gateway::config::Config;
use nym_gateway::keys::NodeKeys;
use nym_gateway::network::Network;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use util::in_process::{
    discarding_sink, http_get, loopback_config, verified_host_data, RunningNode,
};

const EPOCH: Duration = Duration::from_secs(3);
const VALIDITY: u32 = 2;

/// What the test's nym-api answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Epochs follow the clock from `genesis`, shifted by `jump` epochs.
    Live,
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// HTTP 500.
    Failing,
    /// Epoch 0 forever: nym-api stopped advancing.
    Stuck,
}

struct ApiState {
    genesis: SystemTime,
    jump: u32,
    mode: Mode,
    refreshes: Vec<Value>,
}

#[derive(Clone)]
struct FakeApi {
    state: Arc<Mutex<ApiState>>,
    url: String,
}

impl FakeApi {
    async fn start(mode: Mode) -> Self {
        let state = Arc::new(Mutex::new(ApiState {
            // Just after an epoch boundary: the test's checkpoints fall mid-epoch.
            genesis: SystemTime::now() - Duration::from_millis(50),
            jump: 0,
            mode,
            refreshes: Vec::new(),
        }));
        let app = axum::Router::new()
            .route("/v1/epoch/key-rotation-info", get(rotation_info))
            .route("/v1/nym-nodes/refresh-described", post(refresh))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { state, url }
    }

    fn set(&self, change: impl FnOnce(&mut ApiState)) {
        change(&mut self.state.lock().unwrap());
    }

    fn refreshes(&self) -> Vec<Value> {
        self.state.lock().unwrap().refreshes.clone()
    }

    /// Sleeps until `epochs` epochs (fractional) after genesis.
    async fn at(&self, epochs: f64) {
        let genesis = self.state.lock().unwrap().genesis;
        let when = genesis + EPOCH.mul_f64(epochs);
        if let Ok(wait) = when.duration_since(SystemTime::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

async fn rotation_info(State(state): State<Arc<Mutex<ApiState>>>) -> Response {
    let s = state.lock().unwrap();
    let elapsed = SystemTime::now().duration_since(s.genesis).unwrap();
    let (epoch, start) = match s.mode {
        Mode::Garbage => return "<html>maintenance</html>".into_response(),
        Mode::Failing => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Stuck => (0, s.genesis),
        Mode::Live => {
            let e = (elapsed.as_nanos() / EPOCH.as_nanos()) as u32;
            (e + s.jump, s.genesis + EPOCH * e)
        }
    };
    let rotation = epoch / VALIDITY;
    Json(json!({
        "key_rotation_state": { "validity_epochs": VALIDITY, "initial_epoch_id": 0 },
        "current_absolute_epoch_id": epoch,
        "current_epoch_start": humantime::format_rfc3339_nanos(start).to_string(),
        "epoch_duration": { "secs": EPOCH.as_secs(), "nanos": 0 },
        "progress": {
            "current_key_rotation_id": rotation,
            "current_rotation_starting_epoch": rotation * VALIDITY,
            "current_rotation_ending_epoch": rotation * VALIDITY + VALIDITY - 1,
        },
    }))
    .into_response()
}

async fn refresh(State(state): State<Arc<Mutex<ApiState>>>, Json(body): Json<Value>) {
    state.lock().unwrap().refreshes.push(body);
}

/// A node following `api`, with short retries; `dir` holds its files.
fn config(dir: &std::path::Path, api: &FakeApi) -> Config {
    let mut config = loopback_config("rotation", dir, &Network::mainnet());
    config.gateway.nym_api_urls = Some(vec![api.url.clone()]);
    config.debug.key_rotation_retry_interval = Duration::from_millis(300);
    config.debug.key_rotation_poll_interval = Duration::from_millis(300);
    config.debug.nym_api_timeout = Duration::from_secs(2);
    config.debug.replay_filter_capacity = std::num::NonZeroU64::new(100_000).unwrap();
    config
}

/// A node under test and where its SURB-acks go.
struct Running {
    node: RunningNode,
    acks: SocketAddr,
}

async fn start(config: &Config, keys: &NodeKeys) -> Running {
    let keys = NodeKeys {
        identity: keys.identity.clone(),
        sphinx: keys.sphinx.clone(),
    };
    Running {
        node: RunningNode::start(config, keys).await,
        acks: discarding_sink().await,
    }
}

impl Running {
    async fn stop(self) {
        self.node.stop().await;
    }

    /// host-information's keys, after checking its signature over `data` as served.
    async fn announced(&self, identity: &VerifyingKey) -> Value {
        let (status, body) = http_get(self.node.http, "/api/v1/host-information").await;
        assert!(status.contains(" 200 "), "{status} {body}");
        verified_host_data(&body, identity)["keys"].clone()
    }

    /// Sends one message for a client that is not connected (so it is stored) in a packet
    /// built for `sphinx_key`, framed with `rotation` (v7 when Unknown).
    async fn send(&self, sphinx_key: [u8; 32], rotation: KeyRotation, message: &[u8]) {
        self.send_framed(&self.framed(sphinx_key, rotation, message))
            .await;
    }

    /// The frame [`send`](Self::send) sends.
    fn framed(&self, sphinx_key: [u8; 32], rotation: KeyRotation, message: &[u8]) -> Vec<u8> {
        let packet = final_hop_packet(
            sphinx_key,
            self.node.mix,
            [0x5a; 32],
            self.acks,
            &[7; ACK_PACKET_LEN],
            message,
        );
        let version = match rotation {
            KeyRotation::Unknown => FrameVersion::V7,
            _ => FrameVersion::V8,
        };
        frame(version, rotation, &packet)
    }

    async fn send_framed(&self, framed: &[u8]) {
        let mut peer = TcpStream::connect(self.node.mix).await.unwrap();
        peer.write_all(framed).await.unwrap();
        peer.flush().await.unwrap();
    }

    async fn metric(&self, series: &str) -> f64 {
        self.node.metric(series).await
    }

    /// Waits until `series` reaches `value` (5 s at most) and returns its last value.
    async fn wait_metric(&self, series: &str, value: f64) -> f64 {
        for _ in 0..100 {
            let now = self.metric(series).await;
            if now >= value {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.metric(series).await
    }
}

const STORED: &str = "gateway_messages_stored_total";
const NO_KEY: &str = r#"gateway_mix_packets_dropped_total{reason="no_key_for_rotation"}"#;
const FAILED: &str = r#"gateway_mix_packets_dropped_total{reason="unwrap_failed"}"#;
const REPLAYED: &str = r#"gateway_mix_packets_dropped_total{reason="replay"}"#;

fn rotation_of(keys: &Value, which: &str) -> Option<u64> {
    keys[which]["rotation_id"].as_u64()
}

fn public_of(keys: &Value, which: &str) -> [u8; 32] {
    bs58::decode(keys[which]["public_key"].as_str().unwrap())
        .into_vec()
        .unwrap()
        .try_into()
        .unwrap()
}

fn parity(rotation: u64) -> KeyRotation {
    if rotation.is_multiple_of(2) {
        KeyRotation::Even
    } else {
        KeyRotation::Odd
    }
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A gateway through two rotation boundaries and a restart: it adopts its static key for
/// rotation 0, pre-announces a fresh key for rotation 1 an epoch ahead, swaps at the boundary
/// keeping the old key for one epoch, then deletes it with its replay filter. Packets for
/// the current, the next and the previous rotation are delivered while their key is held,
/// including a stream sent across the boundary; a packet for the deleted key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_with_the_epochs_and_packets_follow_them() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(Mode::Live).await;
    let config = config(dir.path(), &api);
    let key_dir: PathBuf = config
        .gateway
        .private_sphinx_key_file
        .parent()
        .unwrap()
        .into();
    let data_dir: PathBuf = config.gateway.persistent_storage.parent().unwrap().into();
    let keys = NodeKeys::generate().unwrap();
    keys.save(&config.key_paths()).unwrap();
    let identity = keys.identity.verifying_key();
    let static_key = x25519_dalek::PublicKey::from(&keys.sphinx).to_bytes();
    let mut node = start(&config, &keys).await;

    // Epoch 0 (rotation 0): the static key is adopted as rotation 0's.
    api.at(0.5).await;
    let announced = node.announced(&identity).await;
    assert_eq!(
        rotation_of(&announced, "primary_x25519_sphinx_key"),
        Some(0)
    );
    assert_eq!(
        public_of(&announced, "primary_x25519_sphinx_key"),
        static_key
    );
    assert!(announced["pre_announced_x25519_sphinx_key"].is_null());
    let first = node.framed(static_key, KeyRotation::Even, b"rotation 0");
    node.send_framed(&first).await;
    assert_eq!(node.wait_metric(STORED, 1.0).await, 1.0);
    assert!(files_in(&key_dir).contains(&"sphinx_rotation_0.pem".to_owned()));

    // Epoch 1, rotation 0's last: rotation 1's key is pre-announced and already accepted.
    api.at(1.4).await;
    let announced = node.announced(&identity).await;
    assert_eq!(
        rotation_of(&announced, "primary_x25519_sphinx_key"),
        Some(0)
    );
    assert_eq!(
        rotation_of(&announced, "pre_announced_x25519_sphinx_key"),
        Some(1)
    );
    let next_key = public_of(&announced, "pre_announced_x25519_sphinx_key");
    assert_ne!(next_key, static_key);
    node.send(next_key, KeyRotation::Odd, b"rotation 1, early")
        .await;
    assert_eq!(node.wait_metric(STORED, 2.0).await, 2.0);

    // A restart in the middle keeps both keys (counters start again from zero).
    node.stop().await;
    node = start(&config, &keys).await;
    let announced = node.announced(&identity).await;
    assert_eq!(
        rotation_of(&announced, "primary_x25519_sphinx_key"),
        Some(0)
    );
    assert_eq!(
        public_of(&announced, "pre_announced_x25519_sphinx_key"),
        next_key
    );
    // The adopted key's replay filter came back too: the first packet is a replay.
    node.send_framed(&first).await;
    assert_eq!(node.wait_metric(REPLAYED, 1.0).await, 1.0);

    // Packets for rotation 0 stream in across the boundary into epoch 2 (rotation 1): every
    // one is delivered, by the primary before the swap and by the kept key after it.
    api.at(1.8).await;
    let mut sent = 0;
    while SystemTime::now() < api_time(&api, 2.3) {
        sent += 1;
        let message = format!("across the boundary {sent}");
        node.send(static_key, KeyRotation::Even, message.as_bytes())
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sent > 10, "{sent}");
    let stored = sent as f64;
    assert_eq!(node.wait_metric(STORED, stored).await, stored);
    assert_eq!(node.metric(REPLAYED).await, 1.0, "only the resent packet");

    // Epoch 2: rotation 1's key is the primary; the previous one is kept, not announced.
    api.at(2.5).await;
    let announced = node.announced(&identity).await;
    assert_eq!(
        rotation_of(&announced, "primary_x25519_sphinx_key"),
        Some(1)
    );
    assert_eq!(public_of(&announced, "primary_x25519_sphinx_key"), next_key);
    assert!(announced["pre_announced_x25519_sphinx_key"].is_null());
    node.send(static_key, KeyRotation::Unknown, b"v7, old key")
        .await;
    node.send(next_key, KeyRotation::Odd, b"rotation 1").await;
    let stored = stored + 2.0;
    assert_eq!(node.wait_metric(STORED, stored).await, stored);

    // Epoch 3: the previous key is deleted with its filter; rotation 2's is pre-announced.
    api.at(3.5).await;
    let announced = node.announced(&identity).await;
    assert_eq!(
        rotation_of(&announced, "primary_x25519_sphinx_key"),
        Some(1)
    );
    assert_eq!(
        rotation_of(&announced, "pre_announced_x25519_sphinx_key"),
        Some(2)
    );
    let files = files_in(&key_dir);
    assert!(
        !files.contains(&"sphinx_rotation_0.pem".to_owned()),
        "{files:?}"
    );
    assert!(
        files.contains(&"sphinx_rotation_2.pem".to_owned()),
        "{files:?}"
    );
    // The static key file is the operator's and stays.
    assert!(config.gateway.private_sphinx_key_file.exists());
    let data = files_in(&data_dir);
    assert!(
        !data.contains(&"replay_filter.rotation_0.bin".to_owned()),
        "{data:?}"
    );
    assert!(!data.contains(&"replay_filter.bin".to_owned()), "{data:?}");
    let refused = node.metric(FAILED).await + node.metric(NO_KEY).await;
    node.send(static_key, KeyRotation::Even, b"deleted key")
        .await;
    node.send(static_key, KeyRotation::Unknown, b"deleted key, v7")
        .await;
    for _ in 0..40 {
        if node.metric(FAILED).await + node.metric(NO_KEY).await >= refused + 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        node.metric(FAILED).await + node.metric(NO_KEY).await,
        refused + 2.0
    );
    assert_eq!(
        node.metric(STORED).await,
        stored,
        "nothing for a deleted key"
    );

    // nym-api was asked to describe the node again at each start and after each change,
    // each request signed as nym-api checks it.
    let refreshes = api.refreshes();
    assert!(refreshes.len() >= 5, "{refreshes:?}");
    for body in &refreshes {
        check_refresh(body, &identity);
    }
    node.stop().await;
}

fn api_time(api: &FakeApi, epochs: f64) -> SystemTime {
    api.state.lock().unwrap().genesis + EPOCH.mul_f64(epochs)
}

/// nym-api's `NodeRefreshBody` check: identity, timestamp within 30 s, signature over
/// identity ‖ timestamp (i64 big-endian) ‖ "describe-cache-refresh-request".
fn check_refresh(body: &Value, identity: &VerifyingKey) {
    let public = bs58::decode(body["node_identity"].as_str().unwrap())
        .into_vec()
        .unwrap();
    assert_eq!(public, identity.to_bytes());
    let timestamp = body["request_timestamp"].as_i64().unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - 30..=now).contains(&timestamp),
        "{timestamp} vs {now}"
    );
    let signature: Vec<u8> = body["signature"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    let mut plaintext = public;
    plaintext.extend_from_slice(&timestamp.to_be_bytes());
    plaintext.extend_from_slice(b"describe-cache-refresh-request");
    identity
        .verify(&plaintext, &Signature::from_slice(&signature).unwrap())
        .unwrap();
}

/// An unreachable, garbage, failing or stuck nym-api: the node starts, keeps its static key
/// (announced as the legacy rotation), delivers packets, and takes up the rotation once
/// nym-api answers properly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_nym_api_costs_only_the_rotation() {
    for mode in [Mode::Garbage, Mode::Failing, Mode::Stuck] {
        let dir = tempfile::tempdir().unwrap();
        let api = FakeApi::start(mode).await;
        let keys = NodeKeys::generate().unwrap();
        let identity = keys.identity.verifying_key();
        let static_key = x25519_dalek::PublicKey::from(&keys.sphinx).to_bytes();
        let mut config = config(dir.path(), &api);
        if mode == Mode::Stuck {
            // Long enough ago that epoch 0 is overdue.
            api.set(|s| s.genesis = SystemTime::now() - EPOCH * 5);
        }
        let node = start(&config, &keys).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let announced = node.announced(&identity).await;
        let legacy = u64::from(u32::MAX);
        assert_eq!(
            rotation_of(&announced, "primary_x25519_sphinx_key"),
            Some(legacy),
            "{mode:?}"
        );
        node.send(static_key, KeyRotation::Odd, b"still served")
            .await;
        assert_eq!(node.wait_metric(STORED, 1.0).await, 1.0, "{mode:?}");

        // nym-api recovers: the rotation begins.
        api.set(|s| {
            s.mode = Mode::Live;
            s.genesis = SystemTime::now() - Duration::from_millis(50);
        });
        let mut rotation = None;
        for _ in 0..40 {
            let announced = node.announced(&identity).await;
            rotation = rotation_of(&announced, "primary_x25519_sphinx_key");
            if rotation == Some(0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(rotation, Some(0), "{mode:?}");
        node.stop().await;
        // An unreachable nym-api: nothing listens there.
        config.gateway.nym_api_urls = Some(vec!["http://127.0.0.1:9/".into()]);
        let node = start(&config, &keys).await;
        let announced = node.announced(&identity).await;
        // The keys it holds stay in use: the rotation keys, not the static one.
        let rotation = rotation_of(&announced, "primary_x25519_sphinx_key").unwrap();
        assert!(rotation < 3, "{mode:?}: {rotation}");
        let key = public_of(&announced, "primary_x25519_sphinx_key");
        node.send(key, parity(rotation), b"offline nym-api").await;
        assert_eq!(node.wait_metric(STORED, 1.0).await, 1.0, "{mode:?}");
        node.stop().await;
    }
}

/// nym-api's epoch jumps far ahead (a chain halted then resumed, or our clock corrected), and
/// a key file from a rotation still ahead lies in the key directory: the node moves straight
/// to the current rotation with a fresh key, deletes the stale one, leaves the future file
/// unused, and delivers packets for the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jump_in_the_epochs_and_a_key_from_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(Mode::Live).await;
    let config = config(dir.path(), &api);
    let keys = NodeKeys::generate().unwrap();
    let identity = keys.identity.verifying_key();
    let key_dir: PathBuf = config
        .gateway
        .private_sphinx_key_file
        .parent()
        .unwrap()
        .into();
    std::fs::create_dir_all(&key_dir).unwrap();
    let future = "-----BEGIN X25519 SPHINX PRIVATE KEY-----\r\nAAAAMgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\r\n-----END X25519 SPHINX PRIVATE KEY-----\r\n";
    std::fs::write(key_dir.join("sphinx_rotation_50.pem"), future).unwrap();
    let node = start(&config, &keys).await;
    api.at(0.3).await;
    let announced = node.announced(&identity).await;
    assert_eq!(
        rotation_of(&announced, "primary_x25519_sphinx_key"),
        Some(0)
    );

    // Twenty epochs later, suddenly: rotation 10.
    api.set(|s| s.jump = 20);
    let mut announced = Value::Null;
    for _ in 0..60 {
        announced = node.announced(&identity).await;
        if rotation_of(&announced, "primary_x25519_sphinx_key") == Some(10)
            && announced["pre_announced_x25519_sphinx_key"].is_null()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        rotation_of(&announced, "primary_x25519_sphinx_key"),
        Some(10)
    );
    let key = public_of(&announced, "primary_x25519_sphinx_key");
    node.send(key, parity(10), b"after the jump").await;
    assert_eq!(node.wait_metric(STORED, 1.0).await, 1.0);
    let files = files_in(&key_dir);
    assert!(
        files.contains(&"sphinx_rotation_10.pem".to_owned()),
        "{files:?}"
    );
    assert!(
        !files.contains(&"sphinx_rotation_0.pem".to_owned()),
        "{files:?}"
    );
    // The future file is not ours to judge: left as it was, never used.
    assert!(
        files.contains(&"sphinx_rotation_50.pem".to_owned()),
        "{files:?}"
    );
    node.stop().await;
}
