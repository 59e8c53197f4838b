//! Progress events, for progress bars and logs.

use std::sync::Arc;

/// Something the scheduler did.
#[derive(Debug, Clone)]
pub enum ProgressEvent {
    /// The query's stage graph is known.
    QueryPlanned { stages: usize, tasks: usize },
    /// A stage's tasks are being launched.
    StageStarted { stage: usize, tasks: usize },
    /// One task finished successfully.
    TaskFinished {
        stage: usize,
        task: usize,
        output_rows: u64,
        output_bytes: u64,
    },
    /// All tasks of a stage finished.
    StageFinished { stage: usize },
}

/// Receives progress events; must be cheap and must not block.
pub type ProgressListener = Arc<dyn Fn(ProgressEvent) + Send + Sync>;
