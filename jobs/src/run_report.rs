//! A run's report: every query a session ran, its stage graph, what each
//! stage measured, when every task attempt ran and how it ended, and what the
//! run would cost on functions. The CLI writes it as JSON (`--report
//! FILE.json`, schema in `docs/report.md`) and draws it as a self-contained
//! HTML page (`--report FILE.html`).
//!
//! Collected from progress events ([`RunRecorder::listener`]), so it holds
//! what the coordinator saw: attempt times are the coordinator's clock, from
//! when the attempt was sent to when its report (or failure) came back,
//! measured from the start of the statement. Its size is bounded by the
//! attempts the queries ran (a task's attempts are bounded by the session's
//! attempt limit plus one backup each).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use squall_planner::StageGraph;
use squall_planner::explain::render_stage_graph_annotated;
use squall_worker::RequestCounts;

use crate::analyze::{QueryMeasures, StageMeasures, describe};
use crate::cost::{CloudPrices, estimate};
use crate::progress::{AttemptOutcome, ProgressEvent, ProgressListener};

/// The schema name and version written in every report.
pub const REPORT_SCHEMA: &str = "squall-run-report/1";

/// Everything a run did (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunReport {
    /// [`REPORT_SCHEMA`].
    pub schema: String,
    /// The backend the queries ran on (`local`, `process`, `lambda`).
    pub backend: String,
    /// Memory of one function, which Lambda bills GB-seconds for; on other
    /// backends, the memory the costs are estimated for.
    pub function_memory_bytes: u64,
    /// Whether the backend bills what the cost section estimates (Lambda);
    /// otherwise it is what the run would cost there.
    pub billed: bool,
    pub prices: Prices,
    pub queries: Vec<QueryReport>,
}

/// The prices the costs are estimated at, in US dollars.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Prices {
    pub lambda_gb_second_usd: f64,
    pub lambda_invocation_usd: f64,
    pub s3_get_usd: f64,
    pub s3_put_usd: f64,
}

impl From<CloudPrices> for Prices {
    fn from(p: CloudPrices) -> Self {
        Self {
            lambda_gb_second_usd: p.lambda_gb_second_usd,
            lambda_invocation_usd: p.lambda_invocation_usd,
            s3_get_usd: p.s3_get_usd,
            s3_put_usd: p.s3_put_usd,
        }
    }
}

impl From<Prices> for CloudPrices {
    fn from(p: Prices) -> Self {
        Self {
            lambda_gb_second_usd: p.lambda_gb_second_usd,
            lambda_invocation_usd: p.lambda_invocation_usd,
            s3_get_usd: p.s3_get_usd,
            s3_put_usd: p.s3_put_usd,
        }
    }
}

/// One query: a statement that ran distributed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueryReport {
    /// The statement, as the session parsed it.
    pub sql: String,
    /// From the start of the statement to its end (its results written).
    pub elapsed_ms: u64,
    /// Why the statement failed, if it did.
    pub error: Option<String>,
    /// The stage graph as `EXPLAIN ANALYZE` shows it.
    pub plan: String,
    pub stages: Vec<StageReport>,
    /// Every task attempt, in the order they ended.
    pub attempts: Vec<AttemptReport>,
    pub cost: CostReport,
}

/// What one stage is and what it measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageReport {
    pub id: usize,
    /// True for the stage that produced the query's result.
    pub is_final: bool,
    /// The stages it reads, and how (`hash`, `broadcast`, ...), in order.
    pub inputs: Vec<StageInputReport>,
    /// The operator at the top of its fragment under the exchange writer
    /// (what the stage computes), as DataFusion names it.
    pub operator: String,
    pub planned_tasks: usize,
    pub tasks: usize,
    pub finished_tasks: usize,
    /// Worker time of its finished tasks, summed.
    pub busy_ms: u64,
    /// Worker time of each finished task, in the order they finished.
    pub task_times_ms: Vec<u64>,
    pub task_ms_p50: Option<u64>,
    pub task_ms_p95: Option<u64>,
    pub task_ms_max: u64,
    pub slowest_task: Option<usize>,
    pub input_rows: u64,
    pub input_bytes: u64,
    pub output_rows: u64,
    pub output_bytes: u64,
    pub requests: RequestCounts,
    pub spilled_bytes: u64,
    pub peak_memory_bytes: u64,
    pub retries: usize,
    pub backups: usize,
    pub backups_won: usize,
    /// Its operators, depth first, with their DataFusion metrics summed
    /// over its tasks (times in nanoseconds under names ending in `_ns`);
    /// absent in reports of runs that did not collect them.
    #[serde(default)]
    pub operators: Vec<squall_worker::OperatorMetrics>,
}

/// An input of a stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageInputReport {
    pub stage: usize,
    pub exchange: String,
}

/// One attempt of one task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttemptReport {
    pub stage: usize,
    pub task: usize,
    /// 0 for the first attempt; retries and backups count up.
    pub attempt: u32,
    /// When it was sent and when it ended, in ms from the statement's start.
    pub start_ms: u64,
    pub end_ms: u64,
    /// `succeeded`, `failed` or `abandoned` (another attempt of the task
    /// reported first, or the query ended before it).
    pub outcome: String,
    /// Why it failed.
    pub cause: Option<String>,
}

/// What the query costs on functions, by part, in US dollars.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct CostReport {
    pub gb_seconds: f64,
    pub compute_usd: f64,
    pub invocations: u64,
    pub invocations_usd: f64,
    pub get_requests: u64,
    pub get_usd: f64,
    pub put_requests: u64,
    pub put_usd: f64,
    pub total_usd: f64,
}

impl CostReport {
    /// The cost of `measures` (see [`crate::cost::estimate`]), by part.
    pub fn of(measures: &StageMeasures, function_memory_bytes: u64, prices: &CloudPrices) -> Self {
        let c = estimate(measures, function_memory_bytes, prices);
        Self {
            gb_seconds: c.gb_seconds,
            compute_usd: c.gb_seconds * prices.lambda_gb_second_usd,
            invocations: c.invocations,
            invocations_usd: c.invocations as f64 * prices.lambda_invocation_usd,
            get_requests: c.get_requests,
            get_usd: c.get_requests as f64 * prices.s3_get_usd,
            put_requests: c.put_requests,
            put_usd: c.put_requests as f64 * prices.s3_put_usd,
            total_usd: c.usd,
        }
    }
}

/// A query being recorded.
#[derive(Debug)]
struct Recording {
    sql: String,
    statement_started: Instant,
    /// Its number among the queries [`QueryMeasures`] counts.
    measures_index: usize,
    graph: Arc<StageGraph>,
    attempts: Vec<AttemptReport>,
    /// Set when its statement ended.
    elapsed_ms: Option<u64>,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct Recorder {
    /// The statement running now: its text and start.
    statement: Option<(String, Instant)>,
    queries: Vec<Recording>,
}

/// Records a [`RunReport`] from the progress events of a session's queries.
#[derive(Debug, Default, Clone)]
pub struct RunRecorder {
    recorder: Arc<Mutex<Recorder>>,
    measures: QueryMeasures,
}

impl RunRecorder {
    /// A statement starts: the queries it plans are recorded under `sql`.
    pub fn begin_statement(&self, sql: &str) {
        self.lock().statement = Some((sql.to_string(), Instant::now()));
    }

    /// The statement begun last ended, with `error` if it failed.
    pub fn end_statement(&self, error: Option<String>) {
        let mut recorder = self.lock();
        let Some((_, started)) = recorder.statement.take() else {
            return;
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        for query in recorder.queries.iter_mut().rev() {
            if query.statement_started != started {
                break;
            }
            query.elapsed_ms = Some(elapsed_ms);
            query.error = error.clone();
        }
    }

    /// The listener to hand the session.
    pub fn listener(&self) -> ProgressListener {
        let recorder = Arc::clone(&self.recorder);
        let measures = self.measures.clone();
        let measure = measures.listener();
        Arc::new(move |event| {
            let mut r = recorder.lock().unwrap_or_else(|e| e.into_inner());
            match &event {
                ProgressEvent::QueryPlanned { graph, .. } => {
                    let (sql, statement_started) = r
                        .statement
                        .clone()
                        .unwrap_or_else(|| (String::new(), Instant::now()));
                    let measures_index = measures.queries();
                    r.queries.push(Recording {
                        sql,
                        statement_started,
                        measures_index,
                        graph: Arc::clone(graph),
                        attempts: Vec::new(),
                        elapsed_ms: None,
                        error: None,
                    });
                }
                ProgressEvent::AttemptTimed {
                    stage,
                    task,
                    attempt,
                    started,
                    ended,
                    outcome,
                } => {
                    if let Some(query) = r.queries.last_mut() {
                        let ms = |at: &Instant| {
                            at.saturating_duration_since(query.statement_started)
                                .as_millis() as u64
                        };
                        let (outcome, cause) = match outcome {
                            AttemptOutcome::Succeeded => ("succeeded", None),
                            AttemptOutcome::Failed { cause } => ("failed", Some(cause.clone())),
                            AttemptOutcome::Abandoned => ("abandoned", None),
                        };
                        query.attempts.push(AttemptReport {
                            stage: *stage,
                            task: *task,
                            attempt: *attempt,
                            start_ms: ms(started),
                            end_ms: ms(ended),
                            outcome: outcome.to_string(),
                            cause,
                        });
                    }
                }
                _ => {}
            }
            drop(r);
            measure(event);
        })
    }

    /// The report so far, for `backend` with functions of
    /// `function_memory_bytes` (`billed`: the backend bills them).
    pub fn report(
        &self,
        backend: &str,
        function_memory_bytes: u64,
        billed: bool,
        prices: CloudPrices,
    ) -> RunReport {
        let recorder = self.lock();
        let queries = recorder
            .queries
            .iter()
            .map(|q| {
                let measured = self.measures.query_stages(q.measures_index);
                let plan = render_stage_graph_annotated(&q.graph, &|stage| {
                    measured.get(&stage).map(describe)
                });
                let stages: Vec<StageReport> = q
                    .graph
                    .stages
                    .iter()
                    .map(|stage| {
                        let m = measured.get(&stage.id).cloned().unwrap_or_default();
                        stage_report(stage, m)
                    })
                    .collect();
                let mut total = StageMeasures::default();
                for m in measured.values() {
                    total.add(m);
                }
                let elapsed_ms = q
                    .elapsed_ms
                    .unwrap_or_else(|| q.attempts.iter().map(|a| a.end_ms).max().unwrap_or(0));
                QueryReport {
                    sql: q.sql.clone(),
                    elapsed_ms,
                    error: q.error.clone(),
                    plan,
                    stages,
                    attempts: q.attempts.clone(),
                    cost: CostReport::of(&total, function_memory_bytes, &prices),
                }
            })
            .collect();
        RunReport {
            schema: REPORT_SCHEMA.to_string(),
            backend: backend.to_string(),
            function_memory_bytes,
            billed,
            prices: prices.into(),
            queries,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorder> {
        self.recorder.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn stage_report(stage: &squall_planner::Stage, m: StageMeasures) -> StageReport {
    // Under the exchange or result writer: what the stage computes.
    let top = stage.plan.children().first().map(|c| (*c).clone());
    let operator = top
        .map(|plan| plan.name().to_string())
        .unwrap_or_else(|| stage.plan.name().to_string());
    StageReport {
        id: stage.id,
        is_final: stage.is_final,
        inputs: stage
            .inputs
            .iter()
            .map(|i| StageInputReport {
                stage: i.stage_id,
                exchange: i.kind.to_string(),
            })
            .collect(),
        operator,
        planned_tasks: if m.planned_tasks > 0 {
            m.planned_tasks
        } else {
            stage.task_count
        },
        tasks: m.tasks,
        finished_tasks: m.finished_tasks,
        busy_ms: m.busy_ms,
        task_ms_p50: m.task_time_percentile_ms(50.0),
        task_ms_p95: m.task_time_percentile_ms(95.0),
        task_ms_max: m.slowest_task_ms,
        slowest_task: m.slowest_task,
        task_times_ms: m.task_times_ms,
        input_rows: m.input_rows,
        input_bytes: m.input_bytes,
        output_rows: m.output_rows,
        output_bytes: m.output_bytes,
        requests: m.requests,
        spilled_bytes: m.spilled_bytes,
        peak_memory_bytes: m.peak_memory_bytes,
        retries: m.retries,
        backups: m.backups,
        backups_won: m.backups_won,
        operators: m.operators,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn empty_graph() -> Arc<StageGraph> {
        Arc::new(StageGraph {
            stages: Vec::new(),
            schema: Arc::new(datafusion::arrow::datatypes::Schema::empty()),
            ordered: false,
        })
    }

    #[test]
    fn attempts_are_timed_from_their_statement_and_survive_json() {
        let recorder = RunRecorder::default();
        let listener = recorder.listener();
        recorder.begin_statement("create table t as values (1)");
        recorder.end_statement(None);
        recorder.begin_statement("select 1");
        let start = Instant::now();
        listener(ProgressEvent::QueryPlanned {
            stages: 0,
            tasks: 2,
            graph: empty_graph(),
        });
        let at = |ms: u64| start + Duration::from_millis(ms);
        for (attempt, ended_ms, outcome) in [
            (
                0,
                40,
                AttemptOutcome::Failed {
                    cause: "injected crash".into(),
                },
            ),
            (1, 300, AttemptOutcome::Abandoned),
            (2, 250, AttemptOutcome::Succeeded),
        ] {
            listener(ProgressEvent::AttemptTimed {
                stage: 0,
                task: 3,
                attempt,
                started: at(10 * u64::from(attempt) + 20),
                ended: at(ended_ms),
                outcome,
            });
        }
        recorder.end_statement(Some("boom".into()));
        let report = recorder.report("local", 1 << 30, false, CloudPrices::default());
        assert_eq!(
            report.queries.len(),
            1,
            "statements that plan no query are left out"
        );
        let query = &report.queries[0];
        assert_eq!(
            (query.sql.as_str(), query.error.as_deref()),
            ("select 1", Some("boom"))
        );
        let outcomes: Vec<_> = query
            .attempts
            .iter()
            .map(|a| (a.attempt, a.outcome.as_str(), a.cause.as_deref()))
            .collect();
        assert_eq!(
            outcomes,
            [
                (0, "failed", Some("injected crash")),
                (1, "abandoned", None),
                (2, "succeeded", None)
            ]
        );
        let first = &query.attempts[0];
        // Offsets from the statement's start, which came a little before `start`.
        assert!((20..60).contains(&first.start_ms) && (40..80).contains(&first.end_ms));
        assert!(query.elapsed_ms < 10_000);
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains("\"schema\":\"squall-run-report/1\""));
        assert_eq!(serde_json::from_str::<RunReport>(&json).unwrap(), report);
    }
}
