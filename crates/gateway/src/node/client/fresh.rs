//! The unauthenticated state (PROTOCOL §2.3): answer `supportedProtocol`, then run a
//! registration or an authentication; anything else gets its error text and the connection
//! closes.

use std::sync::Arc;

use gateway_protocol::client::CURRENT_PROTOCOL_VERSION;
use gateway_protocol::client::{ClientRequest, ServerResponse};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::session::Accepted;
use super::socket::ClientSocket;
use super::{authenticate, register, ClientContext};
use crate::node::metrics::ClientRejection;

const INITIAL_TIMEOUT: &str = "timed out while waiting for initial data";
const ONLY_REGISTER_OR_AUTHENTICATE: &str =
    "Only 'Register' or 'Authenticate' requests are allowed";
const LEGACY_AUTHENTICATE: &str =
    "the legacy authentication method is no longer supported. please update your client";
const BINARY_BEFORE_AUTH: &str =
    "possibly received a sphinx packet without prior authentication. Request is going to be ignored";

/// Reads requests until the client registered or authenticated (returning its session,
/// already in the router) or the connection ended.
///
/// Each message must come within `initial_message_timeout`, and the register or authenticate
/// request within `pre_authentication_timeout` of the start: a peer that keeps asking
/// `supportedProtocol` cannot hold its connection (and its slot) forever.
pub(super) async fn run(
    mut socket: ClientSocket,
    ctx: &Arc<ClientContext>,
    shutdown: &CancellationToken,
) -> Option<Accepted> {
    let deadline = Instant::now() + ctx.limits.pre_authentication_timeout;
    loop {
        let wait = ctx
            .limits
            .initial_message_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let next = tokio::select! {
            next = tokio::time::timeout(wait, socket.next()) => next,
            _ = shutdown.cancelled() => {
                socket.close().await;
                return None;
            }
        };
        let message = match next {
            Err(_) => {
                let reason = if Instant::now() >= deadline {
                    ClientRejection::PreAuthenticationTimeout
                } else {
                    ClientRejection::InitialTimeout
                };
                ctx.reject(reason);
                socket.fail(INITIAL_TIMEOUT).await;
                return None;
            }
            Ok(None) => {
                debug!("client left before authenticating");
                return None;
            }
            Ok(Some(Err(e))) => {
                debug!(error = %e, "client connection failed before authenticating");
                return None;
            }
            Ok(Some(Ok(message))) => message,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => return refuse(socket, ctx, BINARY_BEFORE_AUTH).await,
            other => {
                let kind = match other {
                    Message::Ping(_) => "ping",
                    Message::Pong(_) => "pong",
                    Message::Close(_) => "close",
                    _ => "frame",
                };
                let text = format!(
                    "received a Message of type {kind} which was not expected in this context"
                );
                return refuse(socket, ctx, &text).await;
            }
        };
        match ClientRequest::parse(&text) {
            Ok(ClientRequest::SupportedProtocol) => {
                let reply = ServerResponse::SupportedProtocol {
                    version: CURRENT_PROTOCOL_VERSION,
                };
                if socket.send_response(&reply).await.is_err() {
                    return None;
                }
            }
            Ok(ClientRequest::RegisterHandshakeInitRequest {
                protocol_version,
                data,
            }) => return register::run(socket, ctx, shutdown, protocol_version, data).await,
            Ok(ClientRequest::AuthenticateV2(request)) => {
                return authenticate::run(socket, ctx, *request).await
            }
            Ok(ClientRequest::Authenticate { .. }) => {
                return refuse(socket, ctx, LEGACY_AUTHENTICATE).await
            }
            Ok(_) | Err(_) => return refuse(socket, ctx, ONLY_REGISTER_OR_AUTHENTICATE).await,
        }
    }
}

async fn refuse(socket: ClientSocket, ctx: &ClientContext, message: &str) -> Option<Accepted> {
    ctx.reject(ClientRejection::UnexpectedRequest);
    socket.fail(message).await;
    None
}
