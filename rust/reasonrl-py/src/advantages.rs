//! `compute_advantages` and `filter_groups`: numpy in (zero-copy), numpy out.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;
use reasonrl_core::advantages::{self, Estimator};
use reasonrl_core::Error;

use crate::errors::to_py_err;
use crate::runtime::{run_detached_sized, thread_count, ThreadsArg};

/// A float32 or float64 rewards array, borrowed without copying.
enum Rewards<'py> {
    F32(PyReadonlyArray1<'py, f32>),
    F64(PyReadonlyArray1<'py, f64>),
}

fn extract_rewards<'py>(rewards: &Bound<'py, PyAny>) -> PyResult<Rewards<'py>> {
    if let Ok(array) = rewards.extract::<PyReadonlyArray1<'py, f32>>() {
        return Ok(Rewards::F32(array));
    }
    if let Ok(array) = rewards.extract::<PyReadonlyArray1<'py, f64>>() {
        return Ok(Rewards::F64(array));
    }
    Err(to_py_err(Error::invalid(
        "rewards",
        format!("expected a 1-D float32 or float64 numpy array, got {}", describe(rewards)),
    )))
}

fn extract_group_ids<'py>(group_ids: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArray1<'py, i64>> {
    group_ids.extract::<PyReadonlyArray1<'py, i64>>().map_err(|_| {
        to_py_err(Error::invalid(
            "group_ids",
            format!("expected a 1-D int64 numpy array, got {}", describe(group_ids)),
        ))
    })
}

/// "numpy array of dtype int32 and shape (4, 2)" or the Python type name.
fn describe(object: &Bound<'_, PyAny>) -> String {
    match object.cast::<numpy::PyUntypedArray>() {
        Ok(array) => {
            format!("numpy array of dtype {} and shape {:?}", array.dtype(), array.shape())
        }
        Err(_) => match object.get_type().name() {
            Ok(name) => format!("an object of type {name}"),
            Err(_) => "an object of unknown type".to_string(),
        },
    }
}

fn contiguous<'a, T: numpy::Element>(
    array: &'a PyReadonlyArray1<'_, T>,
    argument: &'static str,
) -> PyResult<&'a [T]> {
    array.as_slice().map_err(|_| to_py_err(Error::invalid(argument, "array must be C-contiguous")))
}

/// See `reasonrl.compute_advantages` for the documented Python API.
#[pyfunction]
#[pyo3(signature = (rewards, group_ids, estimator = "grpo", *, eps = 1e-6, in_batch = None, threads = None))]
#[allow(clippy::too_many_arguments)] // the Python signature: keyword arguments, not a struct
pub fn compute_advantages<'py>(
    py: Python<'py>,
    rewards: &Bound<'py, PyAny>,
    group_ids: &Bound<'py, PyAny>,
    estimator: &str,
    eps: f64,
    in_batch: Option<&Bound<'py, PyAny>>,
    threads: Option<ThreadsArg>,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let threads = thread_count(threads);
    let estimator: Estimator = estimator.parse().map_err(to_py_err)?;
    let rewards = extract_rewards(rewards)?;
    let group_ids = extract_group_ids(group_ids)?;
    let ids = contiguous(&group_ids, "group_ids")?;
    let in_batch = in_batch
        .map(|mask| {
            mask.extract::<PyReadonlyArray1<'py, bool>>().map_err(|_| {
                to_py_err(Error::invalid(
                    "in_batch",
                    format!("expected a 1-D bool numpy array, got {}", describe(mask)),
                ))
            })
        })
        .transpose()?;
    let mask = in_batch.as_ref().map(|m| contiguous(m, "in_batch")).transpose()?;
    let advantages = match &rewards {
        Rewards::F32(r) => {
            let r = contiguous(r, "rewards")?;
            run_detached_sized(py, threads, r.len(), || {
                advantages::compute_advantages_in_batch(r, ids, estimator, eps, mask)
            })?
        }
        Rewards::F64(r) => {
            let r = contiguous(r, "rewards")?;
            run_detached_sized(py, threads, r.len(), || {
                advantages::compute_advantages_in_batch(r, ids, estimator, eps, mask)
            })?
        }
    };
    Ok(advantages.into_pyarray(py))
}

/// See `reasonrl.filter_groups` for the documented Python API.
#[pyfunction]
#[pyo3(signature = (rewards, group_ids, *, threads = None))]
pub fn filter_groups<'py>(
    py: Python<'py>,
    rewards: &Bound<'py, PyAny>,
    group_ids: &Bound<'py, PyAny>,
    threads: Option<ThreadsArg>,
) -> PyResult<Bound<'py, PyArray1<bool>>> {
    let threads = thread_count(threads);
    let rewards = extract_rewards(rewards)?;
    let group_ids = extract_group_ids(group_ids)?;
    let ids = contiguous(&group_ids, "group_ids")?;
    let keep = match &rewards {
        Rewards::F32(r) => {
            let r = contiguous(r, "rewards")?;
            run_detached_sized(py, threads, r.len(), || advantages::filter_groups(r, ids))?
        }
        Rewards::F64(r) => {
            let r = contiguous(r, "rewards")?;
            run_detached_sized(py, threads, r.len(), || advantages::filter_groups(r, ids))?
        }
    };
    Ok(keep.into_pyarray(py))
}
