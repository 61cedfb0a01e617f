//! `config.toml`: the keys of the 1.0.2 gateway (same names, same order, same file location) plus
//! a `[debug]` table holding every limit and timeout of this implementation.
//!
//! Loading is strict: unknown keys, wrong types and invalid values are errors that name the file
//! and the key, never a silent default. Keys added after 1.0.1 have serde defaults, so older
//! files load (and `upgrade` rewrites them in the current layout).

mod debug;
mod paths;
mod template;
pub mod upgrade;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use debug::{EgressFraming, FinalHopImplementation, NoiseMode, Tuning};
pub use paths::{config_path, gateway_dir, nym_root_directory, GatewayPaths};

use crate::build_info::VERSION;

/// The value 1.0.x wrote for keys that were absent.
pub const MISSING_VALUE: &str = "MISSING VALUE";

/// A mnemonic that stands in where none is given. The gateway only needs a real one for
/// credential double-spend protection, which the non-enforcing mode does not use.
pub const PLACEHOLDER_MNEMONIC: &str = "exact antique hybrid width raise anchor puzzle degree fee quit long crack net vague hip despair write put useless civil mechanic broom music day";

/// Default address of the HTTP API (health, metrics): local only.
pub const DEFAULT_HTTP_API_ADDRESS: &str = "127.0.0.1:8080";

/// A config file that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// There is no file.
    #[error("no configuration at {path:?} - are you sure you have run `init` before?")]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("failed to access {path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML for this schema.
    #[error("{path:?} is not a valid gateway configuration: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[gateway]`: identity, addresses, files.
    pub gateway: Gateway,
    /// `[logging]`: empty, kept for compatibility.
    #[serde(default)]
    pub logging: Logging,
    /// `[debug]`: limits and timeouts.
    #[serde(default)]
    pub debug: Tuning,
}

/// `[logging]` has no keys (as in 1.0.x); logging is controlled by `RUST_LOG`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {}

/// `[gateway]`, in the 1.0.2 key order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// Version of the gateway that wrote this file.
    #[serde(default = "missing_value")]
    pub version: String,
    /// Human readable id of this gateway (its directory name).
    pub id: String,
    /// Free bandwidth is granted on request (credentials are not enforced).
    #[serde(default)]
    pub disabled_credentials_mode: bool,
    /// IP address the mix and client listeners bind to.
    #[serde(default = "unspecified_ip")]
    pub listening_address: IpAddr,
    /// `private_identity.pem`
    pub private_identity_key_file: PathBuf,
    /// `public_identity.pem`
    pub public_identity_key_file: PathBuf,
    /// `private_sphinx.pem`
    pub private_sphinx_key_file: PathBuf,
    /// `public_sphinx.pem`
    pub public_sphinx_key_file: PathBuf,
    /// Unused; kept so files written by 1.0.x load.
    #[serde(default)]
    pub eth_endpoint: Option<String>,
    /// Host (IP or name) announced to the network.
    #[serde(default = "missing_value")]
    pub announce_address: String,
    /// Port for mix traffic.
    #[serde(default = "default_mix_port")]
    pub mix_port: u16,
    /// Port for client websockets.
    #[serde(default = "default_clients_port")]
    pub clients_port: u16,
    /// Port for client websockets over TLS (`wss://`), served with the two files below.
    /// Absent (the default): no wss listener. Written to the file only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients_wss_port: Option<u16>,
    /// PEM certificate chain of the wss listener, leaf first (e.g. certbot's `fullchain.pem`).
    /// Required with `clients_wss_port`; re-read on SIGHUP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients_wss_certificate_file: Option<PathBuf>,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1). Required with
    /// `clients_wss_port`; re-read on SIGHUP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients_wss_private_key_file: Option<PathBuf>,
    /// Address of the HTTP API (`/health`, `/metrics`, `/api/v1/node-details`).
    #[serde(default = "default_http_api_address")]
    pub http_api_address: SocketAddr,
    /// If set, `/metrics` and `/api/v1/node-details` require `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_api_token: Option<String>,
    /// Whether to report statistics to `statistics_service_url`.
    #[serde(default)]
    pub enabled_statistics: bool,
    /// Where statistics are reported.
    #[serde(default = "default_statistics_url")]
    pub statistics_service_url: String,
    /// Validator API endpoints (duplicate-host check).
    #[serde(default)]
    pub validator_api_urls: Vec<String>,
    /// Validator RPC endpoints.
    #[serde(default)]
    pub validator_nymd_urls: Vec<String>,
    /// nym-api endpoints the gateway learns the key rotation from and asks to re-describe it.
    /// Absent: `validator_api_urls` (the seed's name for the same APIs). Empty: no nym-api,
    /// one static sphinx key. Written to the file only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nym_api_urls: Option<Vec<String>>,
    /// Wallet mnemonic (only needed for credential enforcement; never printed).
    #[serde(default = "placeholder_mnemonic")]
    pub cosmos_mnemonic: String,
    /// Wallet address the gateway is bonded with (empty for a local gateway).
    #[serde(default)]
    pub wallet_address: String,
    /// The operator accepted Nym's operator terms and conditions (served in
    /// `/api/v1/auxiliary-details`). Default false; written to the file only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accepted_operator_terms_and_conditions: bool,
    /// Bandwidth only for zk-nym tickets: `claimFreeTestnetBandwidth` is refused. Tickets are
    /// accepted either way. Default false; written to the file only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enforce_zk_nyms: bool,
    /// The e-cash signers' APIs that verify the tickets this gateway accepted, after the
    /// client got its bandwidth. Empty (the default): tickets are only verified here.
    /// Written to the file only when set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zk_nym_signer_urls: Vec<String>,
    /// Where the network's upgrade-mode attestation is published, polled while the gateway
    /// follows a nym-api. Absent: the network's (`UPGRADE_MODE_ATTESTATION_URL` of the env
    /// file, else mainnet's). Empty: upgrade mode stays off. Written to the file only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_mode_attestation_url: Option<String>,
    /// bs58 ed25519 key of the network's upgrade-mode attester. Absent: the network's
    /// (`UPGRADE_MODE_ATTESTER_ED25519_PUBKEY`, else mainnet's). Written only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_mode_attester_public_key: Option<String>,
    /// `$HOME/.nym/gateways`
    pub nym_root_directory: PathBuf,
    /// The SQLite store.
    pub persistent_storage: PathBuf,
}

fn missing_value() -> String {
    MISSING_VALUE.to_owned()
}
fn unspecified_ip() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}
fn default_mix_port() -> u16 {
    1789
}
fn default_clients_port() -> u16 {
    9000
}
fn default_http_api_address() -> SocketAddr {
    DEFAULT_HTTP_API_ADDRESS.parse().expect("valid constant")
}
fn default_statistics_url() -> String {
    crate::network::Network::mainnet().statistics_service_url
}
fn placeholder_mnemonic() -> String {
    PLACEHOLDER_MNEMONIC.to_owned()
}

impl Config {
    /// A fresh config for `id` with the file layout under `root` and the network's defaults.
    pub fn new(id: &str, root: &Path, network: &crate::network::Network) -> Self {
        let paths = GatewayPaths::new(root, id);
        let keys = paths.keys();
        Self {
            gateway: Gateway {
                version: VERSION.to_owned(),
                id: id.to_owned(),
                disabled_credentials_mode: true,
                listening_address: unspecified_ip(),
                private_identity_key_file: keys.private_identity,
                public_identity_key_file: keys.public_identity,
                private_sphinx_key_file: keys.private_sphinx,
                public_sphinx_key_file: keys.public_sphinx,
                eth_endpoint: None,
                announce_address: "127.0.0.1".to_owned(),
                mix_port: default_mix_port(),
                clients_port: default_clients_port(),
                clients_wss_port: None,
                clients_wss_certificate_file: None,
                clients_wss_private_key_file: None,
                http_api_address: default_http_api_address(),
                http_api_token: None,
                enabled_statistics: false,
                statistics_service_url: network.statistics_service_url.clone(),
                validator_api_urls: vec![network.api_validator.clone()],
                validator_nymd_urls: vec![network.nymd_validator.clone()],
                nym_api_urls: None,
                cosmos_mnemonic: PLACEHOLDER_MNEMONIC.to_owned(),
                wallet_address: String::new(),
                accepted_operator_terms_and_conditions: false,
                enforce_zk_nyms: false,
                zk_nym_signer_urls: Vec::new(),
                upgrade_mode_attestation_url: None,
                upgrade_mode_attester_public_key: None,
                nym_root_directory: root.to_path_buf(),
                persistent_storage: paths.default_datastore(),
            },
            logging: Logging::default(),
            debug: Tuning::default(),
        }
    }

    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::Missing {
                    path: path.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(ConfigError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let config = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (no validation beyond the schema).
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// Checks values the schema cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let g = &self.gateway;
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if g.id.is_empty() {
            return invalid("id", "must not be empty".into());
        }
        if g.mix_port == g.clients_port {
            return invalid(
                "clients_port",
                format!("must differ from mix_port ({})", g.mix_port),
            );
        }
        if let Some(port) = g.clients_wss_port {
            if port != 0 && (port == g.mix_port || port == g.clients_port) {
                return invalid(
                    "clients_wss_port",
                    format!(
                        "must differ from mix_port ({}) and clients_port ({})",
                        g.mix_port, g.clients_port
                    ),
                );
            }
        }
        self.wss_files()?;
        if g.announce_address.trim().is_empty() || g.announce_address == MISSING_VALUE {
            return invalid("announce_address", "must name the host to announce".into());
        }
        for url in g.validator_api_urls.iter().chain(&g.validator_nymd_urls) {
            if let Err(e) = url::Url::parse(url) {
                return invalid("validator_api_urls", format!("{url:?} is not a URL: {e}"));
            }
        }
        for url in g.nym_api_urls.iter().flatten() {
            if let Err(e) = url::Url::parse(url) {
                return invalid("nym_api_urls", format!("{url:?} is not a URL: {e}"));
            }
        }
        // Empty turns upgrade mode off.
        let upgrade_url = g.upgrade_mode_attestation_url.as_deref();
        if let Some(url) = upgrade_url.filter(|url| !url.is_empty()) {
            if let Err(e) = url::Url::parse(url) {
                return invalid(
                    "upgrade_mode_attestation_url",
                    format!("{url:?} is not a URL: {e}"),
                );
            }
        }
        if let Some(key) = g.upgrade_mode_attester_public_key.as_deref() {
            if gateway_ecash::upgrade_mode::bs58_key(key).is_none() {
                return invalid(
                    "upgrade_mode_attester_public_key",
                    format!("{key:?} is not a bs58 ed25519 public key"),
                );
            }
        }
        if let Err(e) = url::Url::parse(&g.statistics_service_url) {
            return invalid(
                "statistics_service_url",
                format!("{:?} is not a URL: {e}", g.statistics_service_url),
            );
        }
        self.debug.validate()
    }

    /// Writes the file (0600, directories created), replacing any previous one atomically.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        crate::keys::write_private_file(path, self.render().as_bytes()).map_err(io)
    }

    /// The file's text: commented, in the 1.0.2 key order.
    pub fn render(&self) -> String {
        template::render(self)
    }

    /// The wss listener's certificate and key files: `None` without `clients_wss_port`. A port
    /// without both files, or files without a port, is an error.
    pub fn wss_files(&self) -> Result<Option<crate::node::client::tls::TlsFiles>, ConfigError> {
        let g = &self.gateway;
        let certificate = g.clients_wss_certificate_file.clone();
        let key = g.clients_wss_private_key_file.clone();
        let missing = |key: &'static str, what: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: format!(
                    "clients_wss_port is set, so the wss listener needs the {what} (a PEM file path)"
                ),
            })
        };
        match (g.clients_wss_port, certificate, key) {
            (None, None, None) => Ok(None),
            (None, _, _) => Err(ConfigError::Invalid {
                key: "clients_wss_port",
                reason: "clients_wss_certificate_file or clients_wss_private_key_file is set: \
                         set clients_wss_port too, or remove them"
                    .into(),
            }),
            (Some(_), None, _) => missing("clients_wss_certificate_file", "certificate chain"),
            (Some(_), Some(_), None) => missing("clients_wss_private_key_file", "private key"),
            (Some(_), Some(certificate_chain), Some(private_key)) => {
                Ok(Some(crate::node::client::tls::TlsFiles {
                    certificate_chain,
                    private_key,
                }))
            }
        }
    }

    /// The key file locations this config names.
    pub fn key_paths(&self) -> crate::keys::KeyPaths {
        crate::keys::KeyPaths {
            private_identity: self.gateway.private_identity_key_file.clone(),
            public_identity: self.gateway.public_identity_key_file.clone(),
            private_sphinx: self.gateway.private_sphinx_key_file.clone(),
            public_sphinx: self.gateway.public_sphinx_key_file.clone(),
        }
    }
}

/// Splits a comma-separated URL list, trimming items; every item must be a URL.
pub fn parse_url_list(list: &str) -> Result<Vec<String>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            url::Url::parse(s)
                .map(|u| u.to_string())
                .map_err(|e| format!("{s:?}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests;
