//! `nym-gateway upgrade`: migrate the config of an older gateway version in place.

use super::Context;
use crate::build_info::VERSION;
use crate::cli::Upgrade;
use crate::config::upgrade::{upgrade_file, UpgradeOutcome};

pub(super) fn execute(args: &Upgrade, ctx: &Context) -> anyhow::Result<()> {
    let path = ctx.config_path(&args.id);
    match upgrade_file(&path, VERSION)? {
        UpgradeOutcome::AlreadyCurrent => println!("You're using the most recent version!"),
        UpgradeOutcome::Upgraded { from, to, backup } => {
            println!("\n==================\nTrying to upgrade gateway from {from} to {to} ...");
            println!("The previous configuration was kept at {backup:?}");
            println!("Upgrade from {from} to {to} was successful!\n==================\n");
        }
    }
    Ok(())
}
