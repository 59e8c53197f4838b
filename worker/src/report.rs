//! [`TaskReport`]: what a task tells the coordinator, as JSON bytes.

use serde::{Deserialize, Serialize};
use squall_shuffle::ExchangeIndex;

use crate::error::{Result, WorkerError};
use crate::remote_error::RemoteError;

/// Object-store requests a task made, by kind, counted as S3 bills them
/// (see [`crate::counting_store`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// GETs sent: ranges fetched together count once they are merged.
    pub get: u64,
    pub put: u64,
    /// Requests of multipart uploads: one to start each, one per part, one
    /// to complete or abort it.
    pub multipart_put: u64,
    pub head: u64,
    /// LIST requests: one per page of 1,000 entries.
    pub list: u64,
    pub delete: u64,
    pub copy: u64,
    /// Requests sent again after a transient failure (not counted above).
    #[serde(default)]
    pub retried: u64,
    /// Requests sent a second time because the first was slow (not counted
    /// above), and how many of those second sends answered first.
    #[serde(default)]
    pub hedged: u64,
    #[serde(default)]
    pub hedges_won: u64,
}

impl RequestCounts {
    /// Requests sent, counting retries and hedges: what the store bills.
    pub fn total(&self) -> u64 {
        self.get
            + self.put
            + self.multipart_put
            + self.head
            + self.list
            + self.delete
            + self.copy
            + self.retried
            + self.hedged
    }

    pub fn add(&mut self, other: &Self) {
        self.get += other.get;
        self.put += other.put;
        self.multipart_put += other.multipart_put;
        self.head += other.head;
        self.list += other.list;
        self.delete += other.delete;
        self.copy += other.copy;
        self.retried += other.retried;
        self.hedged += other.hedged;
        self.hedges_won += other.hedges_won;
    }
}

/// How the task ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum TaskOutcome {
    /// Wrote an exchange object with this index.
    Exchange { index: ExchangeIndex },
    /// Wrote a result part.
    Result { rows: u64, bytes: u64 },
    /// Failed; nothing it wrote is visible. `error`: the DataFusion error
    /// the task failed with, when it was one.
    Failed {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<RemoteError>,
    },
}

/// The report of one task attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub query_id: String,
    pub stage_id: usize,
    pub task_index: usize,
    pub attempt: u32,
    pub output_url: String,
    pub outcome: TaskOutcome,
    /// Bytes of input ranges assigned (file splits plus exchange ranges).
    pub input_bytes: u64,
    /// Rows produced by the fragment's leaves.
    pub input_rows: u64,
    pub output_rows: u64,
    pub output_bytes: u64,
    pub decode_ms: u64,
    pub execute_ms: u64,
    pub requests: RequestCounts,
    /// Highest memory reserved through DataFusion's pool.
    pub peak_memory_bytes: u64,
    /// The memory limit the task ran under (its pool's size).
    #[serde(default)]
    pub memory_limit_bytes: u64,
    /// Bytes its operators spilled to local disk.
    #[serde(default)]
    pub spilled_bytes: u64,
    /// The spill disk the task ran under.
    #[serde(default)]
    pub spill_limit_bytes: u64,
    /// The folder this delivery of a file-writing task staged its files in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_url: Option<String>,
    /// For a failed task: the exchange object it found missing, truncated
    /// or corrupt, which its producer must write again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_input_url: Option<String>,
    /// The operators' own metrics, when the spec asked for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operator_metrics: Vec<crate::OperatorMetrics>,
}

impl TaskReport {
    /// A report of nothing done yet, for the task attempt named.
    pub fn new(
        query_id: &str,
        stage_id: usize,
        task_index: usize,
        attempt: u32,
        output_url: &str,
    ) -> Self {
        Self {
            query_id: query_id.to_string(),
            stage_id,
            task_index,
            attempt,
            output_url: output_url.to_string(),
            outcome: TaskOutcome::Failed {
                message: String::new(),
                error: None,
            },
            input_bytes: 0,
            input_rows: 0,
            output_rows: 0,
            output_bytes: 0,
            decode_ms: 0,
            execute_ms: 0,
            requests: RequestCounts::default(),
            peak_memory_bytes: 0,
            memory_limit_bytes: 0,
            spilled_bytes: 0,
            spill_limit_bytes: 0,
            staged_url: None,
            lost_input_url: None,
            operator_metrics: Vec::new(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a TaskReport always serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| WorkerError::InvalidReport(e.to_string()))
    }

    /// The failure message, if the task failed.
    pub fn failure(&self) -> Option<&str> {
        match &self.outcome {
            TaskOutcome::Failed { message, .. } => Some(message),
            _ => None,
        }
    }
}
