//! [`DistributedPlanner`] and [`DistributedExec`]: how DataFusion's
//! DataFrames run distributed. The planner builds DataFusion's physical plan
//! as usual, then wraps it in a [`DistributedExec`], whose one partition
//! runs the plan through `squall_jobs` (stage graph, tasks, exchanges) and
//! streams the final stage's batches back.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, displayable,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use futures::{StreamExt, TryStreamExt};

/// Plans queries as DataFusion does, then makes them run distributed
/// through `jobs`. Statements that only describe or change the catalog
/// (`EXPLAIN`, `DESCRIBE`, `CREATE`/`DROP`, `SET`) stay on the client.
pub struct DistributedPlanner {
    jobs: Arc<squall_jobs::Session>,
}

impl DistributedPlanner {
    pub fn new(jobs: Arc<squall_jobs::Session>) -> Self {
        Self { jobs }
    }
}

impl fmt::Debug for DistributedPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistributedPlanner").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl QueryPlanner for DistributedPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn datafusion::catalog::Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let physical = DefaultPhysicalPlanner::default()
            .create_physical_plan(logical_plan, session_state)
            .await?;
        let stays_on_client = matches!(
            logical_plan,
            LogicalPlan::Explain(_)
                | LogicalPlan::Analyze(_)
                | LogicalPlan::DescribeTable(_)
                | LogicalPlan::Ddl(_)
                | LogicalPlan::Statement(_)
        );
        if stays_on_client {
            return Ok(physical);
        }
        Ok(Arc::new(DistributedExec::new(
            physical,
            Arc::clone(&self.jobs),
        )))
    }
}

/// A query that runs distributed when executed: one output partition, the
/// query's batches in its order. Its plan is DataFusion's optimized physical
/// plan; it has no children, so that nothing rewrites that plan after it
/// was cut-ready.
pub struct DistributedExec {
    plan: Arc<dyn ExecutionPlan>,
    jobs: Arc<squall_jobs::Session>,
    properties: Arc<PlanProperties>,
}

impl DistributedExec {
    pub fn new(plan: Arc<dyn ExecutionPlan>, jobs: Arc<squall_jobs::Session>) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(plan.schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            plan,
            jobs,
            properties,
        }
    }

    /// The plan it runs.
    pub fn plan(&self) -> &Arc<dyn ExecutionPlan> {
        &self.plan
    }
}

impl fmt::Debug for DistributedExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistributedExec")
            .field(
                "plan",
                &displayable(self.plan.as_ref()).one_line().to_string(),
            )
            .finish()
    }
}

impl DisplayAs for DistributedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DistributedExec: backend={}", self.jobs.backend().name())
    }
}

impl ExecutionPlan for DistributedExec {
    fn name(&self) -> &str {
        "DistributedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return Err(DataFusionError::Internal(
                "DistributedExec is a leaf".into(),
            ));
        }
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "DistributedExec has one partition, not {partition}"
            )));
        }
        let (plan, jobs) = (Arc::clone(&self.plan), Arc::clone(&self.jobs));
        let batches = futures::stream::once(async move { jobs.execute_physical(plan).await })
            .map_ok(|stream| stream.map_err(to_datafusion))
            .map_err(to_datafusion)
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.plan.schema(),
            batches.boxed(),
        )))
    }
}

/// A job's error as DataFusion carries it; [`squall_jobs::JobError`] is
/// inside (`DataFusionError::External`) for callers that look.
fn to_datafusion(e: squall_jobs::JobError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}
