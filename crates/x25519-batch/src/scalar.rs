//! One point at a time: aws-lc's X25519 (faster than x25519-dalek's here, see the crate's
//! bench), or x25519-dalek's for the small-order points aws-lc refuses.

use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use zeroize::Zeroizing;

/// The secret as both libraries hold it.
pub(crate) struct ScalarSecret {
    aws_lc: Option<agreement::PrivateKey>,
    dalek: x25519_dalek::StaticSecret,
}

impl ScalarSecret {
    pub(crate) fn new(bytes: &Zeroizing<[u8; 32]>) -> Self {
        Self {
            // aws-lc takes any 32 bytes; if it ever refused, every point would go to dalek
            aws_lc: agreement::PrivateKey::from_private_key(&X25519, bytes.as_slice()).ok(),
            dalek: x25519_dalek::StaticSecret::from(**bytes),
        }
    }

    pub(crate) fn public_key(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.dalek).to_bytes()
    }

    pub(crate) fn agree(&self, point: &[u8; 32]) -> [u8; 32] {
        match self
            .aws_lc
            .as_ref()
            .and_then(|key| aws_lc_agree(key, point))
        {
            Some(shared) => shared,
            None => self.dalek.diffie_hellman(&(*point).into()).to_bytes(),
        }
    }

    /// x25519-dalek's X25519, for the bench and tests.
    pub(crate) fn agree_dalek(&self, point: &[u8; 32]) -> [u8; 32] {
        self.dalek.diffie_hellman(&(*point).into()).to_bytes()
    }
}

/// X25519 with aws-lc; `None` where aws-lc refuses: a point of small order gives all zeros,
/// which it reports as an error (x25519-dalek returns the zeros).
fn aws_lc_agree(key: &agreement::PrivateKey, point: &[u8; 32]) -> Option<[u8; 32]> {
    agreement::agree(key, UnparsedPublicKey::new(&X25519, point), (), |shared| {
        shared.try_into().map_err(|_| ())
    })
    .ok()
}
