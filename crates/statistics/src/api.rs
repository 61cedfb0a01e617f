//! HTTP routes. Bodies are read as bytes and parsed here (not with axum's `Json` extractor) so
//! every bad request gets a 400 with a plain-text reason, whatever its `Content-Type`.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use thiserror::Error;
use tracing::{debug, error};

use crate::report::{InvalidRequest, RawRange, RawReport, StoredEntry};
use crate::storage::{Storage, StorageError};

/// What one request may ask of the service (the `--max-*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: usize,
    /// Most entries one report may carry. A gateway sends one; a network requester one per
    /// service it forwarded to in the interval.
    pub max_report_entries: usize,
    /// Most entries one query answer may carry; a wider range is refused rather than answered
    /// with an unbounded response.
    pub max_query_entries: usize,
}

impl Limits {
    /// The defaults: 1 MiB per request, which a full report of 4096 service entries with long
    /// host names stays well below, and 100 000 entries per answer.
    pub const DEFAULT: Self = Self {
        max_request_bytes: 1024 * 1024,
        max_report_entries: 4096,
        max_query_entries: 100_000,
    };
}

/// Why a request failed; the message is the response body.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The body could not be read (too large, or the connection broke).
    #[error("Request body could not be read (at most {limit} bytes are accepted): {}", .rejection.body_text())]
    Body {
        /// axum's reason.
        rejection: BytesRejection,
        /// The body limit.
        limit: usize,
    },
    /// The body is not the JSON this route expects.
    #[error("Invalid JSON body: {0}")]
    Json(#[from] serde_json::Error),
    /// Well-formed JSON with unusable content.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Body { rejection, .. } => rejection.status(),
            Self::Json(_) | Self::Invalid(_) | Self::Storage(StorageError::TooManyRows { .. }) => {
                StatusCode::BAD_REQUEST
            }
            Self::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // Only the operator can fix these; the client just learns it was not its fault.
            error!(cause = %error_chain(&self), "request failed");
        }
        // A `String` body is sent as text/plain; utf-8.
        (status, format!("{self}\n")).into_response()
    }
}

/// What the handlers share.
#[derive(Clone)]
struct Service {
    storage: Storage,
    limits: Limits,
}

/// The service's routes, mounted at `/v1` and also at `//v1`: 1.0.2 gateways joined their
/// configured URL (which ends in `/`) and `/v1/statistic`, and posted to `//v1/statistic`.
pub fn router(storage: Storage, limits: Limits) -> Router {
    let v1 = Router::new()
        .route("/statistic", post(post_statistic))
        .route("/all-statistics", post(post_all_statistics));
    Router::new()
        .nest("/v1", v1.clone())
        .nest("//v1", v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_request_bytes))
        .with_state(Service { storage, limits })
}

/// `POST /v1/statistic`: store a report; answers JSON `null` as 1.0.2 did.
async fn post_statistic(
    State(service): State<Service>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<()>, ApiError> {
    let handle = async {
        let report = parse::<RawReport>(body, &service.limits)?
            .validate(service.limits.max_report_entries)?;
        service.storage.insert(report).await?;
        Ok(Json(()))
    };
    log_rejected(peer, "statistic", handle.await)
}

/// `POST /v1/all-statistics`: every stored entry dated within `since..=until`.
async fn post_all_statistics(
    State(service): State<Service>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<StoredEntry>>, ApiError> {
    let handle = async {
        let range = parse::<RawRange>(body, &service.limits)?.validate()?;
        let entries = service
            .storage
            .query(range, service.limits.max_query_entries)
            .await?;
        Ok(Json(entries))
    };
    log_rejected(peer, "all-statistics", handle.await)
}

fn parse<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limits: &Limits,
) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| ApiError::Body {
        rejection,
        limit: limits.max_request_bytes,
    })?;
    Ok(serde_json::from_slice(&body)?)
}

/// A client's bad request is its own problem: logged once, at debug, with its address.
fn log_rejected<T>(
    peer: SocketAddr,
    route: &'static str,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    if let Err(err) = &result {
        if err.status().is_client_error() {
            debug!(%peer, route, cause = %err, "request rejected");
        }
    }
    result
}

async fn not_found() -> (StatusCode, &'static str) {
    (
        StatusCode::NOT_FOUND,
        "Not found; this service answers POST /v1/statistic and POST /v1/all-statistics\n",
    )
}

async fn method_not_allowed() -> (StatusCode, &'static str) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed; use POST\n",
    )
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
