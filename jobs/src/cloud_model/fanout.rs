//! `--deadline` and `--budget`: the fan-out that meets a goal at the best price or speed.
//!
//! The planner sizes every stage from one knob, the input bytes a task
//! should read (`target_task_bytes`): halving it about doubles the tasks
//! of every stage that reads files or a hash exchange. The session plans a
//! query once per candidate size ([`candidate_task_bytes`]) and the model
//! predicts each plan; [`choose`] picks one. Then [`size_stages_apart`]
//! tries other task counts stage by stage on the chosen plan (fewer tasks
//! where a stage is off the critical path or its tasks cost more than they
//! save, more where time is short and money is not), and the session plans
//! the query again with those stages sized apart, keeping that plan when
//! the model predicts it meets the goal better.

use std::collections::BTreeMap;

use squall_planner::{ExchangeKind, StageGraph};

use super::params::ModelParams;
use super::predict::{QueryPrediction, predict};
use super::profile::profiles_with_tasks;

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

/// One plan considered: its task size, the stages it sizes apart, and what
/// the model predicts for it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub target_task_bytes: u64,
    /// Input bytes per task of the stages sized apart, by stage id
    /// (`PlannerConfig::stage_target_task_bytes`); empty: none is.
    pub stage_target_task_bytes: BTreeMap<usize, u64>,
    pub prediction: QueryPrediction,
}

/// Rounds of [`size_stages_apart`] over all stages, at most: each round
/// tries every stage at every size once.
const SIZING_ROUNDS: usize = 4;

impl Goal {
    /// Whether a plan predicted as `p` meets the goal.
    fn met_by(&self, p: &QueryPrediction) -> bool {
        match *self {
            Goal::Deadline { seconds } => p.seconds <= seconds,
            Goal::Budget { usd } => p.usd <= usd,
        }
    }

    /// Which of two plans suits the goal better (`Less`: `a`): under a
    /// deadline the cheaper (then the faster), under a budget the faster
    /// (then the cheaper), then the one with fewer tasks.
    fn compare(&self, a: &QueryPrediction, b: &QueryPrediction) -> std::cmp::Ordering {
        let key = |p: &QueryPrediction| match self {
            Goal::Deadline { .. } => (p.usd, p.seconds),
            Goal::Budget { .. } => (p.seconds, p.usd),
        };
        key(a)
            .partial_cmp(&key(b))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.tasks().cmp(&b.tasks()))
    }
}

/// Whether `a` meets `goal` and suits it better than `b` ([`Goal::compare`]).
pub fn better_for(goal: Goal, a: &QueryPrediction, b: &QueryPrediction) -> bool {
    goal.met_by(a) && goal.compare(a, b).is_lt()
}

/// Input bytes per task for the stages of `graph` (planned with
/// `target_task_bytes` for every stage, and meeting `goal`) that the model
/// predicts meet `goal` better when sized apart, each at one of `sizes`;
/// with the task counts predicted for them (one per stage of `graph`).
/// None when no stage gains from it, or `graph` has combining stages
/// (whose ids the planner gives only after sizing).
///
/// Only stages the planner sizes by their input are tried (they read files
/// or a hash exchange); one reading files gets at most a task per split.
/// Coordinate descent: each stage in turn takes the size that suits the
/// goal best with the others as they are, for a few rounds.
pub fn size_stages_apart(
    graph: &StageGraph,
    target_task_bytes: u64,
    sizes: &[u64],
    max_tasks_per_stage: usize,
    goal: Goal,
    params: &ModelParams,
) -> Option<(BTreeMap<usize, u64>, Vec<usize>)> {
    let combined = graph.stages.iter().any(|s| {
        s.inputs
            .iter()
            .any(|i| matches!(i.kind, ExchangeKind::Combine { .. }))
    });
    if combined || graph.stages.is_empty() {
        return None;
    }
    let planned: Vec<usize> = graph.stages.iter().map(|s| s.task_count.max(1)).collect();
    // The tasks stage `i` gets at each size, where it can be sized apart.
    let options: Vec<Vec<(u64, usize)>> = graph
        .stages
        .iter()
        .zip(&planned)
        .map(|(stage, &tasks)| {
            let by_input = !stage.scans.is_empty()
                || stage
                    .inputs
                    .iter()
                    .any(|i| matches!(i.kind, ExchangeKind::Hash | ExchangeKind::SortedHash));
            if !by_input {
                return Vec::new();
            }
            let splits = stage
                .scans
                .iter()
                .map(|s| s.tasks.iter().map(Vec::len).sum::<usize>())
                .max();
            let most = splits.unwrap_or(usize::MAX).min(max_tasks_per_stage).max(1);
            // The stage's input, as the planner counted it: a task per target size.
            let bytes = tasks as u128 * target_task_bytes as u128;
            sizes
                .iter()
                .map(|&size| {
                    let at_size = bytes.div_ceil(size.max(1) as u128) as usize;
                    (size, at_size.clamp(1, most))
                })
                .collect()
        })
        .collect();
    let predicted = |tasks: &[usize]| predict(&profiles_with_tasks(graph, tasks, params), params);
    let mut tasks = planned.clone();
    let mut chosen: BTreeMap<usize, u64> = BTreeMap::new();
    let mut best = predicted(&tasks);
    for _ in 0..SIZING_ROUNDS {
        let mut changed = false;
        for (i, sized) in options.iter().enumerate() {
            for &(size, count) in sized {
                if count == tasks[i] {
                    continue;
                }
                let mut trial = tasks.clone();
                trial[i] = count;
                let prediction = predicted(&trial);
                if better_for(goal, &prediction, &best) {
                    tasks = trial;
                    best = prediction;
                    chosen.insert(graph.stages[i].id, size);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    // A stage back at its planned count needs no size of its own.
    chosen.retain(|id, _| {
        let i = graph.stages.iter().position(|s| s.id == *id);
        i.is_some_and(|i| tasks[i] != planned[i])
    });
    (!chosen.is_empty()).then_some((chosen, tasks))
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
    if let Some((index, _)) = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| goal.met_by(&c.prediction))
        .min_by(|(_, a), (_, b)| goal.compare(&a.prediction, &b.prediction))
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
            stage_target_task_bytes: BTreeMap::new(),
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

    const MIB: u64 = 1 << 20;

    /// Stage `id` of `tasks` tasks reading `inputs`, and, when
    /// `splits_per_task` > 0, that many 16 MiB splits per task of a file.
    fn stage(
        id: usize,
        tasks: usize,
        inputs: &[(usize, ExchangeKind)],
        splits_per_task: usize,
    ) -> squall_planner::Stage {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let schema = std::sync::Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let split = squall_connectors::FileSplit::whole_file("t.parquet", 16 * MIB);
        squall_planner::Stage {
            id,
            plan: std::sync::Arc::new(datafusion::physical_plan::empty::EmptyExec::new(schema)),
            inputs: inputs
                .iter()
                .map(|&(stage_id, kind)| squall_planner::StageInput { stage_id, kind })
                .collect(),
            task_count: tasks,
            output_partitions: 1,
            scans: if splits_per_task > 0 {
                vec![squall_planner::ScanLeaf {
                    ordinal: 0,
                    store_url: "file:///".into(),
                    tasks: vec![vec![split; splits_per_task]; tasks],
                }]
            } else {
                vec![]
            },
            scan_bytes: (16 * MIB) * (tasks * splits_per_task) as u64,
            est_output_bytes: None,
            est_output_rows: None,
            is_final: false,
            partition_ranges: vec![],
        }
    }

    /// A large scan and a small one (tasks of 64 MiB in 16 MiB splits), a
    /// hash join of both, and a gather.
    fn join_graph() -> StageGraph {
        let mut stages = vec![
            stage(0, 16, &[], 4),
            stage(1, 2, &[], 4),
            stage(
                2,
                18,
                &[(0, ExchangeKind::Hash), (1, ExchangeKind::Hash)],
                0,
            ),
            stage(3, 1, &[(2, ExchangeKind::Gather)], 0),
        ];
        stages[3].is_final = true;
        StageGraph {
            stages,
            schema: std::sync::Arc::new(datafusion::arrow::datatypes::Schema::empty()),
            ordered: false,
        }
    }

    fn predicted(graph: &StageGraph, tasks: &[usize], params: &ModelParams) -> QueryPrediction {
        predict(&profiles_with_tasks(graph, tasks, params), params)
    }

    #[test]
    fn stages_sized_apart_meet_a_deadline_cheaper_and_a_budget_faster() {
        let graph = join_graph();
        let params = ModelParams::default();
        let sizes = candidate_task_bytes(1024 * MIB);
        let planned: Vec<usize> = graph.stages.iter().map(|s| s.task_count).collect();
        let before = predicted(&graph, &planned, &params);
        for goal in [
            Goal::Deadline {
                seconds: before.seconds * 1.5,
            },
            Goal::Budget {
                usd: before.usd * 2.0,
            },
        ] {
            let (apart, tasks) = size_stages_apart(&graph, 64 * MIB, &sizes, 1000, goal, &params)
                .unwrap_or_else(|| panic!("{goal}: no stage sized apart"));
            let after = predicted(&graph, &tasks, &params);
            assert!(better_for(goal, &after, &before), "{goal}: {after:?}");
            // Only stages sized by their input, each at one of the sizes,
            // and a file read by at most a task per split.
            assert!(!apart.contains_key(&3), "{goal}: {apart:?}");
            assert!(apart.values().all(|b| sizes.contains(b)), "{apart:?}");
            assert!(
                tasks[0] <= 64 && tasks[1] <= 8 && tasks[3] == 1,
                "{tasks:?}"
            );
            for id in apart.keys() {
                assert_ne!(tasks[*id], planned[*id], "{goal}: stage {id} {tasks:?}");
            }
        }
        // A budget the plan just meets and a deadline it just meets leave
        // nothing to gain by spending or saving more... unless a stage
        // costs less and runs faster apart: then it still must meet them.
        let tight = Goal::Deadline {
            seconds: before.seconds,
        };
        if let Some((_, tasks)) = size_stages_apart(&graph, 64 * MIB, &sizes, 1000, tight, &params)
        {
            let after = predicted(&graph, &tasks, &params);
            assert!(after.seconds <= before.seconds && after.usd < before.usd);
        }
    }

    #[test]
    fn a_plan_with_combining_stages_is_not_sized_apart() {
        let mut graph = join_graph();
        graph.stages[3].inputs[0].kind = ExchangeKind::Combine { maps_per_task: 4 };
        let params = ModelParams::default();
        let goal = Goal::Budget { usd: 100.0 };
        let sizes = candidate_task_bytes(1024 * MIB);
        assert!(size_stages_apart(&graph, 64 * MIB, &sizes, 1000, goal, &params).is_none());
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
