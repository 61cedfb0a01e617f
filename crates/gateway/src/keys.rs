//! The gateway's long-term keys and their PEM files.
//!
//! Files are PEM with CRLF line endings and the tags `ED25519 PRIVATE KEY`, `ED25519 PUBLIC KEY`,
//! `X25519 PRIVATE KEY`, `X25519 PUBLIC KEY`, each holding the 32 raw key bytes — the layout the
//! 1.0.x gateway wrote, so existing key files keep working. Private files are written 0600.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey};
use thiserror::Error;
use x25519_dalek::{PublicKey as SphinxPublicKey, StaticSecret};

const IDENTITY_PRIVATE_TAG: &str = "ED25519 PRIVATE KEY";
const IDENTITY_PUBLIC_TAG: &str = "ED25519 PUBLIC KEY";
const SPHINX_PRIVATE_TAG: &str = "X25519 PRIVATE KEY";
const SPHINX_PUBLIC_TAG: &str = "X25519 PUBLIC KEY";

/// A key file that cannot be used.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Reading or writing failed.
    #[error("failed to access key file {path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not PEM.
    #[error("key file {path:?} is not valid PEM: {reason}")]
    NotPem {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// PEM with another tag than expected.
    #[error("unexpected key pem tag in {path:?}: expected {expected:?}, found {found:?}")]
    WrongTag {
        /// The file.
        path: PathBuf,
        /// The tag this file must have.
        expected: &'static str,
        /// The tag it has.
        found: String,
    },
    /// Not 32 bytes.
    #[error("key in {path:?} has {len} bytes, expected 32")]
    WrongLength {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// The public key file does not belong to the private key file.
    #[error("public key {public:?} does not match private key {private:?}")]
    Mismatch {
        /// The private key file.
        private: PathBuf,
        /// The public key file.
        public: PathBuf,
    },
    /// The operating system's random source failed.
    #[error("failed to obtain randomness for key generation: {0}")]
    Randomness(String),
}

/// Where the four key files live.
#[derive(Debug, Clone)]
pub struct KeyPaths {
    /// `private_identity.pem`
    pub private_identity: PathBuf,
    /// `public_identity.pem`
    pub public_identity: PathBuf,
    /// `private_sphinx.pem`
    pub private_sphinx: PathBuf,
    /// `public_sphinx.pem`
    pub public_sphinx: PathBuf,
}

impl KeyPaths {
    /// The default file names inside a data directory.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            private_identity: dir.join("private_identity.pem"),
            public_identity: dir.join("public_identity.pem"),
            private_sphinx: dir.join("private_sphinx.pem"),
            public_sphinx: dir.join("public_sphinx.pem"),
        }
    }

    /// Whether every file exists.
    pub fn all_exist(&self) -> bool {
        [
            &self.private_identity,
            &self.public_identity,
            &self.private_sphinx,
            &self.public_sphinx,
        ]
        .iter()
        .all(|p| p.exists())
    }
}

/// The gateway's identity (ed25519) and sphinx (x25519) keys.
pub struct NodeKeys {
    /// Signs node details and handshakes; its public half is the gateway's identity.
    pub identity: SigningKey,
    /// Unwraps Sphinx packets.
    pub sphinx: StaticSecret,
}

impl std::fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private key material.
        f.debug_struct("NodeKeys")
            .field("identity", &self.identity_public_bs58())
            .field("sphinx", &self.sphinx_public_bs58())
            .finish()
    }
}

impl NodeKeys {
    /// Fresh keys from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut identity = [0u8; 32];
        let mut sphinx = [0u8; 32];
        getrandom::fill(&mut identity).map_err(|e| KeyError::Randomness(e.to_string()))?;
        getrandom::fill(&mut sphinx).map_err(|e| KeyError::Randomness(e.to_string()))?;
        let keys = Self {
            identity: SigningKey::from_bytes(&identity),
            sphinx: StaticSecret::from(sphinx),
        };
        zeroize::Zeroize::zeroize(&mut identity);
        zeroize::Zeroize::zeroize(&mut sphinx);
        Ok(keys)
    }

    /// Loads all four files; the public files must match the private ones.
    pub fn load(paths: &KeyPaths) -> Result<Self, KeyError> {
        let identity =
            SigningKey::from_bytes(&read_key(&paths.private_identity, IDENTITY_PRIVATE_TAG)?);
        let sphinx = StaticSecret::from(read_key(&paths.private_sphinx, SPHINX_PRIVATE_TAG)?);
        let identity_public = read_key(&paths.public_identity, IDENTITY_PUBLIC_TAG)?;
        let sphinx_public = read_key(&paths.public_sphinx, SPHINX_PUBLIC_TAG)?;
        if identity.verifying_key().to_bytes() != identity_public {
            return Err(KeyError::Mismatch {
                private: paths.private_identity.clone(),
                public: paths.public_identity.clone(),
            });
        }
        if SphinxPublicKey::from(&sphinx).to_bytes() != sphinx_public {
            return Err(KeyError::Mismatch {
                private: paths.private_sphinx.clone(),
                public: paths.public_sphinx.clone(),
            });
        }
        Ok(Self { identity, sphinx })
    }

    /// Writes all four files (public first, then private), creating directories as needed.
    pub fn save(&self, paths: &KeyPaths) -> Result<(), KeyError> {
        write_key(
            &paths.public_identity,
            IDENTITY_PUBLIC_TAG,
            &self.identity.verifying_key().to_bytes(),
        )?;
        write_key(
            &paths.private_identity,
            IDENTITY_PRIVATE_TAG,
            &self.identity.to_bytes(),
        )?;
        write_key(
            &paths.public_sphinx,
            SPHINX_PUBLIC_TAG,
            &SphinxPublicKey::from(&self.sphinx).to_bytes(),
        )?;
        write_key(
            &paths.private_sphinx,
            SPHINX_PRIVATE_TAG,
            &self.sphinx.to_bytes(),
        )
    }

    /// The identity public key, bs58 — the gateway's name in the network.
    pub fn identity_public_bs58(&self) -> String {
        bs58::encode(self.identity.verifying_key().to_bytes()).into_string()
    }

    /// The sphinx public key, bs58.
    pub fn sphinx_public_bs58(&self) -> String {
        bs58::encode(SphinxPublicKey::from(&self.sphinx).to_bytes()).into_string()
    }

    /// Ed25519 (RFC 8032) signature over the UTF-8 bytes of `text`, bs58.
    pub fn sign_text(&self, text: &str) -> String {
        self.sign_bytes(text.as_bytes())
    }

    /// Ed25519 (RFC 8032) signature over `bytes`, bs58.
    pub fn sign_bytes(&self, bytes: &[u8]) -> String {
        bs58::encode(self.identity.sign(bytes).to_bytes()).into_string()
    }
}

/// The Noise private key's file name, in the sphinx key's directory.
pub const NOISE_PRIVATE_FILE: &str = "private_x25519_noise.pem";
/// The Noise public key's file name, beside the private one.
pub const NOISE_PUBLIC_FILE: &str = "public_x25519_noise.pem";

/// The static key of Noise on the mix port: `private_x25519_noise.pem` and
/// `public_x25519_noise.pem` beside the sphinx key, made at the first start that needs one
/// (so gateways set up before Noise get one without a new `init`).
pub struct NoiseKey {
    /// The private half.
    pub secret: StaticSecret,
    /// The public half, announced in host-information.
    pub public: [u8; 32],
}

impl NoiseKey {
    /// A fresh key from the operating system's random source (not saved).
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Randomness(e.to_string()))?;
        let secret = StaticSecret::from(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        Ok(Self {
            public: SphinxPublicKey::from(&secret).to_bytes(),
            secret,
        })
    }

    /// The key in `dir`, made and saved first if neither file exists.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        let private = dir.join(NOISE_PRIVATE_FILE);
        let public = dir.join(NOISE_PUBLIC_FILE);
        if !private.exists() && !public.exists() {
            let fresh = Self::generate()?;
            write_key(&public, SPHINX_PUBLIC_TAG, &fresh.public)?;
            write_key(&private, SPHINX_PRIVATE_TAG, fresh.secret.as_bytes())?;
        }
        let secret = StaticSecret::from(read_key(&private, SPHINX_PRIVATE_TAG)?);
        let announced = read_key(&public, SPHINX_PUBLIC_TAG)?;
        if SphinxPublicKey::from(&secret).to_bytes() != announced {
            return Err(KeyError::Mismatch { private, public });
        }
        Ok(Self {
            secret,
            public: announced,
        })
    }
}

fn read_key(path: &Path, expected: &'static str) -> Result<[u8; 32], KeyError> {
    let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let parsed = pem::parse(text.trim()).map_err(|e| KeyError::NotPem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if parsed.tag() != expected {
        return Err(KeyError::WrongTag {
            path: path.to_path_buf(),
            expected,
            found: parsed.tag().to_owned(),
        });
    }
    parsed
        .contents()
        .try_into()
        .map_err(|_| KeyError::WrongLength {
            path: path.to_path_buf(),
            len: parsed.contents().len(),
        })
}

fn write_key(path: &Path, tag: &str, bytes: &[u8]) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    let encoded = pem::encode_config(
        &pem::Pem::new(tag, bytes.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::CRLF),
    );
    write_private_file(path, encoded.as_bytes()).map_err(io)
}

/// Writes `contents` to `path` readable by the owner only (0600 on unix), replacing the file
/// through a temporary sibling so a crash never leaves a half-written file behind.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    #[cfg(unix)]
    {
        // `mode` applies only when creating; a leftover temp file keeps its old mode otherwise.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

/// Of `files` (private keys, the config with its mnemonic, the store with clients' keys), those
/// that other users can read or write, with their mode. Missing files are skipped.
pub fn exposed_files(files: &[&Path]) -> Vec<(PathBuf, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        files
            .iter()
            .filter_map(|path| {
                let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
                (mode & 0o077 != 0).then(|| (path.to_path_buf(), mode))
            })
            .collect()
    }
    #[cfg(not(unix))]
    {
        let _ = files;
        Vec::new()
    }
}

/// Warns about each of `files` that other users can access, naming the fix.
pub fn warn_if_exposed(files: &[&Path]) {
    for (path, mode) in exposed_files(files) {
        tracing::warn!(
            "{} holds secrets but other users can access it (mode {mode:o}): run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_with_exact_pem_layout() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::in_dir(dir.path());
        let keys = NodeKeys::generate().unwrap();
        keys.save(&paths).unwrap();
        let loaded = NodeKeys::load(&paths).unwrap();
        assert_eq!(loaded.identity_public_bs58(), keys.identity_public_bs58());
        assert_eq!(loaded.sphinx_public_bs58(), keys.sphinx_public_bs58());

        let text = fs::read_to_string(&paths.private_sphinx).unwrap();
        assert!(
            text.starts_with("-----BEGIN X25519 PRIVATE KEY-----\r\n"),
            "{text:?}"
        );
        assert!(
            text.ends_with("-----END X25519 PRIVATE KEY-----\r\n"),
            "{text:?}"
        );
        assert_eq!(text.lines().count(), 3, "a 32-byte key is one base64 line");
    }

    #[test]
    fn wrong_tag_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::in_dir(dir.path());
        NodeKeys::generate().unwrap().save(&paths).unwrap();
        fs::copy(&paths.private_sphinx, &paths.private_identity).unwrap();
        let err = NodeKeys::load(&paths).unwrap_err();
        assert!(matches!(err, KeyError::WrongTag { .. }), "{err}");
    }

    #[test]
    fn mismatched_public_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::in_dir(dir.path());
        NodeKeys::generate().unwrap().save(&paths).unwrap();
        let other = tempfile::tempdir().unwrap();
        let other_paths = KeyPaths::in_dir(other.path());
        NodeKeys::generate().unwrap().save(&other_paths).unwrap();
        fs::copy(&other_paths.public_identity, &paths.public_identity).unwrap();
        assert!(matches!(
            NodeKeys::load(&paths),
            Err(KeyError::Mismatch { .. })
        ));
    }

    #[test]
    fn garbage_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::in_dir(dir.path());
        NodeKeys::generate().unwrap().save(&paths).unwrap();
        fs::write(&paths.private_identity, "not a key").unwrap();
        assert!(matches!(
            NodeKeys::load(&paths),
            Err(KeyError::NotPem { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn files_other_users_can_read_are_found() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::in_dir(dir.path());
        NodeKeys::generate().unwrap().save(&paths).unwrap();
        let private = [
            paths.private_identity.as_path(),
            paths.private_sphinx.as_path(),
        ];
        assert!(exposed_files(&private).is_empty(), "written 0600");
        fs::set_permissions(&paths.private_sphinx, fs::Permissions::from_mode(0o640)).unwrap();
        let missing = dir.path().join("absent.pem");
        let found = exposed_files(&[private[0], private[1], &missing]);
        assert_eq!(found, vec![(paths.private_sphinx.clone(), 0o640)]);
    }
}
