//! The process-wide rayon pool every batch call runs on.
//!
//! Why not rayon's global pool: its size is fixed at first use, and after `fork()` (DataLoader
//! workers, multiprocessing) the child inherits a pool object whose worker threads do not exist
//! in the child, so the first parallel call deadlocks. We keep our own pool, remember the pid
//! that built it, and build a fresh one when called from a different process.

use std::sync::{Arc, Mutex};

use rayon::ThreadPool;

use crate::error::{Error, Result};

struct PoolSlot {
    pool: Arc<ThreadPool>,
    threads: usize,
    owner_pid: u32,
}

static POOL: Mutex<Option<PoolSlot>> = Mutex::new(None);
/// 0 = "not set": use `default_threads()`.
static REQUESTED_THREADS: Mutex<usize> = Mutex::new(0);

/// Threads used when none were requested: `REASONRL_NUM_THREADS` if set to a positive integer,
/// else the number of CPUs this process may run on.
pub fn default_threads() -> usize {
    std::env::var("REASONRL_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// Sets the number of worker threads for later batch calls; 0 restores the default.
pub fn set_num_threads(threads: usize) {
    *lock(&REQUESTED_THREADS) = threads;
}

/// The number of worker threads the next batch call will use.
pub fn num_threads() -> usize {
    match *lock(&REQUESTED_THREADS) {
        0 => default_threads(),
        n => n,
    }
}

/// Runs `op` inside the pool (so `par_iter` in `op` uses it), with `threads` workers if given,
/// else `num_threads()`.
pub fn install<R: Send>(threads: Option<usize>, op: impl FnOnce() -> R + Send) -> Result<R> {
    let threads = threads.filter(|&n| n > 0).unwrap_or_else(num_threads);
    let pool = pool_with(threads)?;
    Ok(pool.install(op))
}

fn pool_with(threads: usize) -> Result<Arc<ThreadPool>> {
    let pid = std::process::id();
    let mut slot = lock(&POOL);
    if let Some(current) = slot.as_ref() {
        if current.owner_pid == pid && current.threads == threads {
            return Ok(current.pool.clone());
        }
    }
    if let Some(stale) = slot.take() {
        if stale.owner_pid != pid {
            // Inherited through fork: its threads do not exist here, and dropping it would try to
            // wake them. Leaking one small allocation per fork is the safe choice.
            std::mem::forget(stale);
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("reasonrl-{i}"))
        .build()
        .map_err(|e| Error::ThreadPool(e.to_string()))?;
    let pool = Arc::new(pool);
    *slot = Some(PoolSlot { pool: pool.clone(), threads, owner_pid: pid });
    Ok(pool)
}

/// A poisoned lock only means another thread panicked while holding it; the data (a number or a
/// pool handle) is still consistent, so carry on rather than propagate the panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn install_runs_on_requested_thread_count() {
        let seen = install(Some(3), rayon::current_num_threads).unwrap();
        assert_eq!(seen, 3);
        let sum: u64 = install(Some(2), || (0..10_000u64).into_par_iter().sum()).unwrap();
        assert_eq!(sum, 49_995_000);
    }
}
