//! `nym-gateway upgrade`: migrate the config and the store of an older gateway version in
//! place (a 1.0.x store is imported, with a backup, before the config is rewritten).

use anyhow::Context as _;

use super::Context;
use crate::build_info::VERSION;
use crate::cli::Upgrade;
use crate::config::upgrade::{upgrade_file, UpgradeOutcome};

pub(super) fn execute(args: &Upgrade, ctx: &Context) -> anyhow::Result<()> {
    let path = ctx.config_path(&args.id);
    let migrate_store = |config: &crate::config::Config| {
        crate::storage::initialise(config).context("failed to migrate the gateway's storage")
    };
    match upgrade_file(&path, VERSION, migrate_store)?? {
        UpgradeOutcome::AlreadyCurrent => println!("You're using the most recent version!"),
        UpgradeOutcome::Upgraded { from, to, backup } => {
            println!("\n==================\nTrying to upgrade gateway from {from} to {to} ...");
            println!("The previous configuration was kept at {backup:?}");
            println!("Upgrade from {from} to {to} was successful!\n==================\n");
        }
    }
    Ok(())
}
