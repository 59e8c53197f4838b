//! Cutting every file scan of a plan into splits, before stages are cut.
//!
//! Parquet footers are read here, on the coordinator, with bounded
//! concurrency; a footer that cannot be read fails planning with the file's URL.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::ExecutionPlanProperties;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use squall_connectors::FileSplit;
use squall_connectors::scan_leaf::{SplitStrategy, file_scan_config, scan_groups, split_strategy};
use squall_connectors::splits::{assign_runs, assign_splits, byte_range_splits, parquet_splits};

use crate::config::PlannerConfig;
use crate::error::Result;

/// How the splits of a scan may be spread over tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitPolicy {
    /// Any way: the scan promises no order and no limit.
    Free,
    /// The scan promises its rows in order within each of DataFusion's file
    /// groups: a task reads a contiguous run of one group's files, in order.
    /// `groups[g]` is the number of splits of group `g` (splits are listed
    /// group after group).
    WithinGroups { groups: Vec<usize> },
    /// The scan stops after a limit per file group: task `g` reads exactly
    /// group `g`, or every task would return that many rows.
    ExactGroups { groups: Vec<usize> },
}

/// The splits of one file scan.
#[derive(Debug, Clone)]
pub struct ScanSplits {
    pub store_url: String,
    pub splits: Vec<FileSplit>,
    pub policy: SplitPolicy,
}

impl ScanSplits {
    pub fn total_bytes(&self) -> u64 {
        self.splits.iter().map(FileSplit::len_bytes).sum()
    }

    /// The fewest tasks this scan can be read with, under its policy.
    pub fn min_tasks(&self) -> usize {
        match &self.policy {
            SplitPolicy::Free => 1,
            SplitPolicy::WithinGroups { groups } | SplitPolicy::ExactGroups { groups } => {
                groups.iter().filter(|g| **g > 0).count().max(1)
            }
        }
    }

    /// The most tasks this scan can be read with, if bounded.
    pub fn max_tasks(&self) -> Option<usize> {
        match &self.policy {
            SplitPolicy::ExactGroups { .. } => Some(self.min_tasks()),
            _ => None,
        }
    }

    /// `tasks[i]` is what task `i` of `task_count` reads.
    pub fn assign(&self, task_count: usize) -> Vec<Vec<FileSplit>> {
        match &self.policy {
            SplitPolicy::Free => assign_splits(self.splits.clone(), task_count),
            SplitPolicy::ExactGroups { groups } => {
                let mut tasks = vec![Vec::new(); task_count.max(1)];
                for (t, group) in self.group_slices(groups).into_iter().enumerate() {
                    tasks[t.min(task_count.max(1) - 1)].extend(group.iter().cloned());
                }
                tasks
            }
            SplitPolicy::WithinGroups { groups } => {
                let slices = self.group_slices(groups);
                let bytes: Vec<u64> = slices
                    .iter()
                    .map(|g| g.iter().map(|s| s.len_bytes().max(1)).sum())
                    .collect();
                let shares = task_shares(&bytes, task_count.max(1));
                let mut tasks = Vec::with_capacity(task_count.max(1));
                for (group, share) in slices.iter().zip(shares) {
                    if share > 0 {
                        tasks.extend(assign_runs(group, share));
                    }
                }
                tasks.resize(task_count.max(1), Vec::new());
                tasks
            }
        }
    }

    /// The non-empty groups' splits, in order.
    fn group_slices(&self, groups: &[usize]) -> Vec<&[FileSplit]> {
        let mut out = Vec::new();
        let mut at = 0;
        for &n in groups {
            if n > 0 {
                out.push(&self.splits[at..at + n]);
            }
            at += n;
        }
        out
    }
}

/// Tasks per group for `task_count` tasks: at least one per group, the rest
/// by bytes.
fn task_shares(bytes: &[u64], task_count: usize) -> Vec<usize> {
    let mut shares = vec![1usize; bytes.len()];
    let total: u128 = bytes.iter().map(|b| u128::from(*b)).sum::<u128>().max(1);
    let spare = task_count.saturating_sub(bytes.len());
    for (share, b) in shares.iter_mut().zip(bytes) {
        *share += (u128::from(*b) * spare as u128 / total) as usize;
    }
    shares
}

/// Identity of a plan node for the lifetime of a plan.
pub fn node_key(node: &Arc<dyn ExecutionPlan>) -> usize {
    Arc::as_ptr(node) as *const () as usize
}

/// Splits for every file scan in `plan`, keyed by [`node_key`].
pub async fn plan_scan_splits(
    plan: &Arc<dyn ExecutionPlan>,
    env: &RuntimeEnv,
    config: &PlannerConfig,
) -> Result<HashMap<usize, ScanSplits>> {
    let mut scans = Vec::new();
    plan.apply(|node| {
        if file_scan_config(node).is_some() {
            scans.push(Arc::clone(node));
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let mut out = HashMap::new();
    for node in scans {
        let scan = file_scan_config(&node).expect("filtered above");
        let store_url = scan.object_store_url.clone();
        let store = env.object_store(&store_url)?;
        let groups: Vec<Vec<FileSplit>> = scan_groups(scan);
        let ordered = node.output_ordering().is_some();
        let limited = scan.limit.is_some();
        // A scan that promises an order or a limit per file group keeps
        // DataFusion's files and groups as they are.
        let keep_groups = ordered || limited;
        let strategy = split_strategy(scan);
        let target = config.target_task_bytes;
        let files: Vec<FileSplit> = groups.iter().flatten().cloned().collect();
        let splits: Vec<Vec<FileSplit>> = futures::stream::iter(files)
            .map(|file| {
                let store = Arc::clone(&store);
                let url = format!("{}{}", store_url.as_str(), file.path);
                async move {
                    let whole = file.is_whole_file() && !keep_groups;
                    let mut pieces = match strategy {
                        SplitStrategy::ParquetRowGroups if whole => {
                            let path = Path::from(file.path.as_str());
                            parquet_splits(store, &path, file.file_size_bytes, target, &url).await?
                        }
                        SplitStrategy::ByteRanges if whole => {
                            byte_range_splits(&file.path, file.file_size_bytes, target)
                        }
                        _ => vec![file.clone()],
                    };
                    for p in &mut pieces {
                        p.partition_values = file.partition_values.clone();
                    }
                    Ok::<_, crate::error::PlannerError>(pieces)
                }
            })
            .buffered(config.footer_read_concurrency.max(1))
            .try_collect()
            .await?;
        let group_sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        let policy = if limited {
            SplitPolicy::ExactGroups {
                groups: group_sizes,
            }
        } else if ordered {
            SplitPolicy::WithinGroups {
                groups: group_sizes,
            }
        } else {
            SplitPolicy::Free
        };
        out.insert(
            node_key(&node),
            ScanSplits {
                store_url: store_url.as_str().to_string(),
                splits: splits.into_iter().flatten().collect(),
                policy,
            },
        );
    }
    Ok(out)
}
