//! The HTTP API (default 127.0.0.1:8080): `/health`, `/metrics` (Prometheus text) and
//! `/api/v1/node-details`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router as HttpRouter};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::metrics::Metrics;
use crate::node_details::NodeDetails;

#[derive(Clone)]
struct ApiState {
    metrics: Metrics,
    store: gateway_store::Store,
    details: Arc<NodeDetails>,
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

/// Serves the API on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    store: gateway_store::Store,
    details: NodeDetails,
    token: Option<String>,
    shutdown: CancellationToken,
) {
    let state = ApiState {
        metrics,
        store,
        details: Arc::new(details),
        token: token.map(Into::into),
    };
    let app = HttpRouter::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/node-details", get(node_details))
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
