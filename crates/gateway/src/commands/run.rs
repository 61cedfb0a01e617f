//! `nym-gateway run`: load config and keys, print the node details, run until SIGINT/SIGTERM
//! (SIGHUP reloads the wss certificate).

use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::init::initialise;
use super::overrides::{apply_overrides, IdentityFlags};
use super::signals::{ReloadSignal, ShutdownSignals};
use super::Context;
use crate::build_info::VERSION;
use crate::cli::{Overrides, Run};
use crate::config::upgrade::{check_version, VersionCheck};
use crate::config::{Config, ConfigError};
use crate::keys::NodeKeys;
use crate::network::Network;
use crate::node_details::NodeDetails;

/// Hosts that other nodes cannot reach.
const LOCAL_HOSTS: [&str; 5] = ["localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]"];

pub(super) fn execute(args: &Run, ctx: &Context) -> anyhow::Result<()> {
    println!("Starting gateway {}...", args.id);
    let flags = IdentityFlags {
        host: args.host.as_deref(),
        wallet_address: args.wallet_address.as_deref(),
        mnemonic: args.mnemonic.as_deref(),
    };
    let mut config = match ctx.load_config(&args.id) {
        Ok(config) => config,
        Err(e) if args.init_if_missing && is_missing(&e) => {
            let local = IdentityFlags {
                host: Some("127.0.0.1"),
                ..IdentityFlags::default()
            };
            initialise(&args.id, local, &Overrides::default(), ctx)?.0
        }
        Err(e) => return Err(e),
    };
    version_check(&config)?;
    // Overrides apply to this run only; the file is left as it is.
    apply_overrides(&mut config, flags, &args.overrides, &ctx.network)?;

    let listening = config.gateway.listening_address.to_string();
    if LOCAL_HOSTS.contains(&listening.as_str()) {
        println!("\n##### NOTE #####");
        println!(
            "\nYou are trying to bind to {listening} - you might not be accessible to other nodes\n\
             You can ignore this warning if you're running setup on a local network \n\
             or have set a custom 'announce-host'\n\n"
        );
    }

    let keys = NodeKeys::load(&config.key_paths()).context("failed to load the gateway's keys")?;
    let config_file = ctx.config_path(&args.id);
    let mut secrets = vec![
        config_file.as_path(),
        &config.gateway.private_identity_key_file,
        &config.gateway.private_sphinx_key_file,
        &config.gateway.persistent_storage,
    ];
    secrets.extend(config.gateway.clients_wss_private_key_file.as_deref());
    // Made at the first start that needs it; checked when it exists.
    let noise_key = crate::node::rotation::key_dir(&config).join(crate::keys::NOISE_PRIVATE_FILE);
    if noise_key.exists() {
        secrets.push(&noise_key);
    }
    crate::keys::warn_if_exposed(&secrets);
    let details = NodeDetails::new(&config, &keys, &ctx.network.bech32_prefix)
        .map_err(|e| super::report_wallet_error(&e))?;
    println!(
        "\nTo bond your gateway you will need to install the Nym wallet, go to https://nymtech.net/get-involved and select the Download button.\n\
         Select the correct version and install it to your machine. You will need to provide the following: \n"
    );
    print!("{}", details.to_text());

    crate::fd_limit::ensure(&config.debug);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(async_worker_threads(config.debug.async_workers))
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(serve(config, keys, ctx.network.clone()))
}

/// Binds the node's ports and runs it until SIGINT or SIGTERM; SIGHUP asks it to reload.
async fn serve(config: Config, keys: NodeKeys, network: Network) -> anyhow::Result<()> {
    // Signal handlers first: a SIGTERM during start-up must also shut down cleanly, and a
    // SIGHUP (a certificate renewal hook) must not kill a starting gateway.
    let signals = ShutdownSignals::install().context("failed to install the signal handlers")?;
    let mut hangups = ReloadSignal::install().context("failed to install the signal handlers")?;
    let reload = Arc::new(Notify::new());
    let on_hangup = reload.clone();
    let reloader = tokio::spawn(async move {
        loop {
            hangups.recv().await;
            info!("Received SIGHUP - reloading the wss certificate and key");
            // A stored permit: a SIGHUP during start-up is served once the node runs.
            on_hangup.notify_one();
        }
    });
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    let signal = tokio::spawn(async move {
        let name = signals.recv().await;
        info!("Received {name} - the gateway is shutting down cleanly");
        on_signal.cancel();
    });
    let listeners = crate::node::Listeners::bind(&config).await?;
    let result = crate::node::run(config, keys, network, listeners, shutdown, reload).await;
    signal.abort();
    reloader.abort();
    result
}

/// The async runtime's threads: `configured`, or one per two cores (at least one) for 0.
fn async_worker_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (cores / 2).max(1)
}

fn is_missing(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<ConfigError>(),
        Some(ConfigError::Missing { .. })
    )
}

/// The version check of `run` and `sign`: a different patch version runs with a hint, a
/// different minor or major version refuses to run (exit 1).
pub(super) fn version_check(config: &Config) -> anyhow::Result<()> {
    let cfg = &config.gateway.version;
    match check_version(VERSION, cfg)? {
        VersionCheck::Equal => {}
        VersionCheck::Compatible => {
            warn!("The gateway binary has different version than what is specified in config file! {VERSION} and {cfg}");
            info!("but they are still semver compatible. However, consider running the `upgrade` command");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::async_worker_threads;

    #[test]
    fn async_workers_are_as_configured_or_half_the_cores() {
        assert_eq!(async_worker_threads(3), 3);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(async_worker_threads(0), (cores / 2).max(1));
    }
}
