//! The one error type of the coordinator.

use std::sync::Arc;

use datafusion::error::DataFusionError;

/// Why a query failed; each variant names the thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// SQL that does not parse or plan.
    #[error("{0}")]
    Plan(String),
    /// A table or location problem.
    #[error(transparent)]
    Connector(#[from] squall_connectors::ConnectorError),
    /// A Delta table could not be read or committed to.
    #[error(transparent)]
    Delta(#[from] squall_delta::DeltaError),
    /// The planner failed.
    #[error(transparent)]
    Planner(#[from] squall_planner::PlannerError),
    /// A stage's fragment cannot be sent to its tasks as it is.
    #[error("stage {stage}: {message}")]
    Fragment { stage: usize, message: String },
    /// A task failed. `error`: the DataFusion error it failed with, rebuilt
    /// from its report (same kind and text as on one machine), when it was one.
    #[error("stage {stage} task {task} failed: {message}")]
    TaskFailed {
        stage: usize,
        task: usize,
        message: String,
        error: Option<Arc<DataFusionError>>,
    },
    /// A task found an exchange object of an earlier stage missing,
    /// truncated or corrupt: its producer must run again.
    #[error("stage {stage} task {task} failed: {message}")]
    LostInput {
        stage: usize,
        task: usize,
        /// The lost object.
        url: String,
        message: String,
    },
    /// The backend could not run a task at all.
    #[error("backend '{backend}' could not run stage {stage} task {task}: {message}")]
    Backend {
        backend: String,
        stage: usize,
        task: usize,
        message: String,
    },
    /// Staging, publishing or recovering the files of a `COPY` or `INSERT` failed.
    #[error("stage {stage} output: {message}")]
    Sink { stage: usize, message: String },
    /// A location the backend's workers cannot reach (a local path on Lambda).
    #[error("the {backend} backend's workers cannot reach {url} ({what}): {fix}")]
    Unreachable {
        backend: String,
        url: String,
        what: String,
        fix: String,
    },
    /// The query's result outgrew the session's limit on result size.
    #[error(
        "the result is larger than the limit of {limit} (--max-result-bytes): add a LIMIT or aggregate further, write it to storage with COPY (query) TO 'url', or raise the limit"
    )]
    ResultTooLarge {
        /// The limit, for people ("64.0 MiB").
        limit: String,
    },
    /// The query's scratch lease could not be renewed before it expired:
    /// any client may now delete the query's scratch, so it stops.
    #[error(
        "query {query_id} stopped: its scratch lease could not be renewed for {unrenewed_seconds} s, after which other clients may delete its scratch ({message})"
    )]
    LeaseLost {
        query_id: String,
        unrenewed_seconds: u64,
        message: String,
    },
    /// Reading a result part or cleaning scratch failed.
    #[error("object store error at '{url}': {message}")]
    Storage { url: String, message: String },
    /// DataFusion's own error while parsing, planning or running on the
    /// coordinator, unchanged (it may span lines; the CLI prints one).
    // Not marked as the error's source: its text is already this error's
    // text, and a chain would print it twice.
    #[error("{}", .0.strip_backtrace())]
    DataFusion(DataFusionError),
    /// A statement Squall does not run (yet), with what to do instead.
    #[error("{0}")]
    Unsupported(String),
    /// A fault of Squall itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DataFusionError> for JobError {
    fn from(e: DataFusionError) -> Self {
        JobError::DataFusion(e)
    }
}

impl JobError {
    /// The task at fault, for errors about one task.
    pub fn task(&self) -> Option<usize> {
        match self {
            JobError::TaskFailed { task, .. }
            | JobError::LostInput { task, .. }
            | JobError::Backend { task, .. } => Some(*task),
            _ => None,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = JobError> = std::result::Result<T, E>;
