//! The gateway's key files: PEM with one base64 line of the 32 raw key bytes.

use anyhow::{bail, ensure, Context};
use base64::Engine;
use nym_crypto::asymmetric::{ed25519, x25519};
use std::path::Path;

pub const IDENTITY_PRIVATE: (&str, &str) = ("private_identity.pem", "ED25519 PRIVATE KEY");
pub const IDENTITY_PUBLIC: (&str, &str) = ("public_identity.pem", "ED25519 PUBLIC KEY");
pub const SPHINX_PRIVATE: (&str, &str) = ("private_sphinx.pem", "X25519 PRIVATE KEY");
pub const SPHINX_PUBLIC: (&str, &str) = ("public_sphinx.pem", "X25519 PUBLIC KEY");

/// Decodes a single PEM block whose label must be `tag`. Accepts CRLF and LF line endings.
pub fn parse_pem(text: &str, tag: &str) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {tag}-----");
    let end = format!("-----END {tag}-----");
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r').trim());
    lines
        .by_ref()
        .find(|l| !l.is_empty())
        .filter(|l| *l == begin)
        .with_context(|| format!("expected the PEM to start with `{begin}`"))?;
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == end {
            ensure!(lines.all(|l| l.is_empty()), "unexpected data after `{end}`");
            return base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .context("PEM body is not valid base64");
        }
        if line.starts_with("-----") {
            bail!("unexpected PEM boundary `{line}` (expected `{end}`)");
        }
        body.push_str(line);
    }
    bail!("missing `{end}`")
}

/// Reads `dir/file` and decodes its PEM block, which must hold exactly 32 bytes.
pub fn read_key(dir: &Path, (file, tag): (&str, &str)) -> anyhow::Result<[u8; 32]> {
    let path = dir.join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = parse_pem(&text, tag).with_context(|| format!("parsing {}", path.display()))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        anyhow::anyhow!(
            "{} holds {} key bytes, expected 32",
            path.display(),
            bytes.len()
        )
    })
}

/// The gateway's identity and sphinx keys, read from its data directory.
pub struct GatewayKeys {
    pub identity: ed25519::PublicKey,
    pub sphinx_public: x25519::PublicKey,
    sphinx_private: [u8; 32],
}

impl GatewayKeys {
    /// Loads all four key files and checks that each public key belongs to its private key.
    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let id_priv = read_key(data_dir, IDENTITY_PRIVATE)?;
        let id_pub = read_key(data_dir, IDENTITY_PUBLIC)?;
        let sx_priv = read_key(data_dir, SPHINX_PRIVATE)?;
        let sx_pub = read_key(data_dir, SPHINX_PUBLIC)?;

        let identity_private =
            ed25519::PrivateKey::from_bytes(&id_priv).context("invalid ed25519 private key")?;
        let identity =
            ed25519::PublicKey::from_bytes(&id_pub).context("invalid ed25519 public key")?;
        ensure!(
            ed25519::PublicKey::from(&identity_private) == identity,
            "public_identity.pem does not match private_identity.pem"
        );
        let sphinx_private_key =
            x25519::PrivateKey::from_bytes(&sx_priv).context("invalid x25519 private key")?;
        let sphinx_public =
            x25519::PublicKey::from_bytes(&sx_pub).context("invalid x25519 public key")?;
        ensure!(
            x25519::PublicKey::from(&sphinx_private_key) == sphinx_public,
            "public_sphinx.pem does not match private_sphinx.pem"
        );
        Ok(GatewayKeys {
            identity,
            sphinx_public,
            sphinx_private: sx_priv,
        })
    }

    /// Assembles keys from parts (used by tests that play the gateway themselves).
    pub fn from_parts(identity: ed25519::PublicKey, sphinx: &x25519::KeyPair) -> Self {
        GatewayKeys {
            identity,
            sphinx_public: *sphinx.public_key(),
            sphinx_private: sphinx.private_key().to_bytes(),
        }
    }

    /// The sphinx key in the form the crates' packet processing takes.
    pub fn sphinx_secret(&self) -> nym_sphinx::PrivateKey {
        nym_sphinx::PrivateKey::from(self.sphinx_private)
    }
}
