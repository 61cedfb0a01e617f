//! Saving the replay filter next to the store and loading it at start, so a packet accepted
//! before a restart is still a replay after it.
//!
//! # Format
//! Every field is a little-endian `u64`: `MAGIC, FORMAT_VERSION`, the sphinx public key (4
//! words), `len_bits, hashes, generation_capacity, has_previous`, the current generation's
//! words, the previous generation's words (if any), `current_inserted, previous_inserted`, and
//! a checksum of every word before it.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::{debug, info, warn};

use super::{Generation, ReplayFilter};

/// `"GWREPLAY"`: the first word of a saved filter.
const MAGIC: u64 = u64::from_le_bytes(*b"GWREPLAY");
/// The layout in the module doc.
const FORMAT_VERSION: u64 = 1;
/// Words copied under one lock while saving: short enough not to hold up packet checks.
const CHUNK_WORDS: usize = 64 * 1024;

/// Where the filter is saved, and the lock that keeps two saves from writing it at once.
#[derive(Clone, Debug)]
pub struct ReplayFile {
    path: PathBuf,
    key: [u8; 32],
    saving: Arc<Mutex<()>>,
}

/// Why a saved filter was not used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading failed.
    #[error("cannot read it: {0}")]
    Io(#[from] io::Error),
    /// The file ends early.
    #[error("it is truncated")]
    Truncated,
    /// Not our format.
    #[error("it is not a replay filter file")]
    NotAFilter,
    /// A format this build does not read.
    #[error("it has format version {0}; this build reads version {FORMAT_VERSION}")]
    Version(u64),
    /// Saved for another sphinx key: its tags say nothing about packets for this one.
    #[error("it was made for another sphinx key")]
    OtherKey,
    /// Saved with other `replay_filter_capacity` / `replay_filter_false_positive_rate` values.
    #[error("it was made with other replay filter settings")]
    OtherSettings,
    /// The content does not match its checksum.
    #[error("its checksum does not match: the file is damaged")]
    Checksum,
}

/// Detects damage (a change to any one word always changes the sum), not tampering: whoever
/// can write the data directory can replace the keys as well.
#[derive(Clone, Copy)]
struct Checksum(u64);

impl Checksum {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

fn lock(filter: &Mutex<ReplayFilter>) -> MutexGuard<'_, ReplayFilter> {
    filter.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ReplayFile {
    /// The filter file `path`, for the sphinx key whose public half is `sphinx_public`.
    pub fn new(path: PathBuf, sphinx_public: [u8; 32]) -> Self {
        Self {
            path,
            key: sphinx_public,
            saving: Arc::new(Mutex::new(())),
        }
    }

    /// `replay_filter.bin` in the directory of the store file `store`.
    pub fn beside_store(store: &std::path::Path, sphinx_public: [u8; 32]) -> Self {
        Self::new(store.with_file_name("replay_filter.bin"), sphinx_public)
    }

    /// The saved filter if it is usable, else an empty one, saying which (blocking: call it
    /// at start-up).
    pub fn load_or_new(&self, capacity: u64, fp_rate: f64) -> ReplayFilter {
        let mut filter = ReplayFilter::new(capacity, fp_rate);
        let path = self.path.display();
        match self.read_into(&mut filter) {
            Ok(()) => {
                info!(%path, "replay filter loaded: packets seen before the restart are still refused");
                filter
            }
            Err(LoadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                info!(%path, "no saved replay filter; starting with an empty one");
                filter
            }
            Err(e) => {
                warn!(%path, "the saved replay filter cannot be used ({e}); starting with an empty one, so replays of packets from before this start are not detected");
                ReplayFilter::new(capacity, fp_rate)
            }
        }
    }

    /// Reads the file into `filter` (fresh, with this run's settings). On error `filter` may be
    /// partly filled and must be discarded.
    fn read_into(&self, filter: &mut ReplayFilter) -> Result<(), LoadError> {
        let mut input = io::BufReader::new(File::open(&self.path)?);
        let mut sum = Checksum(0);
        let mut header = [0u64; 10];
        read_words(&mut input, &mut header, &mut sum)?;
        let [magic, version, k0, k1, k2, k3, len_bits, hashes, capacity, has_previous] = header;
        if magic != MAGIC {
            return Err(LoadError::NotAFilter);
        }
        if version != FORMAT_VERSION {
            return Err(LoadError::Version(version));
        }
        if key_words(&self.key) != [k0, k1, k2, k3] {
            return Err(LoadError::OtherKey);
        }
        let ours = [
            filter.current.len_bits,
            u64::from(filter.hashes),
            filter.generation_capacity,
        ];
        if [len_bits, hashes, capacity] != ours {
            return Err(LoadError::OtherSettings);
        }
        read_words(&mut input, &mut filter.current.bits, &mut sum)?;
        let mut previous = match has_previous {
            0 => None,
            1 => Some(Generation::new(filter.len_bits, filter.hashes)),
            _ => return Err(LoadError::NotAFilter),
        };
        if let Some(previous) = &mut previous {
            read_words(&mut input, &mut previous.bits, &mut sum)?;
        }
        let mut counts = [0u64; 2];
        read_words(&mut input, &mut counts, &mut sum)?;
        let mut expected = [0u8; 8];
        input.read_exact(&mut expected).map_err(truncated)?;
        if sum.0 != u64::from_le_bytes(expected) || input.read(&mut [0u8; 1])? != 0 {
            return Err(LoadError::Checksum);
        }
        filter.current.inserted = counts[0];
        if let Some(previous) = &mut previous {
            previous.inserted = counts[1];
        }
        filter.previous = previous;
        Ok(())
    }

    /// Saves `filter` (atomically: a crash leaves the previous file), logging the outcome.
    /// Returns whether it was saved; a save that failed, or was abandoned because the filter
    /// rotated meanwhile, is tried again at the next interval.
    pub async fn save(&self, filter: &Arc<Mutex<ReplayFilter>>) -> bool {
        let file = self.clone();
        let filter = filter.clone();
        let started = std::time::Instant::now();
        let saved = tokio::task::spawn_blocking(move || {
            // Taken in the blocking job itself, so a save whose caller went away still finishes
            // before the next one writes the same file.
            let _saving = file.saving.lock().unwrap_or_else(PoisonError::into_inner);
            file.write(&filter)
        })
        .await;
        let path = self.path.display();
        match saved {
            Ok(Ok(true)) => {
                debug!(%path, elapsed = ?started.elapsed(), "replay filter saved");
                true
            }
            Ok(Ok(false)) => {
                debug!(%path, "the replay filter rotated while being saved; saving it later");
                false
            }
            Ok(Err(e)) => {
                warn!(%path, error = %e, "could not save the replay filter");
                false
            }
            Err(e) => {
                warn!(%path, error = %e, "saving the replay filter failed");
                false
            }
        }
    }

    /// Saves `filter` every `interval`, until the task is aborted.
    pub async fn save_every(self, filter: Arc<Mutex<ReplayFilter>>, interval: Duration) {
        let first = tokio::time::Instant::now() + interval;
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.save(&filter).await;
        }
    }

    /// Writes an image of `filter` to a temporary file, then renames it over the old one.
    ///
    /// Bits are copied a chunk at a time under the lock. Within a generation bits are only
    /// ever set, so a tag inserted during the copy is either in the image or not, as if the
    /// save had happened a moment earlier or later. A rotation during the copy would mix
    /// generations: the save is then abandoned (`Ok(false)`).
    fn write(&self, filter: &Mutex<ReplayFilter>) -> io::Result<bool> {
        let rotations = lock(filter).rotations;
        self.write_generation_of(filter, rotations)
    }

    /// [`write`](Self::write) for the filter as it was after `rotations` rotations.
    fn write_generation_of(
        &self,
        filter: &Mutex<ReplayFilter>,
        rotations: u64,
    ) -> io::Result<bool> {
        let (header, words) = {
            let f = lock(filter);
            let header = [
                f.current.len_bits,
                u64::from(f.hashes),
                f.generation_capacity,
                u64::from(f.previous.is_some()),
            ];
            (header, f.current.bits.len())
        };
        let tmp = self.path.with_extension("bin.tmp");
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = Output {
            file: io::BufWriter::new(options.open(&tmp)?),
            sum: Checksum(0),
            bytes: Vec::with_capacity(CHUNK_WORDS * 8),
        };
        out.put(&[MAGIC, FORMAT_VERSION])?;
        out.put(&key_words(&self.key))?;
        out.put(&header)?;
        let generations = if header[3] == 1 { 2 } else { 1 };
        let mut chunk = Vec::with_capacity(CHUNK_WORDS);
        for generation in 0..generations {
            for start in (0..words).step_by(CHUNK_WORDS) {
                let end = (start + CHUNK_WORDS).min(words);
                {
                    let f = lock(filter);
                    let bits = match (f.rotations == rotations, generation) {
                        (true, 0) => Some(&f.current.bits),
                        (true, _) => f.previous.as_ref().map(|p| &p.bits),
                        (false, _) => None,
                    };
                    let Some(bits) = bits else {
                        drop(out);
                        let _ = fs::remove_file(&tmp);
                        return Ok(false);
                    };
                    chunk.clear();
                    chunk.extend_from_slice(&bits[start..end]);
                }
                out.put(&chunk)?;
            }
        }
        let counts = {
            let f = lock(filter);
            [
                f.current.inserted,
                f.previous.as_ref().map_or(0, |p| p.inserted),
            ]
        };
        out.put(&counts)?;
        let sum = out.sum.0;
        let mut file = out
            .file
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.write_all(&sum.to_le_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        // The rename itself survives a power loss once the directory is synced (best effort).
        if let Some(dir) = self.path.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(true)
    }
}

/// The file being written and the running checksum.
struct Output {
    file: io::BufWriter<File>,
    sum: Checksum,
    bytes: Vec<u8>,
}

impl Output {
    fn put(&mut self, words: &[u64]) -> io::Result<()> {
        self.bytes.clear();
        for &word in words {
            self.sum.add(word);
            self.bytes.extend_from_slice(&word.to_le_bytes());
        }
        self.file.write_all(&self.bytes)
    }
}

fn key_words(key: &[u8; 32]) -> [u64; 4] {
    let mut words = [0u64; 4];
    for (word, bytes) in words.iter_mut().zip(key.chunks_exact(8)) {
        *word = u64::from_le_bytes(bytes.try_into().unwrap_or_default());
    }
    words
}

fn truncated(e: io::Error) -> LoadError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        LoadError::Truncated
    } else {
        LoadError::Io(e)
    }
}

/// Fills `words` from `input`, adding each to `sum`.
fn read_words(
    input: &mut impl Read,
    words: &mut [u64],
    sum: &mut Checksum,
) -> Result<(), LoadError> {
    let mut bytes = vec![0u8; CHUNK_WORDS.min(words.len()) * 8];
    for chunk in words.chunks_mut(CHUNK_WORDS) {
        let bytes = &mut bytes[..chunk.len() * 8];
        input.read_exact(bytes).map_err(truncated)?;
        for (word, le) in chunk.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_le_bytes(le.try_into().unwrap_or_default());
            sum.add(*word);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::replay::tests::tag;

    const KEY: [u8; 32] = [7; 32];

    fn filled(capacity: u64, tags: std::ops::Range<u64>) -> Arc<Mutex<ReplayFilter>> {
        let mut filter = ReplayFilter::new(capacity, 1e-6);
        for n in tags {
            assert!(filter.check_and_insert(&tag(n)));
        }
        Arc::new(Mutex::new(filter))
    }

    #[tokio::test]
    async fn a_saved_filter_remembers_its_tags_after_loading() {
        let dir = tempfile::tempdir().unwrap();
        let file = ReplayFile::new(dir.path().join("replay_filter.bin"), KEY);
        // 150 tags in a filter of 200 (generations of 100): both generations are saved.
        let filter = filled(200, 0..150);
        assert!(file.save(&filter).await);
        let mut loaded = file.load_or_new(200, 1e-6);
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
    async fn an_unusable_file_gives_an_empty_filter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay_filter.bin");
        let file = ReplayFile::new(path.clone(), KEY);
        assert!(file.save(&filled(1_000, 0..10)).await);
        let good = fs::read(&path).unwrap();
        let check = |bytes: &[u8], capacity: u64, key: [u8; 32]| {
            fs::write(&path, bytes).unwrap();
            let file = ReplayFile::new(path.clone(), key);
            let mut fresh = ReplayFilter::new(capacity, 1e-6);
            let error = file.read_into(&mut fresh).unwrap_err().to_string();
            let mut loaded = file.load_or_new(capacity, 1e-6);
            assert!(loaded.check_and_insert(&tag(0)), "{error}: tag kept");
            error
        };
        let mut flipped = good.clone();
        flipped[200] ^= 1;
        assert!(check(&flipped, 1_000, KEY).contains("checksum"));
        assert!(check(&good[..good.len() - 3], 1_000, KEY).contains("truncated"));
        assert!(check(&[good.clone(), vec![0]].concat(), 1_000, KEY).contains("checksum"));
        assert!(check(&[b'x'; 200], 1_000, KEY).contains("not a replay filter"));
        assert!(check(&good, 2_000, KEY).contains("other replay filter settings"));
        assert!(check(&good, 1_000, [8; 32]).contains("another sphinx key"));
        let mut future = good.clone();
        future[8] = 9;
        assert!(check(&future, 1_000, KEY).contains("format version 9"));
        assert!(check(b"", 1_000, KEY).contains("truncated"));
    }

    #[tokio::test]
    async fn a_save_during_a_rotation_is_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay_filter.bin");
        let file = ReplayFile::new(path.clone(), KEY);
        let filter = filled(200, 0..10);
        assert!(file.save(&filter).await);
        let before = fs::read(&path).unwrap();
        lock(&filter).check_and_insert(&tag(500));
        // The filter rotated after the save started: nothing is written.
        let started_at = lock(&filter).rotations;
        lock(&filter).rotations += 1;
        assert!(!file.write_generation_of(&filter, started_at).unwrap());
        assert_eq!(fs::read(&path).unwrap(), before, "the previous file stays");
        assert!(!dir.path().join("replay_filter.bin.tmp").exists());
    }
}
