//! Speculative attempts for stragglers.
//!
//! At thousands of tasks a few always run much longer than the rest (a slow
//! machine, a slow request). Once most tasks of a stage have finished, a task
//! running much longer than the median of the finished ones gets a backup
//! attempt; whichever finishes first wins and the other is dropped, which
//! cancels it on the local and process backends (a Lambda invocation runs to
//! its end, and its object is never read). A backup takes a permit of the
//! stage and of the query like any task, so `--workers` still bounds the
//! tasks running; when none is free it waits for one.
//!
//! A small stage never reaches that share while one of its tasks runs (a
//! stage of one task never has a finished one), and small stages are where a
//! query ends: the final aggregation, the sort, the sink. Their tasks are
//! measured against the query's pace instead ([`QueryPace`]): how long the
//! query's finished tasks took per byte of input, times the task's own input,
//! and never less than the longest task the query has finished (a small
//! stage may do much more work per byte than a scan).
//! Like Spark's `spark.speculation.task.duration.threshold`, which speculates
//! in stages with no more tasks than one executor's slots, but derived from
//! the query's own tasks instead of configured.

use std::sync::Mutex;
use std::time::Duration;

/// Races an attempt against its backup: the first to succeed wins and the
/// other is dropped; when one fails, the other's outcome is taken. Returns
/// that outcome and whether it is the backup's.
pub async fn first_success<T, E>(
    first: impl std::future::Future<Output = Result<T, E>>,
    backup: impl std::future::Future<Output = Result<T, E>>,
) -> (Result<T, E>, bool) {
    tokio::pin!(first);
    tokio::pin!(backup);
    tokio::select! {
        result = &mut first => match result {
            Ok(report) => (Ok(report), false),
            Err(_) => (backup.await, true),
        },
        result = &mut backup => match result {
            Ok(report) => (Ok(report), true),
            Err(_) => (first.await, false),
        },
    }
}

/// When a running task gets a backup attempt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpeculationPolicy {
    /// Share of the stage's tasks that must have finished (0..=1).
    pub min_finished_fraction: f64,
    /// How many times the median duration of the finished tasks a task must
    /// have run to be a straggler.
    pub slowdown: f64,
    /// Never speculate on a task that ran less than this.
    pub floor: Duration,
}

impl Default for SpeculationPolicy {
    /// Spark's defaults (`spark.speculation.quantile` 0.75,
    /// `spark.speculation.multiplier` 1.5, raised to 2), with a 1 s floor
    /// (Spark's `spark.speculation.minTaskRuntime` is 100 ms).
    fn default() -> Self {
        Self {
            min_finished_fraction: 0.75,
            slowdown: 2.0,
            floor: Duration::from_secs(1),
        }
    }
}

/// Input below this counts as this much when a task's pace is measured: a
/// task's fixed costs (decoding its plan, its first requests) dominate tiny
/// inputs.
pub const PACE_MIN_INPUT_BYTES: u64 = 1024 * 1024;

/// Finished tasks of the query needed before its pace is trusted.
pub const PACE_MIN_TASKS: usize = 3;

/// How long the query's finished tasks took per byte of input, across stages.
#[derive(Debug, Default)]
pub struct QueryPace {
    /// Seconds per byte of each finished task (input floored at [`PACE_MIN_INPUT_BYTES`]).
    seconds_per_byte: Mutex<Vec<f64>>,
    /// The longest any finished task took.
    longest: Mutex<Duration>,
}

impl QueryPace {
    /// A task that read `input_bytes` finished after `took`.
    pub fn record(&self, took: Duration, input_bytes: u64) {
        let bytes = input_bytes.max(PACE_MIN_INPUT_BYTES) as f64;
        self.seconds_per_byte
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(took.as_secs_f64() / bytes);
        let mut longest = self.longest.lock().unwrap_or_else(|e| e.into_inner());
        *longest = (*longest).max(took);
    }

    /// How long a task reading `input_bytes` should take at the median pace
    /// of the query's finished tasks; `None` until [`PACE_MIN_TASKS`] finished.
    pub fn expected(&self, input_bytes: u64) -> Option<Duration> {
        let mut paces = self
            .seconds_per_byte
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if paces.len() < PACE_MIN_TASKS {
            return None;
        }
        paces.sort_by(f64::total_cmp);
        let median = paces[paces.len() / 2];
        let bytes = input_bytes.max(PACE_MIN_INPUT_BYTES) as f64;
        Duration::try_from_secs_f64(median * bytes).ok()
    }

    /// The longest any of the query's finished tasks took.
    pub fn longest(&self) -> Duration {
        *self.longest.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SpeculationPolicy {
    /// The policy for backends that cannot cancel the losing attempt (a
    /// Lambda invocation runs to its end): the default with a 5 s floor. A
    /// loser there is paid for in full, and what it writes after its query
    /// deleted its scratch stays until a later query or `squall scratch
    /// clean` finds it without a lease.
    pub fn for_uncancellable_attempts() -> Self {
        Self {
            floor: Duration::from_secs(5),
            ..Self::default()
        }
    }
}

/// The durations of a stage's finished tasks.
#[derive(Debug)]
pub struct StageClock {
    tasks: usize,
    finished: Mutex<Vec<Duration>>,
    query: std::sync::Arc<QueryPace>,
}

impl StageClock {
    /// The clock of a stage of `tasks` tasks in a query whose pace is `query`.
    pub fn new(tasks: usize, query: std::sync::Arc<QueryPace>) -> Self {
        Self {
            tasks,
            finished: Mutex::new(Vec::new()),
            query,
        }
    }

    /// A task of the stage that read `input_bytes` finished after `took`.
    pub fn record(&self, took: Duration, input_bytes: u64) {
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(took);
        self.query.record(took, input_bytes);
    }

    /// How long a task reading `input_bytes` may run before it is a
    /// straggler: against the median of the stage's finished tasks once
    /// enough have finished; in a stage too small for that ever to happen
    /// while the task runs, against the query's pace. `None`: not yet known.
    pub fn straggler_after(
        &self,
        policy: &SpeculationPolicy,
        input_bytes: u64,
    ) -> Option<Duration> {
        let needed = ((policy.min_finished_fraction * self.tasks as f64).ceil() as usize).max(1);
        if needed >= self.tasks {
            // The stage's own share needs every task, this one included.
            let expected = self.query.expected(input_bytes)?;
            let after = expected.mul_f64(policy.slowdown.max(1.0));
            return Some(after.max(self.query.longest()).max(policy.floor));
        }
        let median = {
            let mut finished = self
                .finished
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if finished.len() < needed {
                return None;
            }
            finished.sort();
            finished[finished.len() / 2]
        };
        Some(median.mul_f64(policy.slowdown.max(1.0)).max(policy.floor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_straggler_is_a_multiple_of_the_median_once_most_tasks_finished() {
        let policy = SpeculationPolicy {
            floor: Duration::from_millis(10),
            ..SpeculationPolicy::default()
        };
        let clock = StageClock::new(4, Default::default());
        clock.record(Duration::from_millis(100), 0);
        clock.record(Duration::from_millis(300), 0);
        assert_eq!(clock.straggler_after(&policy, 0), None, "half is not most");
        clock.record(Duration::from_millis(200), 0);
        assert_eq!(
            clock.straggler_after(&policy, 0),
            Some(Duration::from_millis(400))
        );
        let high_floor = SpeculationPolicy {
            floor: Duration::from_secs(1),
            ..policy
        };
        assert_eq!(
            clock.straggler_after(&high_floor, 0),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn a_small_stage_is_measured_against_the_query_pace() {
        let policy = SpeculationPolicy {
            floor: Duration::from_millis(10),
            ..SpeculationPolicy::default()
        };
        let pace = std::sync::Arc::new(QueryPace::default());
        let wide = StageClock::new(8, std::sync::Arc::clone(&pace));
        let mib = PACE_MIN_INPUT_BYTES;
        wide.record(Duration::from_millis(100), 10 * mib);
        wide.record(Duration::from_millis(300), 10 * mib);
        let lone = StageClock::new(1, std::sync::Arc::clone(&pace));
        assert_eq!(
            lone.straggler_after(&policy, 10 * mib),
            None,
            "two tasks are too few to trust"
        );
        wide.record(Duration::from_millis(200), 20 * mib);
        // Paces 10, 30 and 10 ms per MiB: median 10 ms, times 40 MiB, times 2.
        let ms = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 1e3).round() as u64);
        assert_eq!(ms(lone.straggler_after(&policy, 40 * mib)), Some(800));
        // Tiny inputs count as one MiB (20 ms), but no task is a straggler
        // before it ran longer than the longest finished one.
        assert_eq!(ms(lone.straggler_after(&policy, 0)), Some(300));
        // Three of four tasks finished can happen while one runs: the stage's own median.
        let four = StageClock::new(4, std::sync::Arc::clone(&pace));
        assert_eq!(four.straggler_after(&policy, 40 * mib), None);
        // Three tasks need all three finished: the query's pace.
        let three = StageClock::new(3, pace);
        assert_eq!(ms(three.straggler_after(&policy, 40 * mib)), Some(800));
    }
}
