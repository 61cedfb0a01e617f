//! A fixed pool of threads for CPU-heavy work (Sphinx unwrapping), so the async workers only
//! move bytes. Each job has a weight (the packets it unwraps); jobs weighing at most
//! `capacity` in all are queued or running, and submitters wait for room, which slows a fast
//! peer down instead of growing memory.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

type Job = Box<dyn FnOnce() + Send>;

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

/// The pool.
pub struct CpuPool {
    jobs: Mutex<Option<mpsc::Sender<(Job, OwnedSemaphorePermit)>>>,
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
        let (tx, rx) = mpsc::channel::<(Job, OwnedSemaphorePermit)>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(workers);
        for n in 0..workers {
            let rx = rx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("unwrap-{n}"))
                    .spawn(move || loop {
                        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match next {
                            Ok((job, permit)) => {
                                job();
                                drop(permit);
                            }
                            Err(_) => break,
                        }
                    })?,
            );
        }
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        Ok(Self {
            jobs: Mutex::new(Some(tx)),
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

    /// Queues `work`, weighing `weight` (at least 1; more than the capacity counts as all of
    /// it), once there is room, and returns a receiver for its result. Jobs queued by one
    /// caller start in order; the caller decides the order in which it reads results.
    pub async fn submit<T: Send + 'static>(
        &self,
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
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.as_ref()
            .ok_or(PoolClosed)?
            .send((job, permit))
            .map_err(|_| PoolClosed)?;
        Ok(rx)
    }

    /// Stops accepting jobs, lets queued ones finish, joins the threads.
    pub fn shutdown(&self) {
        self.permits.close();
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            let _ = thread.join();
        }
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
            pending.push(pool.submit(1, move || n * 2).await.unwrap());
        }
        for (n, rx) in pending.into_iter().enumerate() {
            assert_eq!(rx.await.unwrap().unwrap(), n as u32 * 2);
        }
        let rx = pool.submit(1, || -> u32 { panic!("boom") }).await.unwrap();
        assert!(rx.await.unwrap().is_err());
        // Heavier than the whole capacity: still runs (as if it weighed the capacity).
        let rx = pool.submit(100, || 7).await.unwrap();
        assert_eq!(
            rx.await.unwrap().unwrap(),
            7,
            "the pool survives a panicking job"
        );
        pool.shutdown();
        assert!(pool.submit(1, || 1).await.is_err());
    }

    #[tokio::test]
    async fn a_job_holds_room_for_its_weight_until_it_is_done() {
        use futures_util::FutureExt as _;
        let pool = CpuPool::new(1, 4).unwrap();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let heavy = pool.submit(4, move || wait.recv().is_ok()).await.unwrap();
        assert!(
            pool.submit(1, || ()).now_or_never().is_none(),
            "the heavy job fills the whole capacity"
        );
        release.send(()).unwrap();
        assert!(heavy.await.unwrap().unwrap());
        let light = pool.submit(1, || 5).await.unwrap();
        assert_eq!(light.await.unwrap().unwrap(), 5);
        pool.shutdown();
    }
}
