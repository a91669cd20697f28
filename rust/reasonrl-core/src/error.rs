//! One error type for the whole core. The bindings map each variant onto one Python exception
//! class (see `rust/reasonrl-py/src/errors.rs`), so adding a variant means adding a mapping there.

/// Everything that can go wrong inside the core, as a value (the core never panics on bad input).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An argument has the wrong shape, length or value. `argument` names the parameter as the
    /// user wrote it so that the message points at the call site.
    #[error("invalid `{argument}`: {reason}")]
    InvalidInput { argument: &'static str, reason: String },
    /// The thread pool could not be built (e.g. the OS refused to spawn threads).
    #[error("thread pool: {0}")]
    ThreadPool(String),
}

impl Error {
    pub fn invalid(argument: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput { argument, reason: reason.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
