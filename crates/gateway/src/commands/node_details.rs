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
        OutputFormat::Text => {
            print!("{}", details.to_text());
            if let Some(command) = details.bonding_command(&ctx.network) {
                println!("\nTo bond this gateway from the command line (100 NYM minimum pledge):\n{command}");
            }
        }
        OutputFormat::Json => {
            let mut json = serde_json::to_value(&details)?;
            json["bond_gateway_message"] = details.bond_gateway_message().unwrap_or_default();
            json["bonding_command"] = details
                .bonding_command(&ctx.network)
                .map_or(serde_json::Value::Null, Into::into);
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
    }
    Ok(())
}
