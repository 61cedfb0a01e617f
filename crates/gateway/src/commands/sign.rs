//! `nym-gateway sign`: sign a wallet address, a text or today's wallet's contract message with
//! the identity key.

use anyhow::Context as _;

use super::Context;
use crate::bonding::{ContractMsg, SignedContractMsg};
use crate::cli::{OutputFormat, Sign};
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
    } else if let Some(contract_msg) = &args.contract_msg {
        sign_contract_msg(
            &keys,
            contract_msg,
            args.output.unwrap_or(OutputFormat::Text),
        )?;
    }
    Ok(())
}

/// As nym-node 1.31.0: progress on stderr, the result on stdout. Unlike nym-node (which prints
/// its complaint and exits 0), a refused message is an error, so scripts notice.
fn sign_contract_msg(keys: &NodeKeys, bs58_text: &str, output: OutputFormat) -> anyhow::Result<()> {
    eprintln!(">>> attempting to sign {}", bs58_text.trim());
    let msg = ContractMsg::decode(bs58_text)?;
    eprintln!(">>> decoding the message...");
    let signed = SignedContractMsg::new(keys, &msg);
    match output {
        OutputFormat::Text => println!("{}", signed.to_text()),
        OutputFormat::Json => println!("{}", serde_json::to_string(&signed)?),
    }
    Ok(())
}
