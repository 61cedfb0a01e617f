//! Applying `init`/`run` flags to a config. `init` saves the result; `run` keeps it in memory.

use std::net::IpAddr;

use anyhow::{anyhow, bail};

use crate::cli::Overrides;
use crate::config::{parse_url_list, Config};
use crate::network::Network;
use crate::wallet;

/// The flags that are spelled differently by `init` (required) and `run` (optional).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdentityFlags<'a> {
    /// `--host`
    pub host: Option<&'a str>,
    /// `--wallet-address`
    pub wallet_address: Option<&'a str>,
    /// `--mnemonic`
    pub mnemonic: Option<&'a str>,
}

/// Applies every given flag to `config`; flags not given leave their key as it is.
pub fn apply_overrides(
    config: &mut Config,
    flags: IdentityFlags<'_>,
    overrides: &Overrides,
    network: &Network,
) -> anyhow::Result<()> {
    let g = &mut config.gateway;
    if let Some(host) = flags.host {
        let ip: IpAddr = host.trim().parse().map_err(|_| {
            anyhow!("failed to change listening address. the provided value ({host}) was invalid")
        })?;
        // An announce address that merely mirrored the old host follows the new one; a custom
        // one (a host name, a NAT address) is kept unless re-supplied.
        if g.announce_address == g.listening_address.to_string() {
            g.announce_address = ip.to_string();
        }
        g.listening_address = ip;
    }
    if let Some(announce) = &overrides.announce_host {
        let announce = announce.trim();
        if announce.is_empty() {
            bail!("--announce-host must not be empty");
        }
        g.announce_address = announce.to_owned();
    }
    if let Some(address) = flags.wallet_address {
        let address = address.trim();
        wallet::validate(address, &network.bech32_prefix)
            .map_err(|e| super::report_wallet_error(&e))?;
        g.wallet_address = address.to_owned();
    }
    if let Some(mnemonic) = flags.mnemonic {
        // Never echo the mnemonic, not even in the error.
        let parsed = bip39::Mnemonic::parse_normalized(mnemonic.trim())
            .map_err(|_| anyhow!("Provided mnemonic is invalid"))?;
        g.cosmos_mnemonic = parsed.to_string();
    }
    if let Some(port) = overrides.mix_port {
        g.mix_port = port;
    }
    if let Some(port) = overrides.clients_port {
        g.clients_port = port;
    }
    if let Some(datastore) = &overrides.datastore {
        g.persistent_storage = datastore.clone();
    }
    if let Some(list) = &overrides.validator_apis {
        g.validator_api_urls = parse_url_list(list)
            .map_err(|e| anyhow!("one of the provided validator api urls is invalid: {e}"))?;
    }
    if let Some(list) = &overrides.validators {
        g.validator_nymd_urls = parse_url_list(list)
            .map_err(|e| anyhow!("one of the provided validator urls is invalid: {e}"))?;
    }
    if let Some(enabled) = overrides.enabled_statistics {
        g.enabled_statistics = enabled;
    }
    if let Some(url) = &overrides.statistics_service_url {
        let parsed = url::Url::parse(url.trim())
            .map_err(|e| anyhow!("the provided statistics service url is invalid! ({url}: {e})"))?;
        g.statistics_service_url = parsed.to_string();
    }
    if let Some(address) = overrides.http_api_address {
        g.http_api_address = address;
    }
    config.validate()?;
    Ok(())
}
