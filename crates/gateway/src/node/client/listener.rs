//! Accepting client connections: the connection limit, the websocket upgrade, and one task
//! per connection.

use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, Instrument as _};

use super::session::Accepted;
use super::socket::ClientSocket;
use super::{fresh, BoxedTransport, ClientContext, ClientLimits};
use crate::node::metrics::ClientRejection;

/// Read buffer each connection starts with, and the most one read takes. Idle clients are many
/// and tungstenite zero-fills the whole buffer on the first read, so this is as small as lets
/// the largest frame a client sends in normal use, a forward request carrying a regular
/// Sphinx packet (~2.5 KB), arrive in one read; larger frames grow it.
const READ_BUFFER_SIZE: usize = 3 * 1024;

/// Encoded frames tungstenite collects before writing them to the socket when several are
/// sent with one flush (a session's batch of live or stored messages): ~3 pushed messages per
/// write. A single send is flushed at once regardless. The buffer keeps the capacity it grew
/// to (up to ~7 KiB after a batch), so this stays small for the many clients that are idle.
const WRITE_BUFFER_SIZE: usize = 4 * 1024;

/// Accepts connections until `shutdown`.
pub(super) async fn run(
    listener: TcpListener,
    ctx: ClientContext,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    while let Some((stream, peer)) =
        crate::node::listeners::accept(&listener, &shutdown, "client").await
    {
        let Ok(permit) = ctx.connection_limit.clone().try_acquire_owned() else {
            ctx.reject(ClientRejection::ConnectionLimit);
            debug!(%peer, "client connection refused: connection limit reached");
            continue;
        };
        let Some(slot) = ctx.address_limit.try_acquire(peer.ip()) else {
            ctx.reject(ClientRejection::AddressLimit);
            debug!(%peer, "client connection refused: its address holds the most allowed");
            continue;
        };
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        let span = info_span!("client", %peer, client = tracing::field::Empty);
        let _ = stream.set_nodelay(true);
        let connection = async move {
            handle(Box::new(stream), ctx, shutdown).await;
            drop((permit, slot));
        };
        tasks.spawn(connection.instrument(span));
    }
    info!("client listener stopped");
}

/// One connection, from the upgrade to the end of its session.
///
/// Each phase is boxed: a task keeps its future's largest state for its whole life, and the
/// handshake's state is several KiB, while an idle authenticated client should cost only what
/// its session loop needs (about 1 KiB plus the socket's buffers).
pub(super) async fn handle(
    stream: BoxedTransport,
    ctx: ClientContext,
    shutdown: CancellationToken,
) {
    let upgrade = Box::pin(tokio_tungstenite::accept_async_with_config(
        stream,
        Some(websocket_config(&ctx.limits)),
    ));
    let ws = tokio::select! {
        result = tokio::time::timeout(ctx.limits.websocket_upgrade_timeout, upgrade) => result,
        _ = shutdown.cancelled() => return,
    };
    let ws = match ws {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            ctx.reject(ClientRejection::WebsocketUpgrade);
            debug!(error = %e, "websocket upgrade failed");
            return;
        }
        Err(_) => {
            ctx.reject(ClientRejection::WebsocketUpgrade);
            debug!("websocket upgrade timed out");
            return;
        }
    };
    debug!("client connected");
    let socket = ClientSocket::new(ws, ctx.limits.client_write_timeout);
    let Some(Accepted {
        mut session,
        response,
    }) = Box::pin(fresh::run(socket, &ctx, &shutdown)).await
    else {
        return;
    };
    let end = match Box::pin(session.start(response, &shutdown)).await {
        Ok(()) => Box::pin(session.run(&shutdown)).await,
        Err(end) => end,
    };
    Box::pin(session.finish(end)).await;
}

/// Message limits from the config and small buffers. Every send ends with a flush, so a pushed
/// message never waits in the buffer for the next one.
fn websocket_config(limits: &ClientLimits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(WRITE_BUFFER_SIZE)
        .max_message_size(Some(limits.maximum_client_message_size))
        .max_frame_size(Some(limits.maximum_client_message_size))
}
