//! [`BroadcastCheapBuildSides`]: a physical optimizer rule that makes a hash
//! join a broadcast join where broadcasting its build side costs less than
//! exchanging both sides.
//!
//! DataFusion's `JoinSelection` broadcasts a build side (collect-left) when
//! it is estimated under fixed limits (`DISTRIBUTION_SETTINGS` in
//! `squall-jobs`: 16 MiB, or 512 Ki rows where only rows are known), and
//! partitions both sides otherwise. On one machine that is the whole story.
//! Across tasks the two plans move different bytes:
//!
//! - **partitioned**: both sides are hash-exchanged, so every probe row is
//!   written to and read from object storage once (build + probe bytes);
//! - **broadcast**: the probe side stays where it is read, and every task of
//!   the probe side reads the whole build side and builds its hash table
//!   from it (build bytes × probe tasks).
//!
//! This rule, which runs right after `JoinSelection` (before exchanges are
//! placed), turns a partitioned join into a broadcast join when the second
//! is the smaller of the two and the build side is at most
//! [`BroadcastCheapBuildSides::max_build_bytes`]. TPC-H Q5 at scale 10
//! joins a year of orders (2.3 M rows of two columns, 35 MiB) with all of
//! `lineitem` (60 M rows, 2.7 GiB in memory, 19 tasks): broadcast moves 0.7
//! GiB instead of 2.7 GiB. Q10's customers with their orders (580 K wide
//! rows) against a quarter of `lineitem` stays partitioned.
//!
//! The rule only ever broadcasts more, never less, and only joins whose
//! build-side output does not depend on every probe row (inner, right,
//! right semi, right anti, right mark): the others stay partitioned in
//! tasks anyway (`cut.rs`). Sizes are DataFusion's estimates
//! ([`crate::estimates::output_estimate`]); a join whose sides it cannot
//! estimate is left as it is. The probe side's task count is estimated from
//! the file bytes below it, as the cut sizes stages
//! ([`PlannerConfig::tasks_for_bytes`]).

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::error::Result as DFResult;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use squall_connectors::scan_leaf::{file_scan_config, scan_files};

use crate::config::PlannerConfig;
use crate::estimates::output_estimate;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct BroadcastCheapBuildSides {
    /// Sizes the probe side's stage as the cut would.
    pub planner: PlannerConfig,
    /// The largest build side (estimated, in memory) ever broadcast: every
    /// task of the probe side holds a hash table of it.
    pub max_build_bytes: u64,
}

/// Default of [`BroadcastCheapBuildSides::max_build_bytes`].
pub const DEFAULT_MAX_BROADCAST_BUILD_BYTES: u64 = 128 * 1024 * 1024;

impl BroadcastCheapBuildSides {
    /// The rule's name among DataFusion's physical optimizer rules.
    pub const NAME: &'static str = "squall_broadcast_cheap_build_sides";

    /// The rule sizing probe stages as `planner` does.
    pub fn new(planner: PlannerConfig) -> Self {
        Self {
            planner,
            max_build_bytes: DEFAULT_MAX_BROADCAST_BUILD_BYTES,
        }
    }

    /// True when `join` should become a broadcast join.
    fn broadcast_is_cheaper(&self, join: &HashJoinExec) -> bool {
        if *join.partition_mode() != PartitionMode::Partitioned
            || join.null_aware
            || !matches!(
                join.join_type(),
                JoinType::Inner
                    | JoinType::Right
                    | JoinType::RightSemi
                    | JoinType::RightAnti
                    | JoinType::RightMark
            )
        {
            return false;
        }
        let (Some(build_bytes), _) = output_estimate(join.left().as_ref()) else {
            return false;
        };
        let (Some(probe_bytes), _) = output_estimate(join.right().as_ref()) else {
            return false;
        };
        if build_bytes > self.max_build_bytes {
            return false;
        }
        let probe_tasks = self.planner.tasks_for_bytes(file_bytes_below(join.right())) as u64;
        build_bytes.saturating_mul(probe_tasks) < probe_bytes.saturating_add(build_bytes)
    }
}

/// The bytes of the files every scan below `plan` reads.
fn file_bytes_below(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let mut bytes = 0u64;
    let _ = plan.apply(|node| {
        if let Some(scan) = file_scan_config(node) {
            bytes =
                bytes.saturating_add(scan_files(scan).iter().map(|f| f.len_bytes()).sum::<u64>());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    bytes
}

impl PhysicalOptimizerRule for BroadcastCheapBuildSides {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            if !self.broadcast_is_cheaper(join) {
                return Ok(Transformed::no(node));
            }
            let broadcast = join
                .builder()
                .with_partition_mode(PartitionMode::CollectLeft)
                .build()?;
            Ok(Transformed::yes(
                Arc::new(broadcast) as Arc<dyn ExecutionPlan>
            ))
        })
        .data()
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn schema_check(&self) -> bool {
        true
    }
}
