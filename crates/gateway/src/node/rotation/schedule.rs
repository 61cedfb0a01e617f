//! When the sphinx keys change: nym-api's key-rotation information, and the next step of the
//! rotation for the keys held, computed without I/O so every case is a unit test.
//!
//! The steps follow nym-node 1.31's controller: a key for the next rotation is generated and
//! pre-announced at the start of the rotation's last epoch, becomes the primary key at the
//! rotation boundary (the old one stays as the secondary for one epoch of overlap, for packets
//! built with a topology fetched before the boundary) and the old key is purged at the start of
//! the new rotation's second epoch. The time arithmetic is done on the epoch boundaries nym-api
//! gives, exactly; nym-node's own checks for a stuck epoch and for clock skew never fire (their
//! arithmetic is off), which here are real checks.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use thiserror::Error;

/// `key_rotation_state` of nym-api's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct KeyRotationState {
    /// Epochs one rotation lasts.
    pub validity_epochs: u32,
    /// The epoch rotation 0 began.
    pub initial_epoch_id: u32,
}

/// The fields of nym-api's `GET /v1/epoch/key-rotation-info` the gateway uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationInfo {
    /// How long rotations last.
    pub state: KeyRotationState,
    /// The epoch nym-api is in.
    pub current_epoch: u32,
    /// When that epoch began.
    pub current_epoch_start: SystemTime,
    /// How long an epoch lasts.
    pub epoch_duration: Duration,
}

/// Why an answer from nym-api is not usable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InfoError {
    /// Not the expected JSON.
    #[error("not a key-rotation-info answer: {0}")]
    Json(String),
    /// `current_epoch_start` is not an RFC 3339 UTC time.
    #[error("current_epoch_start {0:?} is not an RFC 3339 UTC time")]
    Time(String),
    /// A zero that would divide: no rotation can be computed from it.
    #[error("{0} is zero")]
    Zero(&'static str),
}

#[derive(Deserialize)]
struct Wire {
    key_rotation_state: KeyRotationState,
    current_absolute_epoch_id: u32,
    current_epoch_start: String,
    epoch_duration: Duration,
}

impl RotationInfo {
    /// Parses (and checks) the body of `GET /v1/epoch/key-rotation-info`.
    pub fn parse(body: &[u8]) -> Result<Self, InfoError> {
        let wire: Wire =
            serde_json::from_slice(body).map_err(|e| InfoError::Json(e.to_string()))?;
        if wire.key_rotation_state.validity_epochs == 0 {
            return Err(InfoError::Zero("key_rotation_state.validity_epochs"));
        }
        if wire.epoch_duration.is_zero() {
            return Err(InfoError::Zero("epoch_duration"));
        }
        Ok(Self {
            state: wire.key_rotation_state,
            current_epoch: wire.current_absolute_epoch_id,
            current_epoch_start: parse_utc(&wire.current_epoch_start)?,
            epoch_duration: wire.epoch_duration,
        })
    }

    /// The rotation `epoch` belongs to.
    pub fn rotation_of(&self, epoch: u32) -> u32 {
        epoch.saturating_sub(self.state.initial_epoch_id) / self.state.validity_epochs
    }

    /// The rotation nym-api is in.
    pub fn current_rotation(&self) -> u32 {
        self.rotation_of(self.current_epoch)
    }

    /// The first epoch of `rotation`.
    pub fn rotation_start_epoch(&self, rotation: u32) -> u32 {
        self.state
            .initial_epoch_id
            .saturating_add(self.state.validity_epochs.saturating_mul(rotation))
    }

    /// When `epoch` begins (or began), counted from the current epoch's start.
    pub fn epoch_start(&self, epoch: u32) -> SystemTime {
        let start = self.current_epoch_start;
        if epoch >= self.current_epoch {
            start + self.epoch_duration * (epoch - self.current_epoch)
        } else {
            let back = self.epoch_duration * (self.current_epoch - epoch);
            start.checked_sub(back).unwrap_or(SystemTime::UNIX_EPOCH)
        }
    }

    /// The epoch the clock says it is at `now` (nym-api may not have advanced yet).
    pub fn epoch_at(&self, now: SystemTime) -> u32 {
        let elapsed = now
            .duration_since(self.current_epoch_start)
            .unwrap_or_default();
        let passed = elapsed.as_nanos() / self.epoch_duration.as_nanos();
        self.current_epoch
            .saturating_add(u32::try_from(passed).unwrap_or(u32::MAX))
    }

    /// The rotation the clock says it is at `now`.
    pub fn rotation_at(&self, now: SystemTime) -> u32 {
        self.rotation_of(self.epoch_at(now))
    }

    /// nym-api has not advanced the epoch although a fifth of the next one has passed.
    pub fn is_stuck(&self, now: SystemTime) -> bool {
        let overdue = self.current_epoch_start + self.epoch_duration + self.epoch_duration / 5;
        now > overdue
    }

    /// The answer as nym-api would give it at `now` if its epochs advanced on time: what a
    /// restart computes from the last answer it saved.
    pub fn advanced_to(&self, now: SystemTime) -> Self {
        let epoch = self.epoch_at(now);
        Self {
            current_epoch: epoch,
            current_epoch_start: self.epoch_start(epoch),
            ..self.clone()
        }
    }
}

/// `2026-12-04T17:00:00Z` (fractions allowed), or the same with a `+00:00` offset.
fn parse_utc(text: &str) -> Result<SystemTime, InfoError> {
    let utc = match text.strip_suffix("+00:00") {
        Some(rest) => format!("{rest}Z"),
        None => text.to_owned(),
    };
    humantime::parse_rfc3339(&utc).map_err(|_| InfoError::Time(text.to_owned()))
}

/// What to do with the keys next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The primary key is the static one of a gateway that never rotated: it becomes the
    /// key of this rotation (so what nym-api and clients already know keeps working).
    Adopt {
        /// The current rotation.
        rotation: u32,
    },
    /// Generate a key for `rotation`, hold it as the secondary and announce it.
    PreAnnounce {
        /// The rotation the new key is for.
        rotation: u32,
    },
    /// The secondary key (for `rotation`) becomes the primary; the primary becomes the
    /// secondary for the overlap.
    Swap {
        /// The rotation that begins.
        rotation: u32,
    },
    /// Delete the secondary key and its replay filter.
    Purge,
    /// Nothing yet: ask nym-api again.
    Wait,
}

/// A step and when to take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The step.
    pub step: Step,
    /// When; a time in the past means now.
    pub at: SystemTime,
}

/// Ask again this long after finding nym-api a little behind the clock, or the rotation too
/// close to be worth preparing for: a tenth of an epoch, at most 30 s.
fn short_wait(info: &RotationInfo) -> Duration {
    (info.epoch_duration / 10).min(Duration::from_secs(30))
}

/// The next step for a node holding `primary` (and maybe `secondary`, by rotation id; the
/// static key is [`super::LEGACY_ROTATION_ID`]) given nym-api's `info` at `now`. `retry` is how
/// long to wait when nym-api's epoch is stuck.
pub fn plan(
    info: &RotationInfo,
    primary: u32,
    secondary: Option<u32>,
    now: SystemTime,
    retry: Duration,
) -> Plan {
    let at = |step, at| Plan { step, at };
    let wait = |after| at(Step::Wait, now + after);
    if info.is_stuck(now) {
        return wait(retry);
    }
    let current = info.current_rotation();
    if info.rotation_at(now) != current {
        // nym-api is about to advance; acting now would prepare for a rotation that is over.
        return wait(short_wait(info));
    }
    if primary == super::LEGACY_ROTATION_ID && secondary.is_none() {
        return at(Step::Adopt { rotation: current }, now);
    }
    let next = current.saturating_add(1);
    let next_start_epoch = info.rotation_start_epoch(next);
    match secondary {
        None => {
            if primary != current {
                // Offline across a rotation (or a key from the future): a key for the current
                // rotation, swapped in at once by the next plan, so clients building packets
                // for this rotation are served now. (nym-node makes the next rotation's key
                // instead when this is the rotation's last epoch, leaving that epoch without
                // a current key.)
                return at(Step::PreAnnounce { rotation: current }, now);
            }
            let next_start = info.epoch_start(next_start_epoch);
            if next_start.duration_since(now).unwrap_or_default() < short_wait(info) {
                // Too close to the boundary to announce a key anyone would fetch in time.
                return at(Step::Wait, next_start + short_wait(info));
            }
            let announce_epoch = next_start_epoch.saturating_sub(1).max(info.current_epoch);
            at(
                Step::PreAnnounce { rotation: next },
                info.epoch_start(announce_epoch),
            )
        }
        Some(s) if s == next => at(
            Step::Swap { rotation: next },
            info.epoch_start(next_start_epoch),
        ),
        Some(s) if s == current => at(Step::Swap { rotation: current }, now),
        Some(s) if s.saturating_add(1) == current => {
            // The overlap: packets built for the previous key are accepted for one epoch.
            let second_epoch = info.rotation_start_epoch(current).saturating_add(1);
            at(Step::Purge, info.epoch_start(second_epoch))
        }
        // Older than the overlap, or from a future nym-api will not reach: of no use.
        Some(_) => at(Step::Purge, now),
    }
}

#[cfg(test)]
mod tests;
