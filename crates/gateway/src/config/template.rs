//! Renders `config.toml` with comments, in the 1.0.2 layout. The `tests` module renders, parses
//! back and compares, so the template can never drift from the schema.

use std::fmt::Write;
use std::path::Path;

use super::{Config, Gateway, Tuning};

/// A TOML string: a literal (single-quoted, as 1.0.x wrote) when that is exact, else escaped.
fn string(value: &str) -> String {
    if value.contains('\'') || value.chars().any(char::is_control) {
        toml::Value::String(value.to_owned()).to_string()
    } else {
        format!("'{value}'")
    }
}

fn path(value: &Path) -> String {
    string(&value.to_string_lossy())
}

fn string_array(values: &[String]) -> String {
    if values.is_empty() {
        return "[]".to_owned();
    }
    let mut out = String::from("[\n");
    for v in values {
        let _ = writeln!(out, "    {},", string(v));
    }
    out.push(']');
    out
}

/// The full text of `config.toml`.
pub(super) fn render(config: &Config) -> String {
    let mut out = String::new();
    main_options(&mut out, &config.gateway);
    additional_options(&mut out, &config.gateway);
    advanced_options(&mut out, &config.gateway);
    debug_options(&mut out, &config.debug);
    out
}

/// `[gateway]` up to the key files (and `eth_endpoint`, if an old file had it).
fn main_options(out: &mut String, g: &Gateway) {
    let _ = write!(
        out,
        r#"# This is a TOML config file.
# For more information, see https://github.com/toml-lang/toml

##### main base mixnode config options #####

[gateway]
# Version of the gateway for which this configuration was created.
version = {version}

# Human readable ID of this particular gateway.
id = {id}

# Whether bandwidth is granted freely on request (credentials are not enforced).
disabled_credentials_mode = {disabled_credentials_mode}

# Address to which this gateway binds its mix and client listeners.
listening_address = {listening_address}

# Path to file containing private identity key.
private_identity_key_file = {private_identity_key_file}

# Path to file containing public identity key.
public_identity_key_file = {public_identity_key_file}

# Path to file containing private sphinx key.
private_sphinx_key_file = {private_sphinx_key_file}

# Path to file containing public sphinx key.
public_sphinx_key_file = {public_sphinx_key_file}
{eth_endpoint}"#,
        version = string(&g.version),
        id = string(&g.id),
        disabled_credentials_mode = g.disabled_credentials_mode,
        listening_address = string(&g.listening_address.to_string()),
        private_identity_key_file = path(&g.private_identity_key_file),
        public_identity_key_file = path(&g.public_identity_key_file),
        private_sphinx_key_file = path(&g.private_sphinx_key_file),
        public_sphinx_key_file = path(&g.public_sphinx_key_file),
        eth_endpoint = match &g.eth_endpoint {
            Some(e) => format!(
                "\n# Unused; kept from an older configuration.\neth_endpoint = {}\n",
                string(e)
            ),
            None => String::new(),
        },
    );
}

/// `[gateway]`: addresses, ports, statistics, validators and wallet.
fn additional_options(out: &mut String, g: &Gateway) {
    let _ = write!(
        out,
        r#"
##### additional gateway config options #####

# Optional address announced to the directory server for the clients to connect to.
# It is useful, say, in NAT situations or when a host name should be announced.
announce_address = {announce_address}

# Port used for listening for all mixnet traffic.
mix_port = {mix_port}

# Port used for listening for all client websocket traffic.
clients_port = {clients_port}

{wss}# Address of the HTTP API serving /health, /metrics and /api/v1/node-details.
http_api_address = {http_api_address}

{http_api_token}# Whether gateway collects and sends anonymized statistics
enabled_statistics = {enabled_statistics}

# Domain address of the statistics service
statistics_service_url = {statistics_service_url}

# Addresses to APIs running on validator from which the node gets the view of the network.
validator_api_urls = {validator_api_urls}

# Addresses to validators which the node uses to check for double spending of ERC20 tokens.
validator_nymd_urls = {validator_nymd_urls}
{nym_api_urls}
# Mnemonic of a cosmos wallet used in checking for double spending.
cosmos_mnemonic = {cosmos_mnemonic}

# Wallet address this gateway is bonded with.
wallet_address = {wallet_address}
{accepted_terms}{enforce_zk_nyms}{zk_nym_signer_urls}{upgrade_mode}"#,
        announce_address = string(&g.announce_address),
        mix_port = g.mix_port,
        clients_port = g.clients_port,
        wss = wss_options(g),
        http_api_address = string(&g.http_api_address.to_string()),
        http_api_token = match &g.http_api_token {
            Some(token) => format!(
                "# Bearer token required by /metrics, /api/v1/node-details and /dashboard/data.\nhttp_api_token = {}\n\n",
                string(token)
            ),
            None => String::new(),
        },
        enabled_statistics = g.enabled_statistics,
        statistics_service_url = string(&g.statistics_service_url),
        validator_api_urls = string_array(&g.validator_api_urls),
        validator_nymd_urls = string_array(&g.validator_nymd_urls),
        // Written only when set, so files without the key render as before.
        nym_api_urls = match &g.nym_api_urls {
            Some(urls) => format!(
                "\n# nym-api endpoints for key rotation and self-description (default: validator_api_urls).\nnym_api_urls = {}\n",
                string_array(urls)
            ),
            None => String::new(),
        },
        cosmos_mnemonic = string(&g.cosmos_mnemonic),
        wallet_address = string(&g.wallet_address),
        // Written only once accepted, so files without the key render as before.
        enforce_zk_nyms = if g.enforce_zk_nyms {
            "\n# Bandwidth only for zk-nym tickets: free bandwidth claims are refused.\nenforce_zk_nyms = true\n"
        } else {
            ""
        },
        zk_nym_signer_urls = if g.zk_nym_signer_urls.is_empty() {
            String::new()
        } else {
            format!(
                "\n# E-cash signers that verify the tickets this gateway accepted.\nzk_nym_signer_urls = {}\n",
                string_array(&g.zk_nym_signer_urls)
            )
        },
        // Written only when set, so files without the keys render as before.
        upgrade_mode = {
            let mut keys = String::new();
            if let Some(url) = &g.upgrade_mode_attestation_url {
                keys.push_str(&format!(
                    "\n# Where the network's upgrade-mode attestation is published (empty: upgrade mode off).\nupgrade_mode_attestation_url = {}\n",
                    string(url)
                ));
            }
            if let Some(key) = &g.upgrade_mode_attester_public_key {
                keys.push_str(&format!(
                    "\n# The network's upgrade-mode attester (bs58 ed25519 public key).\nupgrade_mode_attester_public_key = {}\n",
                    string(key)
                ));
            }
            keys
        },
        accepted_terms = if g.accepted_operator_terms_and_conditions {
            "\n# The operator accepted Nym's operator terms and conditions.\naccepted_operator_terms_and_conditions = true\n"
        } else {
            ""
        },
    );
}

/// The wss keys: written when set, else shown commented out (with example values) so the
/// operator sees how to turn the listener on.
fn wss_options(g: &Gateway) -> String {
    let intro = "# Port for client websockets over TLS (wss://), served with the certificate chain and\n\
                 # private key below (PEM; the key readable by the gateway's user only). Without it\n\
                 # there is no wss listener. Clients use wss only when announce_address is a host\n\
                 # name the certificate is valid for. SIGHUP re-reads both files (e.g. after renewal).\n";
    let line = |key: &str, value: Option<String>, example: &str| match value {
        Some(value) => format!("{key} = {value}\n"),
        None => format!("# {key} = {example}\n"),
    };
    // The examples point into the gateway's own directory, where docs/wss.md's renewal hook
    // copies the certificate so the gateway's user can read it.
    let tls_dir = g.nym_root_directory.join(&g.id).join("tls");
    let mut out = String::from(intro);
    out.push_str(&line(
        "clients_wss_port",
        g.clients_wss_port.map(|p| p.to_string()),
        "9001",
    ));
    out.push_str(&line(
        "clients_wss_certificate_file",
        g.clients_wss_certificate_file.as_deref().map(path),
        &path(&tls_dir.join("fullchain.pem")),
    ));
    out.push_str(&line(
        "clients_wss_private_key_file",
        g.clients_wss_private_key_file.as_deref().map(path),
        &path(&tls_dir.join("privkey.pem")),
    ));
    out.push('\n');
    out
}

/// The last `[gateway]` keys (directories), `[logging]` and the `[debug]` header.
fn advanced_options(out: &mut String, g: &Gateway) {
    let _ = write!(
        out,
        r#"
##### advanced configuration options #####

# Absolute path to the home Nym Clients directory.
nym_root_directory = {nym_root_directory}

# Path to sqlite database containing all persistent data: shared keys, stored messages
# and bandwidth.
persistent_storage = {persistent_storage}

##### logging configuration options #####

[logging]

# TODO

##### limits and timeouts (every key optional; defaults shown) #####

[debug]
"#,
        nym_root_directory = path(&g.nym_root_directory),
        persistent_storage = path(&g.persistent_storage),
    );
}

/// Each `[debug]` key with its one-line comment, in the order `Tuning` declares them.
fn debug_options(out: &mut String, tuning: &Tuning) {
    let table = toml::Value::try_from(tuning).unwrap_or(toml::Value::Table(Default::default()));
    for (key, comment) in Tuning::KEYS {
        if let Some(value) = table.get(key) {
            let _ = write!(out, "# {}\n{key} = {value}\n\n", comment.trim());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_debug_key_is_written_with_its_comment() {
        let tuning = toml::Value::try_from(Tuning::default()).unwrap();
        let table = tuning.as_table().unwrap();
        for key in table.keys() {
            assert!(
                Tuning::KEYS.iter().any(|(k, _)| k == key),
                "{key} has no comment"
            );
        }
        assert_eq!(table.len(), Tuning::KEYS.len());
        for (key, comment) in Tuning::KEYS {
            let comment = comment.trim();
            assert!(
                !comment.is_empty() && !comment.contains('\n'),
                "{key}: {comment:?}"
            );
        }
    }

    #[test]
    fn strings_that_need_escaping_survive() {
        assert_eq!(string("plain"), "'plain'");
        let tricky = "it's \"quoted\"";
        let parsed: toml::Table = toml::from_str(&format!("k = {}", string(tricky))).unwrap();
        assert_eq!(parsed["k"].as_str(), Some(tricky));
    }
}
