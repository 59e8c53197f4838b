//! Adaptive stages: sizing a stage fed by hash exchanges from the exact
//! bytes its inputs wrote, as Spark's adaptive query execution coalesces
//! shuffle partitions.
//!
//! The planner gives a hash-fed stage one task per `target_task_bytes` of
//! *estimated* input, and its producers write that many hash partitions.
//! Estimates are often far off (they fall back to input bytes, before any
//! filter or aggregation), so most of those tasks would read almost
//! nothing. When the stage's inputs have finished, every map object's index
//! tells the exact bytes of every partition; the coordinator then gives each
//! task a contiguous range of partitions holding about the target size
//! ([`coalesce`]), reading every partition exactly once. Empty partitions
//! cost nothing: they join a neighbour's range and are never fetched; a
//! task's ranges of one map object are adjacent, so they are fetched as one
//! span (in GETs of at most 8 MiB) instead of one GET per partition.
//!
//! This module must not change what a stage computes, only how many tasks
//! compute it: it leaves alone stages whose tasks read anything by task
//! index other than hash partitions (scans, order-preserving hash
//! exchanges), and never makes more tasks than the planner did.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use squall_planner::{ExchangeKind, Stage};

use crate::specs::Winner;

/// How a hash-fed stage is resized once its inputs are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdaptivePolicy {
    /// Input bytes (as written: compressed Arrow IPC) one task should read.
    pub target_task_bytes: u64,
    /// Below this much input per task, a stage is not spread over more
    /// tasks just to keep every worker busy.
    pub min_parallel_task_bytes: u64,
    /// Stages the planner sized apart (`--deadline`, `--budget`), by id:
    /// their own input bytes per task.
    pub stage_target_task_bytes: BTreeMap<usize, u64>,
}

/// Waves of tasks a stage keeps (while each task gets at least
/// [`MIN_PARALLEL_TASK_BYTES`]), so that one slow task does not leave the
/// other workers idle for long: measured at TPC-H scale 10 on 2 workers,
/// one wave made the join-heavy queries 5–9% slower than the planned counts.
pub const BALANCE_WAVES: usize = 4;

/// Input per task below which spreading a stage over idle workers costs more
/// than it saves.
pub const MIN_PARALLEL_TASK_BYTES: u64 = 1024 * 1024;

/// The planner's target input per task over the exchange bytes an adaptive
/// task reads: exchange objects are LZ4-compressed Arrow IPC, which decode
/// to a few times their size, while the planner's estimates are mostly in
/// decoded bytes. Measured at TPC-H scale 10 on 2 workers: with the
/// planner's target unchanged, Q18's large aggregation ran in fewer, larger
/// tasks and 20% slower than planned.
pub const PLANNER_TARGET_PER_EXCHANGE_BYTE: u64 = 4;

impl AdaptivePolicy {
    /// For a planner aiming at `planner_target_bytes` of input per task:
    /// a quarter of that in exchange bytes
    /// ([`PLANNER_TARGET_PER_EXCHANGE_BYTE`]).
    pub fn for_planner_target(planner_target_bytes: u64) -> Self {
        Self::new(planner_target_bytes / PLANNER_TARGET_PER_EXCHANGE_BYTE)
    }

    /// For `planner`'s targets: the query's, and those of the stages it
    /// sizes apart, each a quarter in exchange bytes.
    pub fn for_planner(planner: &squall_planner::PlannerConfig) -> Self {
        let mut policy = Self::for_planner_target(planner.target_task_bytes);
        policy.stage_target_task_bytes = planner
            .stage_target_task_bytes
            .iter()
            .map(|(&id, &bytes)| (id, (bytes / PLANNER_TARGET_PER_EXCHANGE_BYTE).max(1)))
            .collect();
        policy
    }

    /// Tasks of `target_task_bytes` input each.
    pub fn new(target_task_bytes: u64) -> Self {
        Self {
            target_task_bytes: target_task_bytes.max(1),
            min_parallel_task_bytes: MIN_PARALLEL_TASK_BYTES,
            stage_target_task_bytes: BTreeMap::new(),
        }
    }

    /// The policy for stage `stage_id`: its own target if it has one.
    fn for_stage(&self, stage_id: usize) -> Self {
        match self.stage_target_task_bytes.get(&stage_id) {
            Some(&bytes) => Self {
                target_task_bytes: bytes.max(1),
                min_parallel_task_bytes: self.min_parallel_task_bytes,
                stage_target_task_bytes: BTreeMap::new(),
            },
            None => self.clone(),
        }
    }

    /// How many tasks should read `bytes` when `workers` run at once and the
    /// planner made `planned` tasks: one per target size, but at least
    /// [`BALANCE_WAVES`] waves of `workers` (while each gets at least
    /// `min_parallel_task_bytes`), rounded up to whole waves, never more
    /// than `planned` and never fewer than one.
    pub fn task_count(&self, bytes: u64, workers: usize, planned: usize) -> usize {
        let planned = planned.max(1);
        let workers = workers.max(1);
        let by_size = bytes.div_ceil(self.target_task_bytes) as usize;
        let busy = (bytes.div_ceil(self.min_parallel_task_bytes.max(1)) as usize)
            .min(workers * BALANCE_WAVES);
        let tasks = by_size.max(busy).max(1);
        let tasks = if tasks > workers {
            tasks.div_ceil(workers) * workers
        } else {
            tasks
        };
        tasks.min(planned)
    }
}

/// The ranges of hash partitions the tasks of `stage` should read, given the
/// winners of its finished inputs, when that differs from one task per
/// partition; `None` when the stage keeps its planned tasks: it is not fed
/// by hash exchanges alone (plus broadcasts and gathers, which do not depend
/// on the task), it reads files, or its inputs already call for every task.
pub fn coalesce(
    stage: &Stage,
    inputs: &HashMap<usize, Arc<Vec<Winner>>>,
    policy: &AdaptivePolicy,
    workers: usize,
) -> Option<Vec<Range<usize>>> {
    let partitions = stage.task_count;
    if partitions <= 1 || !stage.scans.is_empty() || !stage.partition_ranges.is_empty() {
        return None;
    }
    let mut hash_inputs = 0;
    let mut bytes = vec![0u64; partitions];
    for input in &stage.inputs {
        match input.kind {
            ExchangeKind::Hash => hash_inputs += 1,
            ExchangeKind::Broadcast | ExchangeKind::Gather => continue,
            // One reader partition per map object, each a sorted run of
            // partition `task`: a range of partitions would not be sorted.
            ExchangeKind::SortedHash | ExchangeKind::Merge => return None,
            // Task `i` reads a group of map objects: see [`combiner_tasks`].
            ExchangeKind::Combine { .. } => return None,
        }
        for winner in inputs.get(&input.stage_id)?.iter() {
            if winner.index.partitions.len() != partitions {
                return None;
            }
            for (total, partition) in bytes.iter_mut().zip(&winner.index.partitions) {
                *total += partition.len_bytes;
            }
        }
    }
    if hash_inputs == 0 {
        return None;
    }
    let total: u64 = bytes.iter().sum();
    let tasks = policy
        .for_stage(stage.id)
        .task_count(total, workers, partitions);
    let ranges = contiguous_ranges(&bytes, tasks);
    (ranges.len() < partitions).then_some(ranges)
}

/// How many tasks a combining stage needs for the map objects its input
/// actually wrote, when that is fewer than planned (its map stage was itself
/// sized from its inputs): one per group of map objects.
pub fn combiner_tasks(stage: &Stage, inputs: &HashMap<usize, Arc<Vec<Winner>>>) -> Option<usize> {
    let [input] = stage.inputs.as_slice() else {
        return None;
    };
    let ExchangeKind::Combine { maps_per_task } = input.kind else {
        return None;
    };
    let maps = inputs.get(&input.stage_id)?.len();
    let tasks = maps.div_ceil(maps_per_task.max(1)).max(1);
    (tasks < stage.task_count).then_some(tasks)
}

/// At most `tasks` contiguous, non-empty ranges covering every index of
/// `bytes`, cut where the running total crosses each `k / tasks` of the whole
/// (never where nothing follows), so that ranges hold about equal bytes. A partition larger than a share
/// stays whole (fewer ranges may come out). No partitions: one empty range.
pub fn contiguous_ranges(bytes: &[u64], tasks: usize) -> Vec<Range<usize>> {
    let n = bytes.len();
    let tasks = tasks.clamp(1, n.max(1)) as u128;
    let total: u128 = bytes.iter().map(|b| u128::from(*b)).sum();
    let mut ranges = Vec::with_capacity(tasks as usize);
    let mut start = 0;
    let mut running: u128 = 0;
    for (p, b) in bytes.iter().enumerate() {
        running += u128::from(*b);
        let next_cut = ranges.len() as u128 + 1;
        let crossed = if total == 0 {
            // Nothing to weigh: equal counts of partitions.
            (p as u128 + 1) * tasks >= n as u128 * next_cut
        } else {
            // A cut with nothing left after it would give a task nothing.
            running * tasks >= total * next_cut && running < total
        };
        if next_cut < tasks && crossed && p + 1 < n {
            ranges.push(start..p + 1);
            start = p + 1;
        }
    }
    if start < n || ranges.is_empty() {
        ranges.push(start..n);
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_stage_sized_apart_is_coalesced_to_its_own_target() {
        let mut planner = squall_planner::PlannerConfig {
            target_task_bytes: 128 * MIB,
            ..Default::default()
        };
        planner.stage_target_task_bytes.insert(3, 16 * MIB);
        let policy = AdaptivePolicy::for_planner(&planner);
        assert_eq!(policy.for_stage(0).target_task_bytes, 32 * MIB);
        assert_eq!(policy.for_stage(3).target_task_bytes, 4 * MIB);
        // 64 MiB of exchange on 2 workers: 2 tasks as the query's, 16 as stage 3's.
        assert_eq!(policy.for_stage(0).task_count(64 * MIB, 2, 100), 8);
        assert_eq!(policy.for_stage(3).task_count(64 * MIB, 2, 100), 16);
    }

    #[test]
    fn task_count_follows_bytes_but_keeps_workers_busy() {
        let policy = AdaptivePolicy::new(128 * MIB);
        // A GROUP BY of 4 groups over a big table: a few KiB, one task.
        assert_eq!(policy.task_count(4096, 2, 800), 1);
        // Nothing at all: one task.
        assert_eq!(policy.task_count(0, 2, 16), 1);
        // 100 MiB fit one task's target, but four waves of two workers share them.
        assert_eq!(policy.task_count(100 * MIB, 2, 16), 8);
        // 3 MiB: a task per MiB, rounded up to whole waves.
        assert_eq!(policy.task_count(3 * MIB, 2, 16), 4);
        // 1,300 MiB: eleven targets, rounded up to six waves of two.
        assert_eq!(policy.task_count(1300 * MIB, 2, 16), 12);
        // Never more than planned.
        assert_eq!(policy.task_count(10_000 * MIB, 2, 16), 16);
        assert_eq!(policy.task_count(100 * MIB, 8, 3), 3);
    }

    #[test]
    fn ranges_cover_every_partition_once_with_about_equal_bytes() {
        let bytes = [10, 0, 10, 10, 0, 0, 10, 10, 10, 10];
        let ranges = contiguous_ranges(&bytes, 2);
        assert_eq!(ranges, vec![0..7, 7..10]);
        let weight = |r: &Range<usize>| bytes[r.clone()].iter().sum::<u64>();
        assert_eq!(weight(&ranges[0]), 40);
        assert_eq!(weight(&ranges[1]), 30);
        for tasks in 1..=12 {
            let ranges = contiguous_ranges(&bytes, tasks);
            assert!(ranges.len() <= tasks.max(1));
            let covered: Vec<usize> = ranges.iter().flat_map(|r| r.clone()).collect();
            assert_eq!(covered, (0..bytes.len()).collect::<Vec<_>>(), "{tasks}");
            assert!(ranges.iter().all(|r| !r.is_empty()));
        }
        // A skewed partition stays whole: the tasks after it share the rest.
        assert_eq!(
            contiguous_ranges(&[1, 100, 1, 1], 3),
            vec![0..2, 2..3, 3..4]
        );
        // Everything in the first partition: one task, not one with nothing to read.
        assert_eq!(contiguous_ranges(&[100, 0, 0, 0], 2), vec![0..4]);
        // Nothing written: partitions shared out by count.
        assert_eq!(contiguous_ranges(&[0, 0, 0, 0], 2), vec![0..2, 2..4]);
        assert_eq!(contiguous_ranges(&[], 3), vec![0..0]);
    }
}
