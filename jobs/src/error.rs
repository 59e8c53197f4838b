//! The one error type of the coordinator.

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
    /// The planner failed.
    #[error(transparent)]
    Planner(#[from] squall_planner::PlannerError),
    /// A task failed.
    #[error("stage {stage} task {task} failed: {message}")]
    TaskFailed {
        stage: usize,
        task: usize,
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
    /// Reading a result part or cleaning scratch failed.
    #[error("object store error at '{url}': {message}")]
    Storage { url: String, message: String },
    /// Anything else DataFusion raised.
    #[error("{0}")]
    DataFusion(String),
}

impl From<DataFusionError> for JobError {
    fn from(e: DataFusionError) -> Self {
        // DataFusion errors can span lines; Squall reports one line.
        let msg = squall_connectors::table::one_line(&e.to_string());
        match e {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..) => JobError::Plan(msg),
            _ => JobError::DataFusion(msg),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = JobError> = std::result::Result<T, E>;
