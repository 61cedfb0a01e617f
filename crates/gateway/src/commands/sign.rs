//! `nym-gateway sign`: sign a wallet address or a text with the identity key.

use anyhow::Context as _;

use super::Context;
use crate::cli::Sign;
use crate::keys::NodeKeys;
use crate::wallet;

pub(super) fn execute(args: &Sign, ctx: &Context) -> anyhow::Result<()> {
    let config = ctx.load_config(&args.id)?;
    super::run::version_check(&config)?;
    let keys = NodeKeys::load(&config.key_paths()).context("failed to load the gateway's keys")?;
    if let Some(text) = &args.text {
        println!("Signing the text {text:?} using your mixnode's Ed25519 identity key...");
        println!(
            "The base58-encoded signature on '{text}' is: {}",
            keys.sign_text(text)
        );
    } else if let Some(address) = &args.address {
        let address = address.trim();
        wallet::validate(address, &ctx.network.bech32_prefix)
            .map_err(|e| super::report_wallet_error(&e))?;
        println!(
            "The base58-encoded signature on '{address}' is: {}",
            keys.sign_text(address)
        );
    }
    Ok(())
}
