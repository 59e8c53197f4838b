//! [`Session`]: tables, SQL and DataFrames, executed as distributed queries.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrame;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::DFParser;
use squall_connectors::{Location, TableFormat};
use squall_planner::{PlannerConfig, StageGraph, cut_into_stages, render_stage_graph};
use squall_worker::TaskLimits;

use crate::backend::{Backend, LocalBackend};
use crate::error::{JobError, Result};
use crate::progress::ProgressListener;
use crate::registry::LazyObjectStoreRegistry;
use crate::results::QueryStream;
use crate::scheduler::QueryRun;

/// Partitions DataFusion plans with on the coordinator. Only its shape
/// matters (where exchanges go); Squall picks the real task counts.
const PLANNING_PARTITIONS: usize = 8;

/// How a session runs queries.
#[derive(Clone)]
pub struct SessionOptions {
    /// Where tasks run; default: [`LocalBackend`] with one worker per core.
    pub backend: Arc<dyn Backend>,
    pub planner: PlannerConfig,
    /// Scratch root for exchange data and results; default: a temporary directory.
    pub scratch: Option<String>,
    /// Keep a query's scratch objects after it ends.
    pub keep_scratch: bool,
    pub limits: TaskLimits,
    /// Most tasks of one stage running at once (default: the backend's concurrency).
    pub stage_workers: Option<usize>,
    pub progress: Option<ProgressListener>,
}

impl std::fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionOptions")
            .field("backend", &self.backend.name())
            .field("planner", &self.planner)
            .field("scratch", &self.scratch)
            .field("keep_scratch", &self.keep_scratch)
            .finish()
    }
}

impl Default for SessionOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            backend: Arc::new(LocalBackend::new(cores)),
            planner: PlannerConfig::default(),
            scratch: None,
            keep_scratch: false,
            limits: TaskLimits::default(),
            stage_workers: None,
            progress: None,
        }
    }
}

/// A Squall session: a DataFusion context for planning plus a backend for running.
pub struct Session {
    ctx: SessionContext,
    options: SessionOptions,
    scratch: Location,
    _scratch_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("scratch", &self.scratch.to_string())
            .field("options", &self.options)
            .finish()
    }
}

/// The outcome of one SQL statement.
#[derive(Debug)]
pub enum StatementResult {
    /// DDL or a setting: nothing to show.
    Done,
    /// Rows.
    Rows(QueryStream),
}

impl Session {
    /// A session with `options`; creates a temporary scratch directory if none is given.
    pub fn try_new(options: SessionOptions) -> Result<Self> {
        let (scratch, scratch_dir) = match &options.scratch {
            Some(s) => (Location::parse(s)?.as_prefix(), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("squall-scratch-")
                    .tempdir()
                    .map_err(|e| JobError::Storage {
                        url: std::env::temp_dir().display().to_string(),
                        message: e.to_string(),
                    })?;
                let loc = Location::parse(&dir.path().display().to_string())?.as_prefix();
                (loc, Some(dir))
            }
        };
        let config = SessionConfig::new()
            .with_target_partitions(PLANNING_PARTITIONS)
            .with_information_schema(true)
            .set_bool("datafusion.optimizer.repartition_file_scans", false)
            .set_bool("datafusion.execution.collect_statistics", true)
            // Dynamic filters link a join's build side to a scan at run time
            // inside one process; across stages the two run in different tasks.
            .set_bool("datafusion.optimizer.enable_dynamic_filter_pushdown", false)
            // Uncorrelated scalar subqueries become joins, which cut into stages
            // like any join; `ScalarSubqueryExec` shares results through memory.
            .set_bool(
                "datafusion.optimizer.enable_physical_uncorrelated_scalar_subquery",
                false,
            );
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(LazyObjectStoreRegistry::default()))
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        Ok(Self {
            ctx,
            options,
            scratch,
            _scratch_dir: scratch_dir,
        })
    }

    /// The DataFusion context, for DataFrame programs and custom registration.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The scratch root.
    pub fn scratch(&self) -> &Location {
        &self.scratch
    }

    /// Registers `location` as table `name`.
    pub async fn register_table(
        &self,
        name: &str,
        location: &str,
        format: Option<TableFormat>,
    ) -> Result<()> {
        squall_connectors::register_table(&self.ctx, name, location, format).await?;
        Ok(())
    }

    /// Runs every statement of `sql` in order (each planned after the previous
    /// one ran, so a script can create a table and then query it); returns the
    /// result of the last one.
    pub async fn sql(&self, sql: &str) -> Result<StatementResult> {
        let statements = self.parse(sql)?;
        let count = statements.len();
        let mut last = StatementResult::Done;
        for (i, statement) in statements.into_iter().enumerate() {
            let plan = self.ctx.state().statement_to_plan(statement).await?;
            let result = self.run_logical(plan).await?;
            if i + 1 < count {
                if let StatementResult::Rows(stream) = result {
                    stream.collect().await?;
                }
            } else {
                last = result;
            }
        }
        Ok(last)
    }

    /// Runs one query and returns its rows as a stream.
    pub async fn query(&self, sql: &str) -> Result<QueryStream> {
        match self.sql(sql).await? {
            StatementResult::Rows(s) => Ok(s),
            StatementResult::Done => {
                Err(JobError::Plan("the last statement returns no rows".into()))
            }
        }
    }

    /// Runs a DataFrame built on [`Session::context`].
    pub async fn execute_dataframe(&self, df: DataFrame) -> Result<QueryStream> {
        let plan = df.create_physical_plan().await?;
        self.execute_physical(plan).await
    }

    /// The stage graph of the last statement of `sql` (earlier statements run first).
    pub async fn plan_stages(&self, sql: &str) -> Result<StageGraph> {
        let mut statements = self.parse(sql)?;
        let last = statements
            .pop()
            .ok_or_else(|| JobError::Plan("no SQL statement given".into()))?;
        for statement in statements {
            let plan = self.ctx.state().statement_to_plan(statement).await?;
            if let StatementResult::Rows(s) = self.run_logical(plan).await? {
                s.collect().await?;
            }
        }
        let plan = self.ctx.state().statement_to_plan(last).await?;
        let physical = self.ctx.state().create_physical_plan(&plan).await?;
        self.cut(physical).await
    }

    /// `squall explain`: the stage graph of `sql` as text.
    pub async fn explain(&self, sql: &str) -> Result<String> {
        Ok(render_stage_graph(&self.plan_stages(sql).await?))
    }

    fn parse(&self, sql: &str) -> Result<Vec<datafusion::sql::parser::Statement>> {
        let dialect_name = self.ctx.state().config().options().sql_parser.dialect;
        let dialect = datafusion::sql::sqlparser::dialect::dialect_from_str(dialect_name)
            .ok_or_else(|| JobError::Plan(format!("unsupported SQL dialect {dialect_name}")))?;
        let statements = DFParser::parse_sql_with_dialect(sql, dialect.as_ref()).map_err(|e| {
            JobError::Plan(squall_connectors::table::one_line(&format!(
                "SQL parse error: {e}"
            )))
        })?;
        if statements.is_empty() {
            return Err(JobError::Plan("no SQL statement given".into()));
        }
        Ok(statements.into_iter().collect())
    }

    async fn run_logical(&self, plan: LogicalPlan) -> Result<StatementResult> {
        match plan {
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) => {
                // Catalog changes and settings happen on the coordinator.
                self.ctx.execute_logical_plan(plan).await?.collect().await?;
                Ok(StatementResult::Done)
            }
            LogicalPlan::Explain(_) | LogicalPlan::DescribeTable(_) | LogicalPlan::Analyze(_) => {
                let df = self.ctx.execute_logical_plan(plan).await?;
                let physical = df.create_physical_plan().await?;
                Ok(StatementResult::Rows(
                    self.execute_physical(physical).await?,
                ))
            }
            plan => {
                let physical = self.ctx.state().create_physical_plan(&plan).await?;
                Ok(StatementResult::Rows(
                    self.execute_physical(physical).await?,
                ))
            }
        }
    }

    async fn cut(&self, physical: Arc<dyn ExecutionPlan>) -> Result<StageGraph> {
        let state = self.ctx.state();
        let optimizer = state.config_options().optimizer.clone();
        Ok(cut_into_stages(
            physical,
            &self.ctx.runtime_env(),
            &self.options.planner,
            &optimizer,
        )
        .await?)
    }

    /// Cuts and runs a physical plan.
    pub async fn execute_physical(&self, physical: Arc<dyn ExecutionPlan>) -> Result<QueryStream> {
        let graph = self.cut(physical).await?;
        let run = QueryRun {
            query_id: format!("q-{}", uuid::Uuid::new_v4().simple()),
            graph: Arc::new(graph),
            scratch: self.scratch.clone(),
            backend: Arc::clone(&self.options.backend),
            limits: self.options.limits.clone(),
            stage_workers: self.options.stage_workers,
            progress: self.options.progress.clone(),
        };
        Ok(QueryStream::start(run, self.options.keep_scratch))
    }

    /// The schema `sql` would return, without running it.
    pub async fn schema_of(&self, sql: &str) -> Result<SchemaRef> {
        let df = self.ctx.sql(sql).await?;
        Ok(Arc::new(df.schema().as_arrow().clone()))
    }
}
