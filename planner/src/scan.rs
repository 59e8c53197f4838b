//! Cutting every file scan of a plan into splits, before stages are cut.
//!
//! Parquet footers are read here, on the coordinator, with bounded
//! concurrency; a footer that cannot be read fails planning with the file's URL.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::ExecutionPlan;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use squall_connectors::FileSplit;
use squall_connectors::scan_leaf::{SplitStrategy, file_scan_config, scan_files, split_strategy};
use squall_connectors::splits::{byte_range_splits, parquet_splits};

use crate::config::PlannerConfig;
use crate::error::Result;

/// The splits of one file scan.
#[derive(Debug, Clone)]
pub struct ScanSplits {
    pub store_url: String,
    pub splits: Vec<FileSplit>,
}

impl ScanSplits {
    pub fn total_bytes(&self) -> u64 {
        self.splits.iter().map(FileSplit::len_bytes).sum()
    }
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
        let files = scan_files(scan);
        let strategy = split_strategy(scan);
        let target = config.target_task_bytes;
        let splits: Vec<Vec<FileSplit>> = futures::stream::iter(files)
            .map(|file| {
                let store = Arc::clone(&store);
                let url = format!("{}{}", store_url.as_str(), file.path);
                async move {
                    let whole = file.is_whole_file();
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
        out.insert(
            node_key(&node),
            ScanSplits {
                store_url: store_url.as_str().to_string(),
                splits: splits.into_iter().flatten().collect(),
            },
        );
    }
    Ok(out)
}
