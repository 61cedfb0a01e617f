//! A target given by its keys and ports instead of our config directory: any gateway on
//! loopback that speaks the Nym protocols, nym-node included. Its keys are given in base58,
//! or read from nym-node's key files (`~/.nym/nym-nodes/<id>/data/`): `ed25519_identity.pub`
//! (PEM `ED25519 PUBLIC KEY`) and `x25519_sphinx_primary` (PEM `X25519 SPHINX PRIVATE KEY`:
//! the 4-byte big-endian rotation id, then the 32-byte secret).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context as _};
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;

use crate::target::{HttpApi, Software, Target};

/// What a target given by keys and ports is.
#[derive(Debug, Clone, Default)]
pub struct ExternalSpec {
    /// nym-node's `data` directory, to read the keys from.
    pub key_dir: Option<PathBuf>,
    /// The identity key, base58 (instead of `key_dir`).
    pub identity: Option<String>,
    /// The sphinx public key of the current rotation, base58 (instead of `key_dir`).
    pub sphinx: Option<String>,
    /// The mix port.
    pub mix_addr: Option<SocketAddr>,
    /// The client websocket port.
    pub clients_addr: Option<SocketAddr>,
    /// Its process, for CPU and memory figures.
    pub pid: Option<u32>,
    /// nym-node's HTTP API, to ask `/api/v1/health` whether it is up.
    pub http_addr: Option<SocketAddr>,
}

/// Keys read from a nym-node's data directory.
#[derive(Debug, Clone)]
pub struct NymNodeKeys {
    /// The identity public key.
    pub identity: VerifyingKey,
    /// The primary sphinx secret.
    pub sphinx_secret: [u8; 32],
    /// Its rotation id.
    pub rotation_id: u32,
}

impl NymNodeKeys {
    /// Reads `ed25519_identity.pub` and `x25519_sphinx_primary` in `dir`.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let identity: [u8; 32] = read_pem(&dir.join("ed25519_identity.pub"), "ED25519 PUBLIC KEY")?
            .try_into()
            .map_err(|_| anyhow::anyhow!("ed25519_identity.pub is not a 32-byte key"))?;
        let identity = VerifyingKey::from_bytes(&identity)
            .context("ed25519_identity.pub is not an ed25519 public key")?;
        let sphinx = read_pem(
            &dir.join("x25519_sphinx_primary"),
            "X25519 SPHINX PRIVATE KEY",
        )?;
        ensure!(
            sphinx.len() == 36,
            "x25519_sphinx_primary holds {} bytes, not a 4-byte rotation id and a 32-byte key",
            sphinx.len()
        );
        let rotation_id = u32::from_be_bytes(sphinx[..4].try_into()?);
        let sphinx_secret = sphinx[4..].try_into()?;
        Ok(Self {
            identity,
            sphinx_secret,
            rotation_id,
        })
    }

    /// The sphinx public key.
    pub fn sphinx_public(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(self.sphinx_secret))
            .to_bytes()
    }
}

/// The body of the PEM file `path`, whose tag must be `tag`.
pub fn read_pem(path: &Path, tag: &str) -> anyhow::Result<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    decode_pem(&text, tag).with_context(|| format!("reading {}", path.display()))
}

fn decode_pem(text: &str, tag: &str) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {tag}-----");
    let end = format!("-----END {tag}-----");
    let body = text
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .with_context(|| format!("no PEM block {tag:?}"))?;
    let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .context("the PEM body is not base64")
}

fn base58_key(text: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    bs58::decode(text.trim())
        .into_vec()
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .with_context(|| format!("{what} {text:?} is not a base58 32-byte key"))
}

impl ExternalSpec {
    /// Whether any of the target flags was given.
    pub fn is_given(&self) -> bool {
        self.key_dir.is_some()
            || self.identity.is_some()
            || self.sphinx.is_some()
            || self.mix_addr.is_some()
            || self.clients_addr.is_some()
    }

    /// The target these keys and ports describe; it must answer on its ports.
    pub async fn open(&self) -> anyhow::Result<Target> {
        let mix_addr = self.mix_addr.context("--target-mix is required")?;
        let clients_addr = self.clients_addr.context("--target-clients is required")?;
        for addr in [mix_addr, clients_addr] {
            ensure!(
                addr.ip().is_loopback(),
                "{addr} is not on loopback; the load generator only talks to loopback"
            );
        }
        let (identity, sphinx_public, sphinx_secret) = match (&self.key_dir, &self.identity) {
            (Some(dir), None) => {
                let keys = NymNodeKeys::read(dir)?;
                (
                    keys.identity,
                    keys.sphinx_public(),
                    Some(keys.sphinx_secret),
                )
            }
            (None, Some(identity)) => {
                let identity =
                    VerifyingKey::from_bytes(&base58_key(identity, "--target-identity")?)
                        .context("--target-identity is not an ed25519 key")?;
                let sphinx = self
                    .sphinx
                    .as_deref()
                    .context("--target-sphinx is required with --target-identity")?;
                (identity, base58_key(sphinx, "--target-sphinx")?, None)
            }
            (Some(_), Some(_)) => bail!("give --target-keys or --target-identity, not both"),
            (None, None) => {
                bail!("give --target-keys DIR or --target-identity and --target-sphinx")
            }
        };
        let mut target = Target {
            software: Software::Unknown,
            mix_addr,
            clients_addr,
            http: self.http_addr.map(|addr| HttpApi {
                addr,
                token: None,
                health_path: "/api/v1/health",
                metrics_path: None,
            }),
            identity,
            sphinx_public,
            sphinx_secret,
            key_dir: None,
            max_clients: 1 << 20,
            store_path: None,
            pid: self.pid,
            process: None,
        };
        target
            .wait_healthy(std::time::Duration::from_secs(5))
            .await
            .context("the target does not answer on its ports; is it running?")?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nym_node_key_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let identity = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        std::fs::write(
            dir.path().join("ed25519_identity.pub"),
            format!(
                "-----BEGIN ED25519 PUBLIC KEY-----\n{}\n-----END ED25519 PUBLIC KEY-----\n",
                b64(identity.as_bytes())
            ),
        )
        .unwrap();
        let mut sphinx = 3u32.to_be_bytes().to_vec();
        sphinx.extend([9u8; 32]);
        std::fs::write(
            dir.path().join("x25519_sphinx_primary"),
            format!(
                "-----BEGIN X25519 SPHINX PRIVATE KEY-----\n{}\n-----END X25519 SPHINX PRIVATE KEY-----\n",
                b64(&sphinx)
            ),
        )
        .unwrap();
        let keys = NymNodeKeys::read(dir.path()).unwrap();
        assert_eq!(keys.identity, identity);
        assert_eq!(keys.rotation_id, 3);
        assert_eq!(keys.sphinx_secret, [9; 32]);
        assert!(decode_pem("-----BEGIN X-----\nAA==\n-----END X-----", "Y").is_err());
        assert!(base58_key("abc", "k").is_err());
    }
}
