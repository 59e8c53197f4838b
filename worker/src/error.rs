//! The one error type of the worker.

use datafusion::error::DataFusionError;

/// Why a task failed; every variant names the stage and task.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The spec bytes are not a TaskSpec this worker understands.
    #[error("invalid task spec: {0}")]
    InvalidSpec(String),
    /// The task ran and failed.
    #[error("stage {stage} task {task} attempt {attempt}: {reason}")]
    Task {
        stage: usize,
        task: usize,
        attempt: u32,
        reason: String,
    },
    /// The payload a worker was sent is not one it may run: unsigned,
    /// altered or signed with another key (see [`crate::signing`]).
    #[error("task spec rejected: {0}")]
    SpecRejected(String),
    /// The payload was signed with this worker's key but has expired.
    #[error(
        "task spec rejected: it expired {seconds_ago} s ago (the coordinator signs every attempt afresh; check the clocks)"
    )]
    SpecExpired { seconds_ago: u64 },
    /// The task key is missing or unusable.
    #[error("{0}")]
    TaskKey(String),
    /// An object a signed reference names could not be read.
    #[error("reading {url}: {reason}")]
    Unreadable { url: String, reason: String },
    /// A report could not be decoded.
    #[error("invalid task report: {0}")]
    InvalidReport(String),
    /// DataFusion failed outside a task's execution.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

/// Result alias for this crate.
pub type Result<T, E = WorkerError> = std::result::Result<T, E>;
