//! Building the [`TaskSpec`]s of a stage from the winners of its input stages.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use squall_connectors::Location;
use squall_connectors::sink_staging::{SinkDestination, file_sink_config};
use squall_planner::{ExchangeKind, Stage};
use squall_shuffle::{ExchangeIndex, ExchangeReaderExec, ObjectRange, keys};
use squall_worker::spec::TASK_SPEC_VERSION;
use squall_worker::{ExchangeInput, FragmentRef, ScanInput, TaskLimits, TaskSpec};

/// Plan fragments larger than this travel by reference in the object store.
pub const MAX_INLINE_FRAGMENT_BYTES: usize = 256 * 1024;

/// The committed output of one task: the winning attempt's object and index.
#[derive(Debug, Clone)]
pub struct Winner {
    pub url: String,
    pub index: ExchangeIndex,
}

/// What every task of one stage shares.
#[derive(Debug, Clone)]
pub struct StageTemplate {
    pub query_id: String,
    pub stage_id: usize,
    pub fragment: FragmentRef,
    pub object_stores: Vec<String>,
    pub limits: TaskLimits,
    pub scratch: Location,
    pub is_final: bool,
    /// The session's DataFusion settings that differ from the defaults.
    pub settings: BTreeMap<String, String>,
    /// Where the stage's file sink publishes, if it has one: its tasks stage
    /// their files below it.
    pub sink: Option<SinkDestination>,
    /// How tasks send their object-store requests.
    pub requests: squall_connectors::RequestPolicy,
    /// Tasks report their operators' metrics.
    pub operator_metrics: bool,
}

impl StageTemplate {
    /// The URL a task attempt writes.
    pub fn output_url(&self, task: usize, attempt: u32) -> String {
        let key = if self.is_final {
            keys::result_key(&self.query_id, self.stage_id, task, attempt)
        } else {
            keys::exchange_key(&self.query_id, self.stage_id, task, attempt)
        };
        self.scratch
            .join(&key)
            .expect("exchange and result keys are safe segments")
            .to_string()
    }
}

/// `scheme://host/` of every store a stage touches: scratch, scans, sinks.
pub fn stage_object_stores(stage: &Stage, scratch: &Location) -> Vec<String> {
    let mut stores = BTreeSet::new();
    stores.insert(scratch.store_url().as_str().to_string());
    for scan in &stage.scans {
        stores.insert(scan.store_url.clone());
    }
    let _ = stage.plan.apply(|node| {
        if let Some(config) = file_sink_config(node) {
            stores.insert(config.object_store_url.as_str().to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    stores.into_iter().collect()
}

/// Partitions of the reader of `input_stage` in `stage`'s fragment.
fn reader_partitions(stage: &Stage, input_stage: usize) -> Option<usize> {
    let mut found = None;
    let _ = stage.plan.apply(|node| {
        if let Some(reader) = node.downcast_ref::<ExchangeReaderExec>()
            && reader.stage_id() == input_stage
        {
            found = Some(reader.partition_count());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The spec of task `task`, attempt `attempt`, of `stage`.
pub fn task_spec(
    stage: &Stage,
    template: &StageTemplate,
    winners: &HashMap<usize, Arc<Vec<Winner>>>,
    task: usize,
    attempt: u32,
) -> TaskSpec {
    let scans = stage
        .scans
        .iter()
        .map(|leaf| ScanInput {
            ordinal: leaf.ordinal,
            splits: leaf.tasks.get(task).cloned().unwrap_or_default(),
        })
        .collect();
    let exchange_inputs = stage
        .inputs
        .iter()
        .map(|input| {
            let maps = winners
                .get(&input.stage_id)
                .map(|w| w.as_slice())
                .unwrap_or_default();
            let range = |w: &Winner, p: usize| {
                w.index
                    .partitions
                    .get(p)
                    .filter(|r| r.len_bytes > 0)
                    .map(|r| ObjectRange {
                        url: w.url.clone(),
                        start: r.offset,
                        end: r.offset + r.len_bytes,
                        crc32: r.crc32,
                    })
            };
            let mut partitions: Vec<Vec<ObjectRange>> = match input.kind {
                // Map object by map object, its partitions in order: the
                // ranges of one object are adjacent, and one GET covers them.
                ExchangeKind::Hash => vec![
                    maps.iter()
                        .flat_map(|w| stage.hash_partitions(task).filter_map(|p| range(w, p)))
                        .collect(),
                ],
                ExchangeKind::Gather if task == 0 => {
                    vec![maps.iter().filter_map(|w| range(w, 0)).collect()]
                }
                ExchangeKind::Gather => vec![vec![]],
                ExchangeKind::Broadcast => vec![maps.iter().filter_map(|w| range(w, 0)).collect()],
                // Every partition of a group of map objects, object by
                // object: one GET reads each object's partitions.
                ExchangeKind::Combine { maps_per_task } => vec![
                    maps.iter()
                        .skip(task * maps_per_task)
                        .take(maps_per_task)
                        .flat_map(|w| (0..w.index.partitions.len()).filter_map(|p| range(w, p)))
                        .collect(),
                ],
                ExchangeKind::Merge => maps
                    .iter()
                    .map(|w| range(w, 0).into_iter().collect())
                    .collect(),
                ExchangeKind::SortedHash => maps
                    .iter()
                    .map(|w| range(w, task).into_iter().collect())
                    .collect(),
            };
            if matches!(input.kind, ExchangeKind::Merge | ExchangeKind::SortedHash) {
                // One reader partition per *planned* map task: a map stage
                // sized from its own inputs ran fewer; theirs stay empty.
                let planned = reader_partitions(stage, input.stage_id).unwrap_or(0);
                if partitions.len() < planned {
                    partitions.resize(planned, Vec::new());
                }
            }
            ExchangeInput {
                stage_id: input.stage_id,
                partitions,
            }
        })
        .collect();
    TaskSpec {
        version: TASK_SPEC_VERSION,
        query_id: template.query_id.clone(),
        stage_id: stage.id,
        task_index: task,
        attempt,
        fragment: template.fragment.clone(),
        scans,
        exchange_inputs,
        output_url: template.output_url(task, attempt),
        object_stores: template.object_stores.clone(),
        limits: template.limits.clone(),
        settings: template.settings.clone(),
        sink_staging_url: template.sink.as_ref().map(|sink| {
            sink.attempt_staging(&template.query_id, stage.id, task, attempt)
                .expect("a query id is one safe segment")
                .to_string()
        }),
        requests: template.requests.clone(),
        operator_metrics: template.operator_metrics,
    }
}
