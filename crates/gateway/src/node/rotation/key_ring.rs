//! The sphinx keys in use: a primary key and, around a rotation boundary, a secondary one
//! (the pre-announced key of the next rotation, or the previous key during the overlap). Each
//! key has its own replay filter, retired with it, so a tag seen under one key never fills up
//! another's filter and an old rotation's tags leave memory with their key.
//!
//! Unwrap jobs take a snapshot ([`KeyRing::current`], one `Arc` clone) so a swap never
//! changes the keys under a batch being unwrapped.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use gateway_protocol::framing::KeyRotation;

use super::super::replay::{ReplayFile, ReplayFilter};
use super::super::unwrapper::Unwrapper;
use super::LEGACY_ROTATION_ID;

/// One sphinx key with what belongs to it.
pub struct RotationKey {
    /// The rotation it is for, or [`LEGACY_ROTATION_ID`] for the static key.
    pub rotation_id: u32,
    /// Its public half.
    pub public: [u8; 32],
    /// Unwraps with it (shared when the static key becomes a rotation's key).
    pub unwrapper: Arc<Unwrapper>,
    /// Replay tags of packets unwrapped with it.
    pub replay: Arc<Mutex<ReplayFilter>>,
    /// Where that filter is saved.
    pub replay_file: ReplayFile,
}

impl std::fmt::Debug for RotationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotationKey")
            .field("rotation_id", &self.rotation_id)
            .field("public", &bs58::encode(self.public).into_string())
            .finish_non_exhaustive()
    }
}

impl RotationKey {
    /// Whether packets marked `rotation` were built for this key.
    fn matches(&self, rotation: KeyRotation) -> bool {
        match rotation {
            KeyRotation::Unknown => true,
            KeyRotation::Odd => !self.rotation_id.is_multiple_of(2),
            KeyRotation::Even => self.rotation_id.is_multiple_of(2),
        }
    }

    /// Whether this is the static key of a gateway that does not rotate.
    pub fn is_static(&self) -> bool {
        self.rotation_id == LEGACY_ROTATION_ID
    }
}

/// The keys at one moment.
#[derive(Debug, Clone)]
pub struct KeySet {
    /// Used for packets that do not say their rotation, first.
    pub primary: Arc<RotationKey>,
    /// The other key, if any.
    pub secondary: Option<Arc<RotationKey>>,
}

impl KeySet {
    /// Only `primary`.
    pub fn single(primary: Arc<RotationKey>) -> Self {
        Self {
            primary,
            secondary: None,
        }
    }

    /// The keys to try, in order, for a packet whose frame says `rotation`: the key of that
    /// parity; for an unmarked packet (v7 frames), the primary then the secondary, as
    /// nym-node does. The static key takes every packet (a node without rotation has only
    /// it; clients mark packets with the network's rotation, not with its key). Empty when
    /// no key of that parity is held: the packet was built for a key already deleted (or
    /// not yet made).
    pub fn candidates(&self, rotation: KeyRotation) -> impl Iterator<Item = &Arc<RotationKey>> {
        let keys = [Some(&self.primary), self.secondary.as_ref()];
        let first = keys.into_iter().flatten().find(|k| k.matches(rotation));
        let (first, second) = match (rotation, first) {
            (KeyRotation::Unknown, _) => (Some(&self.primary), self.secondary.as_ref()),
            (_, Some(key)) => (Some(key), None),
            (_, None) if self.primary.is_static() => (Some(&self.primary), None),
            (_, None) => (None, None),
        };
        first.into_iter().chain(second)
    }

    /// Every key held.
    pub fn keys(&self) -> impl Iterator<Item = &Arc<RotationKey>> {
        std::iter::once(&self.primary).chain(self.secondary.as_ref())
    }

    /// The secondary key when it is the next rotation's (what host-information announces
    /// as pre-announced), not the previous rotation's.
    pub fn pre_announced(&self) -> Option<&Arc<RotationKey>> {
        self.secondary
            .as_ref()
            .filter(|s| !self.primary.is_static() && s.rotation_id == self.primary.rotation_id + 1)
    }
}

/// The current [`KeySet`], shared by every stage that unwraps or describes the node.
#[derive(Debug, Clone)]
pub struct KeyRing {
    current: Arc<RwLock<Arc<KeySet>>>,
}

impl KeyRing {
    /// A ring holding `keys`.
    pub fn new(keys: KeySet) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(keys))),
        }
    }

    /// The keys now.
    pub fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the keys; unwraps already under way finish with the old set.
    pub fn replace(&self, keys: KeySet) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FinalHopImplementation;
    use crate::node::replay::ReplaySettings;

    fn key(rotation_id: u32) -> Arc<RotationKey> {
        let settings = ReplaySettings::from_config(&crate::config::Tuning::default());
        Arc::new(RotationKey {
            rotation_id,
            public: [rotation_id as u8; 32],
            unwrapper: Arc::new(
                Unwrapper::new([7; 32], FinalHopImplementation::Reference).unwrap(),
            ),
            replay: Arc::new(Mutex::new(ReplayFilter::new(settings))),
            replay_file: ReplayFile::new("/nonexistent".into(), [0; 32]),
        })
    }

    fn ids(set: &KeySet, rotation: KeyRotation) -> Vec<u32> {
        set.candidates(rotation).map(|k| k.rotation_id).collect()
    }

    #[test]
    fn the_rotation_byte_picks_the_key() {
        use KeyRotation::{Even, Odd, Unknown};
        let overlap = KeySet {
            primary: key(6),
            secondary: Some(key(5)),
        };
        let announced = KeySet {
            primary: key(6),
            secondary: Some(key(7)),
        };
        let alone = KeySet::single(key(6));
        let fixed = KeySet::single(key(LEGACY_ROTATION_ID));
        let cases: &[(&str, &KeySet, KeyRotation, &[u32])] = &[
            ("even: the even primary", &overlap, Even, &[6]),
            (
                "odd: the previous key during the overlap",
                &overlap,
                Odd,
                &[5],
            ),
            ("odd: the pre-announced key", &announced, Odd, &[7]),
            (
                "unmarked: primary, then secondary",
                &overlap,
                Unknown,
                &[6, 5],
            ),
            ("unmarked, one key", &alone, Unknown, &[6]),
            (
                "odd with only an even key: none (deleted key)",
                &alone,
                Odd,
                &[],
            ),
            (
                "the static key takes odd",
                &fixed,
                Odd,
                &[LEGACY_ROTATION_ID],
            ),
            (
                "the static key takes even",
                &fixed,
                Even,
                &[LEGACY_ROTATION_ID],
            ),
            (
                "the static key takes unmarked",
                &fixed,
                Unknown,
                &[LEGACY_ROTATION_ID],
            ),
        ];
        for (name, set, rotation, expected) in cases {
            assert_eq!(ids(set, *rotation), *expected, "{name}");
        }
    }

    #[test]
    fn only_the_next_rotations_key_is_pre_announced() {
        let announced = KeySet {
            primary: key(6),
            secondary: Some(key(7)),
        };
        let overlap = KeySet {
            primary: key(6),
            secondary: Some(key(5)),
        };
        assert_eq!(announced.pre_announced().map(|k| k.rotation_id), Some(7));
        assert!(overlap.pre_announced().is_none());
        assert!(KeySet::single(key(6)).pre_announced().is_none());
    }

    #[test]
    fn a_snapshot_keeps_its_keys_across_a_replace() {
        let ring = KeyRing::new(KeySet::single(key(1)));
        let before = ring.current();
        ring.replace(KeySet {
            primary: key(2),
            secondary: Some(key(1)),
        });
        assert_eq!(before.primary.rotation_id, 1);
        assert_eq!(ring.current().primary.rotation_id, 2);
    }
}
