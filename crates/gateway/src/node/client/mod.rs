//! The client port (9000), and the wss port when configured: websocket sessions speaking the
//! Nym client protocol v6.
//!
//! # Data flow
//! `listener` accepts a TCP connection (one semaphore permit each), on the wss port completes
//! the TLS handshake with the certificate `tls` holds, upgrades it to a websocket and
//! runs one task per connection. The task starts in `fresh` (the unauthenticated state:
//! `supportedProtocol`, then `register` or `authenticate`), which on success registers the session
//! with the router and yields a `session::Session`. That sends the client everything stored for it
//! (`delivery`), answers the register/authenticate request, and then loops over the client's
//! requests (bandwidth in `bandwidth`, zk-nym tickets in `tickets`, packets to egress), live messages from the router, liveness
//! probes and store notifications.
//!
//! # Invariants
//! - A session is in the router from just before its stored messages are sent until it ends,
//!   so live messages queue in its channel while the backlog goes out.
//! - A message counts as delivered (its SURB-ack forwarded, its stored copy deleted) only once
//!   the client's pong to the ping after it arrives (`confirmation`; or once written, with
//!   `client_delivery_confirmation = false`).
//! - When a session ends, for any reason, it unregisters first and then hands every message
//!   still queued or unconfirmed (and one whose write failed) back to the router's store path,
//!   so nothing accepted is lost and no SURB-ack is sent for a message that was not delivered.

mod authenticate;
mod bandwidth;
mod confirmation;
mod delivery;
mod fresh;
mod idle_buffer;
pub mod inbox;
mod listener;
mod register;
mod requests;
mod session;
mod signer_queue;
mod socket;
mod tickets;
pub mod tls;

pub use signer_queue::{SignerQueue, SignerSettings};
pub use tickets::{TicketSettings, Tickets};

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use gateway_store::Store;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::egress::Egress;
use super::metrics::{ClientRejection, Metrics};
use super::router::Router;
use crate::config::Tuning;

/// What a client is told when the store fails under its request (details go to the log).
const STORAGE_ERROR: &str = "Internal gateway storage error";

/// The error a client gets while another connection of it is live and answering.
const DUPLICATE_CONNECTION: &str = "There is already an open connection to this client";

/// Store failures under client requests repeat for every request while they last (and a
/// client can repeat requests at will): one warning per period.
static STORE_ERRORS: crate::logging::RateLimit =
    crate::logging::RateLimit::new(crate::logging::WARNING_PERIOD);

/// A byte stream a client session runs over: a TCP connection in the gateway, an in-memory
/// pipe in tests, a TLS stream on the wss port.
pub trait ClientTransport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ClientTransport for T {}

/// A session's transport, boxed: one session type for every transport, so the session code
/// is compiled once and its tests run the code the gateway runs.
type BoxedTransport = Box<dyn ClientTransport>;

/// The `[debug]` values client sessions use, taken from the config once.
#[derive(Debug, Clone)]
pub struct ClientLimits {
    /// The websocket upgrade must finish within this.
    pub websocket_upgrade_timeout: Duration,
    /// A wss connection's TLS handshake must finish within this.
    pub tls_handshake_timeout: Duration,
    /// Largest websocket message (and frame) a client may send.
    pub maximum_client_message_size: usize,
    /// Every write to a client must finish within this.
    pub client_write_timeout: Duration,
    /// Each message before authentication must come within this.
    pub initial_message_timeout: Duration,
    /// Register or authenticate must come within this of the connection's start.
    pub pre_authentication_timeout: Duration,
    /// Each registration handshake message must come within this.
    pub handshake_message_timeout: Duration,
    /// Live messages queued for one session.
    pub client_push_queue_capacity: usize,
    /// How far an `authenticateV2` timestamp may be from our clock.
    pub maximum_auth_request_timestamp_skew: Duration,
    /// Stored messages read from the store per batch.
    pub message_retrieval_limit: usize,
    /// Bandwidth granted per `claimFreeTestnetBandwidth`.
    pub free_bandwidth_per_claim: i64,
    /// Messages count as delivered only once the client's pong confirms them.
    pub delivery_confirmation: bool,
    /// How long a batch may wait for its confirmation.
    pub delivery_confirmation_timeout: Duration,
    /// Unconfirmed batches one session may have.
    pub max_unconfirmed_batches: usize,
}

impl ClientLimits {
    /// The client values of the `[debug]` table.
    pub fn from_config(d: &Tuning) -> Self {
        Self {
            websocket_upgrade_timeout: d.websocket_upgrade_timeout,
            tls_handshake_timeout: d.tls_handshake_timeout,
            maximum_client_message_size: d.maximum_client_message_size.get(),
            client_write_timeout: d.client_write_timeout,
            initial_message_timeout: d.initial_message_timeout,
            pre_authentication_timeout: d.pre_authentication_timeout,
            handshake_message_timeout: d.handshake_message_timeout,
            client_push_queue_capacity: d.client_push_queue_capacity.get(),
            maximum_auth_request_timestamp_skew: d.maximum_auth_request_timestamp_skew,
            message_retrieval_limit: d.message_retrieval_limit.get(),
            free_bandwidth_per_claim: d.free_bandwidth_per_claim,
            delivery_confirmation: d.client_delivery_confirmation,
            delivery_confirmation_timeout: d.client_delivery_confirmation_timeout,
            max_unconfirmed_batches: d.client_max_unconfirmed_batches.get(),
        }
    }
}

/// What client sessions need.
#[derive(Clone)]
pub struct ClientContext {
    /// Registers sessions; takes messages a session could not deliver.
    pub router: Router,
    /// Client keys, bandwidth and stored messages.
    pub store: Store,
    /// Where clients' packets go.
    pub egress: Egress,
    /// Counters.
    pub metrics: Metrics,
    /// The gateway's identity key (signs the registration handshake).
    pub identity: Arc<SigningKey>,
    /// Limits and timeouts.
    pub limits: Arc<ClientLimits>,
    /// One permit per open client connection (`maximum_client_connections`), shared by all
    /// client listeners (IPv4 and IPv6).
    pub connection_limit: Arc<Semaphore>,
    /// Open client connections per source address (`maximum_client_connections_per_address`).
    pub address_limit: super::address_limit::AddressLimit,
    /// zk-nym ticket acceptance, and whether free bandwidth is refused.
    pub tickets: Tickets,
    /// Whether upgrade mode is on (bandwidth unmetered), and clients' JWTs for it.
    pub upgrade_mode: super::upgrade_mode::UpgradeMode,
}

impl ClientContext {
    /// Counts a connection refused or closed before authentication.
    fn reject(&self, reason: ClientRejection) {
        self.metrics
            .client_connections_rejected
            .get_or_create(&reason)
            .inc();
    }
}

/// Accepts client connections until `shutdown`; each connection is a task tracked by `tasks`.
/// With `tls` the listener is a wss one: each connection starts with a TLS handshake.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ctx: ClientContext,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    listener::run(listener, tls, ctx, shutdown, tasks).await;
}

/// Serves one client connection on `transport`, from the websocket upgrade to the end of its
/// session, outside the connection limit. The listener runs this for every accepted TCP
/// connection; tests run it over in-memory pipes.
pub async fn serve_connection(
    transport: impl ClientTransport,
    ctx: ClientContext,
    shutdown: CancellationToken,
) {
    listener::handle(Box::new(transport), Arc::new(ctx), shutdown).await;
}

#[cfg(test)]
mod sizes {
    //! What an idle connection holds is, besides buffers, its task's future (allocated at its
    //! largest state for the connection's whole life) and the session loop's boxed future.
    //! These bounds fail if a large value (a copied `ClientContext`, a request handler's
    //! state) moves back into them.
    use super::*;

    fn size3<A, B, C, F>(_: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }
    fn size2<A, B, F>(_: fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn an_idle_connection_holds_small_futures() {
        let session = std::mem::size_of::<session::Session>();
        let handle =
            size3::<BoxedTransport, Arc<ClientContext>, CancellationToken, _>(listener::handle);
        let run = size2::<&'static mut session::Session, &'static CancellationToken, _>(
            session::Session::run,
        );
        eprintln!("Session {session}, connection future {handle}, session loop future {run}");
        assert!(session <= SESSION_MAX, "Session is {session} bytes");
        assert!(
            handle <= HANDLE_MAX,
            "the connection future is {handle} bytes"
        );
        assert!(run <= RUN_MAX, "the session loop future is {run} bytes");
    }

    // Measured (the same in debug and release): Session 640, connection future 1280, session
    // loop future 752 bytes; before the context was shared and the loop's handlers boxed,
    // 1048, 2512 and 1088.
    const SESSION_MAX: usize = 768;
    const HANDLE_MAX: usize = 1536;
    const RUN_MAX: usize = 1024;
}
