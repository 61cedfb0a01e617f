//! Saving and loading: round trips of grown filters, no write when nothing changed, and every
//! way a file can be unusable, each with its own error.

use super::*;
use crate::node::replay::tests::{settings, tag, Clocked};

const KEY: [u8; 32] = [7; 32];

fn filled(capacity: u64, tags: std::ops::Range<u64>) -> Arc<Mutex<ReplayFilter>> {
    let mut filter = ReplayFilter::with_capacity(capacity, 1e-6);
    for n in tags {
        assert!(filter.check_and_insert(&tag(n)));
    }
    Arc::new(Mutex::new(filter))
}

/// A filter that grew: a generation of 1 000 then one of 128 000 (300 000 at most), with
/// tags `0..60_000` in them.
fn grown() -> Clocked {
    let mut c = Clocked::new(settings(300_000, 1_000, 100));
    c.fill(0..60_000, Duration::from_secs(60));
    assert_eq!(c.filter.generation_capacity(), 128_000);
    assert_eq!(c.filter.previous.as_ref().map(|p| p.capacity), Some(1_000));
    c
}

#[tokio::test]
async fn a_saved_filter_remembers_its_tags_after_loading() {
    let dir = tempfile::tempdir().unwrap();
    let file = ReplayFile::new(dir.path().join("replay_filter.bin"), KEY);
    // 150 tags in a filter of 200 (generations of 100): both generations are saved.
    let filter = filled(200, 0..150);
    assert_eq!(file.save(&filter).await, SaveOutcome::Saved);
    let mut loaded = file.load_or_new(lock(&filter).settings);
    for n in 0..150 {
        assert!(!loaded.check_and_insert(&tag(n)), "tag {n} forgotten");
    }
    assert!(loaded.check_and_insert(&tag(1_000)));
    assert_eq!(
        loaded.rotations, 0,
        "counts restart, the generations do not"
    );
    assert!(loaded.previous.is_some());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(dir.path().join("replay_filter.bin"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn a_grown_filter_round_trips_with_every_tag_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay_filter.bin");
    let file = ReplayFile::new(path.clone(), KEY);
    let c = grown();
    let settings = c.filter.settings;
    let bytes = file.encode(&c.filter, c.now);
    let filter = Arc::new(Mutex::new(c.filter));
    assert_eq!(file.save(&filter).await, SaveOutcome::Saved);
    // The file is as large as the generations: words of both, and 17 header and count words.
    let saved = fs::read(&path).unwrap();
    assert!((saved.len() as u64) < settings.max_bytes());
    assert_eq!(
        saved.len() as u64,
        lock(&filter).allocated_bytes() + 8 * (PREAMBLE_WORDS as u64 + 2 * 5 + 1)
    );
    // Only the ages differ between the two images (the save came later).
    assert_eq!(saved.len(), bytes.len());

    let loaded = file.load_or_new(settings);
    assert!(!loaded.is_changed(), "a loaded filter is saved as it is");
    assert_eq!(loaded.generation_capacity(), 128_000);
    assert_eq!(loaded.previous.as_ref().map(|p| p.capacity), Some(1_000));
    assert_eq!(loaded.allocated_bytes(), lock(&filter).allocated_bytes());
    assert!(
        (0..60_000).all(|n| loaded.contains(&tag(n))),
        "a tag forgotten"
    );
    assert!((1_000_000..1_010_000).all(|n| !loaded.contains(&tag(n))));

    // Decoding and encoding at the same moment gives the same bytes back.
    let now = Instant::now();
    let decoded = file.decode(&bytes, settings, now).unwrap();
    assert_eq!(file.encode(&decoded, now), bytes);
    // The age went along: 59 s into the second generation, the rate it measures is kept.
    assert!(decoded.current.age(now) >= Duration::from_secs(58));
}

#[tokio::test]
async fn a_loaded_filter_keeps_growing_by_the_rate() {
    // The file's generations keep their sizes and ages; the next one is sized from the rate
    // seen before and after the restart.
    let c = grown();
    let file = ReplayFile::new(PathBuf::from("unused"), KEY);
    let later = Instant::now();
    let mut loaded = file
        .decode(&file.encode(&c.filter, c.now), c.filter.settings, later)
        .unwrap();
    // 59 s in, 59 000 tags; 69 000 more in 69 s fills it at 1 000/s: 128 000 again.
    let mut now = later;
    for n in 60_000..129_001 {
        now += Duration::from_millis(1);
        loaded.check_and_insert_at(&tag(n), now);
    }
    assert_eq!(loaded.rotations, 1);
    assert_eq!(loaded.generation_capacity(), 128_000);
    assert!((1_000..129_001).all(|n| loaded.contains(&tag(n))));
}

#[tokio::test]
async fn nothing_is_written_when_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay_filter.bin");
    let file = ReplayFile::new(path.clone(), KEY);
    // A new, idle filter: no file at all.
    let filter = filled(1_000, 0..0);
    assert_eq!(file.save(&filter).await, SaveOutcome::Unchanged);
    assert!(!path.exists());
    // One tag: saved. Then nothing new: not written again (the file is not recreated).
    lock(&filter).check_and_insert(&tag(1));
    assert_eq!(file.save(&filter).await, SaveOutcome::Saved);
    let saved = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    assert_eq!(file.save(&filter).await, SaveOutcome::Unchanged);
    assert!(!path.exists());
    // A replay changes nothing either.
    assert!(!lock(&filter).check_and_insert(&tag(1)));
    assert_eq!(file.save(&filter).await, SaveOutcome::Unchanged);
    assert!(!path.exists());
    // A loaded filter is what the file holds: nothing to write until a new tag.
    fs::write(&path, &saved).unwrap();
    let settings = lock(&filter).settings;
    let loaded = Arc::new(Mutex::new(file.load_or_new(settings)));
    assert!(lock(&loaded).contains(&tag(1)));
    let modified = fs::metadata(&path).unwrap().modified().unwrap();
    assert_eq!(file.save(&loaded).await, SaveOutcome::Unchanged);
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), modified);
    lock(&loaded).check_and_insert(&tag(2));
    assert_eq!(file.save(&loaded).await, SaveOutcome::Saved);
    assert_eq!(file.save(&loaded).await, SaveOutcome::Unchanged);
}

/// A file's words (without the checksum) with a correct checksum appended.
fn with_checksum(words: &[u64]) -> Vec<u8> {
    let mut sum = Checksum(0);
    let mut bytes = Vec::new();
    for &word in words {
        sum.add(word);
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    bytes.extend_from_slice(&sum.0.to_le_bytes());
    bytes
}

/// The words before the generation headers, for `KEY`.
fn preamble(version: u64, generations: u64) -> Vec<u64> {
    let mut words = vec![MAGIC, version];
    words.extend(key_words(&KEY));
    words.push(generations);
    words
}

#[tokio::test]
async fn an_unusable_file_gives_an_empty_filter_and_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay_filter.bin");
    let file = ReplayFile::new(path.clone(), KEY);
    let filter = filled(1_000, 0..10);
    let ours = lock(&filter).settings;
    assert_eq!(file.save(&filter).await, SaveOutcome::Saved);
    let good = fs::read(&path).unwrap();
    let check = |bytes: &[u8], settings: ReplaySettings, key: [u8; 32]| {
        let file = ReplayFile::new(path.clone(), key);
        let error = file
            .decode(bytes, settings, Instant::now())
            .err()
            .expect("refused");
        fs::write(&path, bytes).unwrap();
        let loaded = file.load_or_new(settings);
        assert!(!loaded.contains(&tag(0)), "{error}: tag kept");
        assert!(
            loaded.is_changed(),
            "{error}: the file is replaced at the next save"
        );
        assert_eq!(
            loaded.generation_capacity(),
            settings.initial_generation_capacity()
        );
        error
    };
    let mut flipped = good.clone();
    flipped[200] ^= 1;
    assert!(matches!(check(&flipped, ours, KEY), LoadError::Checksum));
    assert!(matches!(
        check(&good[..good.len() - 3], ours, KEY),
        LoadError::Truncated
    ));
    assert!(matches!(
        check(&[good.clone(), vec![0]].concat(), ours, KEY),
        LoadError::TooLong
    ));
    assert!(matches!(
        check(&[b'x'; 200], ours, KEY),
        LoadError::NotAFilter
    ));
    assert!(matches!(check(&good, ours, [8; 32]), LoadError::OtherKey));
    let mut future = good.clone();
    future[8] = 9;
    assert!(matches!(check(&future, ours, KEY), LoadError::Version(9)));
    assert!(matches!(check(b"", ours, KEY), LoadError::Truncated));
    assert!(matches!(
        check(&good[..12], ours, KEY),
        LoadError::Truncated
    ));

    // A version 1 file (the fixed-size format before growth): reported by its version, and
    // nothing of it is read beyond the first two words.
    let mut v1 = vec![MAGIC, 1];
    v1.extend(key_words(&KEY));
    v1.extend([1 << 40, 17, 90_000_000, 1]);
    let error = check(&with_checksum(&v1), ours, KEY);
    assert!(matches!(error, LoadError::Version(1)));
    assert_eq!(
        error.to_string(),
        "it has format version 1; this build reads version 2"
    );

    // Saved with a larger replay_filter_capacity than this configuration's: refused.
    let smaller = ReplaySettings {
        capacity: 100,
        initial_capacity: 50,
        ..ours
    };
    let error = check(&good, smaller, KEY);
    assert!(
        matches!(error, LoadError::TooLarge { unit: "bits", .. }),
        "{error}"
    );
    assert!(error.to_string().contains("replay_filter_capacity allows"));

    // Headers no saver writes.
    for (generations, header, field) in [
        (0, vec![], "generation count"),
        (3, vec![], "generation count"),
        (1, vec![0, 7, 100, 0], "generation size in bits"),
        (1, vec![65, 7, 100, 0], "generation size in bits"),
        (1, vec![64, 0, 100, 0], "hash count"),
        (1, vec![64, 33, 100, 0], "hash count"),
        (1, vec![64, 1 << 33, 100, 0], "hash count"),
        (1, vec![64, 7, 0, 0], "generation capacity"),
    ] {
        let mut words = preamble(FORMAT_VERSION, generations);
        words.extend(header);
        let error = check(&with_checksum(&words), ours, KEY);
        assert!(
            matches!(error, LoadError::Malformed { field: f, .. } if f == field),
            "{field}: {error}"
        );
    }
    // A generation of more packets than this configuration allows.
    let mut words = preamble(FORMAT_VERSION, 1);
    words.extend([64, 7, ours.max_generation_capacity() + 1, 0]);
    assert!(matches!(
        check(&with_checksum(&words), ours, KEY),
        LoadError::TooLarge {
            unit: "packets",
            ..
        }
    ));
}

#[test]
fn a_hostile_header_allocates_nothing_it_does_not_hold() {
    // A header announcing the largest generations of a 1 TiB configuration, in a file of a
    // few words: refused as truncated before any bit array is allocated (allocating 512 GiB
    // would abort the test).
    let huge = ReplaySettings {
        capacity: 1 << 38,
        initial_capacity: 1,
        false_positive_rate: 1e-5,
        generation_lifetime: Duration::from_secs(1),
    };
    let mut words = preamble(FORMAT_VERSION, 2);
    let bits = huge.max_generation_bits();
    words.extend([bits, 17, huge.max_generation_capacity(), 0]);
    words.extend([bits, 17, huge.max_generation_capacity(), 0]);
    words.extend([0; 64]);
    let file = ReplayFile::new(PathBuf::from("unused"), KEY);
    let error = file
        .decode(&with_checksum(&words), huge, Instant::now())
        .err()
        .expect("refused");
    assert!(matches!(error, LoadError::Truncated), "{error}");
}

#[tokio::test]
async fn an_unusable_file_is_replaced_at_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay_filter.bin");
    let file = ReplayFile::new(path.clone(), KEY);
    fs::write(&path, [b'x'; 300]).unwrap();
    let settings = settings(1_000, 100, 100);
    let filter = Arc::new(Mutex::new(file.load_or_new(settings)));
    assert_eq!(file.save(&filter).await, SaveOutcome::Saved);
    let loaded = file.load_or_new(settings);
    assert!(
        !loaded.is_changed(),
        "the file is now a usable, empty filter"
    );
    assert_eq!(loaded.allocated_bytes(), lock(&filter).allocated_bytes());
}

#[tokio::test]
async fn a_save_during_a_rotation_is_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay_filter.bin");
    let file = ReplayFile::new(path.clone(), KEY);
    let filter = filled(200, 0..10);
    assert_eq!(file.save(&filter).await, SaveOutcome::Saved);
    let before = fs::read(&path).unwrap();
    lock(&filter).check_and_insert(&tag(500));
    // The filter rotated after the save started: nothing is written.
    let started_at = lock(&filter).rotations;
    lock(&filter).rotations += 1;
    assert_eq!(
        file.write_generation_of(&filter, started_at).unwrap(),
        SaveOutcome::Abandoned
    );
    assert_eq!(fs::read(&path).unwrap(), before, "the previous file stays");
    assert!(!dir.path().join("replay_filter.bin.tmp").exists());
    // The change is still unsaved: the next save writes it.
    assert!(lock(&filter).is_changed());
    assert_eq!(file.save(&filter).await, SaveOutcome::Saved);
}
