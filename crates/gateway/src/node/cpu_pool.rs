//! A fixed pool of threads for CPU-heavy work (Sphinx unwrapping), so the async workers only
//! move bytes. Each job has a weight (the packets it unwraps); jobs weighing at most
//! `capacity` in all are queued or running, and submitters wait for room, which slows a fast
//! peer down instead of growing memory. Waiting jobs are served one submitter at a time in
//! turn, so a flooding peer gets its share of the threads, not all of them.
//!
//! A thread takes the waiting jobs in turn until they weigh `batch_weight`, and runs them with
//! one call: the unwrap threads compute the X25519 of several packets at once (several lanes of
//! one vector register), so packets that queue up, whichever connections they came from, share
//! the work; a packet alone in the pool is taken alone, without waiting for company.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Who submitted a job: each submitter (a mix connection) has its own queue.
pub type QueueId = u64;

/// The pool is closed (shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the CPU pool is shut down")]
pub struct PoolClosed;

/// A job's result: `Err` if the job panicked (a bug, contained to its batch).
pub type JobResult<T> = Result<T, JobPanicked>;

/// The job panicked.
#[derive(Debug, thiserror::Error)]
#[error("the job panicked")]
pub struct JobPanicked;

/// Runs a batch of jobs on a pool thread. It answers each job itself (the jobs carry their
/// reply channels), so a panic inside it is its own to report; the pool only survives it.
pub type Runner<J> = Box<dyn Fn(Vec<J>) + Send + Sync>;

/// A waiting job with its weight and the room it holds.
struct Waiting<J> {
    job: J,
    weight: usize,
    permit: OwnedSemaphorePermit,
}

/// Jobs waiting for a thread, one queue per submitter, served round-robin: a submitter with
/// hundreds of jobs waiting (a flooding peer) gets one job in each round, as does a peer with
/// one job, whose packet therefore waits for one job of each other busy peer rather than for
/// the whole flood.
struct Queues<J> {
    queues: HashMap<QueueId, VecDeque<Waiting<J>>>,
    /// Submitters with jobs waiting, in the order they are served.
    turns: VecDeque<QueueId>,
    closed: bool,
}

impl<J> Queues<J> {
    fn push(&mut self, queue: QueueId, waiting: Waiting<J>) {
        let jobs = self.queues.entry(queue).or_default();
        if jobs.is_empty() {
            self.turns.push_back(queue);
        }
        jobs.push_back(waiting);
    }

    /// The next submitter's oldest job; the submitter goes to the back of the turns if it has
    /// more.
    fn pop(&mut self) -> Option<Waiting<J>> {
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

    /// Jobs in turn until they weigh `batch_weight` (at least one job; none if none waits).
    fn pop_batch(&mut self, batch_weight: usize) -> Vec<Waiting<J>> {
        let mut batch = Vec::new();
        let mut weight = 0;
        while weight < batch_weight {
            let Some(next) = self.pop() else { break };
            weight += next.weight;
            batch.push(next);
        }
        batch
    }
}

struct Shared<J> {
    waiting: Mutex<Queues<J>>,
    wake: Condvar,
    runner: Runner<J>,
    batch_weight: usize,
}

/// The pool.
pub struct CpuPool<J> {
    shared: Arc<Shared<J>>,
    permits: Arc<Semaphore>,
    capacity: usize,
    workers: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl<J: Send + 'static> CpuPool<J> {
    /// Starts `workers` threads (0 = one per core) named `name-N`, with room for jobs weighing
    /// `capacity`; each thread runs batches of jobs weighing up to `batch_weight` with `runner`.
    pub fn new(
        name: &str,
        workers: usize,
        capacity: usize,
        batch_weight: usize,
        runner: Runner<J>,
    ) -> std::io::Result<Self> {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            workers
        };
        let shared = Arc::new(Shared {
            waiting: Mutex::new(Queues {
                queues: HashMap::new(),
                turns: VecDeque::new(),
                closed: false,
            }),
            wake: Condvar::new(),
            runner,
            batch_weight: batch_weight.max(1),
        });
        let mut threads = Vec::with_capacity(workers);
        for n in 0..workers {
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("{name}-{n}"))
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

    /// Queues `job` for `queue`, weighing `weight` (at least 1; more than the capacity counts
    /// as all of it), once there is room. The jobs of one queue start in order; queues take
    /// turns, one job each per round, so a flooding peer cannot hold back a quiet one. The job
    /// answers through whatever channel it carries.
    pub async fn submit(&self, queue: QueueId, weight: usize, job: J) -> Result<(), PoolClosed> {
        let weight = weight.clamp(1, self.capacity);
        // Fits in u32: the capacity is at most `Semaphore::MAX_PERMITS` (< u32::MAX).
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(weight as u32)
            .await
            .map_err(|_| PoolClosed)?;
        let mut waiting = self.lock();
        if waiting.closed {
            return Err(PoolClosed);
        }
        waiting.push(
            queue,
            Waiting {
                job,
                weight,
                permit,
            },
        );
        drop(waiting);
        self.shared.wake.notify_one();
        Ok(())
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues<J>> {
        self.shared
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A worker thread: the next batch in turn, until the pool is closed and nothing waits.
fn work<J>(shared: &Shared<J>) {
    loop {
        let batch = {
            let mut waiting = shared
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            loop {
                let batch = waiting.pop_batch(shared.batch_weight);
                if !batch.is_empty() {
                    break batch;
                }
                if waiting.closed {
                    return;
                }
                waiting = shared
                    .wake
                    .wait(waiting)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let (jobs, permits): (Vec<J>, Vec<OwnedSemaphorePermit>) =
            batch.into_iter().map(|w| (w.job, w.permit)).unzip();
        // The runner answers its jobs; a panic that escapes it drops their reply channels,
        // and the thread goes on with the next batch.
        let _ = catch_unwind(AssertUnwindSafe(|| (shared.runner)(jobs)));
        drop(permits);
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    /// A test job: a closure that answers through a channel of its own.
    struct Task(Box<dyn FnOnce() + Send>);

    /// A pool of closures that records the size of every batch it runs.
    fn closure_pool(
        workers: usize,
        capacity: usize,
        batch_weight: usize,
    ) -> (CpuPool<Task>, Arc<Mutex<Vec<usize>>>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let runner: Runner<Task> = Box::new(move |jobs: Vec<Task>| {
            seen.lock().unwrap().push(jobs.len());
            for Task(job) in jobs {
                job();
            }
        });
        let pool = CpuPool::new("test", workers, capacity, batch_weight, runner).unwrap();
        (pool, batches)
    }

    async fn submit<T: Send + 'static>(
        pool: &CpuPool<Task>,
        queue: QueueId,
        weight: usize,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<T>, PoolClosed> {
        let (tx, rx) = oneshot::channel();
        let task = Task(Box::new(move || {
            let _ = tx.send(work());
        }));
        pool.submit(queue, weight, task).await.map(|()| rx)
    }

    #[tokio::test]
    async fn results_come_back_and_a_panicking_batch_leaves_the_pool_running() {
        let (pool, _) = closure_pool(2, 4, 1);
        let mut pending = Vec::new();
        for n in 0..20u32 {
            pending.push(submit(&pool, 0, 1, move || n * 2).await.unwrap());
        }
        for (n, rx) in pending.into_iter().enumerate() {
            assert_eq!(rx.await.unwrap(), n as u32 * 2);
        }
        let rx = submit(&pool, 0, 1, || -> u32 { panic!("boom") })
            .await
            .unwrap();
        assert!(rx.await.is_err(), "the panicking job's answer never comes");
        // Heavier than the whole capacity: still runs (as if it weighed the capacity).
        let rx = submit(&pool, 0, 100, || 7).await.unwrap();
        assert_eq!(rx.await.unwrap(), 7, "the pool survives a panicking job");
        pool.shutdown();
        assert!(submit(&pool, 0, 1, || 1).await.is_err());
    }

    #[tokio::test]
    async fn a_job_holds_room_for_its_weight_until_it_is_done() {
        use futures_util::FutureExt as _;
        let (pool, _) = closure_pool(1, 4, 1);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let heavy = submit(&pool, 0, 4, move || wait.recv().is_ok())
            .await
            .unwrap();
        assert!(
            submit(&pool, 0, 1, || ()).now_or_never().is_none(),
            "the heavy job fills the whole capacity"
        );
        release.send(()).unwrap();
        assert!(heavy.await.unwrap());
        let light = submit(&pool, 0, 1, || 5).await.unwrap();
        assert_eq!(light.await.unwrap(), 5);
        pool.shutdown();
    }

    /// Occupies a one-thread pool's thread until the returned sender is used.
    async fn hold_the_thread(
        pool: &CpuPool<Task>,
    ) -> (std::sync::mpsc::Sender<()>, oneshot::Receiver<bool>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let gate = submit(pool, 9, 1, move || {
            let _ = started.send(());
            wait.recv().is_ok()
        })
        .await
        .unwrap();
        running.recv().unwrap();
        (release, gate)
    }

    #[tokio::test]
    async fn a_flooding_submitter_does_not_hold_back_another() {
        let (pool, _) = closure_pool(1, 1000, 1);
        let (release, gate) = hold_the_thread(&pool).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut results = Vec::new();
        for n in 0..50 {
            let order = order.clone();
            let job = move || order.lock().unwrap().push(("flood", n));
            results.push(submit(&pool, 1, 1, job).await.unwrap());
        }
        let order_b = order.clone();
        let quiet = move || order_b.lock().unwrap().push(("quiet", 0));
        results.push(submit(&pool, 2, 1, quiet).await.unwrap());
        assert_eq!(pool.queues_waiting(), 2);
        release.send(()).unwrap();
        assert!(gate.await.unwrap());
        for rx in results {
            rx.await.unwrap();
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

    #[tokio::test]
    async fn jobs_that_queue_up_run_together_across_submitters_and_a_lone_job_alone() {
        let (pool, batches) = closure_pool(1, 1000, 8);
        // Alone in the pool: taken at once, in a batch of its own.
        submit(&pool, 1, 1, || ()).await.unwrap().await.unwrap();
        assert_eq!(*batches.lock().unwrap(), [1]);
        batches.lock().unwrap().clear();

        let (release, gate) = hold_the_thread(&pool).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut results = Vec::new();
        // Three submitters queue 5, 5 and 2 jobs of one packet while the thread is busy.
        for (queue, jobs) in [(1u64, 5), (2, 5), (3, 2)] {
            for n in 0..jobs {
                let order = order.clone();
                let job = move || order.lock().unwrap().push((queue, n));
                results.push(submit(&pool, queue, 1, job).await.unwrap());
            }
        }
        release.send(()).unwrap();
        assert!(gate.await.unwrap());
        for rx in results {
            rx.await.unwrap();
        }
        let batches = batches.lock().unwrap().clone();
        assert_eq!(
            batches,
            [1, 8, 4],
            "the holding job, then the 12 queued jobs in batches of at most 8"
        );
        // Taken in turn: one job of each submitter per round, each submitter's in order.
        let order = order.lock().unwrap();
        assert_eq!(
            &order[..6],
            &[(1, 0), (2, 0), (3, 0), (1, 1), (2, 1), (3, 1)]
        );
        for queue in 1..=3 {
            let mine: Vec<i32> = order
                .iter()
                .filter(|(q, _)| *q == queue)
                .map(|(_, n)| *n)
                .collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "queue {queue} in order: {mine:?}"
            );
        }
        pool.shutdown();
    }

    #[tokio::test]
    async fn a_batch_stops_at_its_weight_even_when_one_job_is_heavy() {
        let (pool, batches) = closure_pool(1, 1000, 8);
        let (release, gate) = hold_the_thread(&pool).await;
        let mut results = Vec::new();
        for (queue, weight) in [(1u64, 6), (2, 6), (3, 1)] {
            results.push(submit(&pool, queue, weight, || ()).await.unwrap());
        }
        release.send(()).unwrap();
        assert!(gate.await.unwrap());
        for rx in results {
            rx.await.unwrap();
        }
        // 6 + 6 reaches 8: the third job waits for the next batch.
        assert_eq!(*batches.lock().unwrap(), [1, 2, 1]);
        pool.shutdown();
    }
}
