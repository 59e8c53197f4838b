//! Combining exchanges: a hash exchange between many map tasks and many
//! reading tasks gets a stage of combiners in between.
//!
//! With *M* map tasks and *R* reading tasks, a hash exchange costs up to
//! *M × R* ranged GETs: every reader reads its partition of every map
//! object (Starling measured $5 of requests for a 5,120 × 1,280 shuffle).
//! When *M × R* exceeds [`crate::PlannerConfig::combine_exchange_above`], the
//! planner puts a combining stage between them, as Starling, Lambada and
//! Locus do: each combiner reads *g* whole map objects (one span each, in
//! GETs of at most 8 MiB, their partitions lying next to each other), hashes the rows again with the
//! same expressions into the same *R* partitions, and writes one object.
//! Readers then read ⌈*M / g*⌉ combined objects instead of *M*: the GETs fall
//! to about *M + R·M/g*, for one more write and read of the exchanged bytes.
//! *g* is ⌈√*M*⌉, which keeps ⌈*M/g*⌉ combiners busy in parallel.
//!
//! Rows land in the same partition whether hashed once or twice (same hash,
//! same expressions, same partition count), so readers compute the same
//! rows. Only plain hash exchanges are combined; an order-preserving one
//! keeps one sorted stream per map task, which a combiner would interleave.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use squall_shuffle::{ExchangeReaderExec, ExchangeWriterExec, OutputPartitioning, ReadMode};

use crate::error::Result;
use crate::stage::{ExchangeKind, Stage, StageInput};

/// Map outputs one combiner reads, when an exchange from `map_tasks` to
/// `reading_tasks` should be combined at all: when more than
/// `combine_above` pairs of them would otherwise each cost a GET, and a
/// combiner would read more than one map object.
pub fn maps_per_combiner(
    map_tasks: usize,
    reading_tasks: usize,
    combine_above: u64,
) -> Option<usize> {
    let pairs = (map_tasks as u64).saturating_mul(reading_tasks as u64);
    let group = (map_tasks as f64).sqrt().ceil() as usize;
    (pairs > combine_above && reading_tasks > 1 && group > 1).then_some(group)
}

/// The combining stage `id` between map stage `map_stage` (with `map_tasks`
/// tasks whose rows have `map_schema`, hashed on `exprs` into `partitions`
/// partitions) and its reader: ⌈`map_tasks / group`⌉ tasks, each reading
/// `group` map objects whole and writing them again as one object with the
/// same partitions.
#[allow(clippy::too_many_arguments)]
pub fn combining_stage(
    id: usize,
    map_stage: usize,
    map_tasks: usize,
    map_schema: datafusion::arrow::datatypes::SchemaRef,
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    partitions: usize,
    group: usize,
    estimates: (Option<u64>, Option<u64>),
) -> Result<Stage> {
    let reader = ExchangeReaderExec::try_new(map_stage, map_schema, ReadMode::Hash(exprs.clone()))?;
    let writer = ExchangeWriterExec::try_new(
        Arc::new(reader),
        id,
        OutputPartitioning::Hash(exprs, partitions),
    )?;
    Ok(Stage {
        id,
        plan: Arc::new(writer),
        inputs: vec![StageInput {
            stage_id: map_stage,
            kind: ExchangeKind::Combine {
                maps_per_task: group,
            },
        }],
        task_count: map_tasks.div_ceil(group.max(1)).max(1),
        output_partitions: partitions,
        scans: Vec::new(),
        scan_bytes: 0,
        est_output_bytes: estimates.0,
        est_output_rows: estimates.1,
        is_final: false,
        partition_ranges: Vec::new(),
    })
}

/// `root` with every exchange reader's stage id mapped by `new_id` (stages
/// are numbered again when combining stages are put in).
pub fn renumber_readers(
    root: Arc<dyn ExecutionPlan>,
    new_id: &dyn Fn(usize) -> usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    let renumbered = root.transform_up(|node| {
        let Some(reader) = node.downcast_ref::<ExchangeReaderExec>() else {
            return Ok(Transformed::no(node));
        };
        let id = new_id(reader.stage_id());
        if id == reader.stage_id() {
            return Ok(Transformed::no(node));
        }
        Ok(Transformed::yes(
            Arc::new(reader.with_stage_id(id)?) as Arc<dyn ExecutionPlan>
        ))
    })?;
    Ok(renumbered.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_large_exchanges_are_combined() {
        // 1,000 × 1,000: combined, 32 map objects per combiner.
        assert_eq!(maps_per_combiner(1000, 1000, 250_000), Some(32));
        // Below the threshold, or one reader, or one map task: as planned.
        assert_eq!(maps_per_combiner(100, 100, 250_000), None);
        assert_eq!(maps_per_combiner(1_000_000, 1, 250_000), None);
        assert_eq!(maps_per_combiner(1, 1_000_000, 250_000), None);
        // Off.
        assert_eq!(maps_per_combiner(1000, 1000, u64::MAX), None);
    }
}
