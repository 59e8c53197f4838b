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

use std::sync::Mutex;
use std::time::Duration;

/// When a running task gets a backup attempt.
#[derive(Debug, Clone, PartialEq)]
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
    /// `spark.speculation.multiplier` 1.5, raised to 2), with a 5 s floor.
    fn default() -> Self {
        Self {
            min_finished_fraction: 0.75,
            slowdown: 2.0,
            floor: Duration::from_secs(5),
        }
    }
}

/// The durations of a stage's finished tasks.
#[derive(Debug)]
pub struct StageClock {
    tasks: usize,
    finished: Mutex<Vec<Duration>>,
}

impl StageClock {
    pub fn new(tasks: usize) -> Self {
        Self {
            tasks,
            finished: Mutex::new(Vec::new()),
        }
    }

    /// A task of the stage finished after `took`.
    pub fn record(&self, took: Duration) {
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(took);
    }

    /// How long a task may run before it is a straggler, once enough of the
    /// stage has finished; `None` before that.
    pub fn straggler_after(&self, policy: &SpeculationPolicy) -> Option<Duration> {
        let mut finished = self
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let needed = (policy.min_finished_fraction * self.tasks as f64).ceil() as usize;
        if finished.is_empty() || finished.len() < needed.max(1) {
            return None;
        }
        finished.sort();
        let median = finished[finished.len() / 2];
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
        let clock = StageClock::new(4);
        clock.record(Duration::from_millis(100));
        clock.record(Duration::from_millis(300));
        assert_eq!(clock.straggler_after(&policy), None, "half is not most");
        clock.record(Duration::from_millis(200));
        assert_eq!(
            clock.straggler_after(&policy),
            Some(Duration::from_millis(400))
        );
        let high_floor = SpeculationPolicy {
            floor: Duration::from_secs(1),
            ..policy
        };
        assert_eq!(
            clock.straggler_after(&high_floor),
            Some(Duration::from_secs(1))
        );
    }
}
