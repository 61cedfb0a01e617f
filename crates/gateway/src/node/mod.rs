//! The running gateway: wires listeners, router, store and egress, and shuts them down in order.
//!
//! # Data flow
//! mix TCP → [`mix_ingress`] (framing, unwrap on [`cpu_pool`], [`replay`] check) → [`router`]
//! → live client session ([`client`]) or the store; SURB-acks → [`egress`] once the message was
//! written or committed. Client packets → [`egress`].
//!
//! # Shutdown
//! Listeners stop accepting and sessions stop reading; packets already read are processed and
//! messages still queued for sessions go to the store; pending commits finish; egress flushes
//! what it can; the store commits and closes. Then the process exits 0.

pub mod client;
pub mod cpu_pool;
pub mod egress;
pub mod http_api;
mod listeners;
pub mod metrics;
pub mod mix_ingress;
pub mod relay;
pub mod replay;
pub mod router;
mod shutdown;
pub mod statistics;
pub mod unwrapper;
pub mod validator_check;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use shutdown::wait_for_signal;

use self::egress::{Egress, EgressConfig};
use self::metrics::Metrics;
use self::router::Router;
use crate::config::Config;
use crate::keys::NodeKeys;
use crate::network::Network;
use crate::node_details::NodeDetails;

/// How long each shutdown stage may take before the next one starts anyway.
const SHUTDOWN_STAGE_TIMEOUT: Duration = Duration::from_secs(10);

async fn bind_http(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let what = "HTTP API";
    TcpListener::bind(addr).await.with_context(|| {
        format!("Failed to bind the {what} listener to {addr}. Are you sure nothing else is running on the specified port and your user has sufficient permission to bind to the requested address?")
    })
}

/// Runs the gateway until SIGINT or SIGTERM, then shuts down cleanly.
pub async fn run(config: Config, keys: NodeKeys, network: Network) -> anyhow::Result<()> {
    // Signal handlers first: a SIGTERM during start-up must also shut down cleanly.
    let signal = tokio::spawn(wait_for_signal());
    info!("Starting nym gateway!");
    let g = &config.gateway;
    let d = &config.debug;
    let details = NodeDetails::new(&config, &keys, &network.bech32_prefix)?;
    let check = {
        let apis = g.validator_api_urls.clone();
        let host = g.announce_address.clone();
        let identity = keys.identity_public_bs58();
        let timeout = d.validator_check_timeout;
        tokio::task::spawn_blocking(move || {
            validator_check::check(&apis, &host, &identity, timeout)
        })
        .await?
    };
    validator_check::report(&check?);
    let store_config = crate::storage::store_config(&config);
    let store = tokio::task::spawn_blocking(move || gateway_store::Store::open(store_config))
        .await?
        .context("failed to initialise gateway storage")?;

    let metrics = Metrics::new();
    let ingress_shutdown = CancellationToken::new();
    let egress_shutdown = CancellationToken::new();
    let ingress_tasks = TaskTracker::new();
    let commit_tasks = TaskTracker::new();
    let egress_tasks = TaskTracker::new();

    info!("Starting mix packet forwarder...");
    let egress = Egress::new(
        EgressConfig {
            queue_capacity: d.maximum_connection_buffer_size,
            max_connections: d.maximum_egress_connections,
            connect_timeout: d.initial_connection_timeout,
            initial_backoff: d.packet_forwarding_initial_backoff,
            maximum_backoff: d.packet_forwarding_maximum_backoff,
            idle_timeout: d.egress_idle_timeout,
        },
        metrics.clone(),
        egress_shutdown.clone(),
        egress_tasks.clone(),
    );
    let router = Router::new(store.clone(), egress, metrics.clone(), commit_tasks.clone());
    let relay = relay::start(d, &router);
    let pool = Arc::new(CpuPoolHandle::new(
        d.unwrap_workers,
        d.unwrap_queue_capacity,
    )?);

    info!("Starting mix socket listener...");
    let mix_listeners = listeners::bind(g.listening_address, g.mix_port, "mix").await?;
    for listener in &mix_listeners {
        info!("Running mix listener on \"{}\"", listener.local_addr()?);
    }
    let replay_file = replay::ReplayFile::beside_store(
        &g.persistent_storage,
        x25519_dalek::PublicKey::from(&keys.sphinx).to_bytes(),
    );
    let replay = {
        let file = replay_file.clone();
        let settings = replay::ReplaySettings::from_config(d);
        let filter = tokio::task::spawn_blocking(move || file.load_or_new(settings)).await?;
        metrics.replay_filter(&filter);
        Arc::new(Mutex::new(filter))
    };
    let replay_saver = tokio::spawn(
        replay_file
            .clone()
            .save_every(replay.clone(), d.replay_filter_save_interval),
    );
    let ingress = mix_ingress::MixIngress {
        sphinx: Arc::new(unwrapper::Unwrapper::new(
            keys.sphinx.to_bytes(),
            d.final_hop_implementation,
        )?),
        pool: pool.0.clone(),
        replay: replay.clone(),
        router: router.clone(),
        connection_limit: Arc::new(Semaphore::new(d.maximum_mix_connections)),
        max_in_flight: d.mix_connection_max_in_flight,
        inline_max_frames: d.unwrap_inline_max_frames,
        frame_timeout: d.mix_frame_timeout,
        idle_timeout: d.mix_connection_idle_timeout,
        relay: relay.as_ref().map(|r| r.relay.clone()),
    };
    for listener in mix_listeners {
        let serve =
            ingress
                .clone()
                .serve(listener, ingress_shutdown.clone(), ingress_tasks.clone());
        ingress_tasks.spawn(serve);
    }

    info!("Starting client [web]socket listener...");
    let client_listeners =
        listeners::bind(g.listening_address, g.clients_port, "client websocket").await?;
    for listener in &client_listeners {
        info!(
            "Running client websocket listener on \"{}\"",
            listener.local_addr()?
        );
    }
    let client_ctx = client::ClientContext {
        router: router.clone(),
        identity: Arc::new(keys.identity.clone()),
        limits: Arc::new(d.clone()),
        connection_limit: Arc::new(Semaphore::new(d.maximum_client_connections)),
    };
    for listener in client_listeners {
        ingress_tasks.spawn(client::serve(
            listener,
            client_ctx.clone(),
            ingress_shutdown.clone(),
            ingress_tasks.clone(),
        ));
    }

    let http_listener = bind_http(g.http_api_address).await?;
    if !g.http_api_address.ip().is_loopback() && g.http_api_token.is_none() {
        warn!(address = %g.http_api_address, "the HTTP API is reachable beyond this machine without a token; set http_api_token in config.toml");
    }
    info!(
        "HTTP API (health, metrics) on http://{}",
        g.http_api_address
    );
    let http_shutdown = CancellationToken::new();
    let http_task = tokio::spawn(http_api::serve(
        http_listener,
        metrics.clone(),
        store.clone(),
        details,
        g.http_api_token.clone(),
        http_shutdown.clone(),
    ));

    let statistics = g.enabled_statistics.then(|| {
        let reporter = statistics::ReporterConfig {
            service_url: g.statistics_service_url.clone(),
            gateway_id: keys.identity_public_bs58(),
            interval: d.statistics_report_interval,
            timeout: d.statistics_request_timeout,
        };
        tokio::spawn(statistics::run(
            reporter,
            router.clone(),
            http_shutdown.clone(),
        ))
    });
    let cleaner = tokio::spawn(clean_stale_messages(
        store.clone(),
        d.stale_messages_cleaner_interval,
        d.stored_messages_max_age,
    ));

    info!("Finished nym gateway startup procedure - it should now be able to receive mix and client traffic!");
    // Tell systemd (Type=notify) we are up; a no-op when not run by systemd.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let signal = signal.await??;
    info!("Received {signal} - the gateway is shutting down cleanly");

    cleaner.abort();
    if let Some(statistics) = statistics {
        statistics.abort();
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    ingress_shutdown.cancel();
    ingress_tasks.close();
    if tokio::time::timeout(SHUTDOWN_STAGE_TIMEOUT, ingress_tasks.wait())
        .await
        .is_err()
    {
        warn!("connections did not finish in time; continuing shutdown");
    }
    // No packet is checked any more: save the filter (if it changed) while the rest shuts down.
    replay_saver.abort();
    let replay_saved = tokio::spawn(async move { replay_file.save(&replay).await });
    commit_tasks.close();
    if tokio::time::timeout(SHUTDOWN_STAGE_TIMEOUT, commit_tasks.wait())
        .await
        .is_err()
    {
        warn!("store commits did not finish in time; continuing shutdown");
    }
    // Forward hops still waiting for their delay go out now, while egress still runs.
    if let Some(relay) = relay {
        relay.stop().await;
    }
    egress_shutdown.cancel();
    egress_tasks.close();
    if tokio::time::timeout(SHUTDOWN_STAGE_TIMEOUT, egress_tasks.wait())
        .await
        .is_err()
    {
        warn!("outgoing packets could not all be flushed in time");
    }
    http_shutdown.cancel();
    let _ = http_task.await;
    pool.0.shutdown();
    let _ = replay_saved.await;
    store
        .close()
        .await
        .context("failed to close the store cleanly")?;
    info!("gateway stopped");
    Ok(())
}

/// Owns the CPU pool so it is shut down even on early returns.
struct CpuPoolHandle(Arc<cpu_pool::CpuPool>);

impl CpuPoolHandle {
    fn new(workers: usize, capacity: usize) -> anyhow::Result<Self> {
        Ok(Self(Arc::new(
            cpu_pool::CpuPool::new(workers, capacity)
                .context("failed to start the unwrap threads")?,
        )))
    }
}

impl Drop for CpuPoolHandle {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// Deletes stored messages older than `max_age`, every `interval`.
async fn clean_stale_messages(store: gateway_store::Store, interval: Duration, max_age: Duration) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        let cutoff = router::now_unix() - i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        match store.delete_messages_older_than(cutoff).await {
            Ok(0) => {}
            Ok(n) => info!(
                deleted = n,
                "deleted stored messages older than {}",
                humantime::format_duration(max_age)
            ),
            Err(e) => warn!(error = %e, "failed to delete stale stored messages"),
        }
    }
}
