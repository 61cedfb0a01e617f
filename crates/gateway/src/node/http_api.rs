//! The HTTP API (default 127.0.0.1:8080): `/health`, `/metrics` (Prometheus text),
//! `/api/v1/node-details`, the operator's [`dashboard`] (`/` leads there),
//! and the public self-described API nym-api polls (bodies in [`super::described`]).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use axum::{Json, Router as HttpRouter};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::dashboard::{self, Dashboard};
use super::described::{Described, NodeHealth};
use super::metrics::Metrics;
use crate::node_details::NodeDetails;

#[derive(Clone)]
struct ApiState {
    metrics: Metrics,
    store: gateway_store::Store,
    details: Arc<NodeDetails>,
    described: Arc<Described>,
    dashboard: Dashboard,
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
    /// The dashboard's history.
    pub dashboard: Dashboard,
}

/// Serves the API on `listener` until `shutdown`. The self-described routes are public, like
/// nym-node's, and so is the dashboard's page (which holds no data); `/metrics`,
/// `/api/v1/node-details` and `/dashboard/data` need `token` if one is set.
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
        dashboard: content.dashboard,
        started: Instant::now(),
        token: token.map(Into::into),
    };
    let app =
        HttpRouter::new()
            .route("/health", get(health))
            .route("/metrics", get(metrics_text))
            .route("/api/v1/node-details", get(node_details))
            .route("/", get(|| async { Redirect::temporary("/dashboard") }))
            .route("/dashboard", get(dashboard_page))
            .route("/dashboard/data", get(dashboard_data))
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
    state.metrics.read_store_totals(&state.store).await;
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

/// The page may run only its own inline script and style and talk only to this origin; it is
/// never framed, and no referrer (which could carry the URL's fragment) leaves it.
const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn dashboard_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(dashboard::PAGE),
    )
}

async fn dashboard_data(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
) -> axum::response::Response {
    if !state.authorised(&headers) {
        return unauthorised();
    }
    // `?since=<ms>`: the page asks only for the rows it does not have yet.
    let since = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("since="))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0);
    let data = state
        .dashboard
        .data(&state.described, state.started.elapsed().as_secs(), since);
    ([(header::CACHE_CONTROL, "no-store")], Json(data)).into_response()
}
