//! Grouping sets without columns (`GROUP BY GROUPING SETS (())`) on the wire.
//!
//! datafusion-proto 55 writes an aggregate's grouping sets as one flat list
//! of booleans, cut back into sets of `group expressions` length each; with
//! no group expressions the sets cannot be cut back and `(())` decodes as no
//! set at all, which aggregates to no rows instead of one. Squall wraps such
//! an `AggregateExec` in a small node that carries the sets and rebuilds the
//! aggregate with them after DataFusion decodes it.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, PhysicalGroupBy};

/// The grouping sets of the aggregate that is this node's only input.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupingSetsNode {
    #[prost(message, repeated, tag = "1")]
    pub sets: Vec<GroupingSet>,
}

/// One grouping set: which group expressions are null in it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GroupingSet {
    #[prost(bool, repeated, tag = "1")]
    pub nulls: Vec<bool>,
}

/// The grouping sets of `plan` if it is an aggregate whose sets datafusion-proto loses.
pub fn lossy_grouping_sets(plan: &Arc<dyn ExecutionPlan>) -> Option<GroupingSetsNode> {
    let aggregate = plan.downcast_ref::<AggregateExec>()?;
    let group_by = aggregate.group_expr();
    (group_by.expr().is_empty() && !group_by.groups().is_empty()).then(|| GroupingSetsNode {
        sets: group_by
            .groups()
            .iter()
            .map(|g| GroupingSet { nulls: g.clone() })
            .collect(),
    })
}

/// The decoded aggregate `input`, rebuilt with the sets of `node`.
pub fn restore_grouping_sets(
    node: &GroupingSetsNode,
    input: &Arc<dyn ExecutionPlan>,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let aggregate = input.downcast_ref::<AggregateExec>().ok_or_else(|| {
        DataFusionError::Internal(format!(
            "Squall plan codec: grouping sets for a {}",
            input.name()
        ))
    })?;
    let group_by = aggregate.group_expr();
    let group_by = PhysicalGroupBy::new(
        group_by.expr().to_vec(),
        group_by.null_expr().to_vec(),
        node.sets.iter().map(|s| s.nulls.clone()).collect(),
        group_by.has_grouping_set(),
    );
    let rebuilt = AggregateExec::try_new(
        *aggregate.mode(),
        group_by,
        aggregate.aggr_expr().to_vec(),
        aggregate.filter_expr().to_vec(),
        Arc::clone(aggregate.input()),
        aggregate.input_schema(),
    )?
    .with_limit_options(aggregate.limit_options());
    Ok(Arc::new(rebuilt))
}
