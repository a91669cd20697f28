//! `run_code_tests` and `sandbox_capabilities`: the sandboxed code runner (see
//! `reasonrl.code` for the documented Python API).

use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use reasonrl_core::sandbox::python::{self, PythonConfig, Tests};
use reasonrl_core::sandbox::{self, Limits};
use reasonrl_core::Error;

use crate::errors::to_py_err;
use crate::runtime::{run_detached, thread_count, ThreadsArg};

/// `(status, tests_passed, tests_total, wall_time_s, stderr_tail)` per program.
type ResultTuple = (&'static str, usize, usize, f64, String);

fn extract_tests(index: usize, tests: &Bound<'_, PyAny>) -> PyResult<Tests> {
    if let Ok(code) = tests.extract::<String>() {
        return Ok(Tests::Asserts(vec![code]));
    }
    if let Ok(pairs) = tests.extract::<Vec<(String, String)>>() {
        return Ok(Tests::Io(pairs));
    }
    if let Ok(snippets) = tests.extract::<Vec<String>>() {
        return Ok(Tests::Asserts(snippets));
    }
    Err(to_py_err(Error::invalid(
        "tests",
        format!(
            "tests[{index}] must be a str, a list of str or a list of (stdin, expected_stdout) \
             pairs of str"
        ),
    )))
}

/// See `reasonrl.code.run_tests`.
#[pyfunction]
#[pyo3(signature = (
    programs, tests, *, interpreter, expose, timeout_s, memory_mb, max_output_mb, threads = None
))]
#[allow(clippy::too_many_arguments)]
pub fn run_code_tests(
    py: Python<'_>,
    programs: Vec<String>,
    tests: Vec<Bound<'_, PyAny>>,
    interpreter: PathBuf,
    expose: Vec<PathBuf>,
    timeout_s: f64,
    memory_mb: u64,
    max_output_mb: u64,
    threads: Option<ThreadsArg>,
) -> PyResult<Vec<ResultTuple>> {
    let threads = thread_count(threads);
    let tests: Vec<Tests> =
        tests.iter().enumerate().map(|(i, t)| extract_tests(i, t)).collect::<PyResult<_>>()?;
    if !(timeout_s.is_finite() && timeout_s > 0.0 && timeout_s <= 86_400.0) {
        return Err(to_py_err(Error::invalid(
            "timeout_s",
            format!("must be in (0, 86400], got {timeout_s}"),
        )));
    }
    if max_output_mb == 0 {
        return Err(to_py_err(Error::invalid("max_output_mb", "must be at least 1")));
    }
    let config = PythonConfig {
        interpreter,
        expose,
        limits: Limits {
            wall_time: Duration::from_secs_f64(timeout_s),
            memory_bytes: memory_mb.saturating_mul(1 << 20),
            max_output_bytes: usize::try_from(max_output_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            ..Limits::default()
        },
    };
    let results =
        run_detached(py, threads, || python::run_tests(&programs, &tests, &config, threads))?;
    Ok(results
        .into_iter()
        .map(|r| {
            (
                r.status.name(),
                r.tests_passed,
                r.tests_total,
                r.wall_time.as_secs_f64(),
                r.stderr_tail,
            )
        })
        .collect())
}

/// See `reasonrl.code.sandbox_capabilities`.
#[pyfunction]
pub fn sandbox_capabilities(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    // The first call probes the kernel (forks a few processes): do it without the GIL.
    let caps = py.detach(sandbox::capabilities);
    let dict = PyDict::new(py);
    dict.set_item("root", caps.root)?;
    dict.set_item("user_namespace", caps.user_namespace)?;
    dict.set_item("network_namespace", caps.network_namespace)?;
    dict.set_item("mount_namespace", caps.mount_namespace)?;
    dict.set_item("pid_namespace", caps.pid_namespace)?;
    dict.set_item("private_tmpfs", caps.private_tmpfs)?;
    dict.set_item("private_proc", caps.private_proc)?;
    dict.set_item("landlock_abi", caps.landlock_abi)?;
    dict.set_item("landlock", caps.landlock)?;
    dict.set_item("unprivileged", caps.unprivileged)?;
    dict.set_item("orphan_reaping", caps.orphan_reaping)?;
    dict.set_item("missing", caps.missing())?;
    Ok(dict)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_code_tests, m)?)?;
    m.add_function(wrap_pyfunction!(sandbox_capabilities, m)?)?;
    Ok(())
}
