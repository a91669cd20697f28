//! The one way bindings run batch work: GIL released, on reasonrl's thread pool, panics caught.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};
use reasonrl_core::parallel;

use crate::errors::{panic_to_py_err, to_py_err};

/// A `threads=` argument as Python gives it: any int (or object with `__index__`). The pool
/// checks the upper limit; a count beyond i64, a negative count or a non-integer is an
/// error naming the argument here (not a bare OverflowError or "cannot be interpreted as an
/// integer").
pub struct ThreadsArg(usize);

impl<'a, 'py> FromPyObject<'a, 'py> for ThreadsArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let invalid = |why: String| to_py_err(reasonrl_core::Error::invalid("threads", why));
        let negative = |shown: &str| {
            invalid(format!("must be >= 1 (or None for the configured count), got {shown}"))
        };
        let not_an_int = || -> PyResult<PyErr> {
            let kind = obj.get_type().name()?;
            Ok(PyTypeError::new_err(format!("threads must be an int or None, got {kind}")))
        };
        // A bool is an int to Python (`threads=True` would mean one worker): refused as a mistake.
        if obj.is_instance_of::<PyBool>() {
            return Err(not_an_int()?);
        }
        match obj.extract::<i64>() {
            Ok(n) if n >= 0 => Ok(ThreadsArg(usize::try_from(n).unwrap_or(usize::MAX))),
            Ok(n) => Err(negative(&n.to_string())),
            // An int beyond i64 (a numpy uint64 too, through `__index__`): only its sign matters.
            Err(_) if obj.is_instance_of::<PyInt>() || obj.hasattr("__index__")? => {
                let value = obj.call_method0("__index__")?;
                let shown = value.str()?.to_string();
                Err(if value.gt(0)? {
                    invalid(format!("must be at most {}, got {shown}", parallel::MAX_THREADS))
                } else {
                    negative(&shown)
                })
            }
            Err(_) => Err(not_an_int()?),
        }
    }
}

/// A `threads=` argument as the pool takes it: None or 0 (the configured count), or a positive
/// number of workers.
pub fn thread_count(threads: Option<ThreadsArg>) -> Option<usize> {
    threads.map(|ThreadsArg(n)| n).filter(|&n| n > 0)
}

/// Runs `work` with the GIL released on a pool of `threads` workers (default: the configured
/// count). Core errors become their Python exception; a panic becomes `RustPanicError`.
///
/// Arguments must be extracted from Python objects *before* calling this: nothing inside `work`
/// may touch the interpreter.
pub fn run_detached<T, F>(py: Python<'_>, threads: Option<usize>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> reasonrl_core::Result<T> + Send,
{
    let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(|| parallel::install(threads, work))));
    into_py_result(outcome)
}

/// [`run_detached`] for cheap per-item work written with `parallel::map_indices`: a batch of
/// fewer than `parallel::SERIAL_BELOW` items runs on the calling thread (GIL still released),
/// which saves the pool hand-off that would dominate a small call.
pub fn run_detached_sized<T, F>(
    py: Python<'_>,
    threads: Option<usize>,
    items: usize,
    work: F,
) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> reasonrl_core::Result<T> + Send,
{
    let outcome = py.detach(|| {
        catch_unwind(AssertUnwindSafe(|| parallel::install_sized(threads, items, work)))
    });
    into_py_result(outcome)
}

type Outcome<T> = std::thread::Result<reasonrl_core::Result<reasonrl_core::Result<T>>>;

fn into_py_result<T>(outcome: Outcome<T>) -> PyResult<T> {
    match outcome {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(error))) | Ok(Err(error)) => Err(to_py_err(error)),
        Err(payload) => Err(panic_to_py_err(payload)),
    }
}
