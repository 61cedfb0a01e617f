//! The nym-api endpoints of the local network, over HTTP: what a Nym client reads its topology
//! from (skimmed node lists v1/v2, rewarded set, key-rotation info) and what a nym-node asks at
//! start and while it runs (semi-skimmed list, refresh-described, described nodes, nodes by
//! address, the upgrade-mode attestation). Answers are JSON whatever encoding was asked for;
//! nym's clients read JSON either way. Errors are nym-api's: a status and a plain-text message.
//!
//! A background task reads every node's self-description periodically (see [`refresher`]), so
//! the lists follow the nodes' key rotations.
//!
//! The e-cash endpoints ([`EcashEndpoint`]: nym-api's master verification key, a signer's
//! ticket verification, and tickets for clients) are answered by [`crate::ecash`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::directory::{Directory, ListLayout, NodeKind, RefreshRefused};
use crate::ecash::{Ecash, TICKETBOOK_PATH, TICKET_PATH};

/// Where the upgrade-mode attestation is served (the path of mainnet's URL); it answers `null`:
/// no upgrade mode.
pub const UPGRADE_MODE_ATTESTATION_PATH: &str = "/.wellknown/upgrade-mode/attestation.json";

/// A request the directory answers, parsed from its method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v1/epoch/key-rotation-info`
    KeyRotationInfo,
    /// `GET /v1/nym-nodes/rewarded-set`
    RewardedSet,
    /// `GET /v{1,2}/unstable/nym-nodes/{skimmed,semi-skimmed}[/...]`
    Nodes {
        /// Which nodes.
        kind: NodeKind,
        /// v1 or v2 layout.
        layout: ListLayout,
        /// Semi-skimmed (with the Noise key) rather than skimmed.
        semi: bool,
    },
    /// `GET /v1/nym-nodes/described`
    Described,
    /// `POST /v1/nym-nodes/refresh-described`
    RefreshDescribed,
    /// `POST /v1/unstable/nym-nodes/by-addresses`
    ByAddresses,
    /// `GET` [`UPGRADE_MODE_ATTESTATION_PATH`]
    UpgradeModeAttestation,
}

impl Endpoint {
    /// The endpoint at `method` `path`, if it is one we serve.
    pub fn from_request(method: &Method, path: &str) -> Option<Self> {
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        if *method == Method::POST {
            return match segments.as_slice() {
                ["v1", "nym-nodes", "refresh-described"] => Some(Self::RefreshDescribed),
                ["v1", "unstable", "nym-nodes", "by-addresses"] => Some(Self::ByAddresses),
                _ => None,
            };
        }
        if *method != Method::GET {
            return None;
        }
        match segments.as_slice() {
            ["v1", "epoch", "key-rotation-info"] => Some(Self::KeyRotationInfo),
            ["v1", "nym-nodes", "rewarded-set"] => Some(Self::RewardedSet),
            ["v1", "nym-nodes", "described"] => Some(Self::Described),
            [".wellknown", "upgrade-mode", "attestation.json"] => {
                Some(Self::UpgradeModeAttestation)
            }
            [version @ ("v1" | "v2"), "unstable", "nym-nodes", list @ ("skimmed" | "semi-skimmed"), rest @ ..] =>
            {
                let kind = match rest {
                    [] => NodeKind::All,
                    ["mixnodes", "active" | "all"] => NodeKind::Mixnodes,
                    ["entry-gateways" | "exit-gateways"]
                    | ["entry-gateways" | "exit-gateways", "all"] => NodeKind::Gateways,
                    _ => return None,
                };
                let semi = *list == "semi-skimmed";
                // nym-api's semi-skimmed list has no per-kind variants.
                if semi && kind != NodeKind::All {
                    return None;
                }
                let layout = if *version == "v2" {
                    ListLayout::V2
                } else {
                    ListLayout::V1
                };
                Some(Self::Nodes { kind, layout, semi })
            }
            _ => None,
        }
    }
}

/// An e-cash request, parsed from its method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcashEndpoint {
    /// `GET /v1/ecash/master-verification-key`
    MasterVerificationKey,
    /// `POST /v1/ecash/verify-ecash-ticket`
    VerifyTicket,
    /// `POST` [`TICKET_PATH`]
    Ticket,
    /// `POST` [`TICKETBOOK_PATH`]
    TicketBook,
}

impl EcashEndpoint {
    /// The endpoint at `method` `path`, if it is an e-cash one.
    pub fn from_request(method: &Method, path: &str) -> Option<Self> {
        let path = path.trim_end_matches('/');
        if *method == Method::GET && path == "/v1/ecash/master-verification-key" {
            Some(Self::MasterVerificationKey)
        } else if *method == Method::POST && path == "/v1/ecash/verify-ecash-ticket" {
            Some(Self::VerifyTicket)
        } else if *method == Method::POST && path == TICKET_PATH {
            Some(Self::Ticket)
        } else if *method == Method::POST && path == TICKETBOOK_PATH {
            Some(Self::TicketBook)
        } else {
            None
        }
    }
}

/// The answer to an e-cash request at `now` (blocks: pairings).
pub fn ecash_answer(
    ecash: &Ecash,
    endpoint: EcashEndpoint,
    uri: &Uri,
    body: &[u8],
    now: SystemTime,
) -> Result<Value, (StatusCode, String)> {
    let now_unix = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let refused = |r: crate::ecash::Refused| {
        (
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            r.message,
        )
    };
    match endpoint {
        EcashEndpoint::MasterVerificationKey => {
            let epoch = match query_value(uri, "epoch_id") {
                None => None,
                Some(value) => Some(value.parse::<u64>().map_err(|_| {
                    (
                        StatusCode::BAD_REQUEST,
                        format!("epoch_id {value:?} is not a number"),
                    )
                })?),
            };
            ecash.master_verification_key(epoch).map_err(refused)
        }
        EcashEndpoint::VerifyTicket => ecash.verify_ticket(body, now_unix).map_err(refused),
        EcashEndpoint::Ticket => {
            let ticket = ecash.ticket(body, now_unix).map_err(refused)?;
            serde_json::to_value(ticket)
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
        EcashEndpoint::TicketBook => {
            let book = ecash.ticketbook(body, now_unix).map_err(refused)?;
            serde_json::to_value(book)
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
    }
}

/// `NodeRefreshBody`: the signature is nym's `ed25519::Signature` serde form, a byte array.
#[derive(Debug, Deserialize)]
struct RefreshBody {
    node_identity: String,
    request_timestamp: i64,
    signature: Vec<u8>,
}

/// `NodesByAddressesRequestBody`.
#[derive(Debug, Deserialize)]
struct ByAddressesBody {
    addresses: Vec<IpAddr>,
}

/// The answer to `endpoint` with request `body` and query `page` at `now`.
pub async fn answer(
    directory: &Directory,
    endpoint: Endpoint,
    page: u32,
    body: &[u8],
    now: SystemTime,
) -> Result<Value, (StatusCode, String)> {
    let bad = |e: serde_json::Error| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
    Ok(match endpoint {
        Endpoint::KeyRotationInfo => directory.key_rotation_info(now),
        Endpoint::RewardedSet => directory.rewarded_set(now),
        Endpoint::Nodes { kind, layout, semi } => {
            directory.node_list(kind, layout, semi, page, now)
        }
        Endpoint::Described => directory.described_nodes(page),
        Endpoint::UpgradeModeAttestation => Value::Null,
        Endpoint::ByAddresses => {
            let body: ByAddressesBody = serde_json::from_slice(body).map_err(bad)?;
            if body.addresses.len() > 100 {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "requested too many addresses".into(),
                ));
            }
            directory.by_addresses(&body.addresses)
        }
        Endpoint::RefreshDescribed => {
            let body: RefreshBody = serde_json::from_slice(body).map_err(bad)?;
            let identity = body.node_identity;
            directory
                .forced_refresh(&identity, body.request_timestamp, &body.signature, now)
                .await
                .map_err(|refused| refused_status(refused, &identity))?;
            // nym-api answers `Json(())`.
            Value::Null
        }
    })
}

/// nym-api's status and message for a refused refresh.
fn refused_status(refused: RefreshRefused, identity: &str) -> (StatusCode, String) {
    match refused {
        RefreshRefused::UnknownNode => (
            StatusCode::NOT_FOUND,
            format!("node with identity {identity} does not seem to exist"),
        ),
        RefreshRefused::BadSignature => {
            (StatusCode::UNAUTHORIZED, "invalid request signature".into())
        }
        RefreshRefused::Stale => (StatusCode::BAD_REQUEST, "the request is stale".into()),
        RefreshRefused::TooSoon => (
            StatusCode::TOO_MANY_REQUESTS,
            "already refreshed node in the last minute".into(),
        ),
        RefreshRefused::Unprocessable(why) => {
            eprintln!("nym-api: refreshing node {identity} failed: {why}");
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "failed to refresh node description".into(),
            )
        }
    }
}

/// The `page` query parameter (0 when absent or unreadable).
pub fn page(uri: &Uri) -> u32 {
    query_value(uri, "page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The value of query parameter `name`, if present.
fn query_value<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// What the endpoints answer from.
#[derive(Clone)]
struct Services {
    directory: Arc<Directory>,
    /// The e-cash authority, if this directory runs one.
    ecash: Option<Arc<Ecash>>,
    /// E-cash requests worked on at once (pairings; the rest wait for a slot).
    ecash_slots: Arc<Semaphore>,
}

async fn handle(
    State(services): State<Services>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let Services {
        directory,
        ecash,
        ecash_slots,
    } = services;
    if let Some(endpoint) = EcashEndpoint::from_request(&method, uri.path()) {
        let Some(ecash) = ecash else {
            return (StatusCode::NOT_FOUND, "no e-cash authority here").into_response();
        };
        // The semaphore is never closed.
        let Ok(_slot) = ecash_slots.acquire_owned().await else {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        };
        let answered = tokio::task::spawn_blocking(move || {
            ecash_answer(&ecash, endpoint, &uri, &body, SystemTime::now())
        })
        .await
        .unwrap_or_else(|_| {
            Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "the e-cash authority failed".to_owned(),
            ))
        });
        return match answered {
            Ok(value) => Json(value).into_response(),
            Err(error) => error.into_response(),
        };
    }
    let Some(endpoint) = Endpoint::from_request(&method, uri.path()) else {
        eprintln!("nym-api: no such endpoint: {method} {uri}");
        return (StatusCode::NOT_FOUND, "not served by nym-localnet").into_response();
    };
    match answer(&directory, endpoint, page(&uri), &body, SystemTime::now()).await {
        Ok(value) => Json(value).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Binds the directory's listener (port 0 picks one).
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context as _;
    TcpListener::bind(address).await.with_context(|| {
        format!("failed to bind the nym-api address {address}; is it in use? (see --api-address)")
    })
}

/// Serves `directory` and `ecash` (none: its endpoints answer 404) on `listener` until
/// `shutdown`.
pub async fn serve(
    listener: TcpListener,
    directory: Arc<Directory>,
    ecash: Option<Arc<Ecash>>,
    shutdown: CancellationToken,
) {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let app = axum::Router::new().fallback(handle).with_state(Services {
        directory,
        ecash,
        ecash_slots: Arc::new(Semaphore::new(cores)),
    });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        eprintln!("nym-api: stopped: {e}");
    }
}

/// How often the directory reads the nodes' self-descriptions: often enough that a key
/// pre-announced at the start of an epoch is listed well before that epoch ends (nym-api
/// refreshes before every rotation for the same reason), between 1 s and a minute.
pub fn refresh_interval(epoch: Duration) -> Duration {
    (epoch / 8).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Refreshes every node's self-description every `interval` until `shutdown`, telling of a
/// node's failure when it starts and when it ends (not at every attempt).
pub async fn refresher(directory: Arc<Directory>, interval: Duration, shutdown: CancellationToken) {
    let mut failing: Vec<String> = Vec::new();
    loop {
        let failed = directory.refresh_all().await;
        for (id, error) in &failed {
            if !failing.contains(id) {
                eprintln!("nym-api: cannot describe node {id}: {error:#}");
            }
        }
        for id in &failing {
            if !failed.iter().any(|(f, _)| f == id) {
                eprintln!("nym-api: node {id} is described again");
            }
        }
        failing = failed.into_iter().map(|(id, _)| id).collect();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests;
