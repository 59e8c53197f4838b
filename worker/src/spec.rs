//! [`TaskSpec`]: everything a task needs, as JSON bytes.
//!
//! JSON because Lambda payloads are JSON and because a person debugging a
//! failed task can read it. Binary parts (the plan fragment) are base64. A
//! spec never carries credentials: stores are rebuilt from URLs and the
//! worker's own environment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use squall_connectors::FileSplit;
use squall_shuffle::ObjectRange;

use crate::error::{Result, WorkerError};

/// Version of the spec format; a worker refuses specs of other versions.
pub const TASK_SPEC_VERSION: u32 = 1;

/// A complete description of one task attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub version: u32,
    pub query_id: String,
    pub stage_id: usize,
    pub task_index: usize,
    pub attempt: u32,
    /// The stage's plan fragment (identical for all tasks of the stage).
    pub fragment: FragmentRef,
    /// For each file scan in the fragment (depth-first order), this task's splits.
    pub scans: Vec<ScanInput>,
    /// For each exchange reader in the fragment, the byte ranges per reader partition.
    pub exchange_inputs: Vec<ExchangeInput>,
    /// Full URL of the object this attempt writes.
    pub output_url: String,
    /// `scheme://host/` of every store the task touches.
    pub object_stores: Vec<String>,
    pub limits: TaskLimits,
    /// DataFusion settings of the session that differ from the defaults
    /// (`SET` statements, session options), applied to the task's context.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// For a stage that writes files (`COPY`, `INSERT`): the attempt's
    /// staging folder below the destination. The task writes its files in a
    /// fresh subfolder of it and reports that subfolder; the coordinator
    /// publishes the winner's (see `squall_connectors::sink_staging`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_staging_url: Option<String>,
    /// How the task's object-store requests are retried, hedged and (in
    /// tests) disturbed.
    #[serde(default)]
    pub requests: squall_connectors::RequestPolicy,
    /// Report the operators' own metrics ([`crate::OperatorMetrics`]):
    /// for `EXPLAIN ANALYZE` and run reports; off, reports stay small.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operator_metrics: bool,
}

/// Where the plan fragment is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FragmentRef {
    /// The encoded fragment itself.
    Inline {
        #[serde(with = "base64_bytes")]
        bytes: Vec<u8>,
    },
    /// An object holding the encoded fragment (used above 256 KiB).
    Stored { url: String },
}

/// The splits of one file scan of the fragment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanInput {
    pub ordinal: usize,
    pub splits: Vec<FileSplit>,
}

/// What one exchange reader of the fragment reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeInput {
    pub stage_id: usize,
    /// `partitions[p]` are the ranges of reader partition `p`.
    pub partitions: Vec<Vec<ObjectRange>>,
}

/// Resource limits of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLimits {
    /// Memory DataFusion may reserve; operators spill or fail beyond it.
    pub memory_bytes: u64,
    /// Rows per batch.
    pub batch_size: usize,
    /// How the task's memory is shared between its operators.
    #[serde(default)]
    pub memory_pool: MemoryPoolKind,
    /// Local disk the task's operators may spill to (sorts, aggregates,
    /// joins); beyond it they fail.
    #[serde(default = "default_spill_bytes")]
    pub spill_bytes: u64,
}

/// Spill disk per task unless the session says otherwise.
pub const DEFAULT_SPILL_BYTES: u64 = 16 * 1024 * 1024 * 1024;

fn default_spill_bytes() -> u64 {
    DEFAULT_SPILL_BYTES
}

/// The kind of DataFusion memory pool a task uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryPoolKind {
    /// Spilling operators get fair shares (`FairSpillPool`).
    #[default]
    Fair,
    /// First come, first served (`GreedyMemoryPool`), as DataFusion does for
    /// `SET datafusion.runtime.memory_limit`.
    Greedy,
}

impl Default for TaskLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 2 * 1024 * 1024 * 1024,
            batch_size: 8192,
            memory_pool: MemoryPoolKind::Fair,
            spill_bytes: DEFAULT_SPILL_BYTES,
        }
    }
}

impl TaskSpec {
    /// Bytes of input the task is given: its file splits plus its exchange ranges.
    pub fn input_bytes(&self) -> u64 {
        let splits: u64 = self
            .scans
            .iter()
            .flat_map(|s| &s.splits)
            .map(|s| s.len_bytes())
            .sum();
        let exchange: u64 = self
            .exchange_inputs
            .iter()
            .flat_map(|e| e.partitions.iter().flatten())
            .map(|r| r.len_bytes())
            .sum();
        splits + exchange
    }

    /// Serializes to the bytes a backend carries.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a TaskSpec always serializes")
    }

    /// Parses spec bytes, checking the version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let spec: Self =
            serde_json::from_slice(bytes).map_err(|e| WorkerError::InvalidSpec(e.to_string()))?;
        if spec.version != TASK_SPEC_VERSION {
            return Err(WorkerError::InvalidSpec(format!(
                "spec version {} but this worker speaks version {TASK_SPEC_VERSION}",
                spec.version
            )));
        }
        Ok(spec)
    }
}

/// Serde helper: `Vec<u8>` as a base64 string.
pub mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_and_checks_version() {
        let spec = TaskSpec {
            version: TASK_SPEC_VERSION,
            query_id: "q".into(),
            stage_id: 1,
            task_index: 2,
            attempt: 0,
            fragment: FragmentRef::Inline {
                bytes: vec![1, 2, 255],
            },
            scans: vec![ScanInput {
                ordinal: 0,
                splits: vec![FileSplit::whole_file("a/b.parquet", 10)],
            }],
            exchange_inputs: vec![],
            output_url: "file:///tmp/x".into(),
            object_stores: vec!["file:///".into()],
            limits: TaskLimits::default(),
            settings: BTreeMap::from([(
                "datafusion.execution.batch_size".to_string(),
                "7".to_string(),
            )]),
            sink_staging_url: Some("file:///tmp/out/_squall_staging/q/s1-t2-a0/".into()),
            requests: squall_connectors::RequestPolicy {
                faults: Some("fail=0.1,seed=3".parse().unwrap()),
                ..Default::default()
            },
            operator_metrics: true,
        };
        let bytes = spec.to_bytes();
        assert_eq!(TaskSpec::from_bytes(&bytes).unwrap(), spec);
        let mut old = spec.clone();
        old.version = 99;
        let err = TaskSpec::from_bytes(&old.to_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("version 99"), "{err}");
    }
}
