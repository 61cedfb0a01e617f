//! The client port (9000): websocket sessions speaking the Nym client protocol v6.
//!
//! # Data flow
//! `listener` accepts a TCP connection (one semaphore permit each), upgrades it to a websocket and
//! runs one task per connection. The task starts in `fresh` (the unauthenticated state:
//! `supportedProtocol`, then `register` or `authenticate`), which on success registers the session
//! with the router and yields a `session::Session`. That sends the client everything stored for it
//! (`delivery`), answers the register/authenticate request, and then loops over the client's
//! requests (bandwidth in `bandwidth`, packets to egress), live messages from the router, liveness
//! probes and store notifications.
//!
//! # Invariants
//! - A session is in the router from just before its stored messages are sent until it ends,
//!   so live messages queue in its channel while the backlog goes out.
//! - Stored messages are deleted only after they were written to the socket.
//! - When a session ends, for any reason, it unregisters first and then hands every message
//!   still queued for it (and one whose write failed) back to the router's store path, so
//!   nothing accepted is lost and no SURB-ack is sent for a message that was not delivered.

mod authenticate;
mod bandwidth;
mod delivery;
mod fresh;
mod listener;
mod register;
mod requests;
mod session;
mod socket;

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::router::Router;
use crate::config::Debug;

/// What a client is told when the store fails under its request (details go to the log).
const STORAGE_ERROR: &str = "Internal gateway storage error";

/// Store failures under client requests repeat for every request while they last (and a
/// client can repeat requests at will): one warning per period.
static STORE_ERRORS: crate::logging::RateLimit =
    crate::logging::RateLimit::new(crate::logging::WARNING_PERIOD);

/// What client sessions need.
#[derive(Clone)]
pub struct ClientContext {
    /// Routes messages, registers sessions, holds the store and metrics.
    pub router: Router,
    /// The gateway's identity key (signs the registration handshake).
    pub identity: Arc<SigningKey>,
    /// Limits and timeouts.
    pub limits: Arc<Debug>,
    /// One permit per open client connection (`maximum_client_connections`), shared by all
    /// client listeners (IPv4 and IPv6).
    pub connection_limit: Arc<Semaphore>,
}

/// Accepts client connections until `shutdown`; each connection is a task tracked by `tasks`.
pub async fn serve(
    listener: TcpListener,
    ctx: ClientContext,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    listener::run(listener, ctx, shutdown, tasks).await;
}
