//! The network's clock: epochs of a fixed length from a genesis moment, and key rotations of a
//! fixed number of epochs, as the mixnet contract would advance them. Computed from the wall
//! clock, so an epoch never looks stuck to a node (nym-node refuses to start when it does).

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

/// Epoch length when none is given: long enough that keys stay put while a person experiments.
pub const DEFAULT_EPOCH: Duration = Duration::from_secs(3600);
/// Epochs a key rotation lasts when none is given (mainnet's value).
pub const DEFAULT_ROTATION_EPOCHS: u32 = 24;

/// When epochs begin and how long they and rotations last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Start of epoch 0.
    pub genesis: SystemTime,
    /// Length of an epoch (at least one second).
    pub epoch: Duration,
    /// Epochs per key rotation (at least one).
    pub rotation_epochs: u32,
}

/// The epoch at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    /// Absolute epoch id.
    pub id: u32,
    /// When it began.
    pub start: SystemTime,
    /// The key rotation it belongs to.
    pub rotation_id: u32,
}

/// `2023-11-14T22:13:20Z`: the form nym-api's `time::serde::rfc3339` reads.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

impl Clock {
    /// A clock whose epoch 0 begins at `genesis`; zero lengths are raised to their minimum.
    pub fn new(genesis: SystemTime, epoch: Duration, rotation_epochs: u32) -> Self {
        Self {
            genesis,
            epoch: epoch.max(Duration::from_secs(1)),
            rotation_epochs: rotation_epochs.max(1),
        }
    }

    /// The epoch at `now` (epoch 0 before genesis).
    pub fn epoch(&self, now: SystemTime) -> Epoch {
        let elapsed = now.duration_since(self.genesis).unwrap_or_default();
        let id = u32::try_from(elapsed.as_nanos() / self.epoch.as_nanos()).unwrap_or(u32::MAX);
        Epoch {
            id,
            start: self.genesis + self.epoch * id,
            rotation_id: id / self.rotation_epochs,
        }
    }

    /// `KeyRotationInfoResponse` at `now`. Rotations start at epoch 0
    /// (`key_rotation_state.initial_epoch_id`), so rotation `r` spans epochs
    /// `r * rotation_epochs ..= (r + 1) * rotation_epochs - 1`.
    pub fn key_rotation_info(&self, now: SystemTime) -> Value {
        let epoch = self.epoch(now);
        let starting = epoch.rotation_id * self.rotation_epochs;
        json!({
            "key_rotation_state": { "validity_epochs": self.rotation_epochs, "initial_epoch_id": 0 },
            "current_absolute_epoch_id": epoch.id,
            "current_epoch_start": rfc3339(epoch.start),
            "epoch_duration": { "secs": self.epoch.as_secs(), "nanos": self.epoch.subsec_nanos() },
            "progress": {
                "current_key_rotation_id": epoch.rotation_id,
                "current_rotation_starting_epoch": starting,
                "current_rotation_ending_epoch": starting + self.rotation_epochs - 1,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_and_rotations_follow_the_wall_clock() {
        let genesis = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = Clock::new(genesis, Duration::from_secs(40), 2);
        let at = |secs| genesis + Duration::from_secs(secs);
        assert_eq!(clock.epoch(at(0)).id, 0);
        assert_eq!(clock.epoch(at(39)).rotation_id, 0);
        let e = clock.epoch(at(85));
        assert_eq!((e.id, e.rotation_id), (2, 1));
        assert_eq!(e.start, at(80));
        // Before genesis (a clock set back) is still epoch 0, not a panic.
        assert_eq!(clock.epoch(at(0) - Duration::from_secs(5)).id, 0);

        let info = clock.key_rotation_info(at(125));
        assert_eq!(info["current_absolute_epoch_id"], 3);
        assert_eq!(info["epoch_duration"], json!({"secs": 40, "nanos": 0}));
        assert_eq!(info["progress"]["current_key_rotation_id"], 1);
        assert_eq!(info["progress"]["current_rotation_starting_epoch"], 2);
        assert_eq!(info["progress"]["current_rotation_ending_epoch"], 3);
    }

    #[test]
    fn zero_lengths_are_raised_to_their_minimum() {
        let clock = Clock::new(SystemTime::UNIX_EPOCH, Duration::ZERO, 0);
        assert_eq!(clock.epoch, Duration::from_secs(1));
        assert_eq!(clock.rotation_epochs, 1);
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 4);
        assert_eq!(
            clock.epoch(far).id,
            u32::MAX,
            "saturates instead of wrapping"
        );
    }
}
