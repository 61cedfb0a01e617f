//! The filter's behaviour: replays found, generations grown and shrunk by the rate, the bound
//! kept, the false-positive rate held. Time is given explicitly, so rates are exact.

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

pub(in crate::node::replay) fn settings(
    capacity: u64,
    initial_capacity: u64,
    lifetime_secs: u64,
) -> ReplaySettings {
    ReplaySettings {
        capacity,
        initial_capacity,
        false_positive_rate: 1e-6,
        generation_lifetime: Duration::from_secs(lifetime_secs),
    }
}

/// A filter and a clock that the test moves.
pub(in crate::node::replay) struct Clocked {
    pub(in crate::node::replay) filter: ReplayFilter,
    pub(in crate::node::replay) now: Instant,
}

impl Clocked {
    pub(in crate::node::replay) fn new(settings: ReplaySettings) -> Self {
        let start = Instant::now();
        Self {
            filter: ReplayFilter::new_at(settings, start),
            now: start,
        }
    }

    /// Inserts the tags `tags`, spread evenly over `over`; each must be fresh (at 1e-6, a
    /// false positive among these tags would be a surprise; they are always the same tags).
    pub(in crate::node::replay) fn fill(&mut self, tags: std::ops::Range<u64>, over: Duration) {
        let step = over / u32::try_from(tags.end - tags.start).unwrap().max(1);
        for n in tags {
            self.now += step;
            assert!(
                self.filter.check_and_insert_at(&tag(n), self.now),
                "fresh tag {n} taken for a replay"
            );
        }
    }

    /// Inserts fresh tags from `next` on, one every `step`, until the current generation is
    /// full; returns the next unused tag number.
    pub(in crate::node::replay) fn fill_generation(
        &mut self,
        mut next: u64,
        step: Duration,
    ) -> u64 {
        while self.filter.current.inserted < self.filter.current.capacity {
            self.now += step;
            // A false positive is not inserted; the loop goes on until the count is reached.
            self.filter.check_and_insert_at(&tag(next), self.now);
            next += 1;
        }
        next
    }

    /// Whether every tag of `tags` is a replay now (checking does not insert a fresh one).
    pub(in crate::node::replay) fn all_replays(&self, tags: std::ops::Range<u64>) -> bool {
        tags.into_iter().all(|n| self.filter.contains(&tag(n)))
    }
}

#[test]
fn a_repeated_tag_is_a_replay() {
    let mut filter = ReplayFilter::with_capacity(10_000, 1e-5);
    assert!(filter.check_and_insert(&tag(1)));
    assert!(!filter.check_and_insert(&tag(1)));
    assert!(filter.check_and_insert(&tag(2)));
}

#[test]
fn an_idle_filter_is_small() {
    let defaults = ReplaySettings::from_config(&Tuning::default());
    let filter = ReplayFilter::new(defaults);
    assert_eq!(filter.generation_capacity(), 500_000);
    // About 1.4 MiB, against about 257 MiB per generation before.
    assert!(
        filter.allocated_bytes() < 2 * 1024 * 1024,
        "{}",
        filter.allocated_bytes()
    );
    assert!(filter.previous.is_none());
    assert!(!filter.is_changed());
    // The bound: the two largest generations, about 515 MiB.
    let max = defaults.max_bytes();
    assert!((500 << 20..530 << 20).contains(&max), "{max}");
}

#[test]
fn false_positive_rate_is_near_the_target() {
    let mut filter = ReplayFilter::with_capacity(20_000, 1e-3);
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
    let mut filter = ReplayFilter::with_capacity(200, 1e-6);
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

#[test]
fn every_tag_stays_a_replay_across_growth() {
    // Generations of 1 000 at first, sized to last 100 s, at most 500 000.
    let mut c = Clocked::new(settings(1_000_000, 1_000, 100));
    // 1 000 tags in 1 s: 1 000/s needs 100 000 per 100 s, so the next generation is the
    // first power of two above: 1 000 × 128.
    c.fill(0..1_000, Duration::from_secs(1));
    assert_eq!(c.filter.generation_capacity(), 1_000);
    c.fill(1_000..1_001, Duration::from_millis(1));
    assert_eq!(c.filter.generation_capacity(), 128_000);
    assert_eq!(c.filter.rotations, 1);
    assert!(c.all_replays(0..1_001), "a tag was lost in the growth");
    // The same rate again: the new generation (tag 1 000 and 127 999 more) lasts 128 s and
    // is followed by the same size; the tags of the first generation are forgotten only then.
    c.fill(1_001..129_000, Duration::from_secs(128));
    assert!(c.all_replays(0..129_000));
    c.fill(129_000..129_001, Duration::from_millis(1));
    assert_eq!(c.filter.rotations, 2);
    assert_eq!(c.filter.generation_capacity(), 128_000);
    assert!(c.all_replays(1_000..129_001));
    // A burst: 128 000 tags in 1 s. The next generation is capped at half the capacity.
    c.fill(129_001..257_000, Duration::from_secs(1));
    c.fill(257_000..257_001, Duration::from_millis(1));
    assert_eq!(c.filter.rotations, 3);
    assert_eq!(c.filter.generation_capacity(), 500_000);
    assert!(
        c.all_replays(129_000..257_001),
        "a tag was lost in the growth"
    );
    // Fresh tags are not replays (at 1e-6, none of 10 000).
    assert!((10_000_000..10_010_000).all(|n| !c.filter.contains(&tag(n))));
}

#[test]
fn the_size_follows_the_rate_only_as_far_as_it_must() {
    let mut c = Clocked::new(settings(1_000_000, 1_000, 100));
    // 1 000 in 110 s: slower than 1 000 per 100 s, no growth.
    c.fill(0..1_001, Duration::from_secs(110));
    assert_eq!(c.filter.generation_capacity(), 1_000);
    // Slower: no growth either.
    c.fill(1_001..2_001, Duration::from_secs(300));
    assert_eq!(c.filter.generation_capacity(), 1_000);
    // About twice as fast (1 000 in 55 s): twice the size.
    c.fill(2_001..3_001, Duration::from_secs(55));
    assert_eq!(c.filter.generation_capacity(), 2_000);
    // 2.5 times the first rate: the next power of two, 4 000.
    c.fill(3_001..5_001, Duration::from_secs(80));
    assert_eq!(c.filter.generation_capacity(), 4_000);
    // The traffic falls to 5/s: back to the initial size at the next generation.
    c.fill(5_001..9_001, Duration::from_secs(800));
    assert_eq!(c.filter.generation_capacity(), 1_000);
    assert!(c.all_replays(5_001..9_001));
    // An idle filter never changes size, whatever the time.
    let idle = Clocked::new(settings(1_000_000, 1_000, 100));
    assert_eq!(idle.filter.generation_capacity(), 1_000);
    assert_eq!(idle.filter.rotations, 0);
}

#[test]
fn the_memory_bound_is_never_exceeded() {
    let settings = settings(20_000, 100, 3600);
    let max = settings.max_bytes();
    let mut c = Clocked::new(settings);
    let mut largest = 0;
    // A rate far beyond what 10 000 per generation can hold for an hour.
    for n in 0..200_000 {
        c.now += Duration::from_micros(10);
        c.filter.check_and_insert_at(&tag(n), c.now);
        largest = largest.max(c.filter.allocated_bytes());
        assert!(c.filter.allocated_bytes() <= max);
    }
    assert_eq!(c.filter.generation_capacity(), 10_000);
    assert_eq!(largest, max, "both generations reach the largest size");
    // Still exact for the last generation and a half.
    assert!(c.all_replays(185_000..200_000));
}

#[test]
fn the_false_positive_rate_stays_near_the_target_after_growth() {
    let mut c = Clocked::new(ReplaySettings {
        false_positive_rate: 1e-3,
        ..settings(400_000, 1_000, 100)
    });
    // 1 000/s: the second generation holds 128 000.
    let step = Duration::from_millis(1);
    let next = c.fill_generation(0, step);
    c.now += step;
    c.filter.check_and_insert_at(&tag(next), c.now);
    assert_eq!(c.filter.generation_capacity(), 128_000);
    // Fill it to its capacity.
    c.fill_generation(next + 1, step);
    assert_eq!(c.filter.generation_capacity(), 128_000);
    assert_eq!(c.filter.current.inserted, 128_000);
    // The grown generation alone, full: about 1e-3 of fresh tags (100 of 100 000).
    let current = (1_000_000..1_100_000)
        .filter(|&n| c.filter.current.contains(&tag(n)))
        .count();
    assert!((40..180).contains(&current), "{current} false positives");
    // Both generations, each at most at the target: at most about twice it.
    let both = (1_000_000..1_100_000)
        .filter(|&n| c.filter.contains(&tag(n)))
        .count();
    assert!(both < 300, "{both} false positives");
}

#[test]
fn settings_bound_the_initial_size() {
    // An initial capacity above half the capacity is cut to it.
    let s = settings(1_000, 5_000, 10);
    assert_eq!(s.initial_generation_capacity(), 500);
    assert_eq!(ReplayFilter::new(s).generation_capacity(), 500);
    // A capacity of 1 still makes a working filter.
    let mut tiny = ReplayFilter::new(settings(1, 1, 10));
    assert!(tiny.check_and_insert(&tag(1)));
    assert!(!tiny.check_and_insert(&tag(1)));
    assert!(tiny.check_and_insert(&tag(2)));
    assert!(!tiny.check_and_insert(&tag(1)), "previous generation");
}
