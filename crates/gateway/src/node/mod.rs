//! The running gateway: wires listeners, router, store and egress, and shuts them down in order.
//!
//! # Data flow
//! mix TCP → [`mix_ingress`] (framing, unwrap on [`cpu_pool`], [`replay`] check) → [`router`]
//! → live client session ([`client`]) or the store; SURB-acks → [`egress`] once the message was
//! written or committed. Client packets → [`egress`]. `pipeline.rs` starts the stages and
//! stops them in order.
//!
//! # Running
//! The caller binds the [`Listeners`] and owns the shutdown signal: [`run`] serves on the
//! listeners until the token is cancelled, then stops every stage (packets already read are
//! processed, messages still queued for sessions go to the store, pending commits finish,
//! egress flushes what it can, the store commits and closes) and returns. The caller also owns
//! the reload request (SIGHUP in the binary): each one re-reads the wss certificate and key.

pub mod address_limit;
pub mod client;
pub mod cpu_pool;
pub mod dashboard;
pub mod described;
pub mod egress;
pub mod http_api;
mod listeners;
pub mod metrics;
pub mod mix_ingress;
pub mod noise;
mod pipeline;
pub mod relay;
pub mod replay;
pub mod rotation;
pub mod router;
pub mod statistics;
#[cfg(test)]
mod test_http;
pub mod unwrapper;
pub mod upgrade_mode;
pub mod validator_check;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gateway_store::UnixTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use listeners::Listeners;

use self::pipeline::Pipeline;
use crate::config::Config;
use crate::keys::NodeKeys;
use crate::network::Network;
use crate::node_details::NodeDetails;

/// Runs the gateway on `listeners` until `shutdown` is cancelled, then stops it cleanly.
/// A token cancelled during start-up stops the node as soon as it has started. Each
/// notification of `reload` re-reads the wss certificate and key (a request made during
/// start-up is served once the node runs).
pub async fn run(
    config: Config,
    keys: NodeKeys,
    network: Network,
    listeners: Listeners,
    shutdown: CancellationToken,
    reload: Arc<Notify>,
) -> anyhow::Result<()> {
    info!("Starting nym gateway!");
    let details = NodeDetails::new(&config, &keys, &network.bech32_prefix)?;
    // Before anything slow: a wss listener without a usable certificate is a start-up error.
    let wss = load_wss_certificate(&config)?;
    let upgrade_mode = upgrade_mode::settings(&config, &network)?;
    check_directory(&config, &keys).await?;
    let pipeline = Pipeline::start(
        &config,
        &keys,
        details,
        listeners,
        wss,
        reload,
        upgrade_mode,
    )
    .await?;
    info!("Finished nym gateway startup procedure - it should now be able to receive mix and client traffic!");
    // Tell systemd (Type=notify) we are up; a no-op when not run by systemd.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    shutdown.cancelled().await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    pipeline.stop().await?;
    info!("gateway stopped");
    Ok(())
}

/// The wss listener's certificate, when `clients_wss_port` is set.
fn load_wss_certificate(
    config: &Config,
) -> anyhow::Result<Option<Arc<client::tls::WssCertificate>>> {
    let Some(files) = config.wss_files()? else {
        return Ok(None);
    };
    let certificate = client::tls::WssCertificate::load(files)
        .context("the wss listener (clients_wss_port) cannot start")?;
    let host = config.gateway.announce_address.trim();
    if host.parse::<std::net::IpAddr>().is_ok() {
        warn!(announce_address = host, "the wss listener is on, but Nym clients use wss only with a host name: set announce_address to the name the certificate is for");
    }
    Ok(Some(certificate))
}

/// Asks the validator APIs whether this gateway is bonded and logs the answer.
async fn check_directory(config: &Config, keys: &NodeKeys) -> anyhow::Result<()> {
    let apis = config.gateway.validator_api_urls.clone();
    let host = config.gateway.announce_address.clone();
    let identity = keys.identity_public_bs58();
    let timeout = config.debug.validator_check_timeout;
    let max_answer = config.debug.validator_check_max_answer_size.get();
    let check = tokio::task::spawn_blocking(move || {
        validator_check::check(&apis, &host, &identity, timeout, max_answer)
    })
    .await?;
    validator_check::report(&check?);
    Ok(())
}

/// Deletes stored messages older than `max_age`, every `interval`.
async fn clean_stale_messages(store: gateway_store::Store, interval: Duration, max_age: Duration) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        let cutoff = UnixTime::now().saturating_sub(max_age);
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
