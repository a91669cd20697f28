//! Core errors → Python exceptions. The classes are defined once, in Python
//! (`python/reasonrl/errors.py`), so users can import and subclass them without the extension.

use pyo3::PyErr;
use reasonrl_core::Error;

pyo3::import_exception!(reasonrl.errors, InvalidInputError);
pyo3::import_exception!(reasonrl.errors, ThreadPoolError);
pyo3::import_exception!(reasonrl.errors, RustPanicError);

/// Exhaustive on purpose: a new core error variant does not compile until it has a Python class.
pub fn to_py_err(error: Error) -> PyErr {
    let message = error.to_string();
    match error {
        Error::InvalidInput { .. } => InvalidInputError::new_err(message),
        Error::ThreadPool(_) => ThreadPoolError::new_err(message),
    }
}

/// Turns a caught panic's payload into a `RustPanicError` instead of letting it abort Python.
pub fn panic_to_py_err(payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_string());
    RustPanicError::new_err(format!(
        "internal error in reasonrl's Rust core (please report it): {detail}"
    ))
}
