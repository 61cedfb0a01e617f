//! The HTTP API (default 127.0.0.1:8080): `/health`, `/metrics` (Prometheus text) and
//! `/api/v1/node-details`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
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
}

/// Serves the API on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    store: gateway_store::Store,
    details: NodeDetails,
    shutdown: CancellationToken,
) {
    let state = ApiState {
        metrics,
        store,
        details: Arc::new(details),
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

async fn metrics_text(State(state): State<ApiState>) -> impl IntoResponse {
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
}

async fn node_details(State(state): State<ApiState>) -> impl IntoResponse {
    Json(state.details.as_ref().clone())
}
