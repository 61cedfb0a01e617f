//! Registration (PROTOCOL §2.4): the key-agreement handshake, then the client's key is stored
//! and its session starts.

use std::sync::Arc;

use gateway_protocol::client::handshake::{self, HandshakeError, FINALIZATION_SUCCESS};
use gateway_protocol::client::negotiate_registration_version;
use gateway_protocol::client::{HandshakeFrame, ServerResponse, SharedKey};
use gateway_store::{ClientAddress, UnixTime};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::bandwidth::ClientBandwidth;
use super::session::{session_queues, Accepted, Session};
use super::socket::ClientSocket;
use super::{ClientContext, DUPLICATE_CONNECTION, STORAGE_ERROR};
use crate::node::metrics::{ClientRejection, Outcome};

/// Runs the handshake started by message 1 (`init`) and registers the client.
pub(super) async fn run(
    mut socket: ClientSocket,
    ctx: &Arc<ClientContext>,
    shutdown: &CancellationToken,
    proposed_version: u8,
    init: Vec<u8>,
) -> Option<Accepted> {
    let version = negotiate_registration_version(proposed_version);
    let client = match handshake::client_identity_from_init(&init) {
        Ok(client) => ClientAddress::from_bytes(client),
        Err(e) => return failed(socket, ctx, e).await,
    };
    tracing::Span::current().record("client", client.to_string());
    // Checked before any work, as the reference does; checked again when the session is
    // registered, since another connection may get there during the handshake.
    if ctx.router.is_live(&client) {
        ctx.reject(ClientRejection::DuplicateClient);
        socket.fail(DUPLICATE_CONNECTION).await;
        return None;
    }
    let key = match agree_key(&mut socket, ctx, shutdown, version, &init).await {
        Ok(key) => key,
        Err(e) => return failed(socket, ctx, e).await,
    };
    count(ctx, Outcome::Ok);
    start_session(socket, ctx, client, key, version).await
}

/// Handshake messages 2 to 4: the gateway's share and signature, the client's, and success.
async fn agree_key(
    socket: &mut ClientSocket,
    ctx: &ClientContext,
    shutdown: &CancellationToken,
    version: u8,
    init: &[u8],
) -> Result<SharedKey, HandshakeError> {
    let (state, reply) = handshake::start_with_rng(init, &ctx.identity, &mut rand::rng())?;
    let reply = ServerResponse::HandshakePayload {
        protocol_version: version,
        data: reply,
    };
    socket
        .send_response(&reply)
        .await
        .map_err(|_| HandshakeError::Network)?;
    let finish = wait_for_finish(socket, ctx, shutdown).await?;
    let registered = state.finish(&finish)?;
    let done = ServerResponse::HandshakePayload {
        protocol_version: version,
        data: FINALIZATION_SUCCESS.to_vec(),
    };
    socket
        .send_response(&done)
        .await
        .map_err(|_| HandshakeError::Network)?;
    Ok(registered.shared_key)
}

/// Registers the session and stores the client's new key.
async fn start_session(
    socket: ClientSocket,
    ctx: &Arc<ClientContext>,
    client: ClientAddress,
    key: SharedKey,
    version: u8,
) -> Option<Accepted> {
    // Into the router before the key is stored: a client with a live session keeps the key
    // that session uses, and from here live messages queue for us while the stored ones go out.
    let now = UnixTime::now();
    let (handle, queues) = session_queues(
        ctx.limits.client_push_queue_capacity,
        now.as_unsigned_secs(),
    );
    let Ok(registration) = ctx.router.claim(client, handle) else {
        ctx.reject(ClientRejection::DuplicateClient);
        socket.fail(DUPLICATE_CONNECTION).await;
        return None;
    };
    let store = &ctx.store;
    let stored = async {
        store.upsert_shared_key(client, *key.as_bytes()).await?;
        store.ensure_bandwidth(client).await
    };
    let bandwidth = match stored.await {
        Ok(bandwidth) => bandwidth,
        Err(e) => {
            crate::warn_rate_limited!(super::STORE_ERRORS, error = %e, "failed to store a new client's key");
            queues.give_back(registration, &ctx.router, client).await;
            socket.fail(STORAGE_ERROR).await;
            return None;
        }
    };
    debug!("client registered");
    let bandwidth = ClientBandwidth::new(client, bandwidth, now);
    let session = Session::new(
        socket,
        ctx.clone(),
        client,
        key,
        bandwidth,
        registration,
        queues,
    );
    Some(Accepted {
        session,
        response: ServerResponse::Register {
            protocol_version: version,
            status: true,
            upgrade_mode: ctx.upgrade_mode.enabled(),
        },
    })
}

/// Waits for handshake message 3. Other text frames are ignored, as the reference does, but do
/// not extend the deadline.
async fn wait_for_finish(
    socket: &mut ClientSocket,
    ctx: &ClientContext,
    shutdown: &CancellationToken,
) -> Result<Vec<u8>, HandshakeError> {
    let deadline = Instant::now() + ctx.limits.handshake_message_timeout;
    loop {
        let next = tokio::select! {
            next = socket.next() => next,
            _ = tokio::time::sleep_until(deadline) => return Err(HandshakeError::Timeout),
            _ = shutdown.cancelled() => return Err(HandshakeError::Network),
        };
        match next {
            Some(Ok(Message::Text(text))) => match HandshakeFrame::parse(&text) {
                Some(HandshakeFrame::HandshakePayload { data, .. }) => return Ok(data),
                Some(HandshakeFrame::HandshakeError { message }) => {
                    return Err(HandshakeError::Remote(message))
                }
                None => debug!("ignored a non-handshake text frame during the handshake"),
            },
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                return Err(HandshakeError::Network)
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Reports a failed handshake (`handshakeError`, then the error) and closes.
async fn failed(
    mut socket: ClientSocket,
    ctx: &ClientContext,
    error: HandshakeError,
) -> Option<Accepted> {
    count(ctx, Outcome::Failed);
    let _ = socket
        .send_response(&ServerResponse::HandshakeError {
            message: error.to_string(),
        })
        .await;
    socket
        .fail(&format!(
            "Failed to perform registration handshake: {error}"
        ))
        .await;
    None
}

fn count(ctx: &ClientContext, outcome: Outcome) {
    ctx.metrics.handshakes.get_or_create(&outcome).inc();
}
