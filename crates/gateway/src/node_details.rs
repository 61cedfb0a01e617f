//! The node-details block operators copy into the wallet to bond the gateway.

use std::fmt::Write;

use crate::config::Config;
use crate::keys::NodeKeys;
use crate::wallet::{self, WalletError};

/// Everything the block shows, computed once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeDetails {
    /// bs58 ed25519 identity key.
    pub identity_key: String,
    /// bs58 x25519 sphinx key.
    pub sphinx_key: String,
    /// bs58 signature over the wallet address; `None` for a local gateway without one.
    pub owner_signature: Option<String>,
    /// The wallet address the signature is over.
    pub wallet_address: String,
    /// Announced host.
    pub host: String,
    /// Address the listeners bind to.
    pub bind_address: String,
    /// Config version.
    pub version: String,
    /// Mix port.
    pub mix_port: u16,
    /// Client websocket port.
    pub clients_port: u16,
    /// Path of the SQLite store.
    pub data_store: String,
}

impl NodeDetails {
    /// Computes the details; a configured wallet address must be valid for `bech32_prefix`.
    pub fn new(config: &Config, keys: &NodeKeys, bech32_prefix: &str) -> Result<Self, WalletError> {
        let g = &config.gateway;
        let wallet_address = g.wallet_address.trim().to_owned();
        let owner_signature = if wallet_address.is_empty() {
            None
        } else {
            wallet::validate(&wallet_address, bech32_prefix)?;
            Some(keys.sign_text(&wallet_address))
        };
        Ok(Self {
            identity_key: keys.identity_public_bs58(),
            sphinx_key: keys.sphinx_public_bs58(),
            owner_signature,
            wallet_address,
            host: g.announce_address.clone(),
            bind_address: g.listening_address.to_string(),
            version: g.version.clone(),
            mix_port: g.mix_port,
            clients_port: g.clients_port,
            data_store: g.persistent_storage.to_string_lossy().into_owned(),
        })
    }

    /// The mixnet contract's `bond_gateway` execute message for these details, or `None` without
    /// a wallet address (nothing to sign). The contract requires every gateway field shown;
    /// `location` is free text and defaults to the announced host.
    pub fn bond_gateway_message(&self) -> Option<serde_json::Value> {
        let owner_signature = self.owner_signature.as_ref()?;
        Some(serde_json::json!({
            "bond_gateway": {
                "gateway": {
                    "host": self.host,
                    "mix_port": self.mix_port,
                    "clients_port": self.clients_port,
                    "location": self.host,
                    "sphinx_key": self.sphinx_key,
                    "identity_key": self.identity_key,
                    "version": self.version,
                },
                "owner_signature": owner_signature,
            }
        }))
    }

    /// The `nyxd tx wasm execute` command that bonds this gateway with the minimum pledge.
    pub fn bonding_command(&self, network: &crate::network::Network) -> Option<String> {
        let message = self.bond_gateway_message()?;
        Some(format!(
            "nyxd tx wasm execute {contract} '{message}' --from {wallet} --chain-id {chain} --amount 100000000{denom}",
            contract = network.mixnet_contract_address,
            wallet = self.wallet_address,
            chain = network.chain_id,
            denom = network.mix_denom,
        ))
    }

    /// The text block, one fact per line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Identity Key: {}", self.identity_key);
        let _ = writeln!(out, "Sphinx Key: {}", self.sphinx_key);
        match &self.owner_signature {
            Some(sig) => {
                let _ = writeln!(out, "Owner Signature: {sig}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "Owner Signature: none (no wallet address configured; re-run `init` with --wallet-address to bond this gateway)"
                );
            }
        }
        let _ = writeln!(
            out,
            "Host: {} (bind address: {})",
            self.host, self.bind_address
        );
        let _ = writeln!(out, "Version: {}", self.version);
        let _ = writeln!(
            out,
            "Mix Port: {}, Clients port: {}",
            self.mix_port, self.clients_port
        );
        let _ = writeln!(out, "Data store is at: {:?}", self.data_store);
        out
    }
}
