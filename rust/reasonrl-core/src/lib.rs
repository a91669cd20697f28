//! reasonrl-core: the compiled core of reasonrl, in plain Rust with no Python dependency.
//!
//! Every batch entry point takes plain slices, validates them up front (returning
//! [`Error::InvalidInput`] rather than panicking), and runs in parallel on the pool from
//! [`parallel`]. The `reasonrl-py` crate wraps these functions for Python.

pub mod advantages;
pub mod error;
pub mod math;
pub mod parallel;
pub mod rewards;
pub mod sandbox;

pub use error::{Error, Result};
