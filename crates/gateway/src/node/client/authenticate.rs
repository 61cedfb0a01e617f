//! `authenticateV2` (PROTOCOL §2.5) for a returning client, including what happens when the
//! client already has a live session (§2.10).

use std::sync::Arc;
use std::time::Duration;

use gateway_protocol::client::authenticate::check_not_stale;
use gateway_protocol::client::{
    verify_request, AuthError, AuthenticateV2Request, ServerResponse, SharedKey,
};
use gateway_store::{ClientAddress, UnixTime};
use tokio::sync::oneshot;
use tracing::debug;

use super::bandwidth::ClientBandwidth;
use super::inbox::Prober;
use super::session::{session_queues, Accepted, Session, SessionQueues};
use super::socket::ClientSocket;
use super::{ClientContext, DUPLICATE_CONNECTION, STORAGE_ERROR};
use crate::node::metrics::{ClientRejection, Outcome};
use crate::node::router::{Registration, SessionHandle};
use crate::node::upgrade_mode::unmetered_bandwidth;

/// How long a live session gets to report whether its client answered our ping (which itself
/// has 1 s); past this the session counts as dead (PROTOCOL §2.10).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why an authentication was refused.
enum Refusal {
    Auth(AuthError),
    Duplicate,
    Storage,
}

/// Verifies `request` and starts the client's session.
pub(super) async fn run(
    socket: ClientSocket,
    ctx: &Arc<ClientContext>,
    request: AuthenticateV2Request,
) -> Option<Accepted> {
    match authenticate(ctx, request).await {
        Ok(Authenticated {
            client,
            key,
            version,
            registration,
            queues,
            bandwidth,
        }) => {
            count(ctx, Outcome::Ok);
            debug!("client authenticated");
            let mut bandwidth = ClientBandwidth::new(client, bandwidth, UnixTime::now());
            // An expired allowance was just reset; the reset is saved now, as it is reported.
            bandwidth.persist(&ctx.store).await;
            let remaining = bandwidth.available(UnixTime::now());
            let upgrade_mode = ctx.upgrade_mode.enabled();
            let remaining = if upgrade_mode {
                unmetered_bandwidth(remaining)
            } else {
                remaining
            };
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
                response: ServerResponse::Authenticate {
                    protocol_version: version,
                    status: true,
                    bandwidth_remaining: remaining,
                    upgrade_mode,
                },
            })
        }
        Err(refusal) => {
            let message = match refusal {
                Refusal::Auth(e) => {
                    count(ctx, Outcome::Failed);
                    e.to_string()
                }
                Refusal::Duplicate => {
                    ctx.reject(ClientRejection::DuplicateClient);
                    DUPLICATE_CONNECTION.to_owned()
                }
                Refusal::Storage => {
                    count(ctx, Outcome::Failed);
                    STORAGE_ERROR.to_owned()
                }
            };
            socket.fail(&message).await;
            None
        }
    }
}

struct Authenticated {
    client: ClientAddress,
    key: SharedKey,
    version: u8,
    registration: Registration,
    queues: SessionQueues,
    bandwidth: gateway_store::Bandwidth,
}

/// The checks of §2.5 in their order, then the session's place in the router.
async fn authenticate(
    ctx: &ClientContext,
    request: AuthenticateV2Request,
) -> Result<Authenticated, Refusal> {
    let now = UnixTime::now().as_unsigned_secs();
    let skew = ctx.limits.maximum_auth_request_timestamp_skew.as_secs();
    let verified = verify_request(request, now, skew).map_err(Refusal::Auth)?;
    let client = ClientAddress::from_bytes(verified.client_identity());
    tracing::Span::current().record("client", client.to_string());
    let store = &ctx.store;
    let record = match store.shared_key(client).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(Refusal::Auth(AuthError::NotRegistered)),
        Err(e) => {
            crate::warn_rate_limited!(super::STORE_ERRORS, error = %e, "failed to read a client's key");
            return Err(Refusal::Storage);
        }
    };
    let key = SharedKey::from_bytes(record.key);
    let last_used = record
        .last_used_authentication
        .map(UnixTime::as_unsigned_secs);
    let timestamp = verified
        .verify_with_key(&key, last_used)
        .map_err(Refusal::Auth)?;

    let (handle, queues) = session_queues(ctx.limits.client_push_queue_capacity, timestamp);
    let registration = take_place(ctx, client, timestamp, handle).await?;
    let recorded = async {
        store
            .set_last_used_authentication(client, UnixTime::from_unsigned_secs(timestamp))
            .await?;
        match store.bandwidth(client).await? {
            Some(bandwidth) => Ok(bandwidth),
            None => store.ensure_bandwidth(client).await,
        }
    };
    match recorded.await {
        Ok(bandwidth) => Ok(Authenticated {
            client,
            key,
            version: verified.protocol_version(),
            registration,
            queues,
            bandwidth,
        }),
        Err(e) => {
            crate::warn_rate_limited!(super::STORE_ERRORS, error = %e, "failed to record a client's authentication");
            queues.give_back(registration, &ctx.router, client).await;
            Err(Refusal::Storage)
        }
    }
}

/// Registers the session. If the client has a live session, this one replaces it only if it
/// is newer and the old one's client does not answer a ping.
async fn take_place(
    ctx: &ClientContext,
    client: ClientAddress,
    timestamp: u64,
    handle: SessionHandle,
) -> Result<Registration, Refusal> {
    let (existing, handle) = match ctx.router.claim(client, handle) {
        Ok(registration) => return Ok(registration),
        Err(taken) => taken,
    };
    check_not_stale(timestamp, existing.started_at).map_err(Refusal::Auth)?;
    if is_alive(&existing.liveness).await {
        return Err(Refusal::Duplicate);
    }
    debug!("replacing an unresponsive session of the client");
    ctx.router
        .replace(client, existing.id, handle)
        .map_err(|_| Refusal::Duplicate)
}

/// Asks a live session whether its client answers a ping; no answer in time means no.
async fn is_alive(liveness: &Prober) -> bool {
    let (reply, answer) = oneshot::channel();
    let asked = async {
        liveness.probe(reply).ok()?;
        answer.await.ok()
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, asked).await,
        Ok(Some(true))
    )
}

fn count(ctx: &ClientContext, outcome: Outcome) {
    ctx.metrics.authentications.get_or_create(&outcome).inc();
}
