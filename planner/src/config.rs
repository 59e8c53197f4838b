//! Knobs of the planner.

/// How stages are sized.
#[derive(Debug, Clone)]
pub struct PlannerConfig {
    /// Input bytes one task should read (splits are cut to this size too).
    pub target_task_bytes: u64,
    /// Upper bound on the tasks of any stage.
    pub max_tasks_per_stage: usize,
    /// Footers read at once while cutting Parquet files into splits.
    pub footer_read_concurrency: usize,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            target_task_bytes: 128 * 1024 * 1024,
            max_tasks_per_stage: 1000,
            footer_read_concurrency: 16,
        }
    }
}

impl PlannerConfig {
    /// Tasks for `bytes` of input: one per target size, at least one, at most the cap.
    pub fn tasks_for_bytes(&self, bytes: u64) -> usize {
        let target = self.target_task_bytes.max(1);
        let tasks = bytes.div_ceil(target).max(1);
        (tasks as usize).min(self.max_tasks_per_stage.max(1))
    }
}
