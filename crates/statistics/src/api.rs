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

/// Largest request body accepted. A full report of [`crate::report::MAX_ENTRIES_PER_REPORT`]
/// service entries with long host names stays well below it.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Most entries one query answer may carry; a wider range is refused rather than answered
/// with an unbounded response.
pub const MAX_QUERY_ENTRIES: usize = 100_000;

/// Why a request failed; the message is the response body.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The body could not be read (too large, or the connection broke).
    #[error("Request body could not be read (at most {MAX_BODY_BYTES} bytes are accepted): {}", .0.body_text())]
    Body(BytesRejection),
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
            Self::Body(rejection) => rejection.status(),
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

/// The service's routes, mounted at `/v1` and also at `//v1`: 1.0.2 gateways joined their
/// configured URL (which ends in `/`) and `/v1/statistic`, and posted to `//v1/statistic`.
pub fn router(storage: Storage) -> Router {
    let v1 = Router::new()
        .route("/statistic", post(post_statistic))
        .route("/all-statistics", post(post_all_statistics));
    Router::new()
        .nest("/v1", v1.clone())
        .nest("//v1", v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(storage)
}

/// `POST /v1/statistic`: store a report; answers JSON `null` as 1.0.2 did.
async fn post_statistic(
    State(storage): State<Storage>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<()>, ApiError> {
    let handle = async {
        let report = parse::<RawReport>(body)?.validate()?;
        storage.insert(report).await?;
        Ok(Json(()))
    };
    log_rejected(peer, "statistic", handle.await)
}

/// `POST /v1/all-statistics`: every stored entry dated within `since..=until`.
async fn post_all_statistics(
    State(storage): State<Storage>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<StoredEntry>>, ApiError> {
    let handle = async {
        let range = parse::<RawRange>(body)?.validate()?;
        Ok(Json(storage.query(range, MAX_QUERY_ENTRIES).await?))
    };
    log_rejected(peer, "all-statistics", handle.await)
}

fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(ApiError::Body)?;
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
