//! Which Nym network the gateway belongs to: bech32 prefix, denominations, contract addresses and
//! service URLs. Mainnet is built in; `--config-env-file` loads another network from a dotenv
//! file (see `envs/`). The process environment is read, never written.

use std::collections::HashMap;
use std::path::Path;

use thiserror::Error;

/// The network parameters the gateway uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Bech32 prefix of wallet addresses (`n` on mainnet).
    pub bech32_prefix: String,
    /// Base denomination of the mixnet token.
    pub mix_denom: String,
    /// Display denomination of the mixnet token.
    pub mix_denom_display: String,
    /// Base denomination of the staking token.
    pub stake_denom: String,
    /// Display denomination of the staking token.
    pub stake_denom_display: String,
    /// Decimal exponent between base and display denominations.
    pub denoms_exponent: u32,
    /// Address of the mixnet contract (bonding goes there).
    pub mixnet_contract_address: String,
    /// Address of the vesting contract.
    pub vesting_contract_address: String,
    /// Address of the bandwidth claim contract.
    pub bandwidth_claim_contract_address: String,
    /// Address of the coconut bandwidth contract.
    pub coconut_bandwidth_contract_address: String,
    /// Address of the multisig contract.
    pub multisig_contract_address: String,
    /// Address of the rewarding validator.
    pub rewarding_validator_address: String,
    /// Default statistics service URL.
    pub statistics_service_url: String,
    /// Default nyxd (validator RPC) URL.
    pub nymd_validator: String,
    /// Default validator API URL.
    pub api_validator: String,
    /// Chain id for `nyxd` commands.
    pub chain_id: String,
    /// Where the upgrade-mode attestation is published.
    pub upgrade_mode_attestation_url: String,
    /// The upgrade-mode attester's ed25519 public key, bs58.
    pub upgrade_mode_attester_public_key: String,
}

/// A `--config-env-file` that cannot be used.
#[derive(Debug, Error)]
pub enum NetworkError {
    /// The file could not be read or is not a dotenv file.
    #[error("Invalid path to environment configuration file {path:?}: {reason}")]
    EnvFile {
        /// The file given.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A numeric value did not parse.
    #[error("invalid value for {key} in the network configuration: {value:?}")]
    InvalidValue {
        /// The variable.
        key: &'static str,
        /// Its value.
        value: String,
    },
}

impl Network {
    /// The built-in mainnet parameters.
    pub fn mainnet() -> Self {
        Self {
            bech32_prefix: "n".into(),
            mix_denom: "unym".into(),
            mix_denom_display: "nym".into(),
            stake_denom: "unyx".into(),
            stake_denom_display: "nyx".into(),
            denoms_exponent: 6,
            mixnet_contract_address: "n14hj2tavq8fpesdwxxcu44rty3hh90vhujrvcmstl4zr3txmfvw9sjyvg3g"
                .into(),
            vesting_contract_address:
                "n1nc5tatafv6eyq7llkr2gv50ff9e22mnf70qgjlv737ktmt4eswrq73f2nw".into(),
            bandwidth_claim_contract_address: "n19lc9u84cz0yz3fww5283nucc9yvr8gsjmgeul0".into(),
            coconut_bandwidth_contract_address: "n19lc9u84cz0yz3fww5283nucc9yvr8gsjmgeul0".into(),
            multisig_contract_address: "n19lc9u84cz0yz3fww5283nucc9yvr8gsjmgeul0".into(),
            rewarding_validator_address: "n10yyd98e2tuwu0f7ypz9dy3hhjw7v772q6287gy".into(),
            statistics_service_url: "https://mainnet-stats.nymte.ch:8090/".into(),
            nymd_validator: "https://rpc.nyx.nodes.guru/".into(),
            api_validator: "https://validator.nymtech.net/api/".into(),
            chain_id: "nyx".into(),
            // nym's `network-defaults` (mainnet.rs) and envs/mainnet.env.
            upgrade_mode_attestation_url:
                "https://nymtech.net/.wellknown/upgrade-mode/attestation.json".into(),
            upgrade_mode_attester_public_key: "3bgffBYcfFkTTXc2npNNn9MkddFZ3H2LrPjXDmnJzrqd".into(),
        }
    }

    /// Resolves the network the way the 1.0.2 gateway did: if `CONFIGURED` is set in the process
    /// environment, the environment already describes the network; otherwise the env file (if
    /// given) is read over the mainnet defaults. Unset variables keep their mainnet value.
    pub fn resolve(
        env_file: Option<&Path>,
        process_env: &HashMap<String, String>,
    ) -> Result<Self, NetworkError> {
        let mut network = Self::mainnet();
        if process_env.contains_key("CONFIGURED") {
            network.apply(process_env)?;
        } else if let Some(path) = env_file {
            let vars = read_env_file(path)?;
            network.apply(&vars)?;
        }
        Ok(network)
    }

    /// Sets the parameters named in `vars` (as read by [`parse_env_file`]); the others keep
    /// their value. Where two names mean one parameter, the first listed wins.
    pub fn apply(&mut self, vars: &HashMap<String, String>) -> Result<(), NetworkError> {
        let set = |field: &mut String, keys: &[&str]| {
            if let Some(value) = keys.iter().find_map(|k| vars.get(*k)) {
                value.clone_into(field);
            }
        };
        set(&mut self.bech32_prefix, &["BECH32_PREFIX"]);
        set(&mut self.mix_denom, &["MIX_DENOM"]);
        set(&mut self.mix_denom_display, &["MIX_DENOM_DISPLAY"]);
        set(&mut self.stake_denom, &["STAKE_DENOM"]);
        set(&mut self.stake_denom_display, &["STAKE_DENOM_DISPLAY"]);
        set(
            &mut self.mixnet_contract_address,
            &["MIXNET_CONTRACT_ADDRESS"],
        );
        set(
            &mut self.vesting_contract_address,
            &["VESTING_CONTRACT_ADDRESS"],
        );
        set(
            &mut self.bandwidth_claim_contract_address,
            &["BANDWIDTH_CLAIM_CONTRACT_ADDRESS"],
        );
        set(
            &mut self.coconut_bandwidth_contract_address,
            &["COCONUT_BANDWIDTH_CONTRACT_ADDRESS"],
        );
        set(
            &mut self.multisig_contract_address,
            &["MULTISIG_CONTRACT_ADDRESS"],
        );
        set(
            &mut self.rewarding_validator_address,
            &["REWARDING_VALIDATOR_ADDRESS"],
        );
        set(
            &mut self.statistics_service_url,
            &["STATISTICS_SERVICE_DOMAIN_ADDRESS"],
        );
        // Later network files renamed these two; both spellings are accepted.
        set(&mut self.nymd_validator, &["NYMD_VALIDATOR", "NYXD"]);
        set(&mut self.api_validator, &["API_VALIDATOR", "NYM_API"]);
        set(&mut self.chain_id, &["CHAIN_ID"]);
        set(
            &mut self.upgrade_mode_attestation_url,
            &["UPGRADE_MODE_ATTESTATION_URL"],
        );
        set(
            &mut self.upgrade_mode_attester_public_key,
            &["UPGRADE_MODE_ATTESTER_ED25519_PUBKEY"],
        );
        if let Some(value) = vars.get("DENOMS_EXPONENT") {
            self.denoms_exponent = value.parse().map_err(|_| NetworkError::InvalidValue {
                key: "DENOMS_EXPONENT",
                value: value.clone(),
            })?;
        }
        Ok(())
    }
}

fn read_env_file(path: &Path) -> Result<HashMap<String, String>, NetworkError> {
    let error = |reason: String| NetworkError::EnvFile {
        path: path.to_path_buf(),
        reason,
    };
    let contents = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    parse_env_file(&contents).map_err(error)
}

/// The variables of a dotenv file's contents (a variable set twice takes its last value), or
/// why they cannot be read.
pub fn parse_env_file(contents: &[u8]) -> Result<HashMap<String, String>, String> {
    dotenvy::from_read_iter(contents)
        .map(|item| item.map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_overrides_mainnet_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sandbox.env");
        std::fs::write(
            &path,
            "CONFIGURED=true\nBECH32_PREFIX=nymt\nNYM_API=\"https://sandbox.example/api\"\n",
        )
        .unwrap();
        let network = Network::resolve(Some(&path), &HashMap::new()).unwrap();
        assert_eq!(network.bech32_prefix, "nymt");
        assert_eq!(network.api_validator, "https://sandbox.example/api");
        assert_eq!(network.mix_denom, "unym", "unset keys keep mainnet values");
    }

    #[test]
    fn configured_process_env_wins_over_the_file() {
        let env: HashMap<_, _> = [("CONFIGURED", "true"), ("BECH32_PREFIX", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let network = Network::resolve(Some(Path::new("/nonexistent")), &env).unwrap();
        assert_eq!(network.bech32_prefix, "x");
    }

    #[test]
    fn unreadable_env_file_is_a_clear_error() {
        let err =
            Network::resolve(Some(Path::new("/nonexistent.env")), &HashMap::new()).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("Invalid path to environment configuration file"));
    }

    #[test]
    fn shipped_env_files_parse() {
        for (name, prefix) in [("mainnet.env", "n"), ("sandbox.env", "nymt")] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../envs")
                .join(name);
            let network = Network::resolve(Some(&path), &HashMap::new()).unwrap();
            assert_eq!(network.bech32_prefix, prefix, "{name}");
            assert!(
                gateway_ecash::upgrade_mode::bs58_key(&network.upgrade_mode_attester_public_key)
                    .is_some(),
                "{name}"
            );
            assert!(
                url::Url::parse(&network.upgrade_mode_attestation_url).is_ok(),
                "{name}"
            );
        }
    }
}
