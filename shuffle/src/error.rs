//! The one error type of the exchange.

use datafusion::error::DataFusionError;

/// Errors of the exchange writer, reader and codec. Each names the object at fault.
#[derive(Debug, thiserror::Error)]
pub enum ShuffleError {
    /// An object-store request failed.
    #[error("exchange object '{url}': {source}")]
    ObjectStore {
        url: String,
        #[source]
        source: object_store::Error,
    },
    /// An object's bytes are not what the writer writes.
    #[error("exchange object '{url}' is corrupt: {reason}")]
    Corrupt { url: String, reason: String },
    /// Arrow IPC encoding or decoding failed.
    #[error("exchange object '{url}': Arrow IPC error: {reason}")]
    Ipc { url: String, reason: String },
    /// An operator ran before the worker bound its task-specific inputs or output.
    #[error("{operator} of stage {stage} ran without its task inputs bound")]
    Unbound {
        operator: &'static str,
        stage: usize,
    },
    /// A plan node could not be encoded or decoded.
    #[error("plan codec: {0}")]
    Codec(String),
    /// An operator that cannot be sent to a task (no encoding for it).
    #[error("operator {operator} cannot run on Squall's workers: {reason}")]
    Unsupported { operator: String, reason: String },
    /// A fragment that would mean something else on the worker than on the
    /// coordinator (see `fidelity`): refused rather than run.
    #[error(
        "operator {operator} would change meaning on its way to the workers, so the query is refused: {detail}"
    )]
    Fidelity { operator: String, detail: String },
    /// Local spill file I/O.
    #[error("exchange spill file: {0}")]
    Spill(#[from] std::io::Error),
}

impl From<ShuffleError> for DataFusionError {
    fn from(e: ShuffleError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

/// Result alias for this crate.
pub type Result<T, E = ShuffleError> = std::result::Result<T, E>;
