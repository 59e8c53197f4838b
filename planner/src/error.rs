//! The one error type of the planner.

use datafusion::error::DataFusionError;

/// Planning errors; each names the stage or input at fault.
#[derive(Debug, thiserror::Error)]
pub enum PlannerError {
    /// Reading an input's metadata failed while cutting it into splits.
    #[error(transparent)]
    Input(#[from] squall_connectors::ConnectorError),
    /// A stage fragment violates an operator's requirements after cutting.
    #[error("stage {stage} is not a valid plan after cutting: {reason}")]
    InvalidStage { stage: usize, reason: String },
    /// DataFusion could not plan the query.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

/// Result alias for this crate.
pub type Result<T, E = PlannerError> = std::result::Result<T, E>;
