//! The replay filter file loader ([`ReplayFile::decode`], what `load_or_new` reads at start),
//! with a small configured bound (at most 512 packets per generation, at 1e-3).
//!
//! Input: a mode byte, then
//! - even: the file's bytes. Which error the loader gives is predicted here from the format
//!   alone (an independent reading of the layout in the loader's doc); an accepted file
//!   re-encodes to exactly its bytes, stays within the bound, counts as unchanged, and the
//!   tags then inserted are replays, also after another save and load.
//! - odd: the fuzzer plays the gateway: tags and the times between them, inserted into a
//!   filter that grows as their rate asks. Its file loads back with every accepted tag a
//!   replay and encodes to the same bytes; any one byte changed, or any truncation, is refused.

use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use nym_gateway::node::replay::{LoadError, ReplayFile, ReplayFilter, ReplaySettings};

use crate::by_mode;

const KEY: [u8; 32] = [7; 32];
/// `"GWREPLAY"`, and the version this build writes.
const MAGIC: &[u8; 8] = b"GWREPLAY";
const VERSION: u64 = 2;

/// The bound the target loads under: generations of 16 to 512 packets.
pub fn settings() -> ReplaySettings {
    ReplaySettings {
        capacity: 1_024,
        initial_capacity: 16,
        false_positive_rate: 1e-3,
        generation_lifetime: Duration::from_secs(1),
    }
}

fn file() -> ReplayFile {
    ReplayFile::new("unused".into(), KEY)
}

/// A replay tag from a number, spread as a KDF output would be.
pub fn tag(n: u64) -> [u8; 32] {
    let mut t = [0u8; 32];
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    for chunk in t.chunks_mut(8) {
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    t
}

pub fn run(data: &[u8]) {
    by_mode(data, raw, honest);
}

fn word(bytes: &[u8], index: usize) -> Option<u64> {
    let b = bytes.get(index * 8..index * 8 + 8)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// What the loader must say of `bytes`, from the layout alone; `None` when only the checksum
/// can decide (then the loader may accept, or refuse with `Checksum`).
fn expected_error(bytes: &[u8], settings: ReplaySettings) -> Option<&'static str> {
    let (Some(magic), Some(version)) = (word(bytes, 0), word(bytes, 1)) else {
        return Some("truncated");
    };
    if magic.to_le_bytes() != *MAGIC {
        return Some("not a filter");
    }
    if version != VERSION {
        return Some("version");
    }
    let Some(count) = word(bytes, 6) else {
        return Some("truncated");
    };
    let key: Vec<u8> = (2..6)
        .flat_map(|i| word(bytes, i).unwrap_or(0).to_le_bytes())
        .collect();
    if key != KEY {
        return Some("other key");
    }
    if !(1..=2).contains(&count) {
        return Some("malformed");
    }
    let max_bits = settings.max_generation_bits();
    let max_packets = settings.capacity / 2;
    let mut words = 7 + 1;
    for g in 0..count as usize {
        let at = 7 + 4 * g;
        let (Some(bits), Some(hashes), Some(capacity)) =
            (word(bytes, at), word(bytes, at + 1), word(bytes, at + 2))
        else {
            return Some("truncated");
        };
        if word(bytes, at + 3).is_none() {
            return Some("truncated");
        }
        if bits == 0 || bits % 64 != 0 {
            return Some("malformed");
        }
        if bits > max_bits {
            return Some("too large");
        }
        if !(1..=32).contains(&hashes) {
            return Some("malformed");
        }
        if capacity == 0 {
            return Some("malformed");
        }
        if capacity > max_packets {
            return Some("too large");
        }
        words += 4 + bits as usize / 64 + 1;
    }
    match bytes.len().cmp(&(words * 8)) {
        std::cmp::Ordering::Less => Some("truncated"),
        std::cmp::Ordering::Greater => Some("too long"),
        std::cmp::Ordering::Equal => None,
    }
}

fn kind(error: &LoadError) -> &'static str {
    match error {
        LoadError::Io(_) => "io",
        LoadError::Truncated => "truncated",
        LoadError::TooLong => "too long",
        LoadError::NotAFilter => "not a filter",
        LoadError::Version(_) => "version",
        LoadError::OtherKey => "other key",
        LoadError::Malformed { .. } => "malformed",
        LoadError::TooLarge { .. } => "too large",
        LoadError::Checksum => "checksum",
    }
}

fn raw(bytes: &[u8]) {
    let settings = settings();
    let now = Instant::now();
    let expected = expected_error(bytes, settings);
    match file().decode(bytes, settings, now) {
        Ok(mut filter) => {
            assert_eq!(expected, None, "accepted a file the layout refuses");
            check_accepted(&mut filter, bytes, settings, now);
        }
        Err(error) => {
            assert!(!error.to_string().is_empty());
            let got = kind(&error);
            match expected {
                Some(expected) => assert_eq!(got, expected, "{error}"),
                None => assert_eq!(got, "checksum", "{error}"),
            }
            if let LoadError::Version(v) = error {
                assert_eq!(word(bytes, 1), Some(v));
            }
        }
    }
}

/// An accepted file: canonical, bounded, unchanged; tags inserted now survive a round trip.
fn check_accepted(filter: &mut ReplayFilter, bytes: &[u8], settings: ReplaySettings, now: Instant) {
    assert_eq!(
        file().encode(filter, now),
        bytes,
        "not re-encoded to its bytes"
    );
    assert!(filter.allocated_bytes() <= settings.max_bytes());
    assert!(!filter.is_changed());
    let mut at = now;
    let mut accepted = Vec::new();
    for n in 0..8u64 {
        let t =
            tag(u64::from_le_bytes(bytes[bytes.len() - 8..].try_into().unwrap_or_default()) ^ n);
        at += Duration::from_millis(1);
        if filter.check_and_insert_at(&t, at) {
            accepted.push(t);
            assert!(filter.is_changed());
        }
        assert!(
            !filter.check_and_insert_at(&t, at),
            "a tag just inserted is no replay"
        );
    }
    assert!(filter.allocated_bytes() <= settings.max_bytes());
    let again = file().encode(filter, at);
    let reloaded = file()
        .decode(&again, settings, at)
        .expect("a saved filter loads");
    for t in &accepted {
        assert!(reloaded.contains(t), "a tag lost in a save and load");
    }
}

fn honest(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let settings = settings();
    let start = Instant::now();
    let mut filter = ReplayFilter::new(settings);
    let mut now = start;
    let mut accepted = Vec::new();
    let inserts = u.int_in_range(0..=1_500u16)?;
    let seed: u64 = u.arbitrary()?;
    for n in 0..u64::from(inserts) {
        // Steps of up to ~65 ms, so generations fill at rates on both sides of the lifetime.
        now += Duration::from_micros(u64::from(u.arbitrary::<u16>().unwrap_or(500)));
        let t = tag(seed.wrapping_add(n));
        if filter.check_and_insert_at(&t, now) {
            accepted.push(t);
        }
        assert!(filter.allocated_bytes() <= settings.max_bytes());
    }
    let bytes = file().encode(&filter, now);
    let decoded = file()
        .decode(&bytes, settings, now)
        .unwrap_or_else(|e| panic!("an honest file is refused: {e}"));
    assert_eq!(file().encode(&decoded, now), bytes);
    assert_eq!(decoded.allocated_bytes(), filter.allocated_bytes());
    assert_eq!(decoded.generation_capacity(), filter.generation_capacity());
    // The loaded filter answers as the saved one, for every tag it took and for fresh ones.
    for t in &accepted {
        assert_eq!(
            decoded.contains(t),
            filter.contains(t),
            "a tag changed in a save and load"
        );
    }
    for n in 0..64 {
        let fresh = tag(!seed ^ n);
        assert_eq!(decoded.contains(&fresh), filter.contains(&fresh));
    }
    // The newest tags are always remembered: a generation holds at least the initial 16.
    for t in accepted.iter().rev().take(16) {
        assert!(decoded.contains(t), "a recent tag forgotten");
    }

    // One byte changed anywhere, or the file cut anywhere: refused.
    if !bytes.is_empty() {
        let at = u.choose_index(bytes.len())?;
        let flip = u.int_in_range(1..=255u8)?;
        let mut damaged = bytes.clone();
        damaged[at] ^= flip;
        assert!(
            file().decode(&damaged, settings, now).is_err(),
            "a changed byte at {at} went unnoticed"
        );
        let cut = u.choose_index(bytes.len())?;
        assert!(matches!(
            file().decode(&bytes[..cut], settings, now),
            Err(LoadError::Truncated)
        ));
    }
    Ok(())
}

/// Seeds: files an honest gateway writes (one generation, two of different sizes), a version 1
/// header, and an honest run.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let settings = settings();
    let start = Instant::now();
    let mut one = ReplayFilter::new(settings);
    for n in 0..10 {
        one.check_and_insert_at(&tag(n), start + Duration::from_millis(n));
    }
    let mut grown = ReplayFilter::new(settings);
    for n in 0..100 {
        grown.check_and_insert_at(&tag(n), start + Duration::from_millis(n));
    }
    let mut v1 = Vec::new();
    for word in [u64::from_le_bytes(*MAGIC), 1] {
        v1.extend(word.to_le_bytes());
    }
    v1.extend(KEY);
    for word in [1u64 << 20, 17, 90_000_000, 0] {
        v1.extend(word.to_le_bytes());
    }
    let empty = file().encode(&ReplayFilter::new(settings), start);
    let mut honest = vec![1u8];
    honest.extend(300u16.to_le_bytes());
    honest.extend([0x5a; 8]);
    honest.extend((0..600u32).flat_map(|i| ((i * 37 % 5000) as u16).to_le_bytes()));
    vec![
        ("empty", [&[0u8][..], &empty].concat()),
        (
            "one_generation",
            [&[0u8][..], &file().encode(&one, start)].concat(),
        ),
        (
            "two_generations",
            [&[0u8][..], &file().encode(&grown, start)].concat(),
        ),
        ("version_1", [&[0u8][..], &v1].concat()),
        ("honest_run", honest),
    ]
}
