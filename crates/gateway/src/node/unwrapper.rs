//! Which implementation unwraps Sphinx packets: our fast path (aws-lc X25519, proven
//! byte-identical to `sphinx-packet` by the protocol crate's tests) or the `sphinx-packet`
//! reference path, chosen by `final_hop_implementation` in `[debug]`.
//!
//! [`UnwrapKey::unwrap_frame_checked`] asks the caller's replay check between the two steps of
//! an unwrap, once the header has verified and before the payload is decrypted, so a replayed
//! packet costs only the first step (the X25519). On a regular packet the second step is about a
//! fifth of a final hop's unwrap on the fast path and more than half of a forward hop's (the
//! protocol crate's `unwrap_steps_*` benches).
//!
//! [`UnwrapKey::unwrap_frames_checked`] unwraps several frames for the same key: on the fast
//! path the X25519 of all their α is computed at once (eight at a time with AVX-512 IFMA), each
//! frame's result that of [`UnwrapKey::unwrap_frame_checked`].

use gateway_protocol::fast_final_hop::{
    unwrap_frame_checked_fast, unwrap_frames_checked_fast_many, FastSphinxSecret,
};
use gateway_protocol::final_hop::{self, SphinxSecret, UnwrapError, Unwrapped, REPLAY_TAG_LEN};
use gateway_protocol::framing::Frame;

use crate::config::FinalHopImplementation;

/// Something that can unwrap a framed Sphinx packet with the gateway's sphinx key.
pub trait UnwrapKey: Send + Sync {
    /// Unwraps one frame, asking `is_fresh` about its replay tag once the header has verified:
    /// a packet whose tag is not fresh is left there, as [`UnwrapError::Replayed`]. `is_fresh`
    /// is not asked about a packet whose header fails.
    fn unwrap_frame_checked(
        &self,
        frame: &Frame,
        is_fresh: impl FnOnce(&[u8; REPLAY_TAG_LEN]) -> bool,
    ) -> Result<Unwrapped, UnwrapError>;

    /// Unwraps one frame whatever its replay tag.
    fn unwrap_frame(&self, frame: &Frame) -> Result<Unwrapped, UnwrapError> {
        self.unwrap_frame_checked(frame, |_| true)
    }

    /// [`unwrap_frame_checked`](Self::unwrap_frame_checked) of each frame, in order (`is_fresh`
    /// asked in frame order too): one result per frame.
    fn unwrap_frames_checked(
        &self,
        frames: &[&Frame],
        mut is_fresh: impl FnMut(&[u8; REPLAY_TAG_LEN]) -> bool,
    ) -> Vec<Result<Unwrapped, UnwrapError>> {
        frames
            .iter()
            .map(|frame| self.unwrap_frame_checked(frame, &mut is_fresh))
            .collect()
    }
}

impl UnwrapKey for SphinxSecret {
    fn unwrap_frame_checked(
        &self,
        frame: &Frame,
        is_fresh: impl FnOnce(&[u8; REPLAY_TAG_LEN]) -> bool,
    ) -> Result<Unwrapped, UnwrapError> {
        final_hop::unwrap_frame_checked(self, frame, is_fresh)
    }
}

/// The configured implementation, holding the key in the form it needs.
pub enum Unwrapper {
    /// `sphinx-packet` 0.8.0, as Nym's own nodes do it.
    Reference(SphinxSecret),
    /// Our faster path.
    Fast(FastSphinxSecret),
}

impl Unwrapper {
    /// Builds the configured implementation from the 32-byte sphinx secret.
    pub fn new(secret: [u8; 32], implementation: FinalHopImplementation) -> anyhow::Result<Self> {
        Ok(match implementation {
            FinalHopImplementation::Reference => Self::Reference(SphinxSecret::from_bytes(secret)),
            FinalHopImplementation::Fast => {
                Self::Fast(FastSphinxSecret::from_bytes(secret).map_err(|e| {
                    anyhow::anyhow!("failed to load the sphinx key for the fast unwrap path: {e}")
                })?)
            }
        })
    }
}

impl UnwrapKey for Unwrapper {
    fn unwrap_frame_checked(
        &self,
        frame: &Frame,
        is_fresh: impl FnOnce(&[u8; REPLAY_TAG_LEN]) -> bool,
    ) -> Result<Unwrapped, UnwrapError> {
        match self {
            Self::Reference(secret) => final_hop::unwrap_frame_checked(secret, frame, is_fresh),
            Self::Fast(secret) => unwrap_frame_checked_fast(secret, frame, is_fresh),
        }
    }

    fn unwrap_frames_checked(
        &self,
        frames: &[&Frame],
        mut is_fresh: impl FnMut(&[u8; REPLAY_TAG_LEN]) -> bool,
    ) -> Vec<Result<Unwrapped, UnwrapError>> {
        match self {
            Self::Reference(secret) => frames
                .iter()
                .map(|frame| final_hop::unwrap_frame_checked(secret, frame, &mut is_fresh))
                .collect(),
            Self::Fast(secret) => unwrap_frames_checked_fast_many(secret, frames, is_fresh),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_protocol::final_hop::Hop;

    fn vector() -> serde_json::Value {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/vectors/final_hop.json"
        ))
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn both_implementations_unwrap_the_vector_identically() {
        let v = vector();
        let secret: [u8; 32] = [0x42; 32];
        let framed = hex::decode(v["framed_v7_hex"].as_str().unwrap()).unwrap();
        let (frame, _) = gateway_protocol::framing::decode(&framed).unwrap().unwrap();
        let fast = Unwrapper::new(secret, FinalHopImplementation::Fast).unwrap();
        let reference = Unwrapper::new(secret, FinalHopImplementation::Reference).unwrap();
        assert!(matches!(fast, Unwrapper::Fast(_)));
        assert!(matches!(reference, Unwrapper::Reference(_)));
        let a = fast.unwrap_frame(&frame).unwrap();
        let b = reference.unwrap_frame(&frame).unwrap();
        assert_eq!(a.replay_tag, b.replay_tag);
        let (Hop::Final(a), Hop::Final(b)) = (a.hop, b.hop) else {
            panic!("a final hop")
        };
        assert_eq!(a.message, b.message);
        assert_eq!(a.destination, b.destination);
        assert_eq!(
            hex::encode(&a.message),
            v["expected_message_hex"].as_str().unwrap()
        );
    }

    #[test]
    fn a_batch_of_frames_unwraps_as_each_frame_alone() {
        let v = vector();
        let framed = hex::decode(v["framed_v7_hex"].as_str().unwrap()).unwrap();
        let (frame, _) = gateway_protocol::framing::decode(&framed).unwrap().unwrap();
        let mut tampered = frame.clone();
        tampered.packet[40] ^= 1; // the header MAC
        let mut short = frame.clone();
        short.packet.truncate(100);
        let frames = [
            &frame, &tampered, &frame, &short, &frame, &frame, &tampered, &frame, &frame,
        ];
        for implementation in [
            FinalHopImplementation::Fast,
            FinalHopImplementation::Reference,
        ] {
            let unwrapper = Unwrapper::new([0x42; 32], implementation).unwrap();
            for n in 1..=frames.len() {
                // the second tag asked about is "seen"
                let mut asked = 0;
                let many = unwrapper.unwrap_frames_checked(&frames[..n], |_| {
                    asked += 1;
                    asked != 2
                });
                let mut asked = 0;
                for (frame, many) in frames[..n].iter().zip(&many) {
                    let single = unwrapper.unwrap_frame_checked(frame, |_| {
                        asked += 1;
                        asked != 2
                    });
                    assert_eq!(format!("{many:?}"), format!("{single:?}"));
                }
                assert_eq!(many.len(), n);
            }
        }
    }

    #[test]
    fn both_implementations_ask_about_the_replay_tag_before_the_payload() {
        let v = vector();
        let framed = hex::decode(v["framed_v7_hex"].as_str().unwrap()).unwrap();
        let (frame, _) = gateway_protocol::framing::decode(&framed).unwrap().unwrap();
        let mut tampered = frame.clone();
        tampered.packet[40] ^= 1; // the header MAC
        let tag = hex::decode(v["replay_tag_hex"].as_str().unwrap()).unwrap();
        for implementation in [
            FinalHopImplementation::Fast,
            FinalHopImplementation::Reference,
        ] {
            let unwrapper = Unwrapper::new([0x42; 32], implementation).unwrap();
            // a replay filter of one tag
            let mut seen = Vec::new();
            let mut check = |t: &[u8; REPLAY_TAG_LEN]| {
                let fresh = !seen.contains(t);
                seen.push(*t);
                fresh
            };
            let first = unwrapper.unwrap_frame_checked(&frame, &mut check).unwrap();
            assert_eq!(first.replay_tag.to_vec(), tag);
            assert_eq!(first, unwrapper.unwrap_frame(&frame).unwrap());
            assert!(matches!(
                unwrapper.unwrap_frame_checked(&frame, &mut check),
                Err(UnwrapError::Replayed)
            ));
            assert!(matches!(
                unwrapper.unwrap_frame_checked(&tampered, &mut check),
                Err(UnwrapError::HeaderIntegrity(_))
            ));
            assert_eq!(seen.len(), 2);
        }
    }
}
