//! `nym-gateway init`: create or update a gateway's config, keys and store.

use anyhow::{bail, Context as _};

use super::overrides::{apply_overrides, IdentityFlags};
use super::Context;
use crate::build_info::VERSION;
use crate::cli::{Init, Overrides};
use crate::config::Config;
use crate::keys::NodeKeys;
use crate::node_details::NodeDetails;

pub(super) fn execute(args: &Init, ctx: &Context) -> anyhow::Result<()> {
    println!("Initialising gateway {}...", args.id);
    let flags = IdentityFlags {
        host: Some(&args.host),
        wallet_address: Some(&args.wallet_address),
        mnemonic: args.mnemonic.as_deref(),
    };
    let (config, keys) = initialise(&args.id, flags, &args.overrides, ctx)?;
    let details = NodeDetails::new(&config, &keys, &ctx.network.bech32_prefix)
        .map_err(|e| super::report_wallet_error(&e))?;
    print!("{}", details.to_text());
    Ok(())
}

/// Creates or updates gateway `id`: config (existing values kept unless re-supplied), keys
/// (kept if present, generated if absent) and the store. Shared with `run --init-if-missing`.
pub(super) fn initialise(
    id: &str,
    flags: IdentityFlags<'_>,
    overrides: &Overrides,
    ctx: &Context,
) -> anyhow::Result<(Config, NodeKeys)> {
    if id.is_empty() || id.contains(['/', '\\']) || id == "." || id == ".." {
        bail!(
            "invalid gateway id {id:?}: it names a directory under {:?}",
            ctx.root
        );
    }
    let path = ctx.config_path(id);
    let mut config = if path.exists() {
        println!(
            "Gateway \"{id}\" was already initialised before! Config information will be overwritten (but keys will be kept)!"
        );
        // Unlike 1.0.x, re-running init keeps every value the operator does not re-supply.
        Config::load(&path).with_context(|| {
            format!("the existing configuration {path:?} cannot be read; fix it or move it away before re-running init")
        })?
    } else {
        Config::new(id, &ctx.root, &ctx.network)
    };
    config.gateway.disabled_credentials_mode = true;
    apply_overrides(&mut config, flags, overrides, &ctx.network)?;

    let key_paths = config.key_paths();
    let keys = if key_paths.all_exist() {
        NodeKeys::load(&key_paths).context("failed to load the existing keys")?
    } else {
        let any_exist = [
            &key_paths.private_identity,
            &key_paths.public_identity,
            &key_paths.private_sphinx,
            &key_paths.public_sphinx,
        ]
        .iter()
        .any(|p| p.exists());
        if any_exist {
            bail!("some key files exist but not all of them ({key_paths:?}); refusing to overwrite keys - restore the missing files or move the others away");
        }
        let keys = NodeKeys::generate()?;
        keys.save(&key_paths)?;
        println!("Saved identity and mixnet sphinx keypairs");
        keys
    };

    // The store before the config: if it cannot be created or migrated (a 1.0.x store is
    // imported here, named after the version the config still records), the config file is
    // left as it was.
    crate::storage::initialise(&config).context("failed to initialise gateway storage")?;
    config.gateway.version = VERSION.to_owned();
    config.save(&path)?;
    println!("Saved configuration file to {path:?}");
    println!("Gateway configuration completed.\n\n\n");
    Ok((config, keys))
}
