//! Knobs of the planner.

use std::collections::BTreeMap;

/// How stages are sized.
#[derive(Debug, Clone)]
pub struct PlannerConfig {
    /// Input bytes one task should read (splits are cut to this size too).
    pub target_task_bytes: u64,
    /// Stages sized apart: input bytes per task for the stage of this id
    /// (ids as the planner numbers stages before any combining stage is put
    /// in; the same ids when none is). What `--deadline` and `--budget`
    /// choose per stage; splits are still cut to `target_task_bytes`, so a
    /// stage reading files gets at most one task per split.
    pub stage_target_task_bytes: BTreeMap<usize, u64>,
    /// Upper bound on the tasks of any stage.
    pub max_tasks_per_stage: usize,
    /// Footers read at once while cutting Parquet files into splits.
    pub footer_read_concurrency: usize,
    /// A hash exchange whose map tasks × reading tasks exceed this gets a
    /// combining stage in between ([`crate::combine`]); `u64::MAX`: never.
    pub combine_exchange_above: u64,
}

/// Map tasks × reading tasks of a hash exchange above which it is combined
/// by default: 512 × 512. Below it, the GETs a combining stage would save
/// cost less (about $0.10 at S3's price of $0.0004 per 1,000 GETs) than the
/// time of one more write and read of the exchanged rows.
pub const DEFAULT_COMBINE_EXCHANGE_ABOVE: u64 = 512 * 512;

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            target_task_bytes: 128 * 1024 * 1024,
            stage_target_task_bytes: BTreeMap::new(),
            max_tasks_per_stage: 1000,
            footer_read_concurrency: 16,
            combine_exchange_above: DEFAULT_COMBINE_EXCHANGE_ABOVE,
        }
    }
}

/// Memory a task may need per byte of its input: Parquet and the exchange
/// are compressed, and hash tables and sort buffers hold the decoded rows.
pub const MEMORY_PER_INPUT_BYTE: u64 = 4;

/// No memory limit makes tasks smaller than this (below it, per-task costs
/// dominate; operators spill instead).
pub const MIN_TARGET_TASK_BYTES: u64 = 8 * 1024 * 1024;

impl PlannerConfig {
    /// The same, with tasks small enough that the input of each fits a task
    /// memory limit of `memory_bytes`: at most `memory_bytes /`
    /// [`MEMORY_PER_INPUT_BYTE`] of input per task (never below
    /// [`MIN_TARGET_TASK_BYTES`]), so that a smaller `--task-memory` makes
    /// more, smaller tasks rather than more spilling.
    pub fn fitting_memory(mut self, memory_bytes: u64) -> Self {
        let fits = (memory_bytes / MEMORY_PER_INPUT_BYTE).max(MIN_TARGET_TASK_BYTES);
        self.target_task_bytes = self.target_task_bytes.min(fits);
        for target in self.stage_target_task_bytes.values_mut() {
            *target = (*target).min(fits);
        }
        self
    }

    /// Tasks for `bytes` of input: one per target size, at least one, at most the cap.
    pub fn tasks_for_bytes(&self, bytes: u64) -> usize {
        self.tasks_for_stage_bytes(None, bytes)
    }

    /// Input bytes per task of stage `stage_id`: its own target where it is
    /// sized apart ([`PlannerConfig::stage_target_task_bytes`]), else the
    /// query's.
    pub fn target_for_stage(&self, stage_id: usize) -> u64 {
        self.stage_target_task_bytes
            .get(&stage_id)
            .copied()
            .unwrap_or(self.target_task_bytes)
    }

    /// Tasks of stage `stage_id` (None: any stage not sized apart) for
    /// `bytes` of input, as [`PlannerConfig::tasks_for_bytes`].
    pub fn tasks_for_stage_bytes(&self, stage_id: Option<usize>, bytes: u64) -> usize {
        let target = stage_id
            .map_or(self.target_task_bytes, |id| self.target_for_stage(id))
            .max(1);
        let tasks = bytes.div_ceil(target).max(1);
        (tasks as usize).min(self.max_tasks_per_stage.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_shrink_to_fit_their_memory() {
        const MIB: u64 = 1024 * 1024;
        let default = PlannerConfig::default();
        let roomy = default.clone().fitting_memory(2048 * MIB);
        assert_eq!(
            roomy.target_task_bytes,
            128 * MIB,
            "2 GiB holds 128 MiB of input"
        );
        let lean = default.clone().fitting_memory(256 * MIB);
        assert_eq!(lean.target_task_bytes, 64 * MIB);
        assert_eq!(lean.tasks_for_bytes(1024 * MIB), 16);
        let tiny = default.fitting_memory(MIB);
        assert_eq!(tiny.target_task_bytes, MIN_TARGET_TASK_BYTES);
    }

    #[test]
    fn a_stage_sized_apart_keeps_its_own_target() {
        const MIB: u64 = 1024 * 1024;
        let mut config = PlannerConfig {
            target_task_bytes: 64 * MIB,
            ..PlannerConfig::default()
        };
        config.stage_target_task_bytes.insert(2, 16 * MIB);
        assert_eq!(config.tasks_for_stage_bytes(Some(1), 256 * MIB), 4);
        assert_eq!(config.tasks_for_stage_bytes(Some(2), 256 * MIB), 16);
        assert_eq!(config.tasks_for_bytes(256 * MIB), 4);
        // The cap holds for stages sized apart too.
        config.max_tasks_per_stage = 10;
        assert_eq!(config.tasks_for_stage_bytes(Some(2), 256 * MIB), 10);
    }
}
