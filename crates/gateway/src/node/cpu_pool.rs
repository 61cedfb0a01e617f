//! A fixed pool of threads for CPU-heavy work (Sphinx unwrapping), so the async workers only
//! move bytes. Each job has a weight (the packets it unwraps); jobs weighing at most
//! `capacity` in all are queued or running, and submitters wait for room, which slows a fast
//! peer down instead of growing memory. Waiting jobs are served one submitter at a time in
//! turn, so a flooding peer gets its share of the threads, not all of them.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

type Job = Box<dyn FnOnce() + Send>;

/// Who submitted a job: each submitter (a mix connection) has its own queue.
pub type QueueId = u64;

/// The pool is closed (shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the CPU pool is shut down")]
pub struct PoolClosed;

/// A job's result: `Err` if the job panicked (a bug, contained to this one packet).
pub type JobResult<T> = Result<T, JobPanicked>;

/// The job panicked.
#[derive(Debug, thiserror::Error)]
#[error("the job panicked")]
pub struct JobPanicked;

/// Jobs waiting for a thread, one queue per submitter, served round-robin: a submitter with
/// hundreds of jobs waiting (a flooding peer) gets one thread turn in each round, as does a
/// peer with one job, whose packet therefore waits for one job of each other busy peer rather
/// than for the whole flood.
#[derive(Default)]
struct Waiting {
    queues: HashMap<QueueId, VecDeque<(Job, OwnedSemaphorePermit)>>,
    /// Submitters with jobs waiting, in the order they are served.
    turns: VecDeque<QueueId>,
    closed: bool,
}

impl Waiting {
    fn push(&mut self, queue: QueueId, job: Job, permit: OwnedSemaphorePermit) {
        let jobs = self.queues.entry(queue).or_default();
        if jobs.is_empty() {
            self.turns.push_back(queue);
        }
        jobs.push_back((job, permit));
    }

    /// The next submitter's oldest job; the submitter goes to the back of the turns if it has
    /// more.
    fn pop(&mut self) -> Option<(Job, OwnedSemaphorePermit)> {
        let queue = self.turns.pop_front()?;
        let jobs = self.queues.get_mut(&queue)?;
        let next = jobs.pop_front();
        if jobs.is_empty() {
            self.queues.remove(&queue);
        } else {
            self.turns.push_back(queue);
        }
        next
    }
}

struct Shared {
    waiting: Mutex<Waiting>,
    wake: Condvar,
}

/// The pool.
pub struct CpuPool {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    capacity: usize,
    workers: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl CpuPool {
    /// Starts `workers` threads (0 = one per core) with room for jobs weighing `capacity`.
    pub fn new(workers: usize, capacity: usize) -> std::io::Result<Self> {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            workers
        };
        let shared = Arc::new(Shared {
            waiting: Mutex::new(Waiting::default()),
            wake: Condvar::new(),
        });
        let mut threads = Vec::with_capacity(workers);
        for n in 0..workers {
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("unwrap-{n}"))
                    .spawn(move || work(&shared))?,
            );
        }
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        Ok(Self {
            shared,
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            workers,
            threads: Mutex::new(threads),
        })
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Submitters with jobs waiting for a thread now.
    pub fn queues_waiting(&self) -> usize {
        self.lock().turns.len()
    }

    /// Queues `work` for `queue`, weighing `weight` (at least 1; more than the capacity counts
    /// as all of it), once there is room, and returns a receiver for its result. The jobs of
    /// one queue start in order; queues take turns (see [`Waiting`]).
    pub async fn submit<T: Send + 'static>(
        &self,
        queue: QueueId,
        weight: usize,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<JobResult<T>>, PoolClosed> {
        // Fits in u32: the capacity is at most `Semaphore::MAX_PERMITS` (< u32::MAX).
        let weight = weight.clamp(1, self.capacity) as u32;
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(weight)
            .await
            .map_err(|_| PoolClosed)?;
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(work)).map_err(|_| JobPanicked);
            let _ = tx.send(result);
        });
        let mut waiting = self.lock();
        if waiting.closed {
            return Err(PoolClosed);
        }
        waiting.push(queue, job, permit);
        drop(waiting);
        self.shared.wake.notify_one();
        Ok(rx)
    }

    /// Stops accepting jobs, lets queued ones finish, joins the threads.
    pub fn shutdown(&self) {
        self.permits.close();
        self.lock().closed = true;
        self.shared.wake.notify_all();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            let _ = thread.join();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A worker thread: the next job in turn, until the pool is closed and nothing waits.
fn work(shared: &Shared) {
    loop {
        let next = {
            let mut waiting = shared
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(next) = waiting.pop() {
                    break Some(next);
                }
                if waiting.closed {
                    break None;
                }
                waiting = shared
                    .wake
                    .wait(waiting)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let Some((job, permit)) = next else {
            return;
        };
        job();
        drop(permit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_come_back_and_panics_are_contained() {
        let pool = CpuPool::new(2, 4).unwrap();
        let mut pending = Vec::new();
        for n in 0..20u32 {
            pending.push(pool.submit(0, 1, move || n * 2).await.unwrap());
        }
        for (n, rx) in pending.into_iter().enumerate() {
            assert_eq!(rx.await.unwrap().unwrap(), n as u32 * 2);
        }
        let rx = pool
            .submit(0, 1, || -> u32 { panic!("boom") })
            .await
            .unwrap();
        assert!(rx.await.unwrap().is_err());
        // Heavier than the whole capacity: still runs (as if it weighed the capacity).
        let rx = pool.submit(0, 100, || 7).await.unwrap();
        assert_eq!(
            rx.await.unwrap().unwrap(),
            7,
            "the pool survives a panicking job"
        );
        pool.shutdown();
        assert!(pool.submit(0, 1, || 1).await.is_err());
    }

    #[tokio::test]
    async fn a_job_holds_room_for_its_weight_until_it_is_done() {
        use futures_util::FutureExt as _;
        let pool = CpuPool::new(1, 4).unwrap();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let heavy = pool
            .submit(0, 4, move || wait.recv().is_ok())
            .await
            .unwrap();
        assert!(
            pool.submit(0, 1, || ()).now_or_never().is_none(),
            "the heavy job fills the whole capacity"
        );
        release.send(()).unwrap();
        assert!(heavy.await.unwrap().unwrap());
        let light = pool.submit(0, 1, || 5).await.unwrap();
        assert_eq!(light.await.unwrap().unwrap(), 5);
        pool.shutdown();
    }

    #[tokio::test]
    async fn a_flooding_submitter_does_not_hold_back_another() {
        let pool = CpuPool::new(1, 1000).unwrap();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        // Occupies the only thread while the queues fill.
        let gate = pool
            .submit(9, 1, move || {
                let _ = started.send(());
                wait.recv().is_ok()
            })
            .await
            .unwrap();
        running.recv().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut results = Vec::new();
        for n in 0..50 {
            let order = order.clone();
            let job = move || order.lock().unwrap().push(("flood", n));
            results.push(pool.submit(1, 1, job).await.unwrap());
        }
        let order_b = order.clone();
        let quiet = move || order_b.lock().unwrap().push(("quiet", 0));
        results.push(pool.submit(2, 1, quiet).await.unwrap());
        assert_eq!(pool.queues_waiting(), 2);
        release.send(()).unwrap();
        assert!(gate.await.unwrap().unwrap());
        for rx in results {
            rx.await.unwrap().unwrap();
        }
        let order = order.lock().unwrap();
        let quiet_at = order.iter().position(|(who, _)| *who == "quiet").unwrap();
        assert!(
            quiet_at <= 1,
            "the quiet submitter waited for {quiet_at} flood jobs"
        );
        // The flood's own jobs still ran in order.
        let flood: Vec<i32> = order
            .iter()
            .filter(|(w, _)| *w == "flood")
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(flood, (0..50).collect::<Vec<_>>());
        assert_eq!(pool.queues_waiting(), 0);
        pool.shutdown();
    }
}
