//! The operator's dashboard (issue 20): the page and its data endpoint on a node started in
//! this process, the token rule, the Grafana file against the real `/metrics`, and the page
//! itself in headless Chromium while traffic goes through the node.

mod util;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_protocol::test_support::sphinx::{final_hop_packet, v7_frame, ACK_PACKET_LEN};
use nym_gateway::config::Config;
use nym_gateway::keys::NodeKeys;
use nym_gateway::network::Network;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use util::harness::NextHop;
use util::in_process::{loopback_config, RunningNode};
use util::ws_client::{random, TestClient, WsClient};

const TOKEN: &str = "dashboard-test-token-5f1c";

/// A node running in this process with a token on its HTTP API and a fast dashboard sampler.
struct Node {
    _dir: tempfile::TempDir,
    keys: (ed25519_dalek::VerifyingKey, [u8; 32], String),
    mix: SocketAddr,
    clients: SocketAddr,
    http: SocketAddr,
    running: RunningNode,
}

impl Node {
    async fn start(id: &str, tune: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = loopback_config(id, dir.path(), &Network::mainnet());
        config.gateway.http_api_token = Some(TOKEN.into());
        config.debug.replay_filter_capacity = std::num::NonZeroU64::new(100_000).unwrap();
        config.debug.dashboard_sample_interval = Duration::from_millis(200);
        config.debug.dashboard_store_interval = Duration::from_millis(200);
        tune(&mut config);
        let keys = NodeKeys::generate().unwrap();
        let public = (
            keys.identity.verifying_key(),
            x25519_dalek::PublicKey::from(&keys.sphinx).to_bytes(),
            keys.identity_public_bs58(),
        );
        let running = RunningNode::start(&config, keys).await;
        Self {
            _dir: dir,
            keys: public,
            mix: running.mix,
            clients: running.clients,
            http: running.http,
            running,
        }
    }

    async fn stop(self) {
        self.running.stop().await;
    }

    /// A message for `client` through the mix port (its SURB-ack goes to `ack_hop`).
    async fn send_to(&self, client: [u8; 32], ack_hop: &NextHop, message: &[u8]) {
        let ack_packet: [u8; ACK_PACKET_LEN] = random();
        let packet = final_hop_packet(
            self.keys.1,
            self.mix,
            client,
            ack_hop.addr(),
            &ack_packet,
            message,
        );
        let mut peer = TcpStream::connect(self.mix).await.unwrap();
        peer.write_all(&v7_frame(&packet)).await.unwrap();
        peer.flush().await.unwrap();
    }
}

/// Status code, headers and body of a GET with an optional `Authorization` header value.
async fn get(addr: SocketAddr, path: &str, authorization: Option<&str>) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_public_and_holds_no_secret_while_its_data_needs_the_token() {
    let node = Node::start("dashboard-token", |_| {}).await;

    let (status, head, page) = get(node.http, "/dashboard", None).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(page.contains("/dashboard/data"));
    assert!(!page.contains(TOKEN), "the page must not carry the token");
    assert!(
        !page.contains(&node.keys.2),
        "the page must not carry the node's data"
    );

    let (status, head, _) = get(node.http, "/", None).await;
    assert_eq!(status, 307, "{head}");
    assert!(head.contains("location: /dashboard"), "{head}");

    for authorization in [
        None,
        Some("Bearer wrong-token-of-other-length".to_owned()),
        Some(format!("Bearer {}", TOKEN.replace('5', "6"))),
        Some(TOKEN.to_owned()),
        Some(format!("Basic {TOKEN}")),
    ] {
        let (status, head, body) =
            get(node.http, "/dashboard/data", authorization.as_deref()).await;
        assert_eq!(status, 401, "{authorization:?}: {head}");
        assert!(!body.contains(&node.keys.2), "{body}");
    }

    let (status, head, body) = get(node.http, "/dashboard/data", Some(&bearer())).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    let data: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        data["host"]["data"]["keys"]["ed25519_identity"],
        node.keys.2
    );
    assert_eq!(
        data["host"]["data"]["keys"]["primary_x25519_sphinx_key"]["public_key"],
        bs58::encode(node.keys.1).into_string()
    );
    assert_eq!(data["build"]["binary_name"], "nym-gateway");
    assert_eq!(data["interval_ms"], 200);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_keeps_at_most_its_configured_samples() {
    // 1 s of history at 200 ms: 5 rows, however long the node runs.
    let node = Node::start("dashboard-bounded", |c| {
        c.debug.dashboard_history = Duration::from_secs(1);
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let (_, _, body) = get(node.http, "/dashboard/data", Some(&bearer())).await;
    let data: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(data["capacity"], 5);
    let rows = data["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "{body}");
    // `since` returns only newer rows.
    let last = rows[4]["at_ms"].as_u64().unwrap();
    let (_, _, body) = get(
        node.http,
        &format!("/dashboard/data?since={last}"),
        Some(&bearer()),
    )
    .await;
    let newer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(newer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["at_ms"].as_u64().unwrap() > last));
    node.stop().await;
}

/// The metric names a Grafana dashboard's text refers to (`gateway_...`).
fn referenced_metrics(dashboard: &str) -> Vec<String> {
    let mut names: Vec<String> = dashboard
        .match_indices("gateway_")
        .map(|(at, _)| {
            dashboard[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Every series name `/metrics` can serve: from each `# TYPE` line, with the suffixes its type
/// gives samples (a labelled family has no sample until a label value is first counted).
fn served_metrics(exposition: &str) -> Vec<String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .flat_map(|line| {
            let (name, kind) = line.split_once(' ').unwrap();
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            suffixes.iter().map(move |s| format!("{name}{s}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_grafana_dashboard_uses_is_served() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/grafana/nym-gateway.json");
    let dashboard = std::fs::read_to_string(&file).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("valid JSON");
    assert!(json["panels"].as_array().unwrap().len() >= 8);

    let node = Node::start("dashboard-grafana", |_| {}).await;
    let (status, _, exposition) = get(node.http, "/metrics", Some(&bearer())).await;
    assert_eq!(status, 200);
    let served = served_metrics(&exposition);
    let referenced = referenced_metrics(&dashboard);
    assert!(referenced.len() >= 20, "{referenced:?}");
    let missing: Vec<_> = referenced.iter().filter(|m| !served.contains(m)).collect();
    assert!(
        missing.is_empty(),
        "{} uses metrics /metrics does not serve: {missing:?}",
        file.display()
    );
    node.stop().await;
}

/// Chromium, or why the browser test cannot run.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = std::process::Command::new("which").arg(name).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!(
        "this test needs Chromium: install it with `apt-get install chromium` (Debian), then \
         run `cargo nextest run -p nym-gateway --test dashboard --run-ignored only`"
    );
}

/// Loads `url` in headless Chromium, lets the page poll for `budget` of virtual time, and
/// returns the DOM it then holds (`--dump-dom`) or writes a screenshot (`screenshot`).
async fn headless(url: &str, budget: Duration, screenshot: Option<&Path>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(chromium());
    command
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--window-size=1280,2000",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--virtual-time-budget={}", budget.as_millis()),
        ])
        .kill_on_drop(true);
    match screenshot {
        Some(path) => command.arg(format!("--screenshot={}", path.display())),
        None => command.arg("--dump-dom"),
    };
    let out = tokio::time::timeout(Duration::from_secs(90), command.arg(url).output())
        .await
        .expect("chromium finishes in time")
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the element with `id` in a dumped DOM (the page writes plain text only).
fn text_of(dom: &str, id: &str) -> String {
    let open = format!("id=\"{id}\"");
    let start = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let after = &dom[start..];
    let body = &after[after.find('>').unwrap() + 1..];
    body[..body.find('<').unwrap()].trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium (apt-get install chromium); .ci/run installs it and runs it (cargo nextest run --run-ignored only ...)"]
async fn the_page_in_a_real_browser_shows_the_numbers_move_with_the_traffic() {
    // Fail (never pass) when the browser is missing, with how to install it.
    chromium();
    // The node's warnings reach the page through the process's logging layer.
    nym_gateway::logging::init();
    let node = Node::start("dashboard-browser", |_| {}).await;
    let url = format!("http://{}/dashboard#token={TOKEN}", node.http);
    let budget = Duration::from_secs(3);

    let before = headless(&url, budget, None).await;
    assert_eq!(text_of(&before, "status"), "up", "{before}");
    assert_eq!(text_of(&before, "clients"), "0");
    assert_eq!(text_of(&before, "mix-in-total"), "0");
    assert_eq!(text_of(&before, "pushed-total"), "0");
    assert_eq!(text_of(&before, "identity"), node.keys.2);
    assert_eq!(
        text_of(&before, "sphinx-key"),
        bs58::encode(node.keys.1).into_string()
    );
    assert_eq!(text_of(&before, "rotation"), "static key (no rotation)");

    // Traffic: one connected client gets 5 messages pushed, an offline one gets 3 stored.
    let mut online = TestClient::new();
    let mut ws = WsClient::connect(node.clients.port()).await;
    online.register(&mut ws, &node.keys.0).await;
    ws.claim_free_bandwidth().await;
    let offline = TestClient::new();
    let ack_hop = NextHop::bind().await;
    for i in 0..5 {
        node.send_to(online.address(), &ack_hop, format!("live {i}").as_bytes())
            .await;
        ws.next_binary().await;
    }
    for i in 0..3 {
        node.send_to(offline.address(), &ack_hop, format!("kept {i}").as_bytes())
            .await;
    }
    tracing::warn!(target: "dashboard_test", "a warning the page must show");
    // Until the metrics hold all of it, then a few samples more.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, _, text) = get(node.http, "/metrics", Some(&bearer())).await;
        if text.contains("gateway_messages_stored_total 3") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;

    let after = headless(&url, budget, None).await;
    assert_eq!(text_of(&after, "status"), "up");
    assert_eq!(text_of(&after, "clients"), "1", "{after}");
    assert_eq!(text_of(&after, "mix-in-total"), "8");
    assert_eq!(text_of(&after, "pushed-total"), "5");
    assert_eq!(text_of(&after, "stored-total"), "3");
    assert_eq!(text_of(&after, "store-messages"), "3");
    for latency in ["unwrap-latency", "delivery-latency"] {
        let shown = text_of(&after, latency);
        assert!(
            shown.ends_with('s') && shown != "–",
            "#{latency}: {shown:?}"
        );
    }
    assert!(after.contains("a warning the page must show"), "{after}");
    assert!(after.contains("dashboard_test"));
    let samples: usize = text_of(&after, "samples").parse().unwrap();
    assert!(samples >= 3, "{samples} samples");

    // Without the token the page shows no data and asks for one.
    let locked = headless(
        &format!("http://{}/dashboard", node.http),
        Duration::from_secs(1),
        None,
    )
    .await;
    assert_eq!(text_of(&locked, "status"), "token needed");
    assert_eq!(text_of(&locked, "clients"), "–");
    assert!(!locked.contains(&node.keys.2));

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    headless(&url, budget, Some(&shot)).await;
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "a screenshot of the page: {size} bytes");
    eprintln!("dashboard screenshot: {}", shot.display());

    ws.close().await;
    node.stop().await;
}
