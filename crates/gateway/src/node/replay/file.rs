//! Saving the replay filter next to the store and loading it at start, so a packet accepted
//! before a restart is still a replay after it.
//!
//! # Format (version 2)
//! Every field is a little-endian `u64`: `MAGIC, FORMAT_VERSION`, the sphinx public key (4
//! words), the number of generations (1 or 2), then for each generation, current first,
//! `len_bits, hashes, capacity, age_ms`; the current generation's words, the previous
//! generation's words (if any); each generation's `inserted`; and a checksum of every word
//! before it. Each generation carries its own size, so generations of different sizes (see
//! the growth rule in [`super`]) load as they were saved. The file is as large as the
//! generations it holds: about 1.4 MiB for an idle gateway at the default settings.
//!
//! Version 1 (one size for both generations, fixed by the settings) is reported as another
//! version and replaced, like a damaged file.
//!
//! # Loading
//! Every length is checked before anything is allocated: a generation larger than
//! `replay_filter_capacity` allows is refused, and so is a file whose length is not exactly
//! what its header announces, so a damaged or hostile file costs at most the configured bound,
//! and only when it really holds that many bytes.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{Generation, ReplayFilter, ReplaySettings, MAX_HASHES};

/// `"GWREPLAY"`: the first word of a saved filter.
const MAGIC: u64 = u64::from_le_bytes(*b"GWREPLAY");
/// The layout in the module doc.
const FORMAT_VERSION: u64 = 2;
/// Words copied under one lock while saving: short enough not to hold up packet checks.
const CHUNK_WORDS: usize = 64 * 1024;
/// Words before the generation headers: magic, version, key, generation count.
const PREAMBLE_WORDS: usize = 7;
/// Words of one generation's header.
const GENERATION_HEADER_WORDS: usize = 4;

/// Where the filter is saved, and the lock that keeps two saves from writing it at once.
#[derive(Clone, Debug)]
pub struct ReplayFile {
    path: PathBuf,
    key: [u8; 32],
    /// Held while writing; `true` once the file was retired ([`ReplayFile::retire`]), after
    /// which no save writes it again.
    saving: Arc<Mutex<bool>>,
}

/// Why a saved filter was not used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading failed.
    #[error("cannot read it: {0}")]
    Io(#[from] io::Error),
    /// The file ends before the end its header announces.
    #[error("it is truncated")]
    Truncated,
    /// The file goes on after the end its header announces.
    #[error("it has bytes after its end")]
    TooLong,
    /// Not our format.
    #[error("it is not a replay filter file")]
    NotAFilter,
    /// A format this build does not read.
    #[error("it has format version {0}; this build reads version {FORMAT_VERSION}")]
    Version(u64),
    /// Saved for another sphinx key: its tags say nothing about packets for this one.
    #[error("it was made for another sphinx key")]
    OtherKey,
    /// A header field no saved filter has.
    #[error("its {field} is {value}, which no replay filter has")]
    Malformed {
        /// Which field.
        field: &'static str,
        /// Its value in the file.
        value: u64,
    },
    /// A generation larger than this configuration allows.
    #[error("it holds a generation of {value} {unit}, more than the {max} that replay_filter_capacity allows")]
    TooLarge {
        /// `bits` or `packets`.
        unit: &'static str,
        /// The generation's size in the file.
        value: u64,
        /// The most this configuration allows.
        max: u64,
    },
    /// The content does not match its checksum.
    #[error("its checksum does not match: the file is damaged")]
    Checksum,
}

/// What a [`ReplayFile::save`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveOutcome {
    /// The file now holds the filter.
    Saved,
    /// Nothing changed since the last save (or the load): nothing was written.
    Unchanged,
    /// The filter started a generation while being saved; the previous file stays.
    Abandoned,
    /// Writing failed (logged); the previous file stays.
    Failed,
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

/// A filter to take an image of: behind the running gateway's lock, or owned.
trait Source {
    fn with<R>(&self, f: impl FnOnce(&ReplayFilter) -> R) -> R;
}

impl Source for Mutex<ReplayFilter> {
    fn with<R>(&self, f: impl FnOnce(&ReplayFilter) -> R) -> R {
        f(&lock(self))
    }
}

impl Source for ReplayFilter {
    fn with<R>(&self, f: impl FnOnce(&Self) -> R) -> R {
        f(self)
    }
}

impl ReplayFile {
    /// The filter file `path`, for the sphinx key whose public half is `sphinx_public`.
    pub fn new(path: PathBuf, sphinx_public: [u8; 32]) -> Self {
        Self {
            path,
            key: sphinx_public,
            saving: Arc::new(Mutex::new(false)),
        }
    }

    /// `replay_filter.bin` in the directory of the store file `store`: the filter of the
    /// static (never rotated) sphinx key.
    pub fn beside_store(store: &std::path::Path, sphinx_public: [u8; 32]) -> Self {
        Self::new(store.with_file_name("replay_filter.bin"), sphinx_public)
    }

    /// `replay_filter.rotation_<id>.bin` beside the store: the filter of one rotation's key.
    pub fn for_rotation(store: &std::path::Path, rotation: u32, sphinx_public: [u8; 32]) -> Self {
        Self::new(Self::rotation_path(store, rotation), sphinx_public)
    }

    /// Where [`for_rotation`](Self::for_rotation) saves `rotation`'s filter.
    pub fn rotation_path(store: &std::path::Path, rotation: u32) -> PathBuf {
        store.with_file_name(format!("replay_filter.rotation_{rotation}.bin"))
    }

    /// Renames the file to `to`'s path (the same key under a new name, when the static key
    /// becomes a rotation's key); this one is retired (blocking).
    pub fn move_to(&self, to: &Self) -> io::Result<()> {
        let mut retired = self.saving.lock().unwrap_or_else(PoisonError::into_inner);
        *retired = true;
        match fs::rename(&self.path, &to.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Deletes the file for good: its key is gone, and a save already under way or asked for
    /// later does not write it again (blocking).
    pub fn retire(&self) -> io::Result<()> {
        let mut retired = self.saving.lock().unwrap_or_else(PoisonError::into_inner);
        *retired = true;
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The saved filter if it is usable, else an empty one, saying which (blocking: call it
    /// at start-up). An unusable file is replaced at the next save.
    pub fn load_or_new(&self, settings: ReplaySettings) -> ReplayFilter {
        let path = self.path.display();
        match self.load(settings) {
            Ok(filter) => {
                info!(%path, bytes = filter.allocated_bytes(), "replay filter loaded: packets seen before the restart are still refused");
                filter
            }
            Err(LoadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                info!(%path, "no saved replay filter; starting with an empty one");
                ReplayFilter::new(settings)
            }
            Err(e) => {
                warn!(%path, "the saved replay filter cannot be used ({e}); starting with an empty one, so replays of packets from before this start are not detected");
                let mut filter = ReplayFilter::new(settings);
                // Not what the file holds: the next save replaces the file.
                filter.changes += 1;
                filter
            }
        }
    }

    /// Reads the file.
    fn load(&self, settings: ReplaySettings) -> Result<ReplayFilter, LoadError> {
        let file = File::open(&self.path)?;
        let len = file.metadata()?.len();
        self.read(io::BufReader::new(file), len, settings, Instant::now())
    }

    /// The filter in `bytes`, a saved file's content, with this configuration's bounds, as if
    /// loaded at `now`.
    pub fn decode(
        &self,
        bytes: &[u8],
        settings: ReplaySettings,
        now: Instant,
    ) -> Result<ReplayFilter, LoadError> {
        self.read(bytes, bytes.len() as u64, settings, now)
    }

    /// The file content [`save`](Self::save) writes for `filter` at `now`.
    pub fn encode(&self, filter: &ReplayFilter, now: Instant) -> Vec<u8> {
        let mut bytes = Vec::new();
        // Writing to a Vec cannot fail, and an owned filter cannot rotate meanwhile.
        let _ = self.write_image(filter, filter.rotations, now, &mut bytes);
        bytes
    }

    /// Reads a filter from `input`, which holds `len` bytes.
    fn read(
        &self,
        mut input: impl Read,
        len: u64,
        settings: ReplaySettings,
        now: Instant,
    ) -> Result<ReplayFilter, LoadError> {
        let mut sum = Checksum(0);
        let mut start = [0u64; 2];
        read_words(&mut input, &mut start, &mut sum)?;
        let [magic, version] = start;
        if magic != MAGIC {
            return Err(LoadError::NotAFilter);
        }
        if version != FORMAT_VERSION {
            return Err(LoadError::Version(version));
        }
        let mut rest = [0u64; PREAMBLE_WORDS - 2];
        read_words(&mut input, &mut rest, &mut sum)?;
        let [k0, k1, k2, k3, count] = rest;
        if key_words(&self.key) != [k0, k1, k2, k3] {
            return Err(LoadError::OtherKey);
        }
        if !(1..=2).contains(&count) {
            return Err(LoadError::Malformed {
                field: "generation count",
                value: count,
            });
        }
        let mut generations = Vec::with_capacity(2);
        let mut total_words = PREAMBLE_WORDS as u64;
        for _ in 0..count {
            let mut header = [0u64; GENERATION_HEADER_WORDS];
            read_words(&mut input, &mut header, &mut sum)?;
            let shape = GenerationShape::check(header, &settings)?;
            // Bounded by the checks (at most the configured maximum per generation).
            total_words += GENERATION_HEADER_WORDS as u64 + shape.len_bits / 64 + 1;
            generations.push(shape);
        }
        // The checksum word.
        total_words += 1;
        match len.cmp(&total_words.saturating_mul(8)) {
            std::cmp::Ordering::Less => return Err(LoadError::Truncated),
            std::cmp::Ordering::Greater => return Err(LoadError::TooLong),
            std::cmp::Ordering::Equal => {}
        }
        // Only now, with the file known to hold them, are the bit arrays allocated.
        let mut loaded = Vec::with_capacity(generations.len());
        for shape in generations {
            let mut generation =
                Generation::empty(shape.len_bits, shape.hashes, shape.capacity, now);
            generation.age_before = shape.age;
            read_words(&mut input, &mut generation.bits, &mut sum)?;
            loaded.push(generation);
        }
        for generation in &mut loaded {
            let mut inserted = [0u64];
            read_words(&mut input, &mut inserted, &mut sum)?;
            generation.inserted = inserted[0];
        }
        let mut expected = [0u8; 8];
        input.read_exact(&mut expected).map_err(truncated)?;
        if sum.0 != u64::from_le_bytes(expected) {
            return Err(LoadError::Checksum);
        }
        let mut loaded = loaded.into_iter();
        let (Some(current), previous) = (loaded.next(), loaded.next()) else {
            return Err(LoadError::Truncated);
        };
        let mut filter = ReplayFilter::new_at(settings, now);
        filter.current = current;
        filter.previous = previous;
        Ok(filter)
    }

    /// Saves `filter` if it changed since the last save (atomically: a crash leaves the
    /// previous file), logging the outcome. A save that failed, or was abandoned because the
    /// filter started a generation meanwhile, is tried again at the next interval.
    pub async fn save(&self, filter: &Arc<Mutex<ReplayFilter>>) -> SaveOutcome {
        let file = self.clone();
        let filter = filter.clone();
        let started = std::time::Instant::now();
        let saved = tokio::task::spawn_blocking(move || {
            // Taken in the blocking job itself, so a save whose caller went away still finishes
            // before the next one writes the same file.
            let retired = file.saving.lock().unwrap_or_else(PoisonError::into_inner);
            if *retired {
                return Ok(SaveOutcome::Unchanged);
            }
            file.write(&filter)
        })
        .await;
        let path = self.path.display();
        match saved {
            Ok(Ok(SaveOutcome::Saved)) => {
                debug!(%path, elapsed = ?started.elapsed(), "replay filter saved");
                SaveOutcome::Saved
            }
            Ok(Ok(SaveOutcome::Unchanged)) => {
                debug!(%path, "the replay filter did not change; not saved");
                SaveOutcome::Unchanged
            }
            Ok(Ok(outcome)) => {
                debug!(%path, "the replay filter rotated while being saved; saving it later");
                outcome
            }
            Ok(Err(e)) => {
                warn!(%path, error = %e, "could not save the replay filter");
                SaveOutcome::Failed
            }
            Err(e) => {
                warn!(%path, error = %e, "saving the replay filter failed");
                SaveOutcome::Failed
            }
        }
    }

    /// Writes `filter` if it changed since the last save, and records what was saved.
    fn write(&self, filter: &Mutex<ReplayFilter>) -> io::Result<SaveOutcome> {
        let (rotations, changes) = {
            let f = lock(filter);
            if !f.is_changed() {
                return Ok(SaveOutcome::Unchanged);
            }
            (f.rotations, f.changes)
        };
        let outcome = self.write_generation_of(filter, rotations)?;
        if outcome == SaveOutcome::Saved {
            // Changes made during the copy may be missing from the image: they count as
            // unsaved.
            let mut f = lock(filter);
            f.saved_changes = f.saved_changes.max(changes);
        }
        Ok(outcome)
    }

    /// Writes an image of `filter`, as it was after `rotations` rotations, to a temporary
    /// file, then renames it over the old one.
    ///
    /// Bits are copied a chunk at a time under the lock. Within a generation bits are only
    /// ever set, so a tag inserted during the copy is either in the image or not, as if the
    /// save had happened a moment earlier or later. A rotation during the copy would mix
    /// generations: the save is then abandoned.
    fn write_generation_of(
        &self,
        filter: &Mutex<ReplayFilter>,
        rotations: u64,
    ) -> io::Result<SaveOutcome> {
        let tmp = self.path.with_extension("bin.tmp");
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = io::BufWriter::new(options.open(&tmp)?);
        let written = self.write_image(filter, rotations, Instant::now(), &mut out);
        if !matches!(written, Ok(true)) {
            drop(out);
            let _ = fs::remove_file(&tmp);
            return written.map(|_| SaveOutcome::Abandoned);
        }
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        // The rename itself survives a power loss once the directory is synced (best effort).
        if let Some(dir) = self.path.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(SaveOutcome::Saved)
    }

    /// Writes the file content for `filter` to `out`; false (and a partial content) if the
    /// filter is no longer the one after `rotations` rotations.
    fn write_image(
        &self,
        filter: &impl Source,
        rotations: u64,
        now: Instant,
        out: &mut impl Write,
    ) -> io::Result<bool> {
        let header = filter.with(|f| {
            (f.rotations == rotations).then(|| {
                let generations = [Some(&f.current), f.previous.as_ref()];
                let generations: Vec<&Generation> = generations.into_iter().flatten().collect();
                let mut header = vec![generations.len() as u64];
                for g in &generations {
                    let age_ms = u64::try_from(g.age(now).as_millis()).unwrap_or(u64::MAX);
                    header.extend([g.len_bits, u64::from(g.hashes), g.capacity, age_ms]);
                }
                let words: Vec<usize> = generations.iter().map(|g| g.bits.len()).collect();
                (header, words)
            })
        });
        let Some((header, words)) = header else {
            return Ok(false);
        };
        let mut out = Output {
            out,
            sum: Checksum(0),
            bytes: Vec::with_capacity(CHUNK_WORDS * 8),
        };
        out.put(&[MAGIC, FORMAT_VERSION])?;
        out.put(&key_words(&self.key))?;
        out.put(&header)?;
        let mut chunk = Vec::with_capacity(CHUNK_WORDS);
        for (generation, &words) in words.iter().enumerate() {
            for start in (0..words).step_by(CHUNK_WORDS) {
                let end = (start + CHUNK_WORDS).min(words);
                let copied = filter.with(|f| {
                    let bits = match (f.rotations == rotations, generation) {
                        (true, 0) => Some(&f.current.bits),
                        (true, _) => f.previous.as_ref().map(|p| &p.bits),
                        (false, _) => None,
                    };
                    chunk.clear();
                    bits.and_then(|bits| bits.get(start..end))
                        .map(|bits| chunk.extend_from_slice(bits))
                        .is_some()
                });
                if !copied {
                    return Ok(false);
                }
                out.put(&chunk)?;
            }
        }
        // Read after the bits, so a count is never below the bits' content.
        let counts = filter.with(|f| {
            (f.rotations == rotations).then(|| {
                [Some(&f.current), f.previous.as_ref()]
                    .into_iter()
                    .flatten()
                    .map(|g| g.inserted)
                    .collect::<Vec<u64>>()
            })
        });
        let Some(counts) = counts else {
            return Ok(false);
        };
        out.put(&counts)?;
        let sum = out.sum.0;
        out.out.write_all(&sum.to_le_bytes())?;
        Ok(true)
    }
}

/// Where the file is written, and the running checksum.
struct Output<'a, W> {
    out: &'a mut W,
    sum: Checksum,
    bytes: Vec<u8>,
}

impl<W: Write> Output<'_, W> {
    fn put(&mut self, words: &[u64]) -> io::Result<()> {
        self.bytes.clear();
        for &word in words {
            self.sum.add(word);
            self.bytes.extend_from_slice(&word.to_le_bytes());
        }
        self.out.write_all(&self.bytes)
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

/// A generation's header as read from a file, checked against the configured limits before
/// anything is allocated for it.
struct GenerationShape {
    len_bits: u64,
    hashes: u32,
    capacity: u64,
    age: Duration,
}

impl GenerationShape {
    fn check(
        header: [u64; GENERATION_HEADER_WORDS],
        settings: &ReplaySettings,
    ) -> Result<Self, LoadError> {
        let [len_bits, hashes, capacity, age_ms] = header;
        let max_bits = settings.max_generation_bits();
        if len_bits == 0 || len_bits % 64 != 0 {
            return Err(LoadError::Malformed {
                field: "generation size in bits",
                value: len_bits,
            });
        }
        if len_bits > max_bits {
            return Err(LoadError::TooLarge {
                unit: "bits",
                value: len_bits,
                max: max_bits,
            });
        }
        let hashes = match u32::try_from(hashes) {
            Ok(h) if (1..=MAX_HASHES).contains(&h) => h,
            _ => {
                return Err(LoadError::Malformed {
                    field: "hash count",
                    value: hashes,
                })
            }
        };
        if capacity == 0 {
            return Err(LoadError::Malformed {
                field: "generation capacity",
                value: 0,
            });
        }
        let max_capacity = settings.max_generation_capacity();
        if capacity > max_capacity {
            return Err(LoadError::TooLarge {
                unit: "packets",
                value: capacity,
                max: max_capacity,
            });
        }
        Ok(Self {
            len_bits,
            hashes,
            capacity,
            age: Duration::from_millis(age_ms),
        })
    }
}

#[cfg(test)]
mod tests;
