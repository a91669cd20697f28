//! The process-wide rayon pool every batch call runs on.
//!
//! Why not rayon's global pool: its size is fixed at first use, and after `fork()` (DataLoader
//! workers, multiprocessing) the child inherits a pool object whose worker threads do not exist
//! in the child, so the first parallel call deadlocks. We keep our own pool, remember the pid
//! that built it, and build a fresh one when called from a different process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::error::{Error, Result};

/// Pools by thread count, so alternating `threads=` arguments do not rebuild pools; all of them
/// belong to the process `owner_pid`. At most [`MAX_POOLS`] are kept (`order`: least recently
/// used first), so a caller trying many counts does not pile up idle threads.
struct Pools {
    by_threads: HashMap<usize, Arc<ThreadPool>>,
    order: Vec<usize>,
    owner_pid: u32,
}

/// Pools kept alive at once; a dropped pool's threads exit once its in-flight calls finish.
const MAX_POOLS: usize = 4;

/// The most worker threads one call may ask for: far above any core count, far below the
/// point where starting them exhausts the process.
pub const MAX_THREADS: usize = 1024;

static POOLS: Mutex<Option<Pools>> = Mutex::new(None);
/// 0 = "not set": use `default_threads()`.
static REQUESTED_THREADS: Mutex<usize> = Mutex::new(0);

/// Threads used when none were requested: `REASONRL_NUM_THREADS` if set to a positive integer,
/// else the number of CPUs this process may run on. Read once: `available_parallelism` reads
/// cgroup files, far too slow for every call.
pub fn default_threads() -> usize {
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        std::env::var("REASONRL_NUM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    })
}

/// Sets the number of worker threads for later batch calls; 0 restores the default. More than
/// [`MAX_THREADS`] is an error (and changes nothing).
pub fn set_num_threads(threads: usize) -> Result<()> {
    check_thread_count(threads)?;
    *lock(&REQUESTED_THREADS) = threads;
    Ok(())
}

fn check_thread_count(threads: usize) -> Result<usize> {
    if threads > MAX_THREADS {
        return Err(Error::invalid(
            "threads",
            format!("must be at most {MAX_THREADS}, got {threads}"),
        ));
    }
    Ok(threads)
}

/// The worker count of one call: `threads` if given (and > 0), else `num_threads()`; checked.
fn resolve_threads(threads: Option<usize>) -> Result<usize> {
    check_thread_count(threads.filter(|&n| n > 0).unwrap_or_else(num_threads))
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
    let pool = pool_with(resolve_threads(threads)?)?;
    Ok(pool.install(op))
}

/// Batches smaller than this run serially on the calling thread: handing a few microseconds of
/// work to the pool and waking it costs more than the work.
pub const SERIAL_BELOW: usize = 16_384;

/// Like [`install`], but a batch of fewer than [`SERIAL_BELOW`] items (or a single thread) runs
/// on the calling thread. `op` must then use [`map_indices`] / [`sum_indices`], which run serially
/// outside the pool, rather than raw `par_iter` (that would start rayon's global pool).
pub fn install_sized<R: Send>(
    threads: Option<usize>,
    items: usize,
    op: impl FnOnce() -> R + Send,
) -> Result<R> {
    let threads = resolve_threads(threads)?;
    if items < SERIAL_BELOW || threads == 1 {
        Ok(op())
    } else {
        install(Some(threads), op)
    }
}

/// Minimum items per rayon task: below this, splitting costs more than it saves.
const MIN_ITEMS_PER_TASK: usize = 2048;

/// `(0..n).map(f).collect()`, in parallel when called inside the pool, serially otherwise.
pub fn map_indices<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    if rayon::current_thread_index().is_some() {
        (0..n).into_par_iter().with_min_len(MIN_ITEMS_PER_TASK).map(f).collect()
    } else {
        (0..n).map(f).collect()
    }
}

/// Sum of `f(i)` over `0..n`, skipping `None`, with the count of `Some`; parallel inside the pool.
pub fn sum_indices(n: usize, f: impl Fn(usize) -> Option<f64> + Sync + Send) -> (f64, usize) {
    let add = |a: (f64, usize), b: (f64, usize)| (a.0 + b.0, a.1 + b.1);
    let term = |i| f(i).map_or((0.0, 0), |v| (v, 1));
    if rayon::current_thread_index().is_some() {
        (0..n).into_par_iter().with_min_len(MIN_ITEMS_PER_TASK).map(term).reduce(|| (0.0, 0), add)
    } else {
        (0..n).map(term).fold((0.0, 0), add)
    }
}

fn pool_with(threads: usize) -> Result<Arc<ThreadPool>> {
    let pid = std::process::id();
    let mut pools = lock(&POOLS);
    if pools.as_ref().is_some_and(|p| p.owner_pid != pid) {
        // Inherited through fork: their threads do not exist here, and dropping the pools would
        // try to wake them. Leaking a few small allocations per fork is the safe choice.
        std::mem::forget(pools.take());
    }
    let pools = pools.get_or_insert_with(|| Pools {
        by_threads: HashMap::new(),
        order: Vec::new(),
        owner_pid: pid,
    });
    pools.order.retain(|&n| n != threads);
    pools.order.push(threads);
    if let Some(pool) = pools.by_threads.get(&threads) {
        return Ok(pool.clone());
    }
    while pools.order.len() > MAX_POOLS {
        let oldest = pools.order.remove(0);
        pools.by_threads.remove(&oldest);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("reasonrl-{i}"))
        .build()
        .map_err(|e| Error::ThreadPool(e.to_string()))?;
    let pool = Arc::new(pool);
    pools.by_threads.insert(threads, pool.clone());
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

    #[test]
    fn map_and_sum_agree_inside_and_outside_the_pool() {
        let n = 50_000;
        let serial = map_indices(n, |i| i * 3);
        let parallel = install(Some(2), || map_indices(n, |i| i * 3)).unwrap();
        assert_eq!(serial, parallel);
        let f = |i: usize| (i % 7 != 0).then_some(i as f64);
        let (s, c) = sum_indices(n, f);
        assert_eq!(install(Some(2), || sum_indices(n, f)).unwrap(), (s, c));
        assert_eq!(c, n - n.div_ceil(7));
    }

    #[test]
    fn small_batches_run_on_the_calling_thread() {
        assert_eq!(install_sized(Some(2), 10, rayon::current_thread_index).unwrap(), None);
        assert!(install_sized(Some(2), SERIAL_BELOW, rayon::current_thread_index)
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_few_pools_are_kept_and_absurd_thread_counts_refused() {
        for threads in 2..=9 {
            assert_eq!(install(Some(threads), rayon::current_num_threads).unwrap(), threads);
            assert!(lock(&POOLS).as_ref().unwrap().by_threads.len() <= MAX_POOLS);
        }
        let error = install(Some(MAX_THREADS + 1), || ()).unwrap_err();
        assert!(error.to_string().contains("threads"), "{error}");
        assert!(install_sized(Some(MAX_THREADS + 1), 1, || ()).is_err());
        assert!(set_num_threads(MAX_THREADS + 1).is_err());
    }

    #[test]
    fn install_runs_on_requested_thread_count() {
        let seen = install(Some(3), rayon::current_num_threads).unwrap();
        assert_eq!(seen, 3);
        let sum: u64 = install(Some(2), || (0..10_000u64).into_par_iter().sum()).unwrap();
        assert_eq!(sum, 49_995_000);
    }
}
