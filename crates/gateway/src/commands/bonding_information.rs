//! `nym-gateway bonding-information`: what today's wallet asks for to bond this gateway.

use anyhow::Context as _;

use super::Context;
use crate::bonding::BondingInformation;
use crate::cli::{BondingInformation as Args, OutputFormat};
use crate::keys::NodeKeys;

pub(super) fn execute(args: &Args, ctx: &Context) -> anyhow::Result<()> {
    let config = ctx.load_config(&args.id)?;
    let keys = NodeKeys::load(&config.key_paths()).context("failed to load the gateway's keys")?;
    let info = BondingInformation::new(&config, &keys);
    match args.output {
        // `to_text` ends with an empty line, as nym-node's output does.
        OutputFormat::Text => print!("{}", info.to_text()),
        OutputFormat::Json => println!("{}", serde_json::to_string(&info)?),
    }
    Ok(())
}
