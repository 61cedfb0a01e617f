//! The HTTP API (default 127.0.0.1:8080): `/health`, `/metrics` (Prometheus text),
//! `/api/v1/node-details`, and the public self-described API nym-api polls (bodies in
//! [`super::described`]).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router as HttpRouter};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::described::{Described, NodeHealth};
use super::metrics::Metrics;
use crate::node_details::NodeDetails;

#[derive(Clone)]
struct ApiState {
    metrics: Metrics,
    store: gateway_store::Store,
    details: Arc<NodeDetails>,
    described: Arc<Described>,
    started: Instant,
    token: Option<Arc<str>>,
}

impl ApiState {
    /// Whether the request may read protected routes.
    fn authorised(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Constant-time: the token is a secret.
        presented.len() == token.len()
            && presented
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn unauthorised() -> axum::response::Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token is required",
    )
        .into_response()
}

/// What the API serves, besides metrics.
pub struct ApiContent {
    /// The store, for totals read at scrape time.
    pub store: gateway_store::Store,
    /// `/api/v1/node-details`.
    pub details: NodeDetails,
    /// The self-described API.
    pub described: Described,
}

/// Serves the API on `listener` until `shutdown`. The self-described routes are public, like
/// nym-node's; `/metrics` and `/api/v1/node-details` need `token` if one is set.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    content: ApiContent,
    token: Option<String>,
    shutdown: CancellationToken,
) {
    let state = ApiState {
        metrics,
        store: content.store,
        details: Arc::new(content.details),
        described: Arc::new(content.described),
        started: Instant::now(),
        token: token.map(Into::into),
    };
    let app =
        HttpRouter::new()
            .route("/health", get(health))
            .route("/metrics", get(metrics_text))
            .route("/api/v1/node-details", get(node_details))
            .route("/api/v1/health", get(described_health))
            .route(
                "/api/v1/build-information",
                get(|State(s): State<ApiState>| async move {
                    Json(s.described.build_information.clone())
                }),
            )
            .route(
                "/api/v1/roles",
                get(|State(s): State<ApiState>| async move { Json(s.described.roles) }),
            )
            .route(
                "/api/v1/host-information",
                get(
                    |State(s): State<ApiState>| async move { Json(s.described.host_information()) },
                ),
            )
            .route(
                "/api/v1/auxiliary-details",
                get(|State(s): State<ApiState>| async move {
                    Json(s.described.auxiliary_details.clone())
                }),
            )
            .route(
                "/api/v1/gateway/client-interfaces/mixnet-websockets",
                get(|State(s): State<ApiState>| async move { Json(s.described.websockets) }),
            )
            .with_state(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        warn!(error = %e, "HTTP API stopped");
    }
}

async fn health() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn described_health(State(state): State<ApiState>) -> impl IntoResponse {
    Json(NodeHealth {
        status: "up",
        uptime: state.started.elapsed().as_secs(),
    })
}

async fn metrics_text(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> axum::response::Response {
    if !state.authorised(&headers) {
        return unauthorised();
    }
    // Store totals are read at scrape time: they are not on any hot path.
    match state.store.stats().await {
        Ok(stats) => {
            state
                .metrics
                .store_messages
                .set(i64::try_from(stats.messages).unwrap_or(i64::MAX));
            state
                .metrics
                .store_message_bytes
                .set(i64::try_from(stats.message_bytes).unwrap_or(i64::MAX));
        }
        Err(e) => warn!(error = %e, "could not read store totals for /metrics"),
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn node_details(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> axum::response::Response {
    if !state.authorised(&headers) {
        return unauthorised();
    }
    Json(state.details.as_ref().clone()).into_response()
}
