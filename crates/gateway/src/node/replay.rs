//! Replay protection: a Bloom filter over the 32-byte Sphinx replay tags.
//!
//! Two generations, each sized for half the configured capacity: when the current one is full
//! it becomes the previous one and a fresh one starts, so a tag is remembered for between half
//! and all of `capacity` later packets, in bounded memory. The tags are outputs of a KDF, so
//! their bytes are already uniformly random and serve directly as the filter's hash values.
//!
//! The filter outlives restarts: [`ReplayFile`] saves it next to the store every
//! `replay_filter_save_interval` and at shutdown, and loads it at start. A packet accepted
//! before a restart is a replay after it (after a crash, the packets of up to one interval are
//! forgotten). A file that is damaged, or was made for another key or other settings, is
//! reported and replaced by an empty filter; it never stops the gateway.

mod file;

pub use file::{LoadError, ReplayFile};

/// One Bloom filter.
struct Generation {
    bits: Vec<u64>,
    len_bits: u64,
    hashes: u32,
    inserted: u64,
}

impl Generation {
    fn new(len_bits: u64, hashes: u32) -> Self {
        let words = len_bits.div_ceil(64);
        Self {
            // Zeroed memory is untouched until bits are set, so it costs little until used.
            bits: vec![0; usize::try_from(words).unwrap_or(usize::MAX)],
            len_bits: words * 64,
            hashes,
            inserted: 0,
        }
    }

    fn positions(&self, tag: &[u8; 32]) -> impl Iterator<Item = u64> + '_ {
        let h1 = u64::from_le_bytes(tag[0..8].try_into().unwrap_or_default());
        let h2 = u64::from_le_bytes(tag[8..16].try_into().unwrap_or_default()) | 1;
        (0..u64::from(self.hashes))
            .map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % self.len_bits)
    }

    fn contains(&self, tag: &[u8; 32]) -> bool {
        self.positions(tag)
            .all(|bit| self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    fn insert(&mut self, tag: &[u8; 32]) {
        let positions: Vec<u64> = self.positions(tag).collect();
        for bit in positions {
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        self.inserted += 1;
    }
}

/// The replay filter.
pub struct ReplayFilter {
    current: Generation,
    previous: Option<Generation>,
    generation_capacity: u64,
    len_bits: u64,
    hashes: u32,
    /// Generations started so far (a save that sees this change mid-way is abandoned).
    rotations: u64,
}

impl ReplayFilter {
    /// A filter remembering at least `capacity / 2` tags with false-positive rate about `fp_rate`.
    pub fn new(capacity: u64, fp_rate: f64) -> Self {
        let generation_capacity = (capacity / 2).max(1);
        let ln2 = std::f64::consts::LN_2;
        // Standard Bloom sizing: m = -n ln p / (ln 2)^2, k = (m/n) ln 2.
        let len_bits = ((-(generation_capacity as f64) * fp_rate.ln()) / (ln2 * ln2))
            .ceil()
            .max(64.0) as u64;
        let hashes = (((len_bits as f64) / (generation_capacity as f64)) * ln2)
            .round()
            .clamp(1.0, 32.0) as u32;
        Self {
            current: Generation::new(len_bits, hashes),
            previous: None,
            generation_capacity,
            len_bits,
            hashes,
            rotations: 0,
        }
    }

    /// Bytes of bit arrays allocated (both generations).
    pub fn allocated_bytes(&self) -> u64 {
        let per = self.current.len_bits / 8;
        per * if self.previous.is_some() { 2 } else { 1 }
    }

    /// Records `tag`; returns false if it was (probably) seen before, i.e. a replay.
    pub fn check_and_insert(&mut self, tag: &[u8; 32]) -> bool {
        if self.current.contains(tag) || self.previous.as_ref().is_some_and(|p| p.contains(tag)) {
            return false;
        }
        if self.current.inserted >= self.generation_capacity {
            let fresh = Generation::new(self.len_bits, self.hashes);
            self.previous = Some(std::mem::replace(&mut self.current, fresh));
            self.rotations += 1;
        }
        self.current.insert(tag);
        true
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::node::replay) fn tag(n: u64) -> [u8; 32] {
        // Spread n over the tag the way a KDF output would be: through a cheap mixer.
        let mut t = [0u8; 32];
        let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        for chunk in t.chunks_mut(8) {
            x ^= x >> 31;
            x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        t
    }

    #[test]
    fn a_repeated_tag_is_a_replay() {
        let mut filter = ReplayFilter::new(10_000, 1e-5);
        assert!(filter.check_and_insert(&tag(1)));
        assert!(!filter.check_and_insert(&tag(1)));
        assert!(filter.check_and_insert(&tag(2)));
    }

    #[test]
    fn false_positive_rate_is_near_the_target() {
        let mut filter = ReplayFilter::new(20_000, 1e-3);
        // Filling to capacity, the running false-positive rate climbs to the target: expect
        // about a few fresh tags in 10k to be mistaken, never many.
        let mistaken = (0..10_000)
            .filter(|&n| !filter.check_and_insert(&tag(n)))
            .count();
        assert!(mistaken < 30, "{mistaken} fresh tags reported as replays");
        let false_positives = (1_000_000..1_100_000)
            .filter(|&n| !filter.check_and_insert(&tag(n)))
            .count();
        // 100k probes at 1e-3 expect ~100 (the later probes also fill the filter); allow slack.
        assert!(false_positives < 400, "{false_positives} false positives");
    }

    #[test]
    fn old_tags_are_remembered_across_one_rotation_then_forgotten() {
        let mut filter = ReplayFilter::new(200, 1e-6);
        assert!(filter.check_and_insert(&tag(0)));
        for n in 1..150 {
            filter.check_and_insert(&tag(n));
        }
        assert!(
            !filter.check_and_insert(&tag(0)),
            "still remembered after one rotation"
        );
        for n in 1000..1300 {
            filter.check_and_insert(&tag(n));
        }
        assert!(
            filter.check_and_insert(&tag(0)),
            "forgotten after two rotations: memory is bounded"
        );
        assert!(filter.allocated_bytes() > 0);
    }
}
