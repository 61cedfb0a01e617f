//! `nym-gateway node-details`

use anyhow::Context as _;

use super::Context;
use crate::cli::{NodeDetails as Args, OutputFormat};
use crate::keys::NodeKeys;
use crate::node_details::NodeDetails;

pub(super) fn execute(args: &Args, ctx: &Context) -> anyhow::Result<()> {
    let config = ctx.load_config(&args.id)?;
    let keys = NodeKeys::load(&config.key_paths()).context("failed to load the gateway's keys")?;
    let details = NodeDetails::new(&config, &keys, &ctx.network.bech32_prefix)
        .map_err(|e| super::report_wallet_error(&e))?;
    match args.output {
        OutputFormat::Text => print!("{}", details.to_text()),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&details)?),
    }
    Ok(())
}
