//! `EXPLAIN ANALYZE`: a query run to its end, then its stage graph with what
//! each stage did: tasks run of those planned, task time, bytes and rows
//! in and out, object-store requests, spills, retries and backups.
//!
//! The measures come from the tasks' reports (the same progress events
//! `--stats` sums), so they are what the workers measured, per stage.
//! Under each stage, its operators' own DataFusion metrics (rows out,
//! compute time, spills, bytes scanned, ...) summed over its tasks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall_planner::StageGraph;
use squall_planner::explain::{human_bytes, render_stage_graph_annotated};
use squall_worker::RequestCounts;
use squall_worker::operator_metrics::{self, NANOS_SUFFIX, OperatorMetrics};

use crate::progress::{ProgressEvent, ProgressListener};

/// What the tasks of one stage did.
#[derive(Debug, Default, Clone)]
pub struct StageMeasures {
    /// Tasks the stage ran, and the planner's count before it was sized
    /// from its inputs (see [`crate::adaptive`]).
    pub tasks: usize,
    pub planned_tasks: usize,
    pub finished_tasks: usize,
    /// Worker time (decode and execute) summed over its tasks.
    pub busy_ms: u64,
    /// The slowest task's worker time, and which task it was.
    pub slowest_task_ms: u64,
    pub slowest_task: Option<usize>,
    /// Every finished task's worker time, in the order they finished.
    pub task_times_ms: Vec<u64>,
    pub input_rows: u64,
    pub input_bytes: u64,
    pub output_rows: u64,
    pub output_bytes: u64,
    pub requests: RequestCounts,
    pub spilled_bytes: u64,
    pub peak_memory_bytes: u64,
    pub retries: usize,
    pub backups: usize,
    /// Backups that finished first.
    pub backups_won: usize,
    /// The stage's operators, depth first, their metrics summed over its
    /// finished tasks; empty unless the query asked for them.
    pub operators: Vec<OperatorMetrics>,
}

impl StageMeasures {
    /// Adds what `other` measured: sums, and the larger of the maxima.
    pub fn add(&mut self, other: &StageMeasures) {
        self.tasks += other.tasks;
        self.planned_tasks += other.planned_tasks;
        self.finished_tasks += other.finished_tasks;
        self.busy_ms += other.busy_ms;
        if other.slowest_task_ms > self.slowest_task_ms || self.slowest_task.is_none() {
            self.slowest_task_ms = other.slowest_task_ms;
            self.slowest_task = other.slowest_task;
        }
        self.task_times_ms.extend_from_slice(&other.task_times_ms);
        self.input_rows += other.input_rows;
        self.input_bytes += other.input_bytes;
        self.output_rows += other.output_rows;
        self.output_bytes += other.output_bytes;
        self.requests.add(&other.requests);
        self.spilled_bytes += other.spilled_bytes;
        self.peak_memory_bytes = self.peak_memory_bytes.max(other.peak_memory_bytes);
        self.retries += other.retries;
        self.backups += other.backups;
        self.backups_won += other.backups_won;
        operator_metrics::add(&mut self.operators, &other.operators);
    }
}

/// What the queries run so far measured, stage by stage.
#[derive(Debug, Default)]
struct Measured {
    /// Queries planned so far; a stage's events belong to the latest.
    queries: usize,
    /// Their stages, as planned.
    planned_stages: usize,
    /// By (query, stage).
    stages: BTreeMap<(usize, usize), StageMeasures>,
}

impl Measured {
    fn stage(&mut self, stage: usize) -> &mut StageMeasures {
        let query = self.queries.saturating_sub(1);
        self.stages.entry((query, stage)).or_default()
    }

    /// The stages of the latest query, by stage id.
    fn latest(&self) -> BTreeMap<usize, StageMeasures> {
        let query = self.queries.saturating_sub(1);
        self.stages
            .iter()
            .filter(|((q, _), _)| *q == query)
            .map(|((_, stage), m)| (*stage, m.clone()))
            .collect()
    }
}

/// Collects [`StageMeasures`] from the progress events of the queries of a
/// session (a script of several statements, or one `EXPLAIN ANALYZE`).
#[derive(Debug, Default, Clone)]
pub struct QueryMeasures(Arc<Mutex<Measured>>);

impl QueryMeasures {
    /// The listener to hand the query.
    pub fn listener(&self) -> ProgressListener {
        let stages = Arc::clone(&self.0);
        Arc::new(move |event| {
            let mut measured = stages.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                ProgressEvent::QueryPlanned { stages, .. } => {
                    measured.queries += 1;
                    measured.planned_stages += stages;
                }
                ProgressEvent::StageStarted {
                    stage,
                    tasks,
                    planned_tasks,
                } => {
                    let s = measured.stage(stage);
                    s.tasks = tasks;
                    s.planned_tasks = planned_tasks;
                }
                ProgressEvent::TaskFinished {
                    stage,
                    task,
                    input_bytes,
                    input_rows,
                    output_rows,
                    output_bytes,
                    busy_ms,
                    requests,
                    spilled_bytes,
                    peak_memory_bytes,
                    operator_metrics,
                    ..
                } => {
                    let s = measured.stage(stage);
                    s.finished_tasks += 1;
                    s.busy_ms += busy_ms;
                    if busy_ms >= s.slowest_task_ms || s.slowest_task.is_none() {
                        s.slowest_task_ms = busy_ms;
                        s.slowest_task = Some(task);
                    }
                    s.task_times_ms.push(busy_ms);
                    s.input_rows += input_rows;
                    s.input_bytes += input_bytes;
                    s.output_rows += output_rows;
                    s.output_bytes += output_bytes;
                    s.requests.add(&requests);
                    s.spilled_bytes += spilled_bytes;
                    s.peak_memory_bytes = s.peak_memory_bytes.max(peak_memory_bytes);
                    operator_metrics::add(&mut s.operators, &operator_metrics);
                }
                ProgressEvent::TaskRetried { stage, .. } => measured.stage(stage).retries += 1,
                ProgressEvent::TaskSpeculated { stage, .. } => measured.stage(stage).backups += 1,
                ProgressEvent::SpeculationWon { stage, .. } => {
                    measured.stage(stage).backups_won += 1
                }
                ProgressEvent::StageFinished { .. }
                | ProgressEvent::AttemptTimed { .. }
                | ProgressEvent::AttemptsStarted { .. }
                | ProgressEvent::AttemptsEnded { .. } => {}
            }
        })
    }

    /// The measures of `stage` of the latest query so far.
    pub fn stage(&self, stage: usize) -> Option<StageMeasures> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .latest()
            .get(&stage)
            .cloned()
    }

    /// Queries planned so far.
    pub fn queries(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).queries
    }

    /// The measures of the stages of query `query` (0 for the first
    /// planned), by stage id.
    pub fn query_stages(&self, query: usize) -> BTreeMap<usize, StageMeasures> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stages
            .iter()
            .filter(|((q, _), _)| *q == query)
            .map(|((_, stage), m)| (*stage, m.clone()))
            .collect()
    }

    /// The stages planned by every query so far, and what all their stages
    /// measured together (what `--stats` prints).
    pub fn totals(&self) -> (usize, StageMeasures) {
        let measured = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = StageMeasures::default();
        for stage in measured.stages.values() {
            total.add(stage);
        }
        (measured.planned_stages, total)
    }

    /// `graph` as `squall explain` shows it, each stage with a line of what
    /// it did, after a summary of the run.
    pub fn render(&self, graph: &StageGraph, elapsed: Duration, result_rows: u64) -> String {
        let stages = self.0.lock().unwrap_or_else(|e| e.into_inner()).latest();
        let ran: usize = stages.values().map(|s| s.tasks).sum();
        let planned: usize = stages.values().map(|s| s.planned_tasks).sum();
        let busy_ms: u64 = stages.values().map(|s| s.busy_ms).sum();
        let mut out = format!(
            "Run: {:.3} s, {result_rows} result rows, {ran} tasks of {planned} planned, {:.1} task-seconds\n\n",
            elapsed.as_secs_f64(),
            busy_ms as f64 / 1000.0
        );
        out.push_str(&render_stage_graph_annotated(graph, &|stage| {
            stages.get(&stage).map(describe)
        }));
        out
    }
}

impl StageMeasures {
    /// The `p`-th percentile (0 to 100) of the task times, nearest rank.
    pub fn task_time_percentile_ms(&self, p: f64) -> Option<u64> {
        if self.task_times_ms.is_empty() {
            return None;
        }
        let mut sorted = self.task_times_ms.clone();
        sorted.sort_unstable();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        Some(sorted[rank.clamp(1, sorted.len()) - 1])
    }
}

/// One stage's measures as one line.
pub(crate) fn describe(s: &StageMeasures) -> String {
    let r = &s.requests;
    let seconds = |ms: Option<u64>| format!("{:.2}", ms.unwrap_or(0) as f64 / 1000.0);
    let mut line = format!(
        "ran {} of {} planned tasks, {:.2} task-s (per task p50 {} s, p95 {} s, max {} s{}); \
         read {} rows, {}; wrote {} rows, {}; \
         requests: {} GET, {} PUT, {} other",
        s.tasks,
        s.planned_tasks,
        s.busy_ms as f64 / 1000.0,
        seconds(s.task_time_percentile_ms(50.0)),
        seconds(s.task_time_percentile_ms(95.0)),
        seconds(Some(s.slowest_task_ms)),
        s.slowest_task
            .map(|t| format!(" in task {t}"))
            .unwrap_or_default(),
        s.input_rows,
        human_bytes(s.input_bytes),
        s.output_rows,
        human_bytes(s.output_bytes),
        r.get,
        r.put + r.multipart_put,
        r.head + r.list + r.delete + r.copy,
    );
    if s.spilled_bytes > 0 {
        line.push_str(&format!("; spilled {}", human_bytes(s.spilled_bytes)));
    }
    if s.retries > 0 || s.backups > 0 {
        line.push_str(&format!("; {} retries, {} backups", s.retries, s.backups));
    }
    if !s.operators.is_empty() {
        line.push_str("\n  operators, summed over tasks:");
        for op in &s.operators {
            line.push_str(&format!(
                "\n    {}{}: {}",
                "  ".repeat(op.depth),
                op.name,
                operator_values(op)
            ));
        }
    }
    line
}

/// `output_rows=4, elapsed_compute=1.2ms, ...`: times and bytes in units a
/// person reads.
fn operator_values(op: &OperatorMetrics) -> String {
    // Zeros (no spills, no errors, nothing pruned) are left out, but rows.
    let mut values: Vec<(String, String)> = op
        .values
        .iter()
        .filter(|(name, value)| **value > 0 || *name == "output_rows")
        .map(|(name, value)| match name.strip_suffix(NANOS_SUFFIX) {
            Some(name) => (name.to_string(), nanos(*value)),
            None if name.contains("bytes") || name.contains("mem") => {
                (name.clone(), human_bytes(*value))
            }
            None => (name.clone(), value.to_string()),
        })
        .collect();
    // Rows first, as DataFusion prints them.
    values.sort_by_key(|(name, _)| name != "output_rows");
    if values.is_empty() {
        return "no metrics".to_string();
    }
    values
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn nanos(ns: u64) -> String {
    match ns {
        0..1_000_000 => format!("{:.3}ms", ns as f64 / 1e6),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_sum_by_stage() {
        let measures = QueryMeasures::default();
        let listener = measures.listener();
        listener(ProgressEvent::StageStarted {
            stage: 1,
            tasks: 2,
            planned_tasks: 8,
        });
        for (task, busy_ms) in [(0, 100), (1, 300)] {
            listener(ProgressEvent::TaskFinished {
                stage: 1,
                task,
                input_bytes: 1024,
                input_rows: 10,
                output_rows: 5,
                output_bytes: 512,
                busy_ms,
                requests: RequestCounts {
                    get: 3,
                    put: 1,
                    ..Default::default()
                },
                spilled_bytes: 0,
                peak_memory_bytes: 0,
                operator_metrics: vec![OperatorMetrics {
                    depth: 0,
                    name: "AggregateExec".into(),
                    values: [
                        ("output_rows".to_string(), 5),
                        ("elapsed_compute_ns".to_string(), 1_500_000),
                        ("spilled_bytes".to_string(), 0),
                    ]
                    .into(),
                }],
            });
        }
        let s = measures.stage(1).expect("stage 1");
        assert_eq!((s.tasks, s.planned_tasks, s.finished_tasks), (2, 8, 2));
        assert_eq!((s.busy_ms, s.slowest_task_ms), (400, 300));
        assert_eq!(
            describe(&s),
            "ran 2 of 8 planned tasks, 0.40 task-s (per task p50 0.10 s, p95 0.30 s, max 0.30 s in task 1); \
             read 20 rows, 2.0 KiB; wrote 10 rows, 1.0 KiB; requests: 6 GET, 2 PUT, 0 other\n  \
             operators, summed over tasks:\n    \
             AggregateExec: output_rows=10, elapsed_compute=3.0ms"
        );
        assert!(measures.stage(0).is_none());
    }

    #[test]
    fn task_time_percentiles_are_nearest_rank() {
        let s = StageMeasures {
            task_times_ms: (1..=100).rev().collect(),
            ..StageMeasures::default()
        };
        assert_eq!(s.task_time_percentile_ms(50.0), Some(50));
        assert_eq!(s.task_time_percentile_ms(95.0), Some(95));
        assert_eq!(s.task_time_percentile_ms(100.0), Some(100));
        assert_eq!(StageMeasures::default().task_time_percentile_ms(50.0), None);
    }
}
