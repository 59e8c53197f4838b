//! `--deadline` and `--budget`: the fan-out that meets a goal at the best price or speed.
//!
//! The planner sizes every stage from one knob, the input bytes a task
//! should read (`target_task_bytes`): halving it about doubles the tasks
//! of every stage that reads files or a hash exchange. The session plans a
//! query once per candidate size ([`candidate_task_bytes`]) and the model
//! predicts each plan; [`choose`] picks one.

use super::predict::QueryPrediction;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// Finish within this many seconds, as cheaply as possible.
    Deadline { seconds: f64 },
    /// Spend at most this many dollars, as fast as possible.
    Budget { usd: f64 },
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Goal::Deadline { seconds } => write!(f, "a deadline of {}", seconds_text(*seconds)),
            Goal::Budget { usd } => write!(f, "a budget of {}", crate::cost::dollars(*usd)),
        }
    }
}

/// One plan considered: its task size and what the model predicts for it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub target_task_bytes: u64,
    pub prediction: QueryPrediction,
}

/// Task sizes worth trying: powers of two from 8 MiB to `largest_bytes`
/// (what a task's memory holds), and `largest_bytes` itself.
pub fn candidate_task_bytes(largest_bytes: u64) -> Vec<u64> {
    let smallest = squall_planner::config::MIN_TARGET_TASK_BYTES;
    let mut sizes = Vec::new();
    let mut size = smallest;
    while size < largest_bytes {
        sizes.push(size);
        size *= 2;
    }
    sizes.push(largest_bytes.max(smallest));
    sizes
}

/// The index of the candidate that meets `goal` best: under a deadline the
/// cheapest that finishes in time, under a budget the fastest that costs
/// no more (ties: the other measure, then fewer tasks). None meets it: a
/// one-line error naming the best that can be had.
pub fn choose(candidates: &[Candidate], goal: Goal) -> Result<usize, String> {
    let key = |c: &Candidate| match goal {
        Goal::Deadline { .. } => (c.prediction.usd, c.prediction.seconds),
        Goal::Budget { .. } => (c.prediction.seconds, c.prediction.usd),
    };
    let meets = |c: &Candidate| match goal {
        Goal::Deadline { seconds } => c.prediction.seconds <= seconds,
        Goal::Budget { usd } => c.prediction.usd <= usd,
    };
    let better = |a: &Candidate, b: &Candidate| {
        key(a)
            .partial_cmp(&key(b))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.prediction.tasks().cmp(&b.prediction.tasks()))
    };
    if let Some((index, _)) = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| meets(c))
        .min_by(|(_, a), (_, b)| better(a, b))
    {
        return Ok(index);
    }
    let nearest = match goal {
        Goal::Deadline { .. } => candidates
            .iter()
            .min_by(|a, b| a.prediction.seconds.total_cmp(&b.prediction.seconds)),
        Goal::Budget { .. } => candidates
            .iter()
            .min_by(|a, b| a.prediction.usd.total_cmp(&b.prediction.usd)),
    };
    let Some(nearest) = nearest else {
        return Err(format!("no plan to choose from for {goal}"));
    };
    let (what, flag) = match goal {
        Goal::Deadline { .. } => (
            format!(
                "the fastest plan is predicted to take {}",
                seconds_text(nearest.prediction.seconds)
            ),
            "--deadline",
        ),
        Goal::Budget { .. } => (
            format!(
                "the cheapest plan is predicted to cost {}",
                crate::cost::dollars(nearest.prediction.usd)
            ),
            "--budget",
        ),
    };
    Err(format!(
        "no fan-out meets {goal}: {what} ({} tasks of {} input each); raise {flag}",
        nearest.prediction.tasks(),
        squall_planner::explain::human_bytes(nearest.target_task_bytes)
    ))
}

/// "12.3 s", "0.25 s".
pub fn seconds_text(seconds: f64) -> String {
    if seconds >= 10.0 {
        format!("{seconds:.1} s")
    } else {
        format!("{seconds:.2} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(target_task_bytes: u64, seconds: f64, usd: f64) -> Candidate {
        Candidate {
            target_task_bytes,
            prediction: QueryPrediction {
                stages: vec![],
                seconds,
                usd,
            },
        }
    }

    #[test]
    fn a_deadline_takes_the_cheapest_in_time_and_a_budget_the_fastest_affordable() {
        let candidates = [
            candidate(8 << 20, 10.0, 0.50),
            candidate(32 << 20, 20.0, 0.20),
            candidate(128 << 20, 60.0, 0.10),
        ];
        assert_eq!(choose(&candidates, Goal::Deadline { seconds: 30.0 }), Ok(1));
        assert_eq!(
            choose(&candidates, Goal::Deadline { seconds: 100.0 }),
            Ok(2)
        );
        assert_eq!(choose(&candidates, Goal::Budget { usd: 0.25 }), Ok(1));
        assert_eq!(choose(&candidates, Goal::Budget { usd: 1.0 }), Ok(0));
        assert_eq!(
            choose(&candidates, Goal::Deadline { seconds: 5.0 }).unwrap_err(),
            "no fan-out meets a deadline of 5.00 s: the fastest plan is predicted to take 10.0 s \
             (0 tasks of 8.0 MiB input each); raise --deadline"
        );
        assert!(
            choose(&candidates, Goal::Budget { usd: 0.01 })
                .unwrap_err()
                .contains("the cheapest plan is predicted to cost $0.1000")
        );
    }

    #[test]
    fn candidates_run_from_8_mib_to_what_memory_holds() {
        assert_eq!(
            candidate_task_bytes(100 << 20),
            vec![8 << 20, 16 << 20, 32 << 20, 64 << 20, 100 << 20]
        );
        assert_eq!(candidate_task_bytes(1 << 20), vec![8 << 20]);
    }
}
