//! `--stats`: what a query did, summed over its tasks, printed to stderr.
//!
//! Task-seconds and object-store requests are what a serverless run is billed
//! for (Lambda: GB-seconds and invocations; S3: requests), so the summary is
//! what the cost notes in the README multiply by prices.

use std::sync::Arc;

use squall::jobs::analyze::{QueryMeasures, StageMeasures};
use squall::jobs::{ProgressEvent, ProgressListener};
use squall_planner::explain::human_bytes;

/// Collects what the statements run so far measured (the same measures
/// `EXPLAIN ANALYZE` shows per stage), for one summary line.
#[derive(Debug, Default, Clone)]
pub struct StatsCollector(QueryMeasures);

impl StatsCollector {
    pub fn listener(&self) -> ProgressListener {
        self.0.listener()
    }

    /// The measures of every task so far, summed.
    pub fn totals(&self) -> StageMeasures {
        self.0.totals().1
    }

    /// The estimated cost on functions of `billed_memory_bytes` (see
    /// [`squall::jobs::cost`]), one line.
    pub fn cost_line(&self, billed_memory_bytes: u64) -> String {
        use squall::jobs::cost;
        let c = cost::estimate(
            &self.totals(),
            billed_memory_bytes,
            &cost::CloudPrices::default(),
        );
        format!(
            "cost: ≈ {} at list prices ({:.1} GB-seconds, {} invocations, {} GET and {} PUT/LIST requests; start-ups not included)",
            cost::dollars(c.usd),
            c.gb_seconds,
            c.invocations,
            c.get_requests,
            c.put_requests
        )
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let (stages, s) = self.0.totals();
        format!(
            "stats: {} stages, {} tasks of {} planned ({} retried, {} backups of which {} won), {:.1} task-seconds; read {}, wrote {}; \
             spilled {}, peak task memory {}; \
             object-store requests: {} GET, {} PUT, {} multipart PUT, {} HEAD, {} LIST, {} DELETE, \
             {} retried, {} hedged of which {} won",
            stages,
            s.finished_tasks,
            s.planned_tasks,
            s.retries,
            s.backups,
            s.backups_won,
            s.busy_ms as f64 / 1000.0,
            human_bytes(s.input_bytes),
            human_bytes(s.output_bytes),
            human_bytes(s.spilled_bytes),
            human_bytes(s.peak_memory_bytes),
            s.requests.get,
            s.requests.put,
            s.requests.multipart_put,
            s.requests.head,
            s.requests.list,
            s.requests.delete,
            s.requests.retried,
            s.requests.hedged,
            s.requests.hedges_won,
        )
    }
}

/// What listens to one statement or job: its live display, `--stats` and
/// `--report`.
pub fn run_listener(
    live: Option<&crate::progress::LiveProgress>,
    stats: &Option<StatsCollector>,
    recorder: &Option<squall::jobs::run_report::RunRecorder>,
) -> Option<ProgressListener> {
    both(
        live.map(crate::progress::LiveProgress::listener),
        both(
            stats.as_ref().map(StatsCollector::listener),
            recorder
                .as_ref()
                .map(squall::jobs::run_report::RunRecorder::listener),
        ),
    )
}

/// Both listeners, or whichever exists.
pub fn both(a: Option<ProgressListener>, b: Option<ProgressListener>) -> Option<ProgressListener> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Arc::new(move |event: ProgressEvent| {
            a(event.clone());
            b(event);
        })),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stage graph for events whose listener does not look at it.
    pub(crate) fn empty_graph() -> Arc<squall_planner::StageGraph> {
        Arc::new(squall_planner::StageGraph {
            stages: Vec::new(),
            schema: Arc::new(datafusion::arrow::datatypes::Schema::empty()),
            ordered: false,
        })
    }

    #[test]
    fn summary_sums_tasks() {
        let collector = StatsCollector::default();
        let listener = collector.listener();
        listener(ProgressEvent::QueryPlanned {
            stages: 2,
            tasks: 5,
            graph: crate::stats::tests::empty_graph(),
        });
        listener(ProgressEvent::StageStarted {
            stage: 0,
            tasks: 1,
            planned_tasks: 4,
        });
        listener(ProgressEvent::StageStarted {
            stage: 1,
            tasks: 1,
            planned_tasks: 1,
        });
        for _ in 0..2 {
            listener(ProgressEvent::TaskFinished {
                stage: 0,
                task: 0,
                input_bytes: 3 << 20,
                input_rows: 10,
                output_bytes: 512,
                output_rows: 1,
                busy_ms: 1500,
                requests: squall_worker::RequestCounts {
                    get: 4,
                    put: 1,
                    retried: 1,
                    hedged: 2,
                    hedges_won: 1,
                    ..Default::default()
                },
                spilled_bytes: 1 << 20,
                peak_memory_bytes: 2 << 20,
                operator_metrics: Vec::new(),
            });
        }
        assert_eq!(
            collector.summary(),
            "stats: 2 stages, 2 tasks of 5 planned (0 retried, 0 backups of which 0 won), 3.0 task-seconds; read 6.0 MiB, wrote 1.0 KiB; \
             spilled 2.0 MiB, peak task memory 2.0 MiB; object-store requests: 8 GET, 2 PUT, 0 multipart PUT, 0 HEAD, 0 LIST, 0 DELETE, \
             2 retried, 4 hedged of which 2 won"
        );
        // A second statement's stage 0 adds to the totals, not to the first's.
        listener(ProgressEvent::QueryPlanned {
            stages: 1,
            tasks: 1,
            graph: crate::stats::tests::empty_graph(),
        });
        listener(ProgressEvent::StageStarted {
            stage: 0,
            tasks: 1,
            planned_tasks: 1,
        });
        listener(ProgressEvent::TaskSpeculated { stage: 0, task: 0 });
        listener(ProgressEvent::SpeculationWon { stage: 0, task: 0 });
        assert!(
            collector.summary().starts_with(
                "stats: 3 stages, 2 tasks of 6 planned (0 retried, 1 backups of which 1 won)"
            ),
            "{}",
            collector.summary()
        );
    }
}
