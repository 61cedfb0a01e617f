//! Every stage of the running gateway in one place: [`Pipeline::start`] builds them in
//! data-flow order and [`Pipeline::stop`] stops them in the order that loses nothing.
//!
//! # Stages (start order)
//! 1. store ([`gateway_store`]), opened on a blocking thread;
//! 2. [`egress`](super::egress): connections to next hops, for SURB-acks and client packets;
//! 3. [`router`](super::router): live sessions or the store, acks after write or commit;
//! 4. [`relay`](super::relay) (when `forward_hop_processing` is on): delayed forward hops;
//! 5. unwrap threads ([`cpu_pool`](super::cpu_pool)) and the [`replay`](super::replay) filter;
//! 6. [`mix_ingress`](super::mix_ingress) on the mix port;
//! 7. [`client`](super::client) sessions on the client port (and the wss port, with the
//!    certificate reloader);
//! 8. [`http_api`](super::http_api);
//! 9. background jobs: [`statistics`](super::statistics), the stale-message cleaner and the
//!    [`dashboard`](super::dashboard)'s sampler.
//!
//! # Stop order
//! Background jobs end. Ingress drains: listeners stop accepting, sessions stop reading,
//! packets already read are processed and messages still queued for sessions go to the store.
//! The replay filter is saved while store commits finish (their acks go to egress); the relay
//! hands every waiting packet to egress; egress flushes; the HTTP API stops; the unwrap threads
//! stop; the store commits and closes. Each draining stage gets `shutdown_stage_timeout`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gateway_protocol::framing::FrameVersion;
use gateway_store::Store;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::address_limit::AddressLimit;
use super::client::tls::WssCertificate;
use super::client::{
    self, ClientContext, ClientLimits, SignerQueue, SignerSettings, TicketSettings, Tickets,
};
use super::dashboard::history::{History, Sampler};
use super::dashboard::Dashboard;
use super::described::{self, Described, ServedPorts};
use super::egress::{Egress, EgressConfig};
use super::http_api::{self, ApiContent};
use super::listeners::Listeners;
use super::metrics::{Metrics, Outcome};
use super::mix_ingress::{unwrap_pool, MixIngress, UnwrapPool};
use super::noise::{self, Noise};
use super::relay::{self, RelayHandle};
use super::rotation::{
    self, controller::Controller, key_files::KeyFiles, key_ring::KeyRing, nym_api::NymApi, KeyMaker,
};
use super::router::Router;
use super::statistics;
use super::upgrade_mode::{UpgradeMode, UpgradeModeSettings};
use crate::config::{Config, EgressFraming, NoiseMode};
use crate::keys::{NodeKeys, NoiseKey};
use crate::node_details::NodeDetails;

/// The running stages, held until [`Pipeline::stop`].
pub(super) struct Pipeline {
    store: Store,
    /// Mix connections and client sessions.
    ingress: Stage,
    /// Store commits started by the router (each forwards its ack when done).
    commits: TaskTracker,
    relay: Option<RelayHandle>,
    egress: Stage,
    http: Stage,
    background: Vec<JoinHandle<()>>,
    pool: PoolGuard,
    replay: ReplayPersistence,
    /// How long each draining stage may take before the next one starts anyway.
    stage_timeout: Duration,
}

/// A stage whose tasks stop when its token is cancelled.
struct Stage {
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Logged when the stage does not finish within the shutdown's stage timeout.
    overdue: &'static str,
}

impl Stage {
    fn new(overdue: &'static str) -> Self {
        Self {
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            overdue,
        }
    }

    /// Cancels the stage and waits for its tasks, up to `timeout`.
    async fn stop(&self, timeout: Duration) {
        self.shutdown.cancel();
        drain(&self.tasks, self.overdue, timeout).await;
    }
}

/// Waits (bounded) for every task of `tasks`, including those still being spawned by them.
/// Returns whether they all finished in time.
async fn drain(tasks: &TaskTracker, overdue: &str, timeout: Duration) -> bool {
    tasks.close();
    let finished = tokio::time::timeout(timeout, tasks.wait()).await.is_ok();
    if !finished {
        warn!("{overdue}; continuing shutdown");
    }
    finished
}

impl Pipeline {
    /// Starts every stage on `listeners`; the wss listeners serve `wss`, which each `reload`
    /// notification re-reads.
    pub(super) async fn start(
        config: &Config,
        keys: &NodeKeys,
        details: NodeDetails,
        listeners: Listeners,
        wss: Option<Arc<WssCertificate>>,
        reload: Arc<Notify>,
        upgrade_mode: UpgradeModeSettings,
    ) -> anyhow::Result<Self> {
        let d = &config.debug;
        crate::logging::recent::recent_warnings()
            .configure(d.dashboard_warnings, d.dashboard_warning_bytes.get());
        let ports = ServedPorts {
            mix: listeners.mix_address()?.port(),
            clients: listeners.clients_address()?.port(),
            wss: listeners.wss_address()?.map(|a| a.port()),
        };
        if ports.wss.is_some() != wss.is_some() {
            anyhow::bail!("the wss listener needs both clients_wss_port and its certificate");
        }
        let store = open_store(config).await?;
        let metrics = Metrics::new();

        let noise = Noise::new(
            d.mix_noise,
            NoiseKey::load_or_create(rotation::key_dir(config))?,
            d.noise_handshake_timeout,
        );
        info!("Starting mix packet forwarder...");
        let egress_stage = Stage::new("outgoing packets could not all be flushed in time");
        let egress = start_egress(config, &noise, &metrics, &egress_stage);
        let commits = TaskTracker::new();
        let router = Router::new(
            store.clone(),
            egress.clone(),
            metrics.clone(),
            commits.clone(),
        );
        let relay = relay::start(d, egress.clone(), metrics.clone());
        let pool = PoolGuard::new(d.unwrap_workers, d.unwrap_queue_capacity.get())?;
        let replay = ReplayPersistence::load(config, keys).await?;
        metrics.replay_filter(
            &replay
                .ring
                .current()
                .primary
                .replay
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );

        let ingress = Stage::new("connections did not finish in time");
        info!("Starting mix socket listener...");
        let mix = MixIngress {
            keys: replay.ring.clone(),
            pool: pool.0.clone(),
            router: router.clone(),
            metrics: metrics.clone(),
            connection_limit: Arc::new(Semaphore::new(d.maximum_mix_connections.get())),
            address_limit: AddressLimit::new(
                d.maximum_mix_connections_per_address.get(),
                d.per_address_limits_include_loopback,
            ),
            max_in_flight: d.mix_connection_max_in_flight.get(),
            inline_max_frames: d.unwrap_inline_max_frames,
            frame_timeout: d.mix_frame_timeout,
            idle_timeout: d.mix_connection_idle_timeout,
            relay: relay.as_ref().map(|r| r.relay.clone()),
            noise: noise.clone(),
        };
        serve_mix(mix, listeners.mix, &ingress)?;

        info!("Starting client [web]socket listener...");
        let signers = SignerQueue::start(
            SignerSettings::from_config(
                &config.gateway.zk_nym_signer_urls,
                &config.gateway.wallet_address,
                d,
            ),
            store.clone(),
            ingress.shutdown.clone(),
            &ingress.tasks,
        );
        let tickets = Tickets::new(
            keys.identity.verifying_key().to_bytes(),
            &TicketSettings::from_config(
                config.gateway.enforce_zk_nyms,
                rotation::followed_apis(config),
                d,
            ),
            signers,
        );
        let clients = ClientContext {
            router: router.clone(),
            store: store.clone(),
            egress,
            metrics: metrics.clone(),
            identity: Arc::new(keys.identity.clone()),
            limits: Arc::new(ClientLimits::from_config(d)),
            connection_limit: Arc::new(Semaphore::new(d.maximum_client_connections.get())),
            address_limit: AddressLimit::new(
                d.maximum_client_connections_per_address.get(),
                d.per_address_limits_include_loopback,
            ),
            tickets,
            upgrade_mode: UpgradeMode::start(
                upgrade_mode,
                ingress.shutdown.clone(),
                &ingress.tasks,
            ),
        };
        serve_clients(&clients, listeners.clients, None, &ingress)?;
        if let Some(certificate) = &wss {
            let acceptor = certificate
                .acceptor()
                .context("failed to set up TLS for the wss listener")?;
            serve_clients(&clients, listeners.wss, Some(acceptor), &ingress)?;
        }

        let http = Stage::new("the HTTP API did not stop in time");
        let announce_ips = described::announce_ips(&config.gateway.announce_address).await;
        let dashboard = Dashboard {
            history: History::new(d.dashboard_samples()),
            interval_ms: u64::try_from(d.dashboard_sample_interval.as_millis()).unwrap_or(u64::MAX),
            capacity: d.dashboard_samples(),
        };
        let content = ApiContent {
            store: store.clone(),
            details,
            described: Described::new(
                config,
                keys,
                announce_ips,
                ports,
                replay.ring.clone(),
                noise.announced_key(),
            ),
            dashboard: dashboard.clone(),
        };
        serve_http(config, listeners.http, &metrics, content, &http);
        let mut background = start_background(config, keys, &router, &store, &http.shutdown);
        background.push(tokio::spawn(
            Sampler {
                metrics: metrics.clone(),
                store: store.clone(),
                history: dashboard.history,
                interval: d.dashboard_sample_interval,
                store_interval: d.dashboard_store_interval,
            }
            .run(),
        ));
        let apis = rotation::followed_apis(config);
        if noise.mode() != NoiseMode::Off && !apis.is_empty() {
            background.push(tokio::spawn(noise::directory::refresh(
                noise.clone(),
                apis.to_vec(),
                noise::directory::DirectorySettings::from_config(d),
            )));
        }
        background.push(tokio::spawn(reload_on_request(
            reload,
            wss,
            metrics.clone(),
        )));
        if let Some(rotation) = replay.controller(config, keys) {
            background.push(tokio::spawn(rotation.run(http.shutdown.child_token())));
        }
        Ok(Self {
            store,
            ingress,
            commits,
            relay,
            egress: egress_stage,
            http,
            background,
            pool,
            replay,
            stage_timeout: d.shutdown_stage_timeout,
        })
    }

    /// Stops every stage in order (see the module documentation) and closes the store.
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        for job in &self.background {
            job.abort();
        }
        let timeout = self.stage_timeout;
        self.ingress.stop(timeout).await;
        // No packet is checked any more: save the filter (if it changed) while the rest stops.
        let replay_saved = tokio::spawn(self.replay.save());
        drain(
            &self.commits,
            "store commits did not finish in time",
            timeout,
        )
        .await;
        // Forward hops still waiting for their delay go out now, while egress still runs.
        if let Some(relay) = self.relay {
            relay.stop().await;
        }
        self.egress.stop(timeout).await;
        self.http.stop(timeout).await;
        self.pool.0.shutdown();
        let _ = replay_saved.await;
        self.store
            .close()
            .await
            .context("failed to close the store cleanly")
    }
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store_config = crate::storage::store_config(config);
    tokio::task::spawn_blocking(move || Store::open(store_config))
        .await?
        .context("failed to initialise gateway storage")
}

fn start_egress(config: &Config, noise: &Noise, metrics: &Metrics, stage: &Stage) -> Egress {
    let d = &config.debug;
    Egress::new(
        EgressConfig {
            queue_capacity: d.maximum_connection_buffer_size.get(),
            max_connections: d.maximum_egress_connections.get(),
            connect_timeout: d.initial_connection_timeout,
            initial_backoff: d.packet_forwarding_initial_backoff,
            maximum_backoff: d.packet_forwarding_maximum_backoff,
            idle_timeout: d.egress_idle_timeout,
            frame_version: match d.egress_frame_version {
                EgressFraming::V7 => FrameVersion::V7,
                EgressFraming::V8 => FrameVersion::V8,
            },
        },
        noise.clone(),
        metrics.clone(),
        stage.shutdown.clone(),
        stage.tasks.clone(),
    )
}

fn serve_mix(mix: MixIngress, listeners: Vec<TcpListener>, stage: &Stage) -> anyhow::Result<()> {
    for listener in listeners {
        info!("Running mix listener on \"{}\"", listener.local_addr()?);
        let serve = mix
            .clone()
            .serve(listener, stage.shutdown.clone(), stage.tasks.clone());
        stage.tasks.spawn(serve);
    }
    Ok(())
}

/// Client listeners: plain websockets, or wss with `tls`.
fn serve_clients(
    ctx: &ClientContext,
    listeners: Vec<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stage: &Stage,
) -> anyhow::Result<()> {
    let what = if tls.is_some() { "wss" } else { "websocket" };
    for listener in listeners {
        info!(
            "Running client {what} listener on \"{}\"",
            listener.local_addr()?
        );
        stage.tasks.spawn(client::serve(
            listener,
            tls.clone(),
            ctx.clone(),
            stage.shutdown.clone(),
            stage.tasks.clone(),
        ));
    }
    Ok(())
}

fn serve_http(
    config: &Config,
    listener: TcpListener,
    metrics: &Metrics,
    content: ApiContent,
    stage: &Stage,
) {
    let g = &config.gateway;
    if !g.http_api_address.ip().is_loopback() && g.http_api_token.is_none() {
        warn!(address = %g.http_api_address, "the HTTP API is reachable beyond this machine without a token; set http_api_token in config.toml");
    }
    let address = listener
        .local_addr()
        .map_or_else(|_| g.http_api_address.to_string(), |a| a.to_string());
    info!("HTTP API (health, metrics, self-described api/v1) on http://{address}");
    info!("dashboard on http://{address}/dashboard");
    stage.tasks.spawn(http_api::serve(
        listener,
        metrics.clone(),
        content,
        g.http_api_token.clone(),
        stage.shutdown.clone(),
    ));
}

/// The statistics reporter (if enabled) and the stale-message cleaner; aborted at stop.
fn start_background(
    config: &Config,
    keys: &NodeKeys,
    router: &Router,
    store: &Store,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let (g, d) = (&config.gateway, &config.debug);
    let mut jobs = vec![tokio::spawn(super::clean_stale_messages(
        store.clone(),
        d.stale_messages_cleaner_interval,
        d.stored_messages_max_age,
    ))];
    if g.enabled_statistics {
        let reporter = statistics::ReporterConfig {
            service_url: g.statistics_service_url.clone(),
            gateway_id: keys.identity_public_bs58(),
            interval: d.statistics_report_interval,
            timeout: d.statistics_request_timeout,
        };
        jobs.push(tokio::spawn(statistics::run(
            reporter,
            router.clone(),
            shutdown.clone(),
        )));
    }
    jobs
}

/// Re-reads the wss certificate and key at each `reload` notification, until aborted. A file
/// that cannot be used leaves the certificate in use as it is, with a warning: the operator
/// fixes the file and sends SIGHUP again.
async fn reload_on_request(
    reload: Arc<Notify>,
    wss: Option<Arc<WssCertificate>>,
    metrics: Metrics,
) {
    loop {
        reload.notified().await;
        let Some(certificate) = &wss else {
            info!("reload requested: nothing to reload (no wss listener is configured)");
            continue;
        };
        let files = certificate.files();
        let result = certificate.reload();
        let outcome = if result.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        metrics
            .wss_certificate_reloads
            .get_or_create(&outcome)
            .inc();
        match result {
            Ok(()) => info!(
                certificate = %files.certificate_chain.display(),
                key = %files.private_key.display(),
                "reloaded the wss certificate and key: new connections use them, open ones keep theirs"
            ),
            Err(e) => {
                warn!("wss certificate reload failed, the previous certificate stays in use: {e}")
            }
        }
    }
}

/// The sphinx keys and their replay filters, loaded at start, saved periodically and at stop.
struct ReplayPersistence {
    ring: KeyRing,
    maker: KeyMaker,
    /// Saves every key's filter every `replay_filter_save_interval`.
    saver: JoinHandle<()>,
}

impl ReplayPersistence {
    async fn load(config: &Config, keys: &NodeKeys) -> anyhow::Result<Self> {
        let maker = KeyMaker::from_config(config);
        let ring = {
            let (config, secret, maker) = (config.clone(), keys.sphinx.clone(), maker.clone());
            tokio::task::spawn_blocking(move || rotation::initial_keys(&config, &secret, &maker))
                .await??
        };
        let saver = tokio::spawn(save_every(
            ring.clone(),
            config.debug.replay_filter_save_interval,
        ));
        Ok(Self { ring, maker, saver })
    }

    /// The key rotation task, when a nym-api is configured.
    fn controller(&self, config: &Config, keys: &NodeKeys) -> Option<Controller> {
        let urls = rotation::followed_apis(config);
        if urls.is_empty() {
            info!("no nym-api configured: the static sphinx key is used, never rotated");
            return None;
        }
        let d = &config.debug;
        Some(Controller {
            ring: self.ring.clone(),
            files: KeyFiles::in_dir(rotation::key_dir(config)),
            maker: self.maker.clone(),
            static_secret: keys.sphinx.clone(),
            identity: keys.identity.clone(),
            api: NymApi::from_config(urls, d),
            poll_interval: d.key_rotation_poll_interval,
            retry_interval: d.key_rotation_retry_interval,
        })
    }

    /// Stops the periodic saver and saves every key's filter (if it changed).
    async fn save(self) {
        self.saver.abort();
        save_all(&self.ring).await;
    }
}

/// Saves the filter of every key held now.
async fn save_all(ring: &KeyRing) {
    for key in ring.current().keys() {
        key.replay_file.save(&key.replay).await;
    }
}

/// [`save_all`] every `interval`, until aborted.
async fn save_every(ring: KeyRing, interval: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        save_all(&ring).await;
    }
}

/// Owns the unwrap threads so they stop even when start-up fails half-way.
struct PoolGuard(Arc<UnwrapPool>);

impl PoolGuard {
    fn new(workers: usize, capacity: usize) -> anyhow::Result<Self> {
        let pool = unwrap_pool(workers, capacity).context("failed to start the unwrap threads")?;
        Ok(Self(Arc::new(pool)))
    }
}

impl Drop for PoolGuard {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stage_is_waited_for_until_its_timeout_and_no_longer() {
        let tasks = TaskTracker::new();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn(async move {
            let _ = released.await;
        });
        let started = tokio::time::Instant::now();
        assert!(!drain(&tasks, "stuck", Duration::from_secs(25)).await);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(25),
            "the configured timeout, not a fixed one"
        );

        let tasks = TaskTracker::new();
        tasks.spawn(tokio::time::sleep(Duration::from_secs(3)));
        let started = tokio::time::Instant::now();
        assert!(drain(&tasks, "slow", Duration::from_secs(25)).await);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(3),
            "done when its work is"
        );
        drop(release);
    }
}
