//! `math_*`: math answer verification. Strings are read lossily (a lone surrogate becomes U+FFFD)
//! so no Python `str` can make a call fail; verdicts come back as `bool` / `list[bool]`.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyString;
use reasonrl_core::math::{self, VerifyOptions};
use reasonrl_core::Error;

use crate::errors::{panic_to_py_err, to_py_err};
use crate::runtime::{run_detached, thread_count, ThreadsArg};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(math_extract_answer, m)?)?;
    m.add_function(wrap_pyfunction!(math_verify, m)?)?;
    m.add_function(wrap_pyfunction!(math_verify_batch, m)?)?;
    m.add_function(wrap_pyfunction!(math_parse, m)?)?;
    Ok(())
}

/// A `str` argument as UTF-8, replacing what cannot be encoded (lone surrogates).
fn text<'a>(object: &'a Bound<'_, PyAny>, argument: &'static str) -> PyResult<Cow<'a, str>> {
    let string = object.cast::<PyString>().map_err(|_| {
        to_py_err(Error::invalid(argument, format!("expected str, got {}", type_name(object))))
    })?;
    Ok(string.to_string_lossy())
}

fn texts(sequence: &Bound<'_, PyAny>, argument: &'static str) -> PyResult<Vec<String>> {
    let not_a_sequence = || {
        to_py_err(Error::invalid(
            argument,
            format!("expected a sequence of str, got {}", type_name(sequence)),
        ))
    };
    // A `str` is iterable too, but one string is never a batch of answers.
    if sequence.is_instance_of::<PyString>() {
        return Err(not_a_sequence());
    }
    let mut out = Vec::new();
    for (index, item) in sequence.try_iter().map_err(|_| not_a_sequence())?.enumerate() {
        let item = item?;
        let string = item.cast::<PyString>().map_err(|_| {
            to_py_err(Error::invalid(
                argument,
                format!("item {index}: expected str, got {}", type_name(&item)),
            ))
        })?;
        out.push(string.to_string_lossy().into_owned());
    }
    Ok(out)
}

fn type_name(object: &Bound<'_, PyAny>) -> String {
    object.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

fn options(timeout_s: f64, rel_tol: f64) -> PyResult<VerifyOptions> {
    let timeout =
        Duration::try_from_secs_f64(timeout_s).ok().filter(|t| !t.is_zero()).ok_or_else(|| {
            to_py_err(Error::invalid(
                "timeout_s",
                format!("must be a positive, finite number of seconds, got {timeout_s}"),
            ))
        })?;
    let options = VerifyOptions { timeout, rel_tol };
    options.validate().map_err(to_py_err)?;
    Ok(options)
}

/// Runs one short call with the GIL released and panics caught. Unlike `run_detached` it stays
/// on the calling thread: a single check takes microseconds, less than a pool hand-off.
fn detached<T: Send>(py: Python<'_>, work: impl FnOnce() -> T + Send) -> PyResult<T> {
    py.detach(|| catch_unwind(AssertUnwindSafe(work))).map_err(panic_to_py_err)
}

/// See `reasonrl.math.extract_answer`.
#[pyfunction]
pub fn math_extract_answer(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let text = self::text(text, "text")?;
    detached(py, || math::extract_answer(&text))
}

/// See `reasonrl.math.verify`.
#[pyfunction]
#[pyo3(signature = (gold, pred, *, timeout_s = 1.0, rel_tol = 1e-6))]
pub fn math_verify(
    py: Python<'_>,
    gold: &Bound<'_, PyAny>,
    pred: &Bound<'_, PyAny>,
    timeout_s: f64,
    rel_tol: f64,
) -> PyResult<bool> {
    let options = options(timeout_s, rel_tol)?;
    let (gold, pred) = (text(gold, "gold")?, text(pred, "pred")?);
    detached(py, || math::verify(&gold, &pred, &options))
}

/// See `reasonrl.math.verify_batch`.
#[pyfunction]
#[pyo3(signature = (golds, preds, *, threads = None, timeout_s = 1.0, rel_tol = 1e-6))]
pub fn math_verify_batch(
    py: Python<'_>,
    golds: &Bound<'_, PyAny>,
    preds: &Bound<'_, PyAny>,
    threads: Option<ThreadsArg>,
    timeout_s: f64,
    rel_tol: f64,
) -> PyResult<Vec<bool>> {
    let threads = thread_count(threads);
    let options = options(timeout_s, rel_tol)?;
    let golds = texts(golds, "golds")?;
    let preds = texts(preds, "preds")?;
    run_detached(py, threads, || math::verify_batch(&golds, &preds, &options))
}

/// See `reasonrl.math.parse`.
#[pyfunction]
#[pyo3(signature = (text, *, timeout_s = 1.0))]
pub fn math_parse(py: Python<'_>, text: &Bound<'_, PyAny>, timeout_s: f64) -> PyResult<String> {
    let timeout = options(timeout_s, 0.0)?.timeout;
    let text = self::text(text, "text")?;
    detached(py, || math::parse(&text, timeout))?.map_err(to_py_err)
}
