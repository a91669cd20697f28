//! Lists of Python strings → Rust strings, for every text batch (completions, answers, …).

use pyo3::prelude::*;
use pyo3::types::PyString;
use reasonrl_core::Error;

use crate::errors::to_py_err;

/// Copies a sequence of `str` into Rust. Invalid text (lone surrogates) is replaced rather than
/// rejected, so one malformed completion cannot fail a batch; `None` or a non-string is an error
/// naming its index.
pub fn extract_texts(sequence: &Bound<'_, PyAny>, argument: &'static str) -> PyResult<Vec<String>> {
    if sequence.is_instance_of::<PyString>() {
        return Err(to_py_err(Error::invalid(
            argument,
            "expected a list of strings, got one string",
        )));
    }
    let length = sequence
        .len()
        .map_err(|_| to_py_err(Error::invalid(argument, "expected a list of strings")))?;
    let mut texts = Vec::with_capacity(length);
    for (i, item) in sequence.try_iter()?.enumerate() {
        let item = item?;
        let text = item.cast::<PyString>().map_err(|_| {
            let kind = item.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            to_py_err(Error::invalid(argument, format!("{argument}[{i}] is {kind}, expected str")))
        })?;
        texts.push(text.to_string_lossy().into_owned());
    }
    Ok(texts)
}
