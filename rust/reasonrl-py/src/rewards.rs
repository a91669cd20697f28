//! `score_rewards`: a whole batch through a `RewardSpec` in one GIL-free call.

use std::panic::{catch_unwind, AssertUnwindSafe};

use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyString};
use reasonrl_core::rewards::{self, Batch, Component, Param, RewardSpec};
use reasonrl_core::Error;

use crate::errors::{panic_to_py_err, to_py_err};
use crate::runtime::{run_detached, thread_count, ThreadsArg};
use crate::texts::extract_texts;

fn invalid(argument: &'static str, reason: String) -> PyErr {
    to_py_err(Error::invalid(argument, reason))
}

fn extract_param(component: &str, key: &str, value: &Bound<'_, PyAny>) -> PyResult<Param> {
    // bool before int: Python's bool is an int subclass.
    if value.is_instance_of::<PyBool>() {
        return Ok(Param::Bool(value.extract()?));
    }
    if value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>() {
        return Ok(Param::Number(value.extract()?));
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(Param::Text(text.to_string_lossy().into_owned()));
    }
    Err(invalid(
        "components",
        format!("component {component:?}: parameter `{key}` must be a bool, number or string"),
    ))
}

/// `components`: a list of `(name, kind, weight, {param: value})` tuples.
fn extract_spec(components: &Bound<'_, PyAny>) -> PyResult<RewardSpec> {
    let list = components.cast::<PyList>().map_err(|_| {
        invalid("components", "expected a list of (name, kind, weight, params)".into())
    })?;
    let mut built = Vec::with_capacity(list.len());
    for item in list.iter() {
        let (name, kind, weight, params): (String, String, f64, Bound<'_, pyo3::types::PyDict>) =
            item.extract().map_err(|_| {
                invalid("components", format!("expected (name, kind, weight, params), got {item}"))
            })?;
        let params = params
            .iter()
            .map(|(k, v)| {
                let key: String = k.extract()?;
                let value = extract_param(&name, &key, &v)?;
                Ok((key, value))
            })
            .collect::<PyResult<Vec<_>>>()?;
        // Construction runs no batch work, but a panic in it must still not reach Python.
        let component =
            catch_unwind(AssertUnwindSafe(|| Component::new(&name, &kind, weight, &params)))
                .map_err(panic_to_py_err)?
                .map_err(to_py_err)?;
        built.push(component);
    }
    catch_unwind(AssertUnwindSafe(|| RewardSpec::new(built)))
        .map_err(panic_to_py_err)?
        .map_err(to_py_err)
}

/// `(components [K, N], total [N])`.
type Scores<'py> = (Bound<'py, PyArray2<f64>>, Bound<'py, PyArray1<f64>>);

/// See `reasonrl.rewards.RewardSpec.score` for the documented Python API.
#[pyfunction]
#[pyo3(signature = (
    components, completions, *, answers = None, choices = None, gold_choices = None,
    group_ids = None, lengths = None, external = None, threads = None
))]
#[allow(clippy::too_many_arguments)]
pub fn score_rewards<'py>(
    py: Python<'py>,
    components: &Bound<'py, PyAny>,
    completions: &Bound<'py, PyAny>,
    answers: Option<&Bound<'py, PyAny>>,
    choices: Option<Vec<Vec<String>>>,
    gold_choices: Option<Vec<usize>>,
    group_ids: Option<Vec<i64>>,
    lengths: Option<Vec<f64>>,
    external: Option<Vec<(String, Vec<f64>)>>,
    threads: Option<ThreadsArg>,
) -> PyResult<Scores<'py>> {
    let threads = thread_count(threads);
    let spec = extract_spec(components)?;
    let completions = extract_texts(completions, "completions")?;
    let answers = answers.map(|a| extract_texts(a, "answers")).transpose()?;
    let external = external.unwrap_or_default();
    let batch = Batch {
        completions: &completions,
        answers: answers.as_deref(),
        choices: choices.as_deref(),
        gold_choices: gold_choices.as_deref(),
        group_ids: group_ids.as_deref(),
        lengths: lengths.as_deref(),
        external: &external,
    };
    let scores = run_detached(py, threads, || rewards::score(&spec, &batch))?;
    let n = completions.len();
    let k = scores.components.len();
    let flat: Vec<f64> = scores.components.into_iter().flatten().collect();
    let matrix = flat
        .into_pyarray(py)
        .reshape([k, n])
        .map_err(|e| invalid("components", format!("internal shape error: {e}")))?;
    Ok((matrix, scores.total.into_pyarray(py)))
}

/// See `reasonrl.rewards.chosen_options` for the documented Python API.
#[pyfunction]
#[pyo3(signature = (completions, choices, *, threads = None))]
pub fn chosen_options(
    py: Python<'_>,
    completions: &Bound<'_, PyAny>,
    choices: Vec<Vec<String>>,
    threads: Option<ThreadsArg>,
) -> PyResult<Vec<Option<usize>>> {
    let threads = thread_count(threads);
    let completions = extract_texts(completions, "completions")?;
    run_detached(py, threads, || rewards::choice::chosen_options(&completions, &choices))
}
