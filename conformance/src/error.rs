//! The one error type of the conformance harness.

/// Why the suite could not run or judge its results.
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// Building the working directory or finding the `.slt` files failed.
    #[error("setting up the sqllogictest suite: {0}")]
    Setup(String),
    /// The expected-failures list is malformed.
    #[error("{path}:{line}: {reason}")]
    ExpectedList {
        path: String,
        line: usize,
        reason: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = ConformanceError> = std::result::Result<T, E>;
