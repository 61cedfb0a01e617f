//! The per-hop keys of a Sphinx layer and the symmetric operations that use them.
//!
//! From the 32-byte X25519 shared secret, HKDF-SHA256 (empty salt, a fixed info string) expands
//! 288 bytes, cut in this order:
//!
//! ```text
//! [0..16)     AES-128-CTR key of the routing information
//! [16..32)    HMAC-SHA256 key of the header MAC (truncated to 16 bytes)
//! [32..224)   payload key of Sphinx versions 1, 257 and 258 (Lioness, 192 bytes);
//!             newer versions take [32..48) as a seed and expand it with a second HKDF
//! [224..256)  blinding factor: the next hop's α is X25519(blinding factor, α)
//! [256..288)  replay tag
//! ```
//!
//! The replay tag comes last, so the whole expansion runs before the replay filter can be asked.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::ops::Range;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Bytes of the header MAC.
pub(super) const MAC_LEN: usize = 16;
/// Bytes one hop takes in the routing information: flag (1), version (3), next address (32),
/// delay (8), next hop's MAC (16).
pub(super) const HOP_INFO_LEN: usize = 1 + 3 + 32 + 8 + MAC_LEN;
/// Bytes of the encrypted routing information: room for five hops.
pub(super) const ROUTING_INFO_LEN: usize = 5 * HOP_INFO_LEN;
/// The routing information with one hop's worth of zeros appended before decryption, so the
/// next hop's routing information comes out whole.
pub(super) const PADDED_ROUTING_INFO_LEN: usize = ROUTING_INFO_LEN + HOP_INFO_LEN;
/// Bytes of a Lioness payload key.
pub(super) const PAYLOAD_KEY_LEN: usize = 192;
/// Bytes of the replay tag.
pub(super) const REPLAY_TAG_LEN: usize = 32;

const STREAM_KEY_LEN: usize = 16;
const PAYLOAD_KEY_SEED_LEN: usize = 16;
const BLINDING_FACTOR_LEN: usize = 32;
const EXPANDED_LEN: usize =
    STREAM_KEY_LEN + MAC_LEN + PAYLOAD_KEY_LEN + BLINDING_FACTOR_LEN + REPLAY_TAG_LEN;

/// HKDF info of the shared-secret expansion (a fixed string of the Sphinx format; its salt is
/// empty).
pub(super) const EXPANSION_INFO: &[u8] =
    b"Dwste mou enan moxlo arketa makru kai ena upomoxlio gia na ton topothetisw kai tha kinisw thn gh.";
/// HKDF salt of the payload-key derivation of versions after 258.
pub(super) const PAYLOAD_KEY_SALT: &[u8] = b"sphinx-payload-key-V01-CS01-HKDF:SHA256-SALT";
/// HKDF info of the payload-key derivation of versions after 258.
pub(super) const PAYLOAD_KEY_INFO: &[u8] = b"sphinx-payload-key-V01-CS01-HKDF:SHA256-INFO";

/// Versions whose payload key is taken whole from the expansion rather than derived from a seed.
const FULL_PAYLOAD_KEY_VERSIONS: [u16; 3] = [1, 257, 258];

/// A Lioness payload key. Wiped when dropped.
pub(super) type PayloadKey = Zeroizing<[u8; PAYLOAD_KEY_LEN]>;

/// The expansion is cut into 16-byte units: every part starts and ends on one.
const UNIT: usize = 16;
const _: () = assert!(EXPANDED_LEN.is_multiple_of(UNIT));
const STREAM_KEY_UNIT: usize = 0;
const MAC_KEY_UNIT: usize = 1;
const PAYLOAD_KEY_UNITS: Range<usize> = 2..2 + PAYLOAD_KEY_LEN / UNIT;
const BLINDING_FACTOR_UNITS: Range<usize> =
    PAYLOAD_KEY_UNITS.end..PAYLOAD_KEY_UNITS.end + BLINDING_FACTOR_LEN / UNIT;
const REPLAY_TAG_UNITS: Range<usize> =
    BLINDING_FACTOR_UNITS.end..BLINDING_FACTOR_UNITS.end + REPLAY_TAG_LEN / UNIT;
const _: () = assert!(REPLAY_TAG_UNITS.end * UNIT == EXPANDED_LEN);
const _: () = assert!(STREAM_KEY_LEN == UNIT && MAC_LEN == UNIT && PAYLOAD_KEY_SEED_LEN == UNIT);

/// The expanded secrets of one hop. Wiped when dropped.
pub(super) struct HopKeys(Zeroizing<[[u8; UNIT]; EXPANDED_LEN / UNIT]>);

impl HopKeys {
    /// Expands an X25519 shared secret.
    pub(super) fn expand(shared_secret: &[u8; 32]) -> Self {
        let mut units = Zeroizing::new([[0; UNIT]; EXPANDED_LEN / UNIT]);
        // the length is a constant far below HKDF-SHA256's limit of 255 × 32 bytes
        let result = Hkdf::<Sha256>::new(Some(&[]), shared_secret)
            .expand(EXPANSION_INFO, units.as_flattened_mut());
        debug_assert!(result.is_ok());
        Self(units)
    }

    /// The packet's replay tag.
    pub(super) fn replay_tag(&self) -> [u8; REPLAY_TAG_LEN] {
        let mut tag = [0; REPLAY_TAG_LEN];
        tag.copy_from_slice(self.0[REPLAY_TAG_UNITS].as_flattened());
        tag
    }

    /// The blinding factor for the next hop's α (an X25519 scalar, clamped when used).
    pub(super) fn blinding_factor(&self) -> Zeroizing<[u8; BLINDING_FACTOR_LEN]> {
        let mut factor = Zeroizing::new([0; BLINDING_FACTOR_LEN]);
        factor.copy_from_slice(self.0[BLINDING_FACTOR_UNITS].as_flattened());
        factor
    }

    /// The header MAC of `routing_info`: HMAC-SHA256 under our MAC key, truncated.
    pub(super) fn header_mac(&self, routing_info: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = [0; MAC_LEN];
        // HMAC takes keys of any length
        if let Ok(mut hmac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0[MAC_KEY_UNIT]) {
            hmac.update(routing_info);
            mac.copy_from_slice(&hmac.finalize().into_bytes()[..MAC_LEN]);
        }
        mac
    }

    /// Whether `mac` is the header MAC of `routing_info` (compared in constant time).
    pub(super) fn header_mac_matches(&self, mac: &[u8; MAC_LEN], routing_info: &[u8]) -> bool {
        self.header_mac(routing_info).ct_eq(mac).into()
    }

    /// Decrypts the routing information, padded with one hop's worth of zeros: the first
    /// [`HOP_INFO_LEN`] bytes are ours, the rest is the next hop's routing information.
    pub(super) fn decrypt_routing_info(
        &self,
        routing_info: &[u8; ROUTING_INFO_LEN],
    ) -> [u8; PADDED_ROUTING_INFO_LEN] {
        use aes::cipher::{KeyIvInit, StreamCipher};
        // a 64-bit big-endian block counter from a zero IV; the keystream is 23 blocks long, so
        // any counter width gives the same bytes
        type Aes128Ctr = ctr::Ctr64BE<aes::Aes128>;

        let mut out = [0; PADDED_ROUTING_INFO_LEN];
        out[..ROUTING_INFO_LEN].copy_from_slice(routing_info);
        let mut cipher = Aes128Ctr::new((&self.0[STREAM_KEY_UNIT]).into(), &[0; 16].into());
        cipher.apply_keystream(&mut out);
        out
    }

    /// The payload key of a packet of Sphinx `version`: versions 1, 257 and 258 use the
    /// expanded bytes as they are; every other version (259, 260 and any future one) expands
    /// their first 16 bytes with HKDF-SHA256.
    pub(super) fn payload_key(&self, version: u16) -> PayloadKey {
        let mut key = Zeroizing::new([0; PAYLOAD_KEY_LEN]);
        if FULL_PAYLOAD_KEY_VERSIONS.contains(&version) {
            key.copy_from_slice(self.0[PAYLOAD_KEY_UNITS].as_flattened());
        } else {
            let seed = &self.0[PAYLOAD_KEY_UNITS.start];
            let result = Hkdf::<Sha256>::new(Some(PAYLOAD_KEY_SALT), seed)
                .expand(PAYLOAD_KEY_INFO, key.as_mut_slice());
            debug_assert!(result.is_ok());
        }
        key
    }
}

/// Bytes of the Lioness block's left part: the ChaCha20 key length and the BLAKE2b output.
const LIONESS_LEFT_LEN: usize = 32;

/// Removes one Lioness layer from `block` (which is longer than 32 bytes; every Sphinx payload
/// is). Lioness with ChaCha20 (zero nonce) as the stream cipher and keyed BLAKE2b-256 as the
/// MAC; the 192-byte key is `k1 (32) ‖ k2 (64) ‖ k3 (32) ‖ k4 (64)`. With `L` the first 32
/// bytes of the block and `R` the rest, decryption runs the rounds in reverse:
///
/// ```text
/// L ^= BLAKE2b(k4, R);  R ^= ChaCha20(L ^ k3);  L ^= BLAKE2b(k2, R);  R ^= ChaCha20(L ^ k1)
/// ```
///
/// Returns `false` (the block untouched) when the block is too short.
pub(super) fn lioness_decrypt(key: &[u8; PAYLOAD_KEY_LEN], block: &mut [u8]) -> bool {
    if block.len() <= LIONESS_LEFT_LEN {
        return false;
    }
    let (left, right) = block.split_at_mut(LIONESS_LEFT_LEN);
    let (k1, rest) = key.split_at(32);
    let (k2, rest) = rest.split_at(64);
    let (k3, k4) = rest.split_at(32);
    xor_keyed_blake2b(left, k4, right);
    xor_chacha20(right, left, k3);
    xor_keyed_blake2b(left, k2, right);
    xor_chacha20(right, left, k1);
    true
}

/// `left ^= BLAKE2b-256(key, data)`; `key` is 64 bytes, BLAKE2b's longest.
fn xor_keyed_blake2b(left: &mut [u8], key: &[u8], data: &[u8]) {
    let hash = blake2b_simd::Params::new()
        .hash_length(32)
        .key(key)
        .hash(data);
    for (l, h) in left.iter_mut().zip(hash.as_bytes()) {
        *l ^= h;
    }
}

/// `data ^= ChaCha20(left ^ key)` with a zero nonce.
fn xor_chacha20(data: &mut [u8], left: &[u8], key: &[u8]) {
    use chacha20::cipher::{KeyIvInit, StreamCipher};
    let mut stream_key = Zeroizing::new([0u8; 32]);
    for ((k, l), r) in stream_key.iter_mut().zip(left).zip(key) {
        *k = l ^ r;
    }
    let mut cipher = chacha20::ChaCha20::new((&*stream_key).into(), &[0; 12].into());
    cipher.apply_keystream(data);
}
