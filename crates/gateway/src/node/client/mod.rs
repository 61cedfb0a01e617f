//! The client port (9000): websocket sessions speaking the Nym client protocol v6.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::router::Router;
use crate::config::Debug;

/// What client sessions need.
#[derive(Clone)]
pub struct ClientContext {
    /// Routes messages, registers sessions, holds the store and metrics.
    pub router: Router,
    /// The gateway's identity key (signs the registration handshake).
    pub identity: Arc<SigningKey>,
    /// Limits and timeouts.
    pub limits: Arc<Debug>,
}

/// Accepts client connections until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    ctx: ClientContext,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let _ = (&ctx, &tasks);
    loop {
        tokio::select! {
            accepted = listener.accept() => drop(accepted),
            _ = shutdown.cancelled() => break,
        }
    }
}
