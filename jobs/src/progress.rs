//! Progress events, for progress bars and logs.

use std::sync::Arc;
use std::time::Instant;

use squall_planner::StageGraph;
use squall_worker::RequestCounts;

/// Something the scheduler did.
#[derive(Debug, Clone)]
pub enum ProgressEvent {
    /// The query's stage graph is known.
    QueryPlanned {
        stages: usize,
        tasks: usize,
        graph: Arc<StageGraph>,
    },
    /// A stage's tasks are being launched: `tasks` of them, where the
    /// planner made `planned_tasks` (fewer when the stage was sized from
    /// its inputs' exact bytes).
    StageStarted {
        stage: usize,
        tasks: usize,
        planned_tasks: usize,
    },
    /// `attempts` task attempts of `stage` were sent to workers (a launcher
    /// group counts the attempts it runs at once).
    AttemptsStarted { stage: usize, attempts: usize },
    /// `attempts` of them ended (finished, failed, abandoned or cancelled).
    AttemptsEnded { stage: usize, attempts: usize },
    /// One attempt of a task ended, and when it ran by the coordinator's
    /// clock (a launcher group's attempts: its start plus the launcher's
    /// own measures; unmeasured ones span the whole group).
    AttemptTimed {
        stage: usize,
        task: usize,
        /// 0 for the first attempt.
        attempt: u32,
        started: Instant,
        ended: Instant,
        outcome: AttemptOutcome,
    },
    /// One task finished successfully.
    TaskFinished {
        stage: usize,
        task: usize,
        input_bytes: u64,
        /// Rows its scans and exchange readers produced.
        input_rows: u64,
        output_rows: u64,
        output_bytes: u64,
        /// Time the worker spent decoding and running the task: what a
        /// cloud function bills, less its start-up.
        busy_ms: u64,
        /// Object-store requests the task made.
        requests: RequestCounts,
        /// Bytes its operators spilled to local disk.
        spilled_bytes: u64,
        /// The most memory it held at once (through DataFusion's pool).
        peak_memory_bytes: u64,
        /// Its operators' own metrics, when the query asked for them.
        operator_metrics: Vec<squall_worker::OperatorMetrics>,
    },
    /// An attempt of a task failed in a way another attempt may not, and
    /// attempt `attempt` (1 for the first retry) is about to start.
    TaskRetried {
        stage: usize,
        task: usize,
        attempt: u32,
        /// Why the previous attempt failed.
        cause: String,
    },
    /// A task ran much longer than the stage's others: a backup attempt starts.
    TaskSpeculated { stage: usize, task: usize },
    /// A backup attempt finished first; its report is the task's.
    SpeculationWon { stage: usize, task: usize },
    /// All tasks of a stage finished.
    StageFinished { stage: usize },
}

/// How one task attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Its report said the task succeeded (whether or not it won the task).
    Succeeded,
    /// It failed, or the backend could not run it, or it timed out.
    Failed { cause: String },
    /// It was dropped while it ran: another attempt of the task reported
    /// first, or the query was cancelled or failed.
    Abandoned,
}

/// Receives progress events; must be cheap and must not block.
pub type ProgressListener = Arc<dyn Fn(ProgressEvent) + Send + Sync>;
