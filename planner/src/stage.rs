//! The stage graph: what the coordinator schedules.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_plan::ExecutionPlan;
use squall_connectors::FileSplit;

/// How a stage reads one of its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// Task `i` reads partition `i` of every map object, or the range of
    /// partitions [`Stage::hash_partitions`] gives it once the coordinator
    /// has sized the stage from its inputs.
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
    /// Task `i` of a combining stage reads every partition of map objects
    /// `i·maps_per_task .. (i+1)·maps_per_task` (see [`crate::combine`]).
    Combine { maps_per_task: usize },
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hash => "hash",
            Self::Gather => "gather",
            Self::Merge => "merge",
            Self::SortedHash => "sorted-hash",
            Self::Broadcast => "broadcast",
            Self::Combine { .. } => "combining",
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
    /// Estimated output bytes (in memory) and rows, when DataFusion's
    /// statistics tell; the bytes fall back to what the stage reads.
    pub est_output_bytes: Option<u64>,
    pub est_output_rows: Option<u64>,
    /// True for the stage whose output is the query result.
    pub is_final: bool,
    /// Which hash partitions each task reads when that is not "task `i`
    /// reads partition `i`": `partition_ranges[i]` for task `i`, contiguous
    /// and covering every partition once. Empty as planned; set by the
    /// coordinator when it sizes a stage from the exact bytes its inputs
    /// wrote ([`Stage::coalesced`]).
    pub partition_ranges: Vec<std::ops::Range<usize>>,
}

impl Stage {
    /// The hash partitions of its inputs that task `task` reads.
    pub fn hash_partitions(&self, task: usize) -> std::ops::Range<usize> {
        self.partition_ranges
            .get(task)
            .cloned()
            .unwrap_or(task..task + 1)
    }

    /// The same stage run by one task per range of hash partitions: task
    /// `i` reads the partitions of `ranges[i]` of every hash input (each
    /// partition in exactly one range). Every hash partition holds all rows
    /// of the keys that hash to it, on every input, so a task reading
    /// several partitions computes what the tasks reading them one by one
    /// would have, together.
    pub fn coalesced(&self, ranges: Vec<std::ops::Range<usize>>) -> Stage {
        Stage {
            task_count: ranges.len(),
            partition_ranges: ranges,
            ..self.clone()
        }
    }
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
