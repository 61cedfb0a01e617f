//! The `--config-env-file` dotenv file ([`parse_env_file`] + [`Network::apply`]), as an operator
//! wrote it. The bytes parse the same way from a file through [`Network::resolve`] (the path
//! `run` and `init` take); the variables read back from a file rendering them; the network is
//! mainnet with exactly the named parameters replaced, and only a non-numeric
//! `DENOMS_EXPONENT` is refused.

use std::collections::HashMap;
use std::io::Write as _;

use nym_gateway::network::{parse_env_file, Network, NetworkError};

pub fn run(data: &[u8]) {
    let parsed = parse_env_file(data);
    same_as_from_a_file(data, &parsed);
    let Ok(vars) = parsed else {
        return;
    };
    reads_back(&vars);

    let mut network = Network::mainnet();
    match network.apply(&vars) {
        Ok(()) => expected_network(&vars, &network),
        Err(NetworkError::InvalidValue { key, value }) => {
            assert_eq!(key, "DENOMS_EXPONENT");
            assert_eq!(vars.get(key), Some(&value));
            assert!(value.parse::<u32>().is_err(), "{value:?} was refused");
        }
        Err(err) => panic!("apply failed with {err}"),
    }
}

/// [`Network::resolve`] on a file with `data` agrees with parsing `data` here.
fn same_as_from_a_file(data: &[u8], parsed: &Result<HashMap<String, String>, String>) {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(data).expect("writes the env file");
    let resolved = Network::resolve(Some(file.path()), &HashMap::new());
    match (parsed, resolved) {
        (Err(reason), Err(NetworkError::EnvFile { reason: got, .. })) => assert_eq!(&got, reason),
        (Ok(vars), resolved) => {
            let mut network = Network::mainnet();
            match (network.apply(vars), resolved) {
                (Ok(()), Ok(from_file)) => assert_eq!(from_file, network),
                (Err(e), Err(from_file)) => assert_eq!(from_file.to_string(), e.to_string()),
                (here, from_file) => panic!("here {here:?}, from a file {from_file:?}"),
            }
        }
        (here, from_file) => panic!("here {here:?}, from a file {from_file:?}"),
    }
}

/// Values a single-quoted dotenv value holds as they are: no quote or backslash (which the
/// line reader treats as an escape even inside single quotes), no line break, no NUL.
fn plain(value: &str) -> bool {
    !value.contains(['\'', '\\', '\n', '\r', '\0'])
}

/// Rendered one `KEY='value'` line each, the variables parse back to themselves.
fn reads_back(vars: &HashMap<String, String>) {
    let plain_vars: HashMap<&String, &String> = vars.iter().filter(|(_, v)| plain(v)).collect();
    let rendered: String = plain_vars
        .iter()
        .map(|(key, value)| format!("{key}='{value}'\n"))
        .collect();
    let reparsed = parse_env_file(rendered.as_bytes())
        .unwrap_or_else(|e| panic!("the rendered variables do not parse: {e}\n{rendered}"));
    let reparsed: HashMap<&String, &String> = reparsed.iter().collect();
    assert_eq!(reparsed, plain_vars, "{rendered}");
}

/// Mainnet, with each parameter named in `vars` replaced (the first spelling listed wins).
fn expected_network(vars: &HashMap<String, String>, network: &Network) {
    let mainnet = Network::mainnet();
    let pick = |keys: &[&str], default: &String| -> String {
        keys.iter()
            .find_map(|k| vars.get(*k))
            .unwrap_or(default)
            .clone()
    };
    let expected = Network {
        bech32_prefix: pick(&["BECH32_PREFIX"], &mainnet.bech32_prefix),
        mix_denom: pick(&["MIX_DENOM"], &mainnet.mix_denom),
        mix_denom_display: pick(&["MIX_DENOM_DISPLAY"], &mainnet.mix_denom_display),
        stake_denom: pick(&["STAKE_DENOM"], &mainnet.stake_denom),
        stake_denom_display: pick(&["STAKE_DENOM_DISPLAY"], &mainnet.stake_denom_display),
        denoms_exponent: vars
            .get("DENOMS_EXPONENT")
            .map_or(mainnet.denoms_exponent, |v| {
                v.parse().expect("apply accepted it")
            }),
        mixnet_contract_address: pick(
            &["MIXNET_CONTRACT_ADDRESS"],
            &mainnet.mixnet_contract_address,
        ),
        vesting_contract_address: pick(
            &["VESTING_CONTRACT_ADDRESS"],
            &mainnet.vesting_contract_address,
        ),
        bandwidth_claim_contract_address: pick(
            &["BANDWIDTH_CLAIM_CONTRACT_ADDRESS"],
            &mainnet.bandwidth_claim_contract_address,
        ),
        coconut_bandwidth_contract_address: pick(
            &["COCONUT_BANDWIDTH_CONTRACT_ADDRESS"],
            &mainnet.coconut_bandwidth_contract_address,
        ),
        multisig_contract_address: pick(
            &["MULTISIG_CONTRACT_ADDRESS"],
            &mainnet.multisig_contract_address,
        ),
        rewarding_validator_address: pick(
            &["REWARDING_VALIDATOR_ADDRESS"],
            &mainnet.rewarding_validator_address,
        ),
        statistics_service_url: pick(
            &["STATISTICS_SERVICE_DOMAIN_ADDRESS"],
            &mainnet.statistics_service_url,
        ),
        nymd_validator: pick(&["NYMD_VALIDATOR", "NYXD"], &mainnet.nymd_validator),
        api_validator: pick(&["API_VALIDATOR", "NYM_API"], &mainnet.api_validator),
        chain_id: pick(&["CHAIN_ID"], &mainnet.chain_id),
        upgrade_mode_attestation_url: pick(
            &["UPGRADE_MODE_ATTESTATION_URL"],
            &mainnet.upgrade_mode_attestation_url,
        ),
        upgrade_mode_attester_public_key: pick(
            &["UPGRADE_MODE_ATTESTER_ED25519_PUBKEY"],
            &mainnet.upgrade_mode_attester_public_key,
        ),
    };
    assert_eq!(*network, expected);
}
