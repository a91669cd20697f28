//! `reasonrl._core`: the PyO3 face of reasonrl-core. Each submodule pulls Python arguments out,
//! then hands plain slices to the core through `runtime::run_detached` (GIL released, panics
//! caught). Public, documented Python names live in `python/reasonrl/`; this module is private.

mod advantages;
mod code;
mod errors;
mod math;
mod rewards;
mod runtime;
mod texts;

use pyo3::prelude::*;
use rayon::prelude::*;
use reasonrl_core::parallel;

/// Sets the worker threads used by every batch call (0 restores the default: the
/// `REASONRL_NUM_THREADS` environment variable, else the number of CPUs).
#[pyfunction]
fn set_num_threads(threads: crate::runtime::ThreadsArg) -> PyResult<()> {
    let count = crate::runtime::thread_count(Some(threads));
    parallel::set_num_threads(count.unwrap_or(0)).map_err(errors::to_py_err)
}

/// The worker threads the next batch call will use.
#[pyfunction]
fn get_num_threads() -> usize {
    parallel::num_threads()
}

/// Panics inside the Rust core, on a worker thread, with the GIL released. Exists so the test
/// suite can prove a panic surfaces as `RustPanicError` instead of aborting the interpreter.
#[pyfunction]
fn _panic_for_test(py: Python<'_>, message: String) -> PyResult<()> {
    runtime::run_detached(py, None, move || {
        (0..4u32).into_par_iter().for_each(|i| {
            if i == 3 {
                panic!("{message}");
            }
        });
        Ok(())
    })
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    m.add_function(wrap_pyfunction!(advantages::compute_advantages, m)?)?;
    m.add_function(wrap_pyfunction!(advantages::filter_groups, m)?)?;
    m.add_function(wrap_pyfunction!(rewards::score_rewards, m)?)?;
    m.add_function(wrap_pyfunction!(rewards::chosen_options, m)?)?;
    math::register(m)?;
    code::register(m)?;
    Ok(())
}
