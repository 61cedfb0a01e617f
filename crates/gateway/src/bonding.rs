//! Bonding with today's Nym wallet, which bonds every node as a "Nym node": the facts the bonding
//! form asks for (`bonding-information`) and the signature on the wallet's contract message
//! (`sign --contract-msg`). Texts and JSON shapes follow nym-node 1.31.0
//! (`testdata/nym-node-bonding/` holds its real output for one key and message).

use std::fmt::Write as _;

use crate::build_info::{BINARY_NAME, VERSION};
use crate::config::Config;
use crate::keys::NodeKeys;
use crate::node::validator_check::is_local_host;

/// What nym-node says when a contract message was copied wrongly; our errors end with it.
const COPIED_WRONGLY: &str = "it seems you have incorrectly copied the message to sign. Make sure you didn't accidentally skip any characters";

/// The host nym-node shows when it knows no address other nodes could reach.
pub const NO_VALID_HOST: &str = "NO KNOWN VALID HOSTNAMES - YOU NEED TO FILL IT MANUALLY";

/// Why a `--contract-msg` was refused (nothing is signed).
#[derive(Debug, thiserror::Error)]
pub enum ContractMsgError {
    /// Not base58 (Bitcoin alphabet).
    #[error("the contract message is not valid base58 ({0}): {COPIED_WRONGLY}")]
    NotBase58(String),
    /// Base58, but the decoded bytes are not JSON.
    #[error("the decoded contract message is not JSON ({0}): {COPIED_WRONGLY}")]
    NotJson(String),
}

/// The wallet's contract message, decoded and checked to be JSON. Its bytes are what is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractMsg(String);

impl ContractMsg {
    /// Decodes the base58 string the wallet shows (surrounding whitespace ignored) and checks
    /// that the bytes are one JSON value, as nym-node does; the content itself is not inspected.
    pub fn decode(bs58_text: &str) -> Result<Self, ContractMsgError> {
        let bytes = bs58::decode(bs58_text.trim())
            .into_vec()
            .map_err(|e| ContractMsgError::NotBase58(e.to_string()))?;
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .map_err(|e| ContractMsgError::NotJson(e.to_string()))?;
        // Valid JSON is valid UTF-8; the check stays so no `unwrap` is needed.
        String::from_utf8(bytes)
            .map(Self)
            .map_err(|e| ContractMsgError::NotJson(e.to_string()))
    }

    /// The decoded message, exactly the signed bytes.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The signature on a contract message, printed as nym-node prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignedContractMsg {
    /// The decoded message (not its base58 form).
    pub encoded_message: String,
    /// bs58 ed25519 signature over the message's raw bytes.
    pub encoded_signature: String,
}

impl SignedContractMsg {
    /// Signs the raw decoded bytes with the identity key.
    pub fn new(keys: &NodeKeys, msg: &ContractMsg) -> Self {
        Self {
            encoded_message: msg.as_str().to_owned(),
            encoded_signature: keys.sign_bytes(msg.as_str().as_bytes()),
        }
    }

    /// Two lines: the message, then the signature to paste into the wallet.
    pub fn to_text(&self) -> String {
        format!(
            "the base58-encoded signature on: '{}' is:\n{}",
            self.encoded_message, self.encoded_signature
        )
    }
}

/// What the wallet's "Bond a Nym node" form asks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BondingInformation {
    /// Announced host, or [`NO_VALID_HOST`] when it is an address nobody else can reach.
    pub host: String,
    /// The identity key's 32 bytes (nym-node 1.31.0's JSON shows a number array, not bs58).
    pub identity_key: [u8; 32],
    /// The port of the HTTP API when nym-api would not try it by itself (it tries 8080 and 80).
    pub custom_http_port: Option<u16>,
    /// Always `nym-gateway`: this is not nym-node.
    pub binary_name: &'static str,
    /// This binary's version.
    pub build_version: &'static str,
}

impl BondingInformation {
    /// The facts for this config and identity key.
    pub fn new(config: &Config, keys: &NodeKeys) -> Self {
        let g = &config.gateway;
        let host = if is_local_host(&g.announce_address) {
            NO_VALID_HOST.to_owned()
        } else {
            g.announce_address.clone()
        };
        let port = g.http_api_address.port();
        Self {
            host,
            identity_key: keys.identity.verifying_key().to_bytes(),
            custom_http_port: (port != 8080 && port != 80).then_some(port),
            binary_name: BINARY_NAME,
            build_version: VERSION,
        }
    }

    /// One fact per line, labelled as the wallet's form labels them; ends with an empty line,
    /// like nym-node's.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let identity = bs58::encode(self.identity_key).into_string();
        let _ = writeln!(out, "Identity Key: {identity}");
        let _ = writeln!(out, "Host: {}", self.host);
        let _ = match self.custom_http_port {
            Some(port) => writeln!(out, "Custom HTTP Port: {port}"),
            None => writeln!(
                out,
                "Custom HTTP Port: leave empty (nym-api tries ports 8080 and 80 by itself)"
            ),
        };
        let _ = writeln!(out, "Software: {} {}", self.binary_name, self.build_version);
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bs58(bytes: &[u8]) -> String {
        bs58::encode(bytes).into_string()
    }

    #[test]
    fn contract_msg_must_be_base58_json() {
        let json = r#"{"nonce":0,"algorithm":"ed25519"}"#;
        let msg = ContractMsg::decode(&format!("  {}\n", bs58(json.as_bytes()))).unwrap();
        assert_eq!(msg.as_str(), json);

        let err = ContractMsg::decode("0OIl").unwrap_err();
        assert!(matches!(err, ContractMsgError::NotBase58(_)), "{err}");
        assert!(err.to_string().ends_with(COPIED_WRONGLY));

        for not_json in [&b"hello"[..], b"{\"a\":", b"", b"\xff\xfe"] {
            let err = ContractMsg::decode(&bs58(not_json)).unwrap_err();
            assert!(matches!(err, ContractMsgError::NotJson(_)), "{err}");
        }
    }

    #[test]
    fn signature_is_over_the_raw_decoded_bytes() {
        use ed25519_dalek::{Signature, Verifier};
        let keys = NodeKeys::generate().unwrap();
        let json = r#"{"message_type":"nym-node-bonding"}"#;
        let signed =
            SignedContractMsg::new(&keys, &ContractMsg::decode(&bs58(json.as_bytes())).unwrap());
        let sig: [u8; 64] = bs58::decode(&signed.encoded_signature)
            .into_vec()
            .unwrap()
            .try_into()
            .unwrap();
        keys.identity
            .verifying_key()
            .verify(json.as_bytes(), &Signature::from_bytes(&sig))
            .unwrap();
        assert_eq!(
            signed.to_text(),
            format!(
                "the base58-encoded signature on: '{json}' is:\n{}",
                signed.encoded_signature
            )
        );
    }

    #[test]
    fn host_and_port_follow_what_nym_api_can_reach() {
        let keys = NodeKeys::generate().unwrap();
        let mut config = Config::new(
            "demo",
            std::path::Path::new("/nonexistent"),
            &crate::network::Network::mainnet(),
        );
        let info = |config: &Config| BondingInformation::new(config, &keys);
        for (announce, host) in [
            ("127.0.0.1", NO_VALID_HOST),
            ("0.0.0.0", NO_VALID_HOST),
            ("::1", NO_VALID_HOST),
            ("localhost", NO_VALID_HOST),
            ("[::1]", NO_VALID_HOST),
            ("203.0.113.7", "203.0.113.7"),
            ("gw.example.org", "gw.example.org"),
        ] {
            config.gateway.announce_address = announce.into();
            assert_eq!(info(&config).host, host, "{announce}");
        }
        for (http, port) in [
            ("0.0.0.0:8080", None),
            ("0.0.0.0:80", None),
            ("0.0.0.0:8000", Some(8000)),
        ] {
            config.gateway.http_api_address = http.parse().unwrap();
            assert_eq!(info(&config).custom_http_port, port, "{http}");
        }
        let text = info(&config).to_text();
        let identity = keys.identity_public_bs58();
        assert_eq!(
            text,
            format!(
                "Identity Key: {identity}\nHost: gw.example.org\nCustom HTTP Port: 8000\nSoftware: nym-gateway {VERSION}\n\n"
            )
        );
    }
}
