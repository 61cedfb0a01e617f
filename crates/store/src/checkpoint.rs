//! The checkpointer thread: copies committed pages from the WAL into the database file, so the
//! writer does not have to.
//!
//! SQLite's default (`wal_autocheckpoint`) runs a checkpoint inside the connection that just
//! committed, once the WAL passed 1000 pages: the writer then copies those pages and fsyncs the
//! database file while commands wait in its queue. Here the writer runs with
//! `wal_autocheckpoint=0` and, after every commit, tells this thread how many pages the WAL
//! holds (read from the WAL index, see [`WalIndex`]); once
//! [`StoreConfig::checkpoint_pages`](crate::StoreConfig::checkpoint_pages) were added since its
//! last checkpoint, it runs a `PASSIVE` one on its own connection. That never blocks the writer:
//! it copies only committed pages and takes no write lock. Commits that land while one runs are
//! covered by the next.
//!
//! `PASSIVE` checkpoints alone cannot keep the WAL small under steady writes: SQLite rewinds the
//! WAL to its start only when a write transaction begins while every frame in it is already in
//! the database file, and with the writer always a commit ahead of the checkpointer, that
//! moment never comes. So once the WAL holds
//! [`StoreConfig::wal_restart_pages`](crate::StoreConfig::wal_restart_pages) pages, the writer,
//! between two transactions, pauses this thread and runs a `RESTART` checkpoint itself: it
//! copies the few frames not copied yet and waits for readers of old frames, and the writer's
//! next commit writes the WAL from its start again. That bounds the WAL file. The pause lasts
//! until that commit: a checkpoint that runs while the writer rewinds the WAL makes it skip
//! the rewind.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tracing::{debug, warn};

/// Failing checkpoints (a failing disk) come as fast as commits: warn at most once per this.
const WARNING_PERIOD: Duration = Duration::from_secs(10);

/// Reads how many pages (frames) the WAL holds from the header of the WAL index, the `-shm`
/// file next to the database, whose layout SQLite documents as part of its file format
/// (<https://sqlite.org/walformat.html#the_wal_index_file_format>): two copies of a 48-byte
/// header, each with the version 3007000 at offset 0, `isInit` at 12 and `mxFrame`, the last
/// valid frame, at 16, in native byte order. SQLite maps this file into memory; on unix a
/// `pread` of it sees the same pages.
///
/// Why not ask SQLite: `sqlite3_wal_hook` reports exactly this after each commit, but the
/// rusqlite version of the workspace does not expose it, and `PRAGMA wal_checkpoint` reports
/// it only by running a checkpoint. The number only steers when checkpoints run; nothing
/// depends on it for correctness.
#[derive(Debug)]
pub(crate) struct WalIndex {
    file: File,
}

impl WalIndex {
    /// `None` where the file cannot be read this way (then SQLite checkpoints as usual).
    pub(crate) fn open(database: &Path) -> Option<Self> {
        let mut name = database.as_os_str().to_owned();
        name.push("-shm");
        let index = Self {
            file: File::open(name).ok()?,
        };
        index.frames().map(|_| index)
    }

    /// Frames in the WAL, or `None` if the header does not read as a valid one.
    pub(crate) fn frames(&self) -> Option<u32> {
        let mut header = [0u8; 96];
        read_at(&self.file, &mut header)?;
        let (first, second) = header.split_at(48);
        // SQLite writes the second copy, then the first: equal copies are a whole header.
        if first != second {
            return None;
        }
        let word = |at: usize| {
            u32::from_ne_bytes([first[at], first[at + 1], first[at + 2], first[at + 3]])
        };
        (word(0) == 3_007_000 && first[12] == 1).then(|| word(16))
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8]) -> Option<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, 0).ok()
}

#[cfg(not(unix))]
fn read_at(_file: &File, _buf: &mut [u8]) -> Option<()> {
    None
}

/// The checkpointer thread, owned by the writer. Dropping it stops the thread and waits for
/// it: the writer's connection must be the last one to close (see `Writer::run`), and a
/// writer that never ran must not leave the thread waiting forever.
pub(crate) struct Checkpointer {
    pub(crate) shared: Arc<Checkpoints>,
    pub(crate) index: WalIndex,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn new(shared: Arc<Checkpoints>, index: WalIndex, thread: JoinHandle<()>) -> Self {
        Self {
            shared,
            index,
            thread: Some(thread),
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.stop();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the store's checkpointer thread panicked");
            }
        }
    }
}

/// What the writer and the checkpointer share.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    state: Mutex<State>,
    /// Wakes the checkpointer (a commit, a pause lifted, stop) and the writer (a checkpoint
    /// finished while it waits to pause).
    wake: Condvar,
    /// `StoreConfig::checkpoint_pages` (at least 1).
    checkpoint_pages: u32,
}

#[derive(Debug, Default)]
struct State {
    /// WAL frames after the last commit.
    frames: u32,
    /// The writer is rewinding the WAL: no checkpoint may start.
    paused: bool,
    /// A checkpoint is running.
    running: bool,
    stop: bool,
}

/// The result row of `PRAGMA wal_checkpoint`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// The checkpoint could not finish (another one was running, or readers were in the way).
    pub(crate) busy: bool,
    /// Pages in the WAL (-1 when busy before it could look).
    pub(crate) wal_pages: i64,
}

impl Checkpoints {
    pub(crate) fn new(checkpoint_pages: u32) -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            checkpoint_pages: checkpoint_pages.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer committed; the WAL now holds `frames` frames.
    pub(crate) fn committed(&self, frames: u32) {
        self.lock().frames = frames;
        self.wake.notify_all();
    }

    /// Stops checkpoints until [`resume`](Self::resume), once the one running (if any) ended.
    pub(crate) fn pause(&self) {
        let mut state = self.lock();
        state.paused = true;
        while state.running {
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    pub(crate) fn resume(&self) {
        self.lock().paused = false;
        self.wake.notify_all();
    }

    /// Stops the checkpointer thread once it finished what it is doing.
    fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)`.
pub(crate) fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<Outcome> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(Outcome {
            busy: row.get::<_, i64>(0)? != 0,
            wal_pages: row.get(1)?,
        })
    })
}

/// The thread's body; returns after the [`Checkpointer`] is dropped.
pub(crate) fn run(conn: Connection, shared: &Checkpoints) {
    // WAL frames already copied by this thread's last checkpoint.
    let mut copied: u32 = 0;
    let mut last_warning: Option<Instant> = None;
    loop {
        {
            let mut state = shared.lock();
            loop {
                if state.stop {
                    drop(state);
                    if let Err((_, err)) = conn.close() {
                        warn!(cause = %err, "closing the store's checkpoint connection failed");
                    }
                    debug!("store checkpointer stopped");
                    return;
                }
                if state.frames < copied {
                    // The writer rewound the WAL.
                    copied = 0;
                }
                if !state.paused && state.frames - copied >= shared.checkpoint_pages {
                    break;
                }
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.running = true;
        }
        let result = checkpoint(&conn, "PASSIVE");
        {
            let mut state = shared.lock();
            state.running = false;
            copied = match result {
                // The WAL as this checkpoint found it (it copies what no reader still needs,
                // which with our short reads is all of it); the next one waits for as many
                // new pages again. Never more than the writer reported, so that only a rewind
                // makes `frames` drop below it.
                Ok(outcome) if outcome.wal_pages >= 0 => {
                    u32::try_from(outcome.wal_pages).map_or(state.frames, |p| p.min(state.frames))
                }
                // Another connection was checkpointing: leave it to that one.
                Ok(_) => state.frames,
                Err(err) => {
                    let now = Instant::now();
                    if last_warning.is_none_or(|last| now.duration_since(last) >= WARNING_PERIOD) {
                        last_warning = Some(now);
                        warn!(cause = %err, "store WAL checkpoint failed");
                    }
                    // Try again once more pages came, not in a loop on a failing disk.
                    state.frames
                }
            };
        }
        shared.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_index_reads_the_frames_sqlite_reports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE t (x BLOB);",
        )
        .unwrap();
        let index = WalIndex::open(&path).expect("WAL index readable");
        let mut last = index.frames().unwrap();
        for n in 1..=20 {
            conn.execute("INSERT INTO t VALUES (zeroblob(?1))", [n * 1000])
                .unwrap();
            let frames = index.frames().unwrap();
            assert!(frames > last, "{frames} after {last}");
            last = frames;
        }
        // A checkpoint reports the WAL's size (and changes nothing the index says).
        let outcome = checkpoint(&conn, "PASSIVE").unwrap();
        assert!(!outcome.busy);
        assert_eq!(outcome.wal_pages, i64::from(last));
        assert_eq!(index.frames(), Some(last));
        // After RESTART, the next commit writes the WAL from its start.
        assert!(!checkpoint(&conn, "RESTART").unwrap().busy);
        conn.execute("INSERT INTO t VALUES (x'01')", []).unwrap();
        assert!(index.frames().unwrap() < 5);
    }

    #[test]
    fn no_index_without_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollback.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        assert!(WalIndex::open(&path).is_none());
    }
}
