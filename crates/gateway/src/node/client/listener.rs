//! Accepting client connections: the connection limit, the TLS handshake (wss), the websocket
//! upgrade, and one task per connection.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, Instrument as _};

use super::idle_buffer::IdleReleasingReader;
use super::session::Accepted;
use super::socket::ClientSocket;
use super::{fresh, BoxedTransport, ClientContext, ClientLimits};
use crate::node::metrics::ClientRejection;

/// tungstenite's read buffer: what it allocates up front (and zero-fills on the first read)
/// for every connection, and the most it asks for per read. Idle clients are many, so this is
/// small; the large reads from the socket are done by [`IdleReleasingReader`], whose buffer
/// exists only while data arrives, so a forward request (~2.5 KB) still takes one system call
/// and is handed to tungstenite in a few memory copies. A frame larger than this grows
/// tungstenite's buffer to the frame's size.
const READ_BUFFER_SIZE: usize = 512;

/// Encoded frames tungstenite collects before writing them to the socket when several are
/// sent with one flush (a session's batch of live or stored messages): ~3 pushed messages per
/// write. A single send is flushed at once regardless. The buffer keeps the capacity it grew
/// to (up to ~7 KiB after a batch), so this stays small for the many clients that are idle.
const WRITE_BUFFER_SIZE: usize = 4 * 1024;

/// Accepts connections until `shutdown`; with `tls`, each starts with a TLS handshake (wss).
/// Both listeners share the connection limits, and from the upgrade on run the same code.
pub(super) async fn run(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ctx: ClientContext,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    // One context for all connections: each holds a pointer to it, not a copy.
    let ctx = Arc::new(ctx);
    let what = if tls.is_some() {
        "wss client"
    } else {
        "client"
    };
    while let Some((stream, peer)) =
        crate::node::listeners::accept(&listener, &shutdown, what).await
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
        let tls = tls.clone();
        let connection = async move {
            let _held = (permit, slot);
            let transport: BoxedTransport = match tls {
                None => Box::new(stream),
                Some(acceptor) => {
                    match Box::pin(tls_handshake(&acceptor, stream, &ctx, &shutdown)).await {
                        Some(tls_stream) => Box::new(tls_stream),
                        None => return,
                    }
                }
            };
            handle(transport, ctx, shutdown).await;
        };
        tasks.spawn(connection.instrument(span));
    }
    info!("{what} listener stopped");
}

/// The server side of a wss connection's TLS handshake, within `tls_handshake_timeout`.
/// `None` when shutdown comes first, or when it fails or times out (counted and logged at
/// debug: a scanner or a client that does not trust our certificate is the peer's matter).
async fn tls_handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    ctx: &ClientContext,
    shutdown: &CancellationToken,
) -> Option<TlsStream<TcpStream>> {
    let handshake = acceptor.accept(stream);
    let result = tokio::select! {
        result = tokio::time::timeout(ctx.limits.tls_handshake_timeout, handshake) => result,
        _ = shutdown.cancelled() => return None,
    };
    match result {
        Ok(Ok(tls_stream)) => Some(tls_stream),
        Ok(Err(e)) => {
            ctx.reject(ClientRejection::TlsHandshake);
            debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            ctx.reject(ClientRejection::TlsHandshake);
            debug!("TLS handshake timed out");
            None
        }
    }
}

/// One connection, from the upgrade to the end of its session.
///
/// Each phase is boxed: a task keeps its future's largest state for its whole life, and the
/// handshake's state is several KiB, while an idle authenticated client should cost only what
/// its session loop needs (about 1 KiB plus the socket's buffers).
pub(super) async fn handle(
    stream: BoxedTransport,
    ctx: Arc<ClientContext>,
    shutdown: CancellationToken,
) {
    let upgrade = Box::pin(tokio_tungstenite::accept_async_with_config(
        IdleReleasingReader::new(stream),
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
