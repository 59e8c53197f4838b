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
    /// A report could not be decoded.
    #[error("invalid task report: {0}")]
    InvalidReport(String),
    /// DataFusion failed outside a task's execution.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

/// Result alias for this crate.
pub type Result<T, E = WorkerError> = std::result::Result<T, E>;
