//! The one error type of this crate: every variant names the table at fault.

use squall_connectors::ConnectorError;

/// Errors raised while opening, scanning or committing to a Delta table.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The location holds no Delta table (no `_delta_log/`), or not the
    /// version or time asked for.
    #[error("no Delta table at {url}: {reason}")]
    NotATable { url: String, reason: String },

    /// The table uses a Delta feature Squall cannot read correctly yet.
    #[error("Delta table {url}: {reason}")]
    Unsupported { url: String, reason: String },

    /// What is written does not fit the table (columns, partitioning).
    #[error("Delta table {url}: {reason}")]
    Mismatch { url: String, reason: String },

    /// Another writer committed something this commit cannot be ordered after.
    #[error(
        "Delta table {url}: another writer committed to it while this job ran ({reason}); nothing was committed, run the job again"
    )]
    Conflict { url: String, reason: String },

    /// The transaction log could not be read or written.
    #[error("Delta table {url}: {reason}")]
    Log { url: String, reason: String },

    /// A location, store or file problem.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
}

/// Result alias for this crate.
pub type Result<T, E = DeltaError> = std::result::Result<T, E>;
