//! `nym-network-statistics`: the statistics service that gateways started with
//! `--enabled-statistics true` (and network requesters) report to, compatible with the 1.0.2
//! service: reports arrive on `POST /v1/statistic`, are stored in SQLite, and
//! `POST /v1/all-statistics` returns those dated within a range.
//!
//! # Layout
//! - [`cli`]: command-line flags, converted at once into a [`cli::Config`].
//! - [`api`]: the HTTP routes, request limits and error responses.
//! - [`report`]: the JSON wire types and their validation.
//! - [`timestamp`]: RFC 3339 parsing, the stored form, the 1.0.2 output rendering.
//! - [`storage`]: the SQLite tables and the range query.
//!
//! Data flow: socket → [`api`] (parse + validate via [`report`]) → [`storage`] → JSON answer.

#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod report;
pub mod storage;
pub mod timestamp;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::warn;

use crate::api::Limits;
use crate::storage::Storage;

/// After shutdown is requested, how long requests in flight may take before their connections
/// are dropped; a stalled client must not keep the process alive.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves the API on `listener` within `limits` until `shutdown` completes, then stops
/// accepting, lets requests in flight finish (up to [`SHUTDOWN_GRACE`]) and returns.
pub async fn serve(
    listener: TcpListener,
    storage: Storage,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api::router(storage, limits).into_make_service_with_connect_info::<SocketAddr>();
    let (shutdown_started, grace_begins) = oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = shutdown_started.send(());
    });
    tokio::select! {
        result = server.into_future() => result,
        () = async {
            // An Err means the server already ended, and the first branch wins anyway.
            if grace_begins.await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            warn!(grace = ?SHUTDOWN_GRACE, "requests still running after the shutdown grace period; dropping them");
            Ok(())
        }
    }
}
