//! The stage graph: what the coordinator schedules.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_plan::ExecutionPlan;
use squall_connectors::FileSplit;

/// How a stage reads one of its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// Task `i` reads partition `i` of every map object.
    Hash,
    /// One task reads everything.
    Gather,
    /// One task merges the sorted outputs of all map tasks.
    Merge,
    /// Like `Hash`, but each map task's part stays a separate sorted stream
    /// and the reading task merges them (a hash exchange that keeps order).
    SortedHash,
    /// Every task reads everything.
    Broadcast,
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hash => "hash",
            Self::Gather => "gather",
            Self::Merge => "merge",
            Self::SortedHash => "sorted-hash",
            Self::Broadcast => "broadcast",
        })
    }
}

/// An edge of the stage graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageInput {
    pub stage_id: usize,
    pub kind: ExchangeKind,
}

/// A file scan inside a stage: the `ordinal`-th `DataSourceExec` of the
/// fragment (depth-first), with the splits each task reads.
#[derive(Debug, Clone)]
pub struct ScanLeaf {
    pub ordinal: usize,
    /// `scheme://host/` of the store holding the files.
    pub store_url: String,
    /// `tasks[i]` is what task `i` reads.
    pub tasks: Vec<Vec<FileSplit>>,
}

/// One stage: a plan fragment run by `task_count` identical stateless tasks.
#[derive(Debug, Clone)]
pub struct Stage {
    pub id: usize,
    /// The fragment, topped by an `ExchangeWriterExec` or a `ResultWriterExec`.
    pub plan: Arc<dyn ExecutionPlan>,
    pub inputs: Vec<StageInput>,
    pub task_count: usize,
    /// Output partitions per task object (1 unless hash).
    pub output_partitions: usize,
    pub scans: Vec<ScanLeaf>,
    /// Bytes read from files by all tasks.
    pub scan_bytes: u64,
    /// Estimated output bytes and rows, when DataFusion's statistics tell.
    pub est_output_bytes: Option<u64>,
    pub est_output_rows: Option<u64>,
    /// True for the stage whose output is the query result.
    pub is_final: bool,
}

/// All stages of a query, inputs before the stages that read them; the last is final.
#[derive(Debug, Clone)]
pub struct StageGraph {
    pub stages: Vec<Stage>,
    /// Schema of the query result.
    pub schema: SchemaRef,
    /// True when result parts must be returned in task order (the query has ORDER BY).
    pub ordered: bool,
}

impl StageGraph {
    /// The stage with `id`.
    pub fn stage(&self, id: usize) -> &Stage {
        &self.stages[id]
    }

    /// The final stage.
    pub fn final_stage(&self) -> &Stage {
        self.stages.last().expect("a stage graph has a final stage")
    }

    /// Total tasks over all stages.
    pub fn total_tasks(&self) -> usize {
        self.stages.iter().map(|s| s.task_count).sum()
    }
}
