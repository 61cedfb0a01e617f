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
//! egress flushes what it can, the store commits and closes) and returns.

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
pub mod unwrapper;
pub mod validator_check;

use std::time::Duration;

use gateway_store::UnixTime;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use listeners::Listeners;

use self::pipeline::Pipeline;
use crate::config::Config;
use crate::keys::NodeKeys;
use crate::network::Network;
use crate::node_details::NodeDetails;

/// Runs the gateway on `listeners` until `shutdown` is cancelled, then stops it cleanly.
/// A token cancelled during start-up stops the node as soon as it has started.
pub async fn run(
    config: Config,
    keys: NodeKeys,
    network: Network,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    info!("Starting nym gateway!");
    let details = NodeDetails::new(&config, &keys, &network.bech32_prefix)?;
    check_directory(&config, &keys).await?;
    let pipeline = Pipeline::start(&config, &keys, details, listeners).await?;
    info!("Finished nym gateway startup procedure - it should now be able to receive mix and client traffic!");
    // Tell systemd (Type=notify) we are up; a no-op when not run by systemd.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    shutdown.cancelled().await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    pipeline.stop().await?;
    info!("gateway stopped");
    Ok(())
}

/// Asks the validator APIs whether this gateway is bonded and logs the answer.
async fn check_directory(config: &Config, keys: &NodeKeys) -> anyhow::Result<()> {
    let apis = config.gateway.validator_api_urls.clone();
    let host = config.gateway.announce_address.clone();
    let identity = keys.identity_public_bs58();
    let timeout = config.debug.validator_check_timeout;
    let check = tokio::task::spawn_blocking(move || {
        validator_check::check(&apis, &host, &identity, timeout)
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
