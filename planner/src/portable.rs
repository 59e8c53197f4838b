//! Rewriting a plan into an equivalent one whose every part survives the
//! trip to the workers.
//!
//! Some plan properties are hints that DataFusion's optimizer sets on the
//! coordinator and datafusion-proto does not carry, although dropping them
//! changes no result. The fidelity guard (`squall_shuffle::fidelity`)
//! compares every fragment with its decoded copy exactly, so such hints are
//! dropped here, before cutting, where each rule can say why it is safe:
//!
//! - an aggregate told that its input arrives in the order it needs
//!   (`is_input_pre_ordered`, for `ARRAY_AGG(x ORDER BY y)`, `FIRST_VALUE`,
//!   ...) forgets it, and orders its input itself: same result, more work;
//! - an aggregate whose result does not depend on order (`SUM(x ORDER BY y)`)
//!   forgets its `ORDER BY`, which DataFusion itself ignores
//!   (`AggregateFunctionExpr::order_bys` is empty for it);
//! - a `UnionExec` (or `InterleaveExec`) whose inputs an optimizer rule
//!   replaced without re-stamping their fields with the union's nullability
//!   and metadata is built again with `try_new`, which adds the zero-copy
//!   relabelling projections DataFusion's decoder adds too;
//! - a generated table (`generate_series`, `range`) whose columns were
//!   pruned by a projection pushed into it becomes a projection over the
//!   whole generated table: datafusion-proto rebuilds the generator with the
//!   pruned schema, which generates nothing sensible.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result as DFResult;
use datafusion::physical_expr::aggregate::{AggregateExprBuilder, AggregateFunctionExpr};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::memory::LazyMemoryExec;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::union::{InterleaveExec, UnionExec};
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};

/// `plan` with every hint that cannot travel dropped (see the module docs).
pub fn portable_plan(plan: Arc<dyn ExecutionPlan>) -> DFResult<Arc<dyn ExecutionPlan>> {
    Ok(plan
        .transform_up(|node| {
            if let Some(union) = node.downcast_ref::<UnionExec>() {
                return Ok(Transformed::yes(UnionExec::try_new(
                    union.inputs().clone(),
                )?));
            }
            if let Some(generated) = unpruned_generator(&node)? {
                return Ok(Transformed::yes(generated));
            }
            if let Some(interleave) = node.downcast_ref::<InterleaveExec>() {
                let rebuilt = InterleaveExec::try_new(interleave.inputs().clone())?;
                return Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>));
            }
            let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            let schema = aggregate.input_schema();
            let mut changed = false;
            let exprs = aggregate
                .aggr_expr()
                .iter()
                .map(|e| {
                    Ok(match portable_aggregate(e, &schema)? {
                        Some(p) => {
                            changed = true;
                            Arc::new(p)
                        }
                        None => Arc::clone(e),
                    })
                })
                .collect::<DFResult<Vec<_>>>()?;
            if !changed {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(
                Arc::new(aggregate.with_new_aggr_exprs(exprs)) as Arc<dyn ExecutionPlan>,
            ))
        })?
        .data)
}

/// A generated table with pruned columns, as a projection over the whole table.
fn unpruned_generator(node: &Arc<dyn ExecutionPlan>) -> DFResult<Option<Arc<dyn ExecutionPlan>>> {
    let Some(lazy) = node.downcast_ref::<LazyMemoryExec>() else {
        return Ok(None);
    };
    let [generator] = lazy.generators().as_slice() else {
        return Ok(None);
    };
    // The generator's own schema shows in its rows: generate from a fresh copy.
    let fresh = generator.read().reset_state();
    let Some(batch) = fresh.write().generate_next_batch()? else {
        return Ok(None);
    };
    let full = batch.schema();
    if full.fields().len() == lazy.schema().fields().len() {
        return Ok(None);
    }
    let whole = Arc::new(LazyMemoryExec::try_new(
        Arc::clone(&full),
        vec![generator.read().reset_state()],
    )?);
    let exprs = lazy
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let index = full.index_of(f.name())?;
            Ok(ProjectionExpr {
                expr: Arc::new(Column::new(f.name(), index)) as Arc<dyn PhysicalExpr>,
                alias: f.name().clone(),
            })
        })
        .collect::<DFResult<Vec<_>>>()?;
    Ok(Some(Arc::new(ProjectionExec::try_new(exprs, whole)?)))
}

/// The aggregate as datafusion-proto rebuilds it, when that differs from
/// `expr` only in hints that do not change its result.
fn portable_aggregate(
    expr: &Arc<AggregateFunctionExpr>,
    input_schema: &SchemaRef,
) -> DFResult<Option<AggregateFunctionExpr>> {
    let debug = format!("{expr:?}");
    let pre_ordered = debug.contains("is_input_pre_ordered: true");
    let unused_order =
        expr.order_sensitivity().is_insensitive() && !debug.contains("order_bys: []");
    if !pre_ordered && !unused_order {
        return Ok(None);
    }
    let fun = match expr.fun().clone().with_beneficial_ordering(false)? {
        Some(f) => f,
        None => expr.fun().clone(),
    };
    let mut builder = AggregateExprBuilder::new(Arc::new(fun), expr.expressions())
        .schema(Arc::clone(input_schema))
        .alias(expr.name())
        .with_ignore_nulls(expr.ignore_nulls())
        .with_distinct(expr.is_distinct())
        .order_by(expr.order_bys().to_vec())
        .with_reversed(expr.is_reversed());
    if let Some(display) = expr.human_display() {
        builder = builder.human_display(display);
    }
    if let Some(alias) = expr.human_display_alias() {
        builder = builder.human_display_alias(alias);
    }
    builder.build().map(Some)
}
