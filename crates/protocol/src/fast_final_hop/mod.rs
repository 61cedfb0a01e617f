//! A faster way to remove our layer of a Sphinx packet, with exactly the results of
//! [`final_hop`](crate::final_hop).
//!
//! [`final_hop`](crate::final_hop) goes through `sphinx-packet`, whose X25519 (x25519-dalek)
//! is most of a hop's cost. This module does the X25519 with aws-lc, the private key parsed once
//! in [`FastSphinxSecret`], and implements the rest of a hop from the Sphinx format: key
//! expansion, header MAC, routing information, the Lioness payload layer (`keys`). Its results —
//! replay tag, version, final or forward hop, and the error of a bad packet, message included —
//! are those of [`final_hop::unwrap`](crate::final_hop::unwrap); the tests check it against
//! `sphinx-packet` on random packets of every size and version, on the vectors, and on
//! corrupted packets.
//!
//! The same two steps as in [`final_hop`](crate::final_hop), so the caller can consult its
//! replay filter before the payload is decrypted: [`FastPartiallyUnwrapped::new`] (X25519, key
//! expansion, header MAC) → [`FastPartiallyUnwrapped::replay_tag`] →
//! [`FastPartiallyUnwrapped::finish`]. [`unwrap_checked_fast`] and
//! [`unwrap_frame_checked_fast`] do both with the caller's replay check in between;
//! [`unwrap_fast`] and [`unwrap_frame_fast`] do both without one.
//!
//! Batches: [`FastPartiallyUnwrapped::new_many`] and [`unwrap_checked_fast_many`] take many
//! packets for the same key and compute the X25519 of all their α at once (`x25519-batch`:
//! eight at a time with AVX-512 IFMA), then do the rest of each packet as the single-packet
//! functions do; each packet's result is the one the single-packet function gives.
//!
//! A packet layout, for reference:
//!
//! ```text
//! [0..32)     α, the sender's blinded X25519 public key
//! [32..48)    header MAC over the routing information
//! [48..348)   encrypted routing information
//! [348..)     payload (Lioness-encrypted)
//! ```

mod keys;
#[cfg(test)]
mod tests;

use crate::final_hop::{
    split_surb_ack, FinalHop, ForwardHop, Hop, UnwrapError, Unwrapped, REPLAY_TAG_LEN,
};
use crate::framing::{Frame, KeyRotation};
use crate::packet_size::{PacketSize, UnknownPacketLength, SPHINX_HEADER_LEN};
use crate::routing_address;
use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use keys::{HopKeys, HOP_INFO_LEN, MAC_LEN, ROUTING_INFO_LEN};
use sphinx_packet::{Error as SphinxError, ErrorKind};
use std::time::Duration;
use thiserror::Error;
use zeroize::Zeroizing;

const ALPHA_LEN: usize = 32;
const _: () = assert!(ALPHA_LEN + MAC_LEN + ROUTING_INFO_LEN == SPHINX_HEADER_LEN);
const _: () = assert!(keys::REPLAY_TAG_LEN == REPLAY_TAG_LEN);

/// Routing flag of a hop that passes the packet on.
const FORWARD_HOP: u8 = 1;
/// Routing flag of the last hop.
const FINAL_HOP: u8 = 2;
/// Bytes of the leading zeros of a final-hop payload.
const PAYLOAD_ZEROS_LEN: usize = 16;

/// Why a [`FastSphinxSecret`] could not be set up.
#[derive(Debug, Error)]
pub enum FastSecretError {
    /// aws-lc refused the key.
    #[error("aws-lc could not load the x25519 sphinx key")]
    KeyRejected,
    /// aws-lc and x25519-dalek disagree about the key's public key or a key agreement.
    #[error("aws-lc's x25519 disagrees with x25519-dalek on this machine")]
    SelfTestFailed,
}

/// The gateway's x25519 sphinx secret key, loaded once for the fast path.
pub struct FastSphinxSecret {
    /// Used for every packet.
    aws_lc: agreement::PrivateKey,
    /// Used when aws-lc refuses a key agreement (a small-order α, whose shared secret is all
    /// zeros) so the result stays that of `sphinx-packet`.
    dalek: x25519_dalek::StaticSecret,
    /// Used for batches of packets.
    batch: x25519_batch::BatchSecret,
}

impl FastSphinxSecret {
    /// The key with these 32 secret bytes. Checks once that aws-lc and x25519-dalek agree on
    /// the public key and on one key agreement.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, FastSecretError> {
        let bytes = Zeroizing::new(bytes);
        let aws_lc = agreement::PrivateKey::from_private_key(&X25519, bytes.as_slice())
            .map_err(|_| FastSecretError::KeyRejected)?;
        let secret = Self {
            aws_lc,
            dalek: x25519_dalek::StaticSecret::from(*bytes),
            batch: x25519_batch::BatchSecret::from_bytes(*bytes),
        };
        let public = secret.public_key();
        let aws_lc_public = secret
            .aws_lc
            .compute_public_key()
            .map_err(|_| FastSecretError::SelfTestFailed)?;
        // any point will do: this one is fixed
        let probe = x25519_dalek::x25519([2; 32], x25519_dalek::X25519_BASEPOINT_BYTES);
        let agreed = aws_lc_agree(&secret.aws_lc, &probe);
        let expected = secret.dalek.diffie_hellman(&probe.into());
        // and the batch backend on eight lanes, the probe's in the last one
        let mut probes = [[9; 32]; 8];
        probes[7] = probe;
        let mut batch = Zeroizing::new([[0; 32]; 8]);
        secret.batch.agree_many(&probes, batch.as_mut_slice());
        if aws_lc_public.as_ref() != public.as_slice()
            || agreed.as_deref() != Some(expected.as_bytes())
            || batch[7] != *expected.as_bytes()
            || batch[0] != secret.dalek.diffie_hellman(&probes[0].into()).to_bytes()
        {
            return Err(FastSecretError::SelfTestFailed);
        }
        Ok(secret)
    }

    /// The matching x25519 public key, as announced to clients.
    pub fn public_key(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.dalek).to_bytes()
    }

    /// X25519 of our key and `point`: aws-lc's, or x25519-dalek's for the points aws-lc refuses.
    fn diffie_hellman(&self, point: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        match aws_lc_agree(&self.aws_lc, point) {
            Some(shared) => shared,
            None => Zeroizing::new(self.dalek.diffie_hellman(&(*point).into()).to_bytes()),
        }
    }
}

/// X25519 with aws-lc; `None` where aws-lc refuses: a point of small order gives all zeros,
/// which it reports as an error (x25519-dalek returns the zeros).
fn aws_lc_agree(key: &agreement::PrivateKey, point: &[u8; 32]) -> Option<Zeroizing<[u8; 32]>> {
    agreement::agree(key, UnparsedPublicKey::new(&X25519, point), (), |shared| {
        let shared: [u8; 32] = shared.try_into().map_err(|_| ())?;
        Ok(Zeroizing::new(shared))
    })
    .ok()
}

impl FastSphinxSecret {
    /// X25519 of our key and each of `points`, all at once: `out[i]` is
    /// [`diffie_hellman`](Self::diffie_hellman) of `points[i]`.
    fn diffie_hellman_many(&self, points: &[[u8; 32]]) -> Zeroizing<Vec<[u8; 32]>> {
        let mut out = Zeroizing::new(vec![[0; 32]; points.len()]);
        self.batch.agree_many(points, &mut out);
        out
    }
}

impl std::fmt::Debug for FastSphinxSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FastSphinxSecret(..)")
    }
}

/// A packet whose header MAC has been verified with our key; the payload is still encrypted.
pub struct FastPartiallyUnwrapped<'a> {
    alpha: &'a [u8; ALPHA_LEN],
    routing_info: &'a [u8; ROUTING_INFO_LEN],
    payload: &'a [u8],
    keys: HopKeys,
    packet_size: PacketSize,
    key_rotation: KeyRotation,
}

impl<'a> FastPartiallyUnwrapped<'a> {
    /// Checks `packet`'s size and verifies its header against `secret`. `key_rotation` is the
    /// incoming frame's; a SURB-ack inherits it.
    pub fn new(
        secret: &FastSphinxSecret,
        packet: &'a [u8],
        key_rotation: KeyRotation,
    ) -> Result<Self, UnwrapError> {
        let (packet_size, parts) = checked_parts(packet)?;
        let shared_secret = secret.diffie_hellman(parts.0);
        Self::verify(packet_size, parts, &shared_secret, key_rotation)
    }

    /// [`new`](Self::new) of each packet (with its frame's key rotation), the X25519 of all the
    /// packets' α computed at once: one result per packet, in order.
    pub fn new_many(
        secret: &FastSphinxSecret,
        packets: &[(&'a [u8], KeyRotation)],
    ) -> Vec<Result<Self, UnwrapError>> {
        let checked: Vec<_> = packets
            .iter()
            .map(|(packet, _)| checked_parts(packet))
            .collect();
        let alphas: Vec<[u8; ALPHA_LEN]> = checked
            .iter()
            .filter_map(|c| c.as_ref().ok().map(|(_, parts)| *parts.0))
            .collect();
        let shared_secrets = secret.diffie_hellman_many(&alphas);
        // one shared secret per packet that passed the size check, in order
        let mut next = 0;
        checked
            .into_iter()
            .zip(packets)
            .map(|(checked, &(_, key_rotation))| {
                let (packet_size, parts) = checked?;
                next += 1;
                Self::verify(packet_size, parts, &shared_secrets[next - 1], key_rotation)
            })
            .collect()
    }

    /// Expands the shared secret of a packet's α and verifies the header MAC.
    fn verify(
        packet_size: PacketSize,
        (alpha, mac, routing_info, payload): PacketParts<'a>,
        shared_secret: &[u8; 32],
        key_rotation: KeyRotation,
    ) -> Result<Self, UnwrapError> {
        let keys = HopKeys::expand(shared_secret);
        if !keys.header_mac_matches(mac, routing_info) {
            return Err(UnwrapError::HeaderIntegrity(SphinxError::new(
                ErrorKind::InvalidHeader,
                "failed to verify integrity MAC",
            )));
        }
        Ok(Self {
            alpha,
            routing_info,
            payload,
            keys,
            packet_size,
            key_rotation,
        })
    }

    /// The packet's replay tag: the same for every copy of the packet, unlinkable otherwise.
    pub fn replay_tag(&self) -> [u8; REPLAY_TAG_LEN] {
        self.keys.replay_tag()
    }

    /// Removes our layer.
    pub fn finish(self) -> Result<Unwrapped, UnwrapError> {
        // ours: flag (1), version (3), address (32), then for a forward hop the delay (8) and
        // the next hop's MAC (16); after it, the next hop's routing information
        let routing = self.keys.decrypt_routing_info(self.routing_info);
        let flag = routing[0];
        if flag != FORWARD_HOP && flag != FINAL_HOP {
            return Err(UnwrapError::Processing(SphinxError::new(
                ErrorKind::InvalidRouting,
                format!("tried to parse unknown routing flag: {flag}"),
            )));
        }
        // the version field is three bytes wide, the first one a legacy zero that nobody checks
        let sphinx_version = u16::from_be_bytes([routing[2], routing[3]]);
        let payload_key = self.keys.payload_key(sphinx_version);
        let mut address = [0; 32];
        address.copy_from_slice(&routing[4..36]);

        let hop = if flag == FORWARD_HOP {
            let mut delay = [0; 8];
            delay.copy_from_slice(&routing[36..44]);
            // the next header is the blinded α, then the next MAC and routing information just
            // as they came out of the decryption
            let mut packet = Vec::with_capacity(SPHINX_HEADER_LEN + self.payload.len());
            packet.extend_from_slice(&blind(self.alpha, &self.keys.blinding_factor()));
            packet.extend_from_slice(&routing[HOP_INFO_LEN - MAC_LEN..]);
            packet.extend_from_slice(self.payload);
            decrypt_payload(&payload_key, &mut packet[SPHINX_HEADER_LEN..])?;
            let (next_hop, _) =
                routing_address::decode(&address).map_err(UnwrapError::MalformedNextHop)?;
            Hop::Forward(ForwardHop {
                next_hop,
                delay: Duration::from_nanos(u64::from_be_bytes(delay)),
                packet,
            })
        } else {
            let mut payload = self.payload.to_vec();
            decrypt_payload(&payload_key, &mut payload)?;
            let plaintext = recover_plaintext(payload)?;
            let (ack, message) = split_surb_ack(self.packet_size, self.key_rotation, plaintext)?;
            Hop::Final(FinalHop {
                destination: address,
                message,
                ack,
            })
        };
        Ok(Unwrapped {
            replay_tag: self.keys.replay_tag(),
            sphinx_version,
            hop,
        })
    }
}

/// Unwraps `packet` (received in a frame with `key_rotation`) in one go.
pub fn unwrap_fast(
    secret: &FastSphinxSecret,
    packet: &[u8],
    key_rotation: KeyRotation,
) -> Result<Unwrapped, UnwrapError> {
    FastPartiallyUnwrapped::new(secret, packet, key_rotation)?.finish()
}

/// Unwraps the packet of a decoded frame in one go.
pub fn unwrap_frame_fast(
    secret: &FastSphinxSecret,
    frame: &Frame,
) -> Result<Unwrapped, UnwrapError> {
    unwrap_fast(secret, &frame.packet, frame.header.key_rotation)
}

/// Unwraps `packet` (received in a frame with `key_rotation`), asking `is_fresh` about its replay
/// tag once the header has verified: a packet whose tag is not fresh stops there, with
/// [`UnwrapError::Replayed`]. The results of
/// [`final_hop::unwrap_checked`](crate::final_hop::unwrap_checked).
pub fn unwrap_checked_fast(
    secret: &FastSphinxSecret,
    packet: &[u8],
    key_rotation: KeyRotation,
    is_fresh: impl FnOnce(&[u8; REPLAY_TAG_LEN]) -> bool,
) -> Result<Unwrapped, UnwrapError> {
    let partial = FastPartiallyUnwrapped::new(secret, packet, key_rotation)?;
    if !is_fresh(&partial.replay_tag()) {
        return Err(UnwrapError::Replayed);
    }
    partial.finish()
}

/// [`unwrap_checked_fast`] of each packet (with its frame's key rotation), the X25519 of all
/// the packets' α computed at once: one result per packet, in order. `is_fresh` is asked about
/// the replay tag of each packet whose header verifies, in packet order.
pub fn unwrap_checked_fast_many(
    secret: &FastSphinxSecret,
    packets: &[(&[u8], KeyRotation)],
    mut is_fresh: impl FnMut(&[u8; REPLAY_TAG_LEN]) -> bool,
) -> Vec<Result<Unwrapped, UnwrapError>> {
    FastPartiallyUnwrapped::new_many(secret, packets)
        .into_iter()
        .map(|partial| {
            let partial = partial?;
            if !is_fresh(&partial.replay_tag()) {
                return Err(UnwrapError::Replayed);
            }
            partial.finish()
        })
        .collect()
}

/// [`unwrap_checked_fast_many`] of the packets of decoded frames.
pub fn unwrap_frames_checked_fast_many(
    secret: &FastSphinxSecret,
    frames: &[&Frame],
    is_fresh: impl FnMut(&[u8; REPLAY_TAG_LEN]) -> bool,
) -> Vec<Result<Unwrapped, UnwrapError>> {
    let packets: Vec<_> = frames
        .iter()
        .map(|frame| (frame.packet.as_slice(), frame.header.key_rotation))
        .collect();
    unwrap_checked_fast_many(secret, &packets, is_fresh)
}

/// [`unwrap_checked_fast`] of the packet of a decoded frame.
pub fn unwrap_frame_checked_fast(
    secret: &FastSphinxSecret,
    frame: &Frame,
    is_fresh: impl FnOnce(&[u8; REPLAY_TAG_LEN]) -> bool,
) -> Result<Unwrapped, UnwrapError> {
    unwrap_checked_fast(secret, &frame.packet, frame.header.key_rotation, is_fresh)
}

/// A packet's α, header MAC, routing information and payload.
type PacketParts<'a> = (
    &'a [u8; ALPHA_LEN],
    &'a [u8; MAC_LEN],
    &'a [u8; ROUTING_INFO_LEN],
    &'a [u8],
);

/// The packet's size and parts, or the error of a packet of no known size.
fn checked_parts(packet: &[u8]) -> Result<(PacketSize, PacketParts<'_>), UnwrapError> {
    let packet_size = PacketSize::from_len(packet.len()).map_err(UnwrapError::InvalidSize)?;
    // every known size is longer than a header
    let parts =
        split_packet(packet).ok_or(UnwrapError::InvalidSize(UnknownPacketLength(packet.len())))?;
    Ok((packet_size, parts))
}

fn split_packet(packet: &[u8]) -> Option<PacketParts<'_>> {
    let (alpha, rest) = packet.split_first_chunk()?;
    let (mac, rest) = rest.split_first_chunk()?;
    let (routing_info, payload) = rest.split_first_chunk()?;
    Some((alpha, mac, routing_info, payload))
}

/// The next hop's α: X25519 of the blinding factor (clamped, as every X25519 scalar) and ours.
/// aws-lc's (loading the factor as a key costs a fixed-base multiplication, still less than
/// x25519-dalek's variable-base one), or x25519-dalek's where aws-lc refuses.
fn blind(alpha: &[u8; ALPHA_LEN], blinding_factor: &[u8; 32]) -> [u8; ALPHA_LEN] {
    agreement::PrivateKey::from_private_key(&X25519, blinding_factor)
        .ok()
        .and_then(|key| aws_lc_agree(&key, alpha))
        .map_or_else(
            || x25519_dalek::x25519(*blinding_factor, *alpha),
            |next| *next,
        )
}

fn decrypt_payload(key: &keys::PayloadKey, payload: &mut [u8]) -> Result<(), UnwrapError> {
    if keys::lioness_decrypt(key, payload) {
        Ok(())
    } else {
        Err(UnwrapError::Processing(SphinxError::new(
            ErrorKind::InvalidPayload,
            "error while unwrapping payload: invalid block length",
        )))
    }
}

/// The plaintext of a decrypted final-hop payload: 16 zeros, the plaintext, a `0x01` byte,
/// then zeros.
fn recover_plaintext(mut payload: Vec<u8>) -> Result<Vec<u8>, UnwrapError> {
    let malformed = |what: &str| {
        UnwrapError::PayloadRecovery(SphinxError::new(
            ErrorKind::InvalidPayload,
            format!("malformed payload - {what}"),
        ))
    };
    let Some((zeros, padded)) = payload.split_first_chunk::<PAYLOAD_ZEROS_LEN>() else {
        return Err(malformed("no leading zero padding present"));
    };
    if padded.is_empty() || zeros.iter().any(|&b| b != 0) {
        return Err(malformed("no leading zero padding present"));
    }
    let Some(end) = padded.iter().rposition(|&b| b == 1) else {
        return Err(malformed("invalid trailing padding"));
    };
    payload.truncate(PAYLOAD_ZEROS_LEN + end);
    payload.drain(..PAYLOAD_ZEROS_LEN);
    Ok(payload)
}
