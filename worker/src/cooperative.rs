//! Cancellable tasks: every operator's input yields to the runtime once the
//! task's tokio budget is spent.
//!
//! DataFusion makes only a plan's leaves cooperative
//! (`EnsureCooperative`). An operator that emits many batches per input
//! batch — a nested-loop or cross join feeding an aggregate — then keeps
//! its task busy without ever returning `Pending`, and an in-process task
//! cannot be aborted (a cancelled query, Ctrl-C in the shell) until it ends
//! on its own. Wrapping every operator's inputs costs one budget check per
//! batch and lets an abort take effect within a budget's worth of batches.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::{ExecutionPlan, replace_children_if_necessary};

/// `plan` with the inputs of every operator wrapped in [`CooperativeExec`]
/// (leaves themselves, and inputs already wrapped, stay as they are).
pub fn yield_between_operators(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let children = node.children();
        if children.is_empty() || children.iter().all(|c| c.is::<CooperativeExec>()) {
            return Ok(Transformed::no(node));
        }
        let wrapped = children
            .into_iter()
            .map(|child| {
                if child.is::<CooperativeExec>() {
                    Arc::clone(child)
                } else {
                    Arc::new(CooperativeExec::new(Arc::clone(child))) as Arc<dyn ExecutionPlan>
                }
            })
            .collect();
        Ok(Transformed::yes(replace_children_if_necessary(
            node, wrapped,
        )?))
    })
    .map(|t| t.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    /// A task whose aggregate reads a cross join of forty billion rows is
    /// aborted promptly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unending_join_stops_when_its_task_is_aborted() {
        let ctx = SessionContext::new();
        let plan = ctx
            .sql("SELECT sum(a.value * b.value) FROM range(200000) a CROSS JOIN range(200000) b")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let plan = yield_between_operators(plan).unwrap();
        let task_ctx = ctx.task_ctx();
        let task = tokio::spawn(datafusion::physical_plan::collect(plan, task_ctx));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        task.abort();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
        assert!(
            matches!(&ended, Ok(Err(e)) if e.is_cancelled()),
            "the task did not stop: {ended:?}"
        );
    }
}
