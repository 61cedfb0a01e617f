//! The PEM key files ([`NodeKeys::load`]). Only loading from files is public, so each input is
//! written to a file in a fresh temporary directory beside three valid key files.
//!
//! Input: one byte choosing which of the four files the rest replaces. A load that succeeds
//! yields the public keys of the valid files (a public file must match its private file); a
//! load that fails names the replaced file.

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use nym_gateway::keys::{KeyPaths, NodeKeys};
use x25519_dalek::StaticSecret;

use gateway_protocol::test_support::vectors;

/// The four files of the vector keys, in [`files`] order.
fn valid_files() -> &'static [Vec<u8>; 4] {
    static FILES: OnceLock<[Vec<u8>; 4]> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let paths = KeyPaths::in_dir(dir.path());
        fixed_keys().save(&paths).expect("saves the vector keys");
        files(&paths).map(|path| fs::read(path).expect("reads a saved key"))
    })
}

/// The gateway keys of the vectors: identity `22…22`, sphinx `42…42`.
pub fn fixed_keys() -> NodeKeys {
    NodeKeys {
        identity: SigningKey::from_bytes(&vectors::hex32(
            vectors::file("handshake.json"),
            "gateway_identity_ed25519_secret_hex",
        )),
        sphinx: StaticSecret::from(vectors::hex32(
            vectors::file("final_hop.json"),
            "gateway_sphinx_private_key_hex",
        )),
    }
}

/// Private identity, public identity, private sphinx, public sphinx.
pub fn files(paths: &KeyPaths) -> [PathBuf; 4] {
    [
        paths.private_identity.clone(),
        paths.public_identity.clone(),
        paths.private_sphinx.clone(),
        paths.public_sphinx.clone(),
    ]
}

pub fn run(data: &[u8]) {
    let Some((&which, contents)) = data.split_first() else {
        return;
    };
    let which = usize::from(which % 4);
    let dir = tempfile::tempdir().expect("temporary directory");
    let paths = KeyPaths::in_dir(dir.path());
    let files = files(&paths);
    for (index, path) in files.iter().enumerate() {
        let bytes = if index == which {
            contents
        } else {
            &valid_files()[index][..]
        };
        fs::write(path, bytes).expect("writes a key file");
    }

    let expected = fixed_keys();
    match NodeKeys::load(&paths) {
        Ok(keys) => {
            assert_eq!(keys.identity_public_bs58(), expected.identity_public_bs58());
            assert_eq!(keys.sphinx_public_bs58(), expected.sphinx_public_bs58());
        }
        Err(err) => {
            let name = files[which]
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let message = err.to_string();
            assert!(
                message.contains(&name),
                "the error does not name {name}: {message}"
            );
        }
    }
}
