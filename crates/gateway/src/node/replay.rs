//! Replay protection: a Bloom filter over the 32-byte Sphinx replay tags, in generations sized
//! to the traffic the gateway sees.
//!
//! # Generations
//! At most two generations are live: the current one, which takes new tags, and the previous
//! one. A tag is looked up in both, each with its own size and number of hash functions, so a
//! tag inserted before a generation change is still caught after it. When the current
//! generation holds as many tags as it was sized for, it becomes the previous one (the older
//! previous one is dropped) and a fresh current one starts. A tag is thus remembered until the
//! generation after its own is full.
//!
//! # Growth rule
//! The first generation holds `replay_filter_initial_capacity` tags (500 000: about 1.4 MiB at
//! the default false-positive rate), so an idle or demo gateway costs a megabyte or two of
//! memory and file. When a generation is full, its fill rate (tags / age) tells how many tags
//! the next one needs to last `replay_filter_generation_lifetime` (12h 30m): the next holds
//! the smallest of `initial × 2^k` that is at least that many, and at most
//! `replay_filter_capacity / 2`. So:
//! - a generation that filled faster than the lifetime is followed by a larger one, a gateway
//!   at a steady rate settles on one size, and one whose traffic fell shrinks back at the next
//!   change (never below the initial size);
//! - the rate is measured over a whole generation (at least the initial capacity of tags), so
//!   a short burst moves the size little, and a gateway that is suddenly busy reaches the size
//!   its rate needs in one step instead of many (`nym-node` grows ×1.12 per reset, which at
//!   2 000 packets/s from a small start would leave the remembering window short for days);
//! - powers of two of the initial size keep the set of sizes small, and leave up to 2× headroom
//!   so a slowly rising rate does not shorten the window;
//! - each generation is at most `replay_filter_capacity / 2` tags, so both together never take
//!   more than [`ReplaySettings::max_bytes`] (about 515 MiB at the defaults, the old fixed
//!   size, reached only at 2 000 packets/s or more).
//!
//! While the rate fits the bound, a tag is remembered for at least the generation lifetime
//! (two at most, at a steady rate); beyond it, for as long as a generation of the largest size
//! takes to fill. Every generation is sized for `replay_filter_false_positive_rate` at its
//! capacity. The tags are outputs of a KDF, so their bytes are already uniformly random and
//! serve directly as the filter's hash values.
//!
//! # Persistence
//! The filter outlives restarts: [`ReplayFile`] saves it next to the store every
//! `replay_filter_save_interval` and at shutdown, when anything changed since the last save
//! (an idle gateway writes nothing), and loads it at start. A packet accepted before a restart
//! is a replay after it (after a crash, the packets of up to one interval are forgotten). A
//! file that is damaged, of another format version, made for another key, or larger than this
//! configuration allows, is reported and replaced by an empty filter; it never stops the
//! gateway.

mod file;

use std::time::{Duration, Instant};

use tracing::{info, warn};

pub use file::{LoadError, ReplayFile, SaveOutcome};

use crate::config::Tuning;

/// Most hash functions per generation (a file asking for more is refused).
const MAX_HASHES: u32 = 32;

/// How the filter is sized, from the `[debug]` table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplaySettings {
    /// Most tags held, both generations together (`replay_filter_capacity`).
    pub capacity: u64,
    /// Tags the first generation holds (`replay_filter_initial_capacity`).
    pub initial_capacity: u64,
    /// False-positive rate each generation is sized for at its capacity.
    pub false_positive_rate: f64,
    /// How long a generation should last at the rate seen while the previous one filled.
    pub generation_lifetime: Duration,
}

impl ReplaySettings {
    /// The settings of `debug`.
    pub fn from_config(debug: &Tuning) -> Self {
        Self {
            capacity: debug.replay_filter_capacity.get(),
            initial_capacity: debug.replay_filter_initial_capacity.get(),
            false_positive_rate: debug.replay_filter_false_positive_rate,
            generation_lifetime: debug.replay_filter_generation_lifetime,
        }
    }

    /// Most tags one generation holds.
    pub fn max_generation_capacity(&self) -> u64 {
        (self.capacity / 2).max(1)
    }

    /// Tags the first generation holds.
    pub fn initial_generation_capacity(&self) -> u64 {
        self.initial_capacity
            .clamp(1, self.max_generation_capacity())
    }

    /// Bits of the largest generation.
    pub fn max_generation_bits(&self) -> u64 {
        bits_for(self.max_generation_capacity(), self.false_positive_rate)
    }

    /// Bytes the filter takes at most (both generations at the largest size): the bound on
    /// its memory and, but for a few header words, on its file.
    pub fn max_bytes(&self) -> u64 {
        self.max_generation_bits().saturating_mul(2) / 8
    }
}

/// Bits of a generation holding `capacity` tags at `fp_rate`: the standard Bloom sizing
/// `m = -n ln p / (ln 2)^2`, in whole words, at least one.
fn bits_for(capacity: u64, fp_rate: f64) -> u64 {
    let ln2 = std::f64::consts::LN_2;
    let bits = ((-(capacity as f64) * fp_rate.ln()) / (ln2 * ln2))
        .ceil()
        .max(64.0);
    // Saturating: the config check keeps real settings far below this.
    let bits = if bits < (u64::MAX / 2) as f64 {
        bits as u64
    } else {
        u64::MAX / 2
    };
    bits.div_ceil(64) * 64
}

/// Hash functions for `len_bits` bits and `capacity` tags: `k = (m/n) ln 2`.
fn hashes_for(len_bits: u64, capacity: u64) -> u32 {
    (((len_bits as f64) / (capacity as f64)) * std::f64::consts::LN_2)
        .round()
        .clamp(1.0, f64::from(MAX_HASHES)) as u32
}

/// One Bloom filter.
struct Generation {
    bits: Vec<u64>,
    len_bits: u64,
    hashes: u32,
    /// Tags it is sized for: when it holds these, the next generation starts.
    capacity: u64,
    inserted: u64,
    /// When it started, or was loaded from a file.
    born: Instant,
    /// Its age when it was loaded (zero for a new one).
    age_before: Duration,
}

impl Generation {
    /// An empty generation for `capacity` tags at `fp_rate`.
    fn sized(capacity: u64, fp_rate: f64, now: Instant) -> Self {
        let len_bits = bits_for(capacity, fp_rate);
        Self::empty(len_bits, hashes_for(len_bits, capacity), capacity, now)
    }

    /// An empty generation of `len_bits` (a multiple of 64) bits.
    fn empty(len_bits: u64, hashes: u32, capacity: u64, now: Instant) -> Self {
        let words = usize::try_from(len_bits / 64).unwrap_or(usize::MAX);
        Self {
            // Zeroed memory is untouched until bits are set, so it costs little until used.
            bits: vec![0; words],
            len_bits,
            hashes,
            capacity,
            inserted: 0,
            born: now,
            age_before: Duration::ZERO,
        }
    }

    fn age(&self, now: Instant) -> Duration {
        self.age_before
            .saturating_add(now.saturating_duration_since(self.born))
    }

    fn bytes(&self) -> u64 {
        self.len_bits / 8
    }

    /// The bits of `tag` (double hashing over the tag's first 16 bytes).
    fn positions(&self, tag: &[u8; 32]) -> impl Iterator<Item = u64> {
        let h1 = u64::from_le_bytes(tag[0..8].try_into().unwrap_or_default());
        let h2 = u64::from_le_bytes(tag[8..16].try_into().unwrap_or_default()) | 1;
        let len_bits = self.len_bits;
        (0..u64::from(self.hashes)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % len_bits)
    }

    fn contains(&self, tag: &[u8; 32]) -> bool {
        self.positions(tag)
            .all(|bit| self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    fn insert(&mut self, tag: &[u8; 32]) {
        for bit in self.positions(tag) {
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        self.inserted += 1;
    }
}

/// The replay filter.
pub struct ReplayFilter {
    current: Generation,
    previous: Option<Generation>,
    settings: ReplaySettings,
    /// Generations started so far (a save that sees this change mid-way is abandoned).
    rotations: u64,
    /// Changes so far (inserts, and a start that replaces an unusable file).
    changes: u64,
    /// `changes` as of the last save or load: when equal, there is nothing to save.
    saved_changes: u64,
    /// Whether the "rate beyond the bound" warning was given (it is given once).
    warned_capped: bool,
}

impl ReplayFilter {
    /// An empty filter: one generation of the initial capacity.
    pub fn new(settings: ReplaySettings) -> Self {
        Self::new_at(settings, Instant::now())
    }

    fn new_at(settings: ReplaySettings, now: Instant) -> Self {
        let current = Generation::sized(
            settings.initial_generation_capacity(),
            settings.false_positive_rate,
            now,
        );
        Self {
            current,
            previous: None,
            settings,
            rotations: 0,
            changes: 0,
            saved_changes: 0,
            warned_capped: false,
        }
    }

    /// A small filter for tests: `capacity` tags at most, starting at half of it.
    pub fn with_capacity(capacity: u64, fp_rate: f64) -> Self {
        Self::new(ReplaySettings {
            capacity,
            initial_capacity: capacity / 2,
            false_positive_rate: fp_rate,
            generation_lifetime: Duration::from_secs(3600),
        })
    }

    /// Bytes of bit arrays allocated (both generations).
    pub fn allocated_bytes(&self) -> u64 {
        self.current.bytes() + self.previous.as_ref().map_or(0, Generation::bytes)
    }

    /// Tags the current generation is sized for.
    pub fn generation_capacity(&self) -> u64 {
        self.current.capacity
    }

    /// Whether `tag` was (probably) seen before, without recording it.
    pub fn contains(&self, tag: &[u8; 32]) -> bool {
        self.current.contains(tag) || self.previous.as_ref().is_some_and(|p| p.contains(tag))
    }

    /// Whether something changed since the filter was last saved or loaded.
    pub fn is_changed(&self) -> bool {
        self.changes != self.saved_changes
    }

    /// Records `tag`; returns false if it was (probably) seen before, i.e. a replay.
    pub fn check_and_insert(&mut self, tag: &[u8; 32]) -> bool {
        self.check_and_insert_at(tag, Instant::now())
    }

    /// [`check_and_insert`](Self::check_and_insert) at the time `now`.
    pub fn check_and_insert_at(&mut self, tag: &[u8; 32], now: Instant) -> bool {
        if self.contains(tag) {
            return false;
        }
        if self.current.inserted >= self.current.capacity {
            self.rotate(now);
        }
        self.current.insert(tag);
        self.changes += 1;
        true
    }

    /// Tags the generation after the (full) current one holds: see the module doc.
    fn next_capacity(&self, now: Instant) -> (u64, bool) {
        let age = self.current.age(now).as_secs_f64().max(1e-3);
        let rate = self.current.inserted as f64 / age;
        let needed = rate * self.settings.generation_lifetime.as_secs_f64();
        let max = self.settings.max_generation_capacity();
        let mut next = self.settings.initial_generation_capacity();
        while (next as f64) < needed && next < max {
            next = next.saturating_mul(2);
        }
        (next.min(max), needed > max as f64)
    }

    fn rotate(&mut self, now: Instant) {
        let (capacity, capped) = self.next_capacity(now);
        let filled_in = self.current.age(now);
        let fresh = Generation::sized(capacity, self.settings.false_positive_rate, now);
        let old = std::mem::replace(&mut self.current, fresh);
        let grown = capacity != old.capacity;
        self.previous = Some(old);
        self.rotations += 1;
        let filled_in = humantime::format_duration(Duration::from_secs(filled_in.as_secs()));
        if capped && !self.warned_capped {
            self.warned_capped = true;
            warn!(
                capacity,
                %filled_in,
                "the packet rate needs a larger replay filter than replay_filter_capacity allows: packets are remembered for less than replay_filter_generation_lifetime"
            );
        } else if grown {
            info!(
                capacity,
                bytes = self.allocated_bytes(),
                %filled_in,
                "replay filter generation full; the next one is sized for the packet rate seen"
            );
        }
    }
}

#[cfg(test)]
pub(super) mod tests;
