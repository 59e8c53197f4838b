//! The operators' own DataFusion metrics of one task (rows out, compute
//! time, spills, bytes scanned, build and probe times, ...), collected when
//! the spec asks for them (`EXPLAIN ANALYZE`, run reports) and summed over a
//! stage's tasks by the coordinator.
//!
//! Every task of a stage runs the same fragment, so the operators line up by
//! their position in a depth-first walk; the cooperative wrappers the worker
//! adds (see [`crate::cooperative`]) are left out.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricValue;
use serde::{Deserialize, Serialize};

/// Suffix of the names of time metrics, which hold nanoseconds.
pub const NANOS_SUFFIX: &str = "_ns";

/// One operator's metrics, summed over its partitions (and, at the
/// coordinator, over the stage's tasks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorMetrics {
    /// Depth in the fragment (0: the writer at its top).
    pub depth: usize,
    /// DataFusion's name for it (`AggregateExec`).
    pub name: String,
    /// By metric name; times in nanoseconds under names ending in
    /// [`NANOS_SUFFIX`], everything else as counted (rows, bytes, spills).
    pub values: BTreeMap<String, u64>,
}

/// The metrics of every operator of `plan`, depth first.
pub fn collect(plan: &Arc<dyn ExecutionPlan>) -> Vec<OperatorMetrics> {
    let mut out = Vec::new();
    walk(plan, 0, &mut out);
    out
}

fn walk(plan: &Arc<dyn ExecutionPlan>, depth: usize, out: &mut Vec<OperatorMetrics>) {
    if plan.name() == "CooperativeExec" {
        for child in plan.children() {
            walk(child, depth, out);
        }
        return;
    }
    let mut values = BTreeMap::new();
    if let Some(metrics) = plan.metrics() {
        for metric in metrics.aggregate_by_name().iter() {
            let value = metric.value();
            if value.is_timestamp()
                || matches!(
                    value,
                    MetricValue::PruningMetrics { .. }
                        | MetricValue::Ratio { .. }
                        | MetricValue::Custom { .. }
                )
            {
                continue;
            }
            let name = match value {
                MetricValue::ElapsedCompute(_) | MetricValue::Time { .. } => {
                    format!("{}{NANOS_SUFFIX}", value.name())
                }
                _ => value.name().to_string(),
            };
            *values.entry(name).or_insert(0u64) += value.as_usize() as u64;
        }
    }
    out.push(OperatorMetrics {
        depth,
        name: plan.name().to_string(),
        values,
    });
    for child in plan.children() {
        walk(child, depth + 1, out);
    }
}

/// Adds one task's operators to a stage's sums. A task whose fragment does
/// not line up (it cannot happen: every task runs the stage's fragment) is
/// left out rather than summed into the wrong operators.
pub fn add(sums: &mut Vec<OperatorMetrics>, task: &[OperatorMetrics]) {
    if task.is_empty() {
        return;
    }
    if sums.is_empty() {
        sums.extend_from_slice(task);
        return;
    }
    let lines_up = sums.len() == task.len()
        && sums
            .iter()
            .zip(task)
            .all(|(a, b)| a.depth == b.depth && a.name == b.name);
    if !lines_up {
        return;
    }
    for (sum, one) in sums.iter_mut().zip(task) {
        for (name, value) in &one.values {
            *sum.values.entry(name.clone()).or_insert(0) += value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(depth: usize, name: &str, values: &[(&str, u64)]) -> OperatorMetrics {
        OperatorMetrics {
            depth,
            name: name.into(),
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn tasks_sum_by_position_and_misfits_are_left_out() {
        let mut sums = Vec::new();
        let task = vec![
            op(
                0,
                "AggregateExec",
                &[("output_rows", 4), ("elapsed_compute_ns", 10)],
            ),
            op(1, "DataSourceExec", &[("output_rows", 100)]),
        ];
        add(&mut sums, &task);
        add(&mut sums, &task);
        assert_eq!(sums[0].values["output_rows"], 8);
        assert_eq!(sums[0].values["elapsed_compute_ns"], 20);
        assert_eq!(sums[1].values["output_rows"], 200);
        add(&mut sums, &[op(0, "SortExec", &[("output_rows", 1)])]);
        assert_eq!(sums[0].values["output_rows"], 8);
    }
}
