//! Distributed file writes: a `COPY ... TO 'dir/'` (or `INSERT INTO` a
//! file table) over split data is written by every task of its input's
//! stage, not funnelled through one writer.
//!
//! On one machine DataFusion gathers the rows into the sink's single input
//! partition. Here the sink becomes a stage of its own tasks instead:
//!
//! ```text
//! stage n (many tasks):   ExchangeWriterExec(gather)         one row: files written by this task
//!                           DataSinkExec                     the task's own files, staged
//!                             ExchangeReaderExec(hash on the partition columns) | the split input
//! stage n+1 (one task):   AggregateExec(sum(count))          the rows written, as DataFusion reports them
//!                           ExchangeReaderExec(gather)
//! ```
//!
//! With `PARTITIONED BY` columns the rows are hash-exchanged on them first,
//! so that each `key=value/` folder is written by one task (in files of at
//! most `datafusion.execution.soft_max_rows_per_output_file` rows). Each
//! task stages its files; the coordinator publishes every winning task's
//! files in one commit after the whole stage succeeded
//! (`squall_connectors::sink_staging`).
//!
//! One task still writes everything where order or a single file is asked
//! for: a single-file destination (`'out.parquet'`), a sink with a required
//! input order, and input that is not split (a sorted or global result).

use std::sync::Arc;

use datafusion::datasource::sink::DataSinkExec;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, replace_children_if_necessary,
};
use squall_connectors::sink_staging::{SinkDestination, file_sink_config};
use squall_shuffle::ReadMode;

use super::{Cutter, Dist, DraftOutput};
use crate::error::Result;

/// The name of the column of rows written, as DataFusion's sinks report it.
const COUNT_COLUMN: &str = "count";

/// True when `node` is a file sink whose writing may be spread over tasks:
/// it writes a directory, in no required order.
pub(super) fn is_distributable_file_sink(node: &Arc<dyn ExecutionPlan>) -> bool {
    let Some(exec) = node.downcast_ref::<DataSinkExec>() else {
        return false;
    };
    let Some(config) = file_sink_config(node) else {
        return false;
    };
    exec.sort_order().is_none() && SinkDestination::of(config).is_ok_and(|d| d.file_name.is_none())
}

impl Cutter<'_> {
    /// Rewrites a distributable file sink (see the module docs).
    pub(super) fn rewrite_file_sink(
        &mut self,
        node: &Arc<dyn ExecutionPlan>,
    ) -> Result<(Arc<dyn ExecutionPlan>, Dist)> {
        let exec = node
            .downcast_ref::<DataSinkExec>()
            .expect("checked by is_distributable_file_sink");
        let config = file_sink_config(node).expect("checked by is_distributable_file_sink");
        // DataFusion gathers the sink's input; the gather is what goes.
        let input = exec.input();
        let below = match input.downcast_ref::<CoalescePartitionsExec>() {
            Some(coalesce) if coalesce.fetch().is_none() => coalesce.input(),
            _ => input,
        };
        let (child, dist) = self.rewrite(below)?;
        if dist != Dist::Multi {
            // Not split: one task writes it all, as on one machine.
            let child = if Arc::ptr_eq(below, input) {
                child
            } else {
                replace_children_if_necessary(Arc::clone(input), vec![child])?
            };
            return Ok((
                replace_children_if_necessary(Arc::clone(node), vec![child])?,
                Dist::Single,
            ));
        }
        let child = if config.table_partition_cols.is_empty() {
            child
        } else {
            let schema = child.schema();
            let keys = config
                .table_partition_cols
                .iter()
                .map(|(name, _)| {
                    Ok(Arc::new(Column::new_with_schema(name, &schema)?) as Arc<dyn PhysicalExpr>)
                })
                .collect::<Result<Vec<_>>>()?;
            self.hash_exchange(child, dist, keys, below)?
        };
        // Each task's rows as the one partition the sink reads.
        let child: Arc<dyn ExecutionPlan> = if child.output_partitioning().partition_count() > 1 {
            Arc::new(CoalescePartitionsExec::new(child))
        } else {
            child
        };
        let writers = replace_children_if_necessary(Arc::clone(node), vec![child])?;
        let counts = self.cut(
            &writers,
            Dist::Multi,
            DraftOutput::Single,
            ReadMode::Gather,
            node,
        )?;
        let total = sum_of_counts(counts)?;
        self.result_schema = Some(total.schema());
        Ok((total, Dist::Single))
    }
}

/// `SELECT sum(count) AS count` over the tasks' counts of rows written.
fn sum_of_counts(counts: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = counts.schema();
    let count = Arc::new(Column::new_with_schema(COUNT_COLUMN, &schema)?);
    let sum = AggregateExprBuilder::new(sum_udaf(), vec![count])
        .schema(Arc::clone(&schema))
        .alias(COUNT_COLUMN)
        .build()?;
    Ok(Arc::new(AggregateExec::try_new(
        AggregateMode::Single,
        PhysicalGroupBy::new_single(vec![]),
        vec![Arc::new(sum)],
        vec![None],
        counts,
        schema,
    )?))
}
