//! Binding the node's ports. The mix and client ports listen on IPv4 and IPv6: a node must be
//! reachable over both (peers may use either), so an unspecified IPv4 address (`0.0.0.0`) also
//! binds `[::]` (IPv6 only, best effort), and `::` binds one dual-stack socket.
//!
//! Binding is the caller's step, before [`run`](super::run): a test binds port 0 and reads
//! the ports it got; a failure to bind is reported before anything else starts.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::Config;
use crate::logging::{RateLimit, WARNING_PERIOD};

/// Every socket the node listens on, bound and listening.
#[derive(Debug)]
pub struct Listeners {
    /// The mix port (one socket per address family bound).
    pub mix: Vec<TcpListener>,
    /// The client websocket port.
    pub clients: Vec<TcpListener>,
    /// The client wss port (empty without `clients_wss_port`).
    pub wss: Vec<TcpListener>,
    /// The HTTP API (health, metrics, node description).
    pub http: TcpListener,
}

impl Listeners {
    /// Binds the mix port, the client ports and the HTTP API from `config`.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let g = &config.gateway;
        let mix = bind_port(g.listening_address, g.mix_port, "mix").await?;
        let clients = bind_port(g.listening_address, g.clients_port, "client websocket").await?;
        let wss = match g.clients_wss_port {
            Some(port) => bind_port(g.listening_address, port, "client wss").await?,
            None => Vec::new(),
        };
        let http = bind_one(g.http_api_address, None)
            .with_context(|| bind_failure("HTTP API", g.http_api_address))?;
        Ok(Self {
            mix,
            clients,
            wss,
            http,
        })
    }

    /// Where the mix port listens (the first socket: the configured address).
    pub fn mix_address(&self) -> std::io::Result<SocketAddr> {
        self.mix[0].local_addr()
    }

    /// Where the client port listens (the first socket: the configured address).
    pub fn clients_address(&self) -> std::io::Result<SocketAddr> {
        self.clients[0].local_addr()
    }

    /// Where the client wss port listens (the first socket), if it is on.
    pub fn wss_address(&self) -> std::io::Result<Option<SocketAddr>> {
        self.wss.first().map(TcpListener::local_addr).transpose()
    }

    /// Where the HTTP API listens.
    pub fn http_address(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }
}

fn bind_failure(what: &str, addr: SocketAddr) -> String {
    format!("Failed to bind the {what} listener to {addr}. Are you sure nothing else is running on the specified port and your user has sufficient permission to bind to the requested address?")
}

/// Pending connections the kernel may hold per listener.
const BACKLOG: i32 = 1024;

fn bind_one(addr: SocketAddr, only_v6: Option<bool>) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(only_v6) = only_v6 {
        socket.set_only_v6(only_v6)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Binds `ip:port` (and its IPv6 twin for `0.0.0.0`). Failing to bind the configured address
/// is an error; failing to add IPv6 is a warning.
async fn bind_port(ip: IpAddr, port: u16, what: &str) -> anyhow::Result<Vec<TcpListener>> {
    let addr = SocketAddr::new(ip, port);
    let only_v6 = match ip {
        IpAddr::V6(v6) if v6.is_unspecified() => Some(false),
        IpAddr::V6(_) => Some(true),
        IpAddr::V4(_) => None,
    };
    let primary = bind_one(addr, only_v6).with_context(|| bind_failure(what, addr))?;
    // Port 0 (tests) is the port the kernel chose, so both families share it.
    let port = primary.local_addr()?.port();
    let mut listeners = vec![primary];
    if ip == IpAddr::from([0, 0, 0, 0]) {
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
        match bind_one(v6, Some(true)) {
            Ok(listener) => listeners.push(listener),
            Err(e) => warn!(%v6, error = %e, "{what} listener is IPv4 only: could not bind IPv6"),
        }
    }
    Ok(listeners)
}

/// Pause after a failed accept (usually EMFILE), so a full fd table is not a busy loop.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Accept failures repeat every [`ACCEPT_ERROR_BACKOFF`] while they last: one warning per period.
static ACCEPT_ERRORS: RateLimit = RateLimit::new(WARNING_PERIOD);

/// The next connection on `listener`, or `None` once `shutdown` is cancelled. Accept errors are
/// retried after a pause; a peer that gave up before we accepted is logged at debug, anything
/// else (out of file descriptors, memory) is the operator's to fix and warned about, rate-limited.
pub(crate) async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
    what: &str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return None,
        };
        match accepted {
            Ok(pair) => return Some(pair),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                debug!(error = %e, "a {what} peer left before its connection was accepted");
            }
            Err(e) => {
                crate::warn_rate_limited!(
                    ACCEPT_ERRORS,
                    error = %e,
                    "failed to accept a {what} connection (if the error is \"Too many open files\", raise the open-file limit, e.g. LimitNOFILE in the systemd unit)"
                );
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}
