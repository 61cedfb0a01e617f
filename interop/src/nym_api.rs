//! A stand-in nym-api for key rotation: `GET /v1/epoch/key-rotation-info` on epochs that follow
//! the wall clock from the moment it started, and `POST /v1/nym-nodes/refresh-described`
//! (counted), and `GET /v2/unstable/nym-nodes/semi-skimmed` listing the Noise keys a test sets
//! ([`NymApi::set_noise_nodes`]). Plain HTTP/1.1 over loopback, one request per connection.

use anyhow::Context;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The stand-in nym-api and its clock.
pub struct NymApi {
    addr: SocketAddr,
    genesis: SystemTime,
    epoch: Duration,
    refreshes: Arc<AtomicUsize>,
    /// The semi-skimmed list's body.
    nodes: Arc<Mutex<String>>,
}

#[derive(Clone, Copy)]
struct Schedule {
    genesis: SystemTime,
    epoch: Duration,
    validity: u32,
    first_epoch: u32,
}

impl NymApi {
    /// Starts serving on a loopback port: epoch `first_epoch` begins now, each lasts `epoch`,
    /// a rotation `validity` epochs (counted from epoch 0).
    pub async fn start(epoch: Duration, validity: u32, first_epoch: u32) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // Just after a boundary, so a test's checkpoints fall mid-epoch.
        let genesis = SystemTime::now() - Duration::from_millis(50);
        let refreshes = Arc::new(AtomicUsize::new(0));
        let schedule = Schedule {
            genesis,
            epoch,
            validity,
            first_epoch,
        };
        let counter = refreshes.clone();
        let nodes = Arc::new(Mutex::new(semi_skimmed(&[])));
        let listed = nodes.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                let listed = listed.lock().unwrap().clone();
                tokio::spawn(async move {
                    let _ = answer(stream, schedule, &counter, &listed).await;
                });
            }
        });
        Ok(Self {
            addr,
            genesis,
            epoch,
            refreshes,
            nodes,
        })
    }

    /// The base URL to give the gateway as `nym_api_urls`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Lists a node at each mix address with its Noise key (bs58) in the semi-skimmed list.
    pub fn set_noise_nodes(&self, nodes: &[(SocketAddr, String)]) {
        *self.nodes.lock().unwrap() = semi_skimmed(nodes);
    }

    /// Refresh-described requests received so far.
    pub fn refreshes(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }

    /// Sleeps until `epochs` (fractional) epochs after the first epoch began.
    pub async fn at(&self, epochs: f64) {
        let when = self.genesis + self.epoch.mul_f64(epochs);
        if let Ok(wait) = when.duration_since(SystemTime::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// nym-api's `PaginatedCachedNodesResponseV2<SemiSkimmedNodeV1>`, every node on page 0, with
/// only the fields a Noise view needs besides the required ones.
fn semi_skimmed(nodes: &[(SocketAddr, String)]) -> String {
    let data: Vec<serde_json::Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, (addr, key))| {
            serde_json::json!({
                "basic": {
                    "node_id": 100 + i,
                    "ip_addresses": [addr.ip()],
                    "mix_port": addr.port(),
                },
                "x25519_noise_versioned_key": { "supported_version": 1, "x25519_pubkey": key },
            })
        })
        .collect();
    serde_json::json!({
        "metadata": { "status": null, "absolute_epoch_id": 0, "rotation_id": 0, "refreshed_at": "2026-01-01T00:00:00Z" },
        "nodes": { "pagination": { "total": data.len(), "page": 0, "size": data.len() }, "data": data },
    })
    .to_string()
}

async fn answer(
    mut stream: TcpStream,
    schedule: Schedule,
    refreshes: &AtomicUsize,
    nodes: &str,
) -> anyhow::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    // The head, then as much body as Content-Length says.
    let head_end = loop {
        let n = stream.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "connection closed mid-request");
        request.extend_from_slice(&buf[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        anyhow::ensure!(request.len() < 64 * 1024, "request head too large");
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while request.len() < head_end + length {
        let n = stream.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "connection closed mid-body");
        request.extend_from_slice(&buf[..n]);
    }
    let line = head.lines().next().context("no request line")?;
    let (status, body) = if line.starts_with("GET /v1/epoch/key-rotation-info") {
        ("200 OK", rotation_info(schedule))
    } else if line.starts_with("GET /v2/unstable/nym-nodes/semi-skimmed") {
        ("200 OK", nodes.to_owned())
    } else if line.starts_with("POST /v1/nym-nodes/refresh-described") {
        refreshes.fetch_add(1, Ordering::SeqCst);
        ("200 OK", "null".to_owned())
    } else {
        ("404 Not Found", "\"not served\"".to_owned())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// nym-api's `KeyRotationInfoResponse` now.
fn rotation_info(s: Schedule) -> String {
    let elapsed = SystemTime::now()
        .duration_since(s.genesis)
        .unwrap_or_default();
    let passed = (elapsed.as_nanos() / s.epoch.as_nanos()) as u32;
    let start = s.genesis + s.epoch * passed;
    let epoch = s.first_epoch + passed;
    let rotation = epoch / s.validity;
    serde_json::json!({
        "key_rotation_state": { "validity_epochs": s.validity, "initial_epoch_id": 0 },
        "current_absolute_epoch_id": epoch,
        "current_epoch_start": humantime::format_rfc3339_nanos(start).to_string(),
        "epoch_duration": { "secs": s.epoch.as_secs(), "nanos": s.epoch.subsec_nanos() },
        "progress": {
            "current_key_rotation_id": rotation,
            "current_rotation_starting_epoch": rotation * s.validity,
            "current_rotation_ending_epoch": rotation * s.validity + s.validity - 1,
        },
    })
    .to_string()
}
