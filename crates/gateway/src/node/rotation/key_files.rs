//! Rotation keys on disk, and the last key-rotation answer from nym-api.
//!
//! Each rotation's key is its own file in the key directory, `sphinx_rotation_<id>.pem`:
//! PEM `X25519 SPHINX PRIVATE KEY` holding the rotation id (4 bytes, big-endian) then the
//! 32-byte secret, the layout of nym-node's sphinx key files. One file per rotation means a
//! swap renames nothing and a crash at any point leaves only whole files: the files present
//! are the keys held. Deleting a rotation's file is what forgets its key.
//!
//! `key_rotation_info.json` beside the store keeps nym-api's last answer, so a restart knows
//! which held key is current without asking (nym-api may be unreachable then).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;
use tracing::warn;
use x25519_dalek::StaticSecret;

use crate::keys::write_private_file;

/// The PEM tag, as nym-node writes it.
const TAG: &str = "X25519 SPHINX PRIVATE KEY";
const PREFIX: &str = "sphinx_rotation_";
const SUFFIX: &str = ".pem";

/// Why a rotation key file was not used.
#[derive(Debug, Error)]
pub enum KeyFileError {
    /// Reading failed.
    #[error("cannot read it: {0}")]
    Io(#[from] io::Error),
    /// Not PEM, another tag, or not 36 bytes.
    #[error("it is not a rotation key file: {0}")]
    Malformed(String),
    /// The id inside differs from the one in the name.
    #[error("it holds the key of rotation {inside}, not {named}")]
    WrongRotation {
        /// From the file name.
        named: u32,
        /// From the content.
        inside: u32,
    },
}

/// The rotation key files of one gateway.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    dir: PathBuf,
}

impl KeyFiles {
    /// Files in `dir` (the directory of the sphinx key file).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The file of `rotation`'s key.
    pub fn path(&self, rotation: u32) -> PathBuf {
        self.dir.join(format!("{PREFIX}{rotation}{SUFFIX}"))
    }

    /// Every usable key, by rotation id, lowest first; an unusable file is warned about and
    /// left alone (the operator may want to look at it).
    pub fn load_all(&self) -> Vec<(u32, StaticSecret)> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut keys: Vec<(u32, StaticSecret)> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let id = name
                    .to_str()?
                    .strip_prefix(PREFIX)?
                    .strip_suffix(SUFFIX)?
                    .parse::<u32>()
                    .ok()?;
                match read(&entry.path(), id) {
                    Ok(secret) => Some((id, secret)),
                    Err(e) => {
                        warn!(path = %entry.path().display(), "rotation key file not used: {e}");
                        None
                    }
                }
            })
            .collect();
        keys.sort_by_key(|(id, _)| *id);
        keys
    }

    /// Writes `rotation`'s key (owner-only, atomically).
    pub fn save(&self, rotation: u32, secret: &StaticSecret) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let mut contents = rotation.to_be_bytes().to_vec();
        contents.extend_from_slice(secret.as_bytes());
        let text = pem::encode(&pem::Pem::new(TAG, contents.clone()));
        zeroize::Zeroize::zeroize(&mut contents);
        write_private_file(&self.path(rotation), text.as_bytes())
    }

    /// Deletes `rotation`'s key file (gone already is fine).
    pub fn remove(&self, rotation: u32) -> io::Result<()> {
        match fs::remove_file(self.path(rotation)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn read(path: &Path, named: u32) -> Result<StaticSecret, KeyFileError> {
    let text = fs::read_to_string(path)?;
    let parsed = pem::parse(text.trim()).map_err(|e| KeyFileError::Malformed(e.to_string()))?;
    if parsed.tag() != TAG {
        return Err(KeyFileError::Malformed(format!("tag {:?}", parsed.tag())));
    }
    let bytes = parsed.contents();
    let (Some(id), Some(secret)) = (bytes.get(..4), bytes.get(4..)) else {
        return Err(KeyFileError::Malformed(format!("{} bytes", bytes.len())));
    };
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| KeyFileError::Malformed(format!("{} bytes", bytes.len())))?;
    let inside = u32::from_be_bytes(id.try_into().unwrap_or_default());
    if inside != named {
        return Err(KeyFileError::WrongRotation { named, inside });
    }
    Ok(StaticSecret::from(secret))
}

/// `key_rotation_info.json` beside the store file `store`.
pub fn info_path(store: &Path) -> PathBuf {
    store.with_file_name("key_rotation_info.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeyFiles::in_dir(dir.path());
        files.save(7, &StaticSecret::from([7; 32])).unwrap();
        files.save(6, &StaticSecret::from([6; 32])).unwrap();
        // Named for rotation 9, holding rotation 7's key.
        fs::copy(files.path(7), files.path(9)).unwrap();
        fs::write(files.path(10), "garbage").unwrap();
        fs::write(dir.path().join("sphinx_rotation_x.pem"), "ignored").unwrap();
        let loaded = files.load_all();
        let ids: Vec<u32> = loaded.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [6, 7]);
        assert_eq!(loaded[1].1.to_bytes(), [7; 32]);
        let text = fs::read_to_string(files.path(7)).unwrap();
        assert!(text.starts_with("-----BEGIN X25519 SPHINX PRIVATE KEY-----"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(files.path(7)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        files.remove(6).unwrap();
        files.remove(6).unwrap();
        assert_eq!(files.load_all().len(), 1);
    }
}
