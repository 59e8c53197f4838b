//! [`Session`]: tables, SQL and DataFrames, executed as distributed queries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DataFusionError, SchemaError};
use datafusion::config::ConfigOptions;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::provider_as_source;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{
    CreateMemoryTable, DdlStatement, Expr, LogicalPlan, LogicalPlanBuilder,
    Statement as DfStatement,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::work_table::WorkTableExec;
use datafusion::physical_plan::{ExecutionPlanProperties, collect, replace_children_if_necessary};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::DFParserBuilder;
use datafusion::sql::sqlparser::dialect::dialect_from_str;
use squall_connectors::{Location, TableFormat};
use squall_planner::{
    BroadcastCheapBuildSides, PlannerConfig, SemiJoinBelowInnerJoin, StageGraph, cut_into_stages,
    render_stage_graph,
};
use squall_shuffle::codec::encode_plan;
use squall_shuffle::fidelity::encode_checked;
use squall_worker::{MemoryPoolKind, TaskLimits};

use crate::backend::{Backend, LocalBackend};
use crate::error::{JobError, Result};
use crate::progress::{ProgressEvent, ProgressListener};
use crate::registry::LazyObjectStoreRegistry;
use crate::results::QueryStream;
use crate::scheduler::QueryRun;

/// DataFusion settings for plans that run distributed (a session's own
/// `SET` may change them afterwards):
///
/// - Dynamic filters off: they link a join's build side (or a top-k) to a
///   scan at run time through memory; across stages the two run in
///   different tasks, possibly in different processes.
/// - Broadcast joins up to 16 MiB of estimated build side, or 512 Ki rows
///   where DataFusion estimates rows but not bytes, as it does for a join's
///   output (DataFusion's single-node defaults: 1 MiB, 128 Ki rows). A broadcast
///   build side is written once and read whole by every task of the probe
///   side's stage, which then joins its own part of the probe side where
///   it reads it; the alternative hash-exchanges both sides, writing and
///   reading the large one through object storage. Measured on TPC-H
///   (docs/benchmarks.md, release build): 12% less time at scale 1 and 22%
///   at scale 10 over the 22 queries; 512 Ki rows rather than a million
///   took Q10 at scale 10 from 4.8 s to 3.2 s (its 580,000 wide rows of
///   customers with orders, 75 MiB, were read whole by every lineitem
///   task), the other queries unchanged. Joins whose build-side output depends on every
///   probe row (left outer, semi, anti, full) are still repartitioned by
///   the planner.
pub const DISTRIBUTION_SETTINGS: &[(&str, &str)] = &[
    (
        "datafusion.optimizer.enable_dynamic_filter_pushdown",
        "false",
    ),
    (
        "datafusion.optimizer.hash_join_single_partition_threshold",
        "16777216",
    ),
    (
        "datafusion.optimizer.hash_join_single_partition_threshold_rows",
        "524288",
    ),
];

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
    /// What each task may take. By default, its memory is three quarters of
    /// this machine's shared by the tasks the default backend runs at once
    /// (`squall_worker::memory::machine_share_per_task`).
    pub limits: TaskLimits,
    /// Most tasks of one stage running at once (default: the backend's concurrency).
    pub stage_workers: Option<usize>,
    /// Attempts of one task before its failure fails the query (at least 1;
    /// default 4, like Spark). Failures no retry can fix fail at once.
    pub task_attempts: u32,
    /// Longest one task attempt may run before it is abandoned and tried
    /// again; `None` (the default): 10 minutes plus one second per MiB of
    /// the attempt's input (see [`crate::scheduler::DEFAULT_TASK_TIMEOUT_BASE`]),
    /// and on Lambda the function's own timeout if that is shorter.
    pub task_timeout: Option<std::time::Duration>,
    /// When a straggling task gets a backup attempt (default: Spark's
    /// rule, see [`SpeculationPolicy`]); `None`: never.
    pub speculation: Option<crate::SpeculationPolicy>,
    pub progress: Option<ProgressListener>,
    /// The Lambda + S3 model's parameters (see [`crate::cloud_model`]):
    /// `EXPLAIN ANALYZE` predicts the run it measured on Lambda with them.
    pub cost_model: crate::cloud_model::ModelParams,
    /// How tasks send their object-store requests: retries of transient
    /// failures, hedging of slow requests, and (a testing option) injected
    /// faults.
    pub requests: squall_connectors::RequestPolicy,
    /// Largest result a query may return, in bytes of its result parts
    /// (compressed Arrow IPC, what the client downloads); a query whose
    /// result grows past it fails with [`JobError::ResultTooLarge`] as soon
    /// as its final tasks have written that much. `None` (the default): no limit.
    pub max_result_bytes: Option<u64>,
    /// Size stages fed by hash exchanges from the exact bytes their inputs
    /// wrote, once those have finished (see [`crate::adaptive`]): a stage
    /// whose inputs turned out small runs fewer tasks than planned. Default
    /// off: where a task costs under a millisecond (local backend, see
    /// docs/benchmarks.md) fewer tasks saved nothing measurable at TPC-H
    /// scale 10 and cost balance; the CLI turns it on for Lambda, where
    /// every task is an invocation.
    pub adaptive_stages: bool,
    /// Tasks report their operators' own DataFusion metrics, summed per
    /// stage in [`crate::analyze::StageMeasures::operators`] (what run
    /// reports show). `EXPLAIN ANALYZE` asks for them whatever this says.
    pub operator_metrics: bool,
    /// Where SQL may read files and URLs it names (`FROM 'data/x.parquet'`):
    /// `None` (the default) anywhere the session's credentials reach; a
    /// location: only below it (a live notebook keeps to its folder).
    /// Tables registered by name are not restricted.
    pub url_tables_root: Option<String>,
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

/// Attempts of one task by default, as in Spark (`spark.task.maxFailures`).
pub const DEFAULT_TASK_ATTEMPTS: u32 = 4;

impl Default for SessionOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // The in-process tasks share one budget: three quarters of the
        // machine, split between the tasks that run at once.
        let mut limits = TaskLimits::default();
        if let Some(share) = squall_worker::memory::machine_share_per_task(cores) {
            limits.memory_bytes = share;
        }
        Self {
            backend: Arc::new(LocalBackend::new(cores)),
            planner: PlannerConfig::default(),
            scratch: None,
            keep_scratch: false,
            limits,
            stage_workers: None,
            task_attempts: DEFAULT_TASK_ATTEMPTS,
            task_timeout: None,
            speculation: Some(crate::SpeculationPolicy::default()),
            progress: None,
            cost_model: Default::default(),
            requests: Default::default(),
            max_result_bytes: None,
            adaptive_stages: false,
            operator_metrics: false,
            url_tables_root: None,
        }
    }
}

/// A Squall session: a DataFusion context for planning plus a backend for running.
pub struct Session {
    ctx: SessionContext,
    pub(crate) options: SessionOptions,
    /// How later queries are sized: `options.planner` at first, then what
    /// [`Session::apply_fanout`] set.
    sizing: std::sync::RwLock<PlannerConfig>,
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
        let config = SessionConfig::new()
            .with_target_partitions(PLANNING_PARTITIONS)
            .with_information_schema(true)
            .set_bool("datafusion.optimizer.repartition_file_scans", false)
            .set_bool("datafusion.execution.collect_statistics", true);
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::new(LazyObjectStoreRegistry::default()))
            .build_arc()?;
        // `FROM 'data/x.parquet'` and `FROM 's3://...'` read locations as tables.
        let root = match &options.url_tables_root {
            Some(root) => Some(Location::parse(root)?.as_prefix()),
            None => None,
        };
        let ctx = squall_connectors::url_tables::enable_url_tables_under(
            SessionContext::new_with_config_rt(config, runtime),
            root,
        );
        Self::with_context(ctx, options)
    }

    /// A session that plans with `ctx` (its tables, functions and settings)
    /// and runs distributed with `options`. Squall turns off the DataFusion
    /// settings that link operators through memory at run time (see
    /// [`DISTRIBUTION_SETTINGS`]).
    pub fn with_context(ctx: SessionContext, options: SessionOptions) -> Result<Self> {
        let scratch = options
            .scratch
            .as_deref()
            .map(Location::parse)
            .transpose()?
            .map(|s| s.as_prefix());
        crate::reach::check_scratch(options.backend.as_ref(), scratch.as_ref())?;
        let (scratch, scratch_dir) = match scratch {
            Some(s) => (s, None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix(crate::lease::TEMP_SCRATCH_PREFIX)
                    .tempdir()
                    .map_err(|e| JobError::Storage {
                        url: std::env::temp_dir().display().to_string(),
                        message: e.to_string(),
                    })?;
                let loc = Location::parse(&dir.path().display().to_string())?.as_prefix();
                // Queries of other sessions on this machine whose clients
                // died left their scratch in temporary directories like this one.
                let own = dir.path().to_path_buf();
                squall_connectors::cleanup::spawn_cleanup(async move {
                    let ttl = crate::lease::lease_ttl();
                    for other in crate::lease::temp_scratch_dirs(Some(&own)) {
                        let _ = crate::lease::clean_abandoned_now_and_then(&other, None, ttl).await;
                    }
                });
                (loc, Some(dir))
            }
        };
        {
            let state = ctx.state_ref();
            let mut state = state.write();
            let options = state.config_mut().options_mut();
            for (key, value) in DISTRIBUTION_SETTINGS {
                options.set(key, value)?;
            }
            // Folders `k=__HIVE_DEFAULT_PARTITION__/` of the tables of
            // `CREATE EXTERNAL TABLE ... STORED AS PARQUET` (CSV, ...) read as null.
            for factory in state.table_factories_mut().values_mut() {
                *factory = Arc::new(squall_connectors::null_partitions::NullPartitionsFactory(
                    Arc::clone(factory),
                ));
            }
            // `CREATE EXTERNAL TABLE ... STORED AS DELTA`.
            state.table_factories_mut().insert(
                squall_delta::DeltaTableFactory::FORMAT.to_string(),
                Arc::new(squall_delta::DeltaTableFactory),
            );
        }
        // `IN (subquery)` on the key of the join below it filters that
        // join's input, not its product (TPC-H Q18).
        let has_rule = |name: &str| ctx.state().optimizers().iter().any(|r| r.name() == name);
        if !has_rule(SemiJoinBelowInnerJoin::NAME) {
            ctx.add_optimizer_rule(Arc::new(SemiJoinBelowInnerJoin));
        }
        let session = Self {
            ctx,
            sizing: std::sync::RwLock::new(options.planner.clone()),
            options,
            scratch,
            _scratch_dir: scratch_dir,
        };
        session.add_broadcast_rule();
        Ok(session)
    }

    /// Puts [`BroadcastCheapBuildSides`] right after DataFusion's join
    /// selection (it must run before exchanges are placed), sized for this
    /// session's tasks: a build side it broadcasts takes at most an eighth
    /// of a task's memory.
    fn add_broadcast_rule(&self) {
        let mut rule = BroadcastCheapBuildSides::new(self.planner_config());
        rule.max_build_bytes = rule.max_build_bytes.min(self.planning_memory_bytes() / 8);
        let state = self.ctx.state_ref();
        let mut state = state.write();
        let mut rules = state.physical_optimizers().to_vec();
        rules.retain(|r| r.name() != BroadcastCheapBuildSides::NAME);
        let at = rules
            .iter()
            .position(|r| r.name() == "join_selection")
            .map_or(0, |i| i + 1);
        rules.insert(at, Arc::new(rule));
        *state = squall_connectors::state_rebuild::builder_from(state.clone())
            .with_physical_optimizer_rules(rules)
            .build();
    }

    /// The DataFusion context, for DataFrame programs and custom registration.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Where the session's tasks run.
    pub fn backend(&self) -> &Arc<dyn crate::Backend> {
        &self.options.backend
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
        self.register_table_with(name, location, format, &Default::default())
            .await
    }

    /// Registers `location` as table `name`, its CSV and TSV files read as
    /// `csv` says (header or not, delimiter, quote).
    pub async fn register_table_with(
        &self,
        name: &str,
        location: &str,
        format: Option<TableFormat>,
        csv: &squall_connectors::CsvOptions,
    ) -> Result<()> {
        if let Some(delta) = squall_delta::DeltaLocation::parse_prefixed(location) {
            return self.register_delta_table(name, &delta?).await;
        }
        squall_connectors::register_table_with(&self.ctx, name, location, format, csv).await?;
        Ok(())
    }

    /// Registers the Delta table snapshot `location` names as table `name`.
    pub async fn register_delta_table(
        &self,
        name: &str,
        location: &squall_delta::DeltaLocation,
    ) -> Result<()> {
        let table = squall_delta::delta_table(self.ctx.runtime_env().as_ref(), location).await?;
        self.ctx
            .register_table(name, Arc::new(table))
            .map_err(|e| squall_connectors::ConnectorError::Table {
                table: name.to_string(),
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// Runs every statement of `sql` in order (each planned after the previous
    /// one ran, so a script can create a table and then query it); returns the
    /// result of the last one.
    pub async fn sql(&self, sql: &str) -> Result<StatementResult> {
        let statements = self.statements(sql)?;
        let count = statements.len();
        let mut last = StatementResult::Done;
        for (i, statement) in statements.into_iter().enumerate() {
            let result = self.run_statement(statement).await?;
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

    /// The statements of `sql`, parsed with the session's SQL dialect, for
    /// [`Session::run_statement`] to run one at a time (as a terminal shows
    /// each statement's rows before the next runs). At least one.
    pub fn statements(&self, sql: &str) -> Result<Vec<datafusion::sql::parser::Statement>> {
        self.parse(sql)
    }

    /// Runs one statement of [`Session::statements`].
    pub async fn run_statement(
        &self,
        statement: datafusion::sql::parser::Statement,
    ) -> Result<StatementResult> {
        let plan = self.ctx.state().statement_to_plan(statement).await?;
        self.run_logical(plan, None).await
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

    /// [`Session::query`], telling `observer` too what the last statement's
    /// query does (the session's own listener hears it as well): how to
    /// follow one of several queries that run at once on one session.
    pub async fn query_observed(
        &self,
        sql: &str,
        observer: ProgressListener,
    ) -> Result<QueryStream> {
        let mut statements = self.statements(sql)?;
        let last = statements.pop().expect("at least one statement");
        for statement in statements {
            if let StatementResult::Rows(stream) = self.run_statement(statement).await? {
                stream.collect().await?;
            }
        }
        let plan = self.ctx.state().statement_to_plan(last).await?;
        match self.run_logical(plan, Some(observer)).await? {
            StatementResult::Rows(stream) => Ok(stream),
            StatementResult::Done => {
                Err(JobError::Plan("the last statement returns no rows".into()))
            }
        }
    }

    /// Runs one statement that writes files (`COPY ... TO`, `INSERT INTO`
    /// a file table) to its end with its files staged but not published:
    /// they are handed over to `staged`, whose owner publishes them (see
    /// [`crate::staged_sinks`]). Returns the rows written.
    pub async fn write_staged(&self, sql: &str, staged: &crate::StagedSinks) -> Result<u64> {
        let mut statements = self.statements(sql)?;
        if statements.len() != 1 {
            return Err(JobError::Plan(format!(
                "one statement expected, found {}",
                statements.len()
            )));
        }
        let statement = statements.pop().expect("one");
        let plan = self.ctx.state().statement_to_plan(statement).await?;
        if !matches!(plan, LogicalPlan::Copy(_) | LogicalPlan::Dml(_)) {
            return Err(JobError::Plan(
                "only COPY and INSERT write files to stage".into(),
            ));
        }
        let physical = self.ctx.state().create_physical_plan(&plan).await?;
        let (stream, _) = self
            .execute_physical_observed(
                physical,
                None,
                self.options.operator_metrics,
                Some(staged.clone()),
            )
            .await?;
        let batches = stream.collect().await?;
        rows_written(&batches)
    }

    /// Runs a DataFrame built on [`Session::context`].
    pub async fn execute_dataframe(&self, df: DataFrame) -> Result<QueryStream> {
        let plan = df.create_physical_plan().await?;
        self.execute_physical(plan).await
    }

    /// The stage graph of the last statement of `sql`, without running
    /// anything: earlier statements are applied to a copy of the session's
    /// catalog and settings (see `dry_run`), and the session is left as it was.
    pub async fn plan_stages(&self, sql: &str) -> Result<StageGraph> {
        Ok(self
            .plan_without_running(sql, &self.planner_config())
            .await?
            .0)
    }

    /// The stage graph of `sql` with its fragments checked (see [`Session::plan_stages`]).
    pub async fn plan_checked(&self, sql: &str) -> Result<StageGraph> {
        let (graph, ctx) = self
            .plan_without_running(sql, &self.planner_config())
            .await?;
        self.encode_fragments(&graph, &settings_of(&ctx))?;
        Ok(graph)
    }

    /// `squall explain`: the stage graph of `sql` as text. Runs nothing.
    pub async fn explain(&self, sql: &str) -> Result<String> {
        Ok(render_stage_graph(&self.plan_checked(sql).await?))
    }

    /// The stage graph of the last statement of `sql` and the context that
    /// planned it (the session's own, or a copy with the earlier statements
    /// applied), cut into stages with `config`.
    pub(crate) async fn plan_without_running(
        &self,
        sql: &str,
        config: &PlannerConfig,
    ) -> Result<(StageGraph, SessionContext)> {
        let mut statements = self.parse(sql)?;
        let last = statements
            .pop()
            .ok_or_else(|| JobError::Plan("no SQL statement given".into()))?;
        let ctx = if statements.is_empty() {
            self.ctx.clone()
        } else {
            let copy = crate::dry_run::planning_copy(&self.ctx).await?;
            for statement in statements {
                crate::dry_run::apply_without_running(&copy, statement).await?;
            }
            copy
        };
        let state = ctx.state();
        let plan = match state.statement_to_plan(last).await? {
            // CREATE TABLE ... AS: the query that fills the table.
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
                state.optimize(&create.input)?
            }
            plan => plan,
        };
        let physical = state.create_physical_plan(&plan).await?;
        let graph = cut_with(&ctx, physical, config).await?;
        Ok((graph, ctx))
    }

    pub(crate) fn parse(&self, sql: &str) -> Result<Vec<datafusion::sql::parser::Statement>> {
        let state = self.ctx.state();
        let options = &state.config_options().sql_parser;
        let dialect = dialect_from_str(options.dialect).ok_or_else(|| {
            JobError::Plan(format!("unsupported SQL dialect {}", options.dialect))
        })?;
        let statements = DFParserBuilder::new(sql)
            .with_dialect(dialect.as_ref())
            .with_recursion_limit(options.recursion_limit.get())
            .build()
            .and_then(|mut p| p.parse_statements())?;
        if statements.is_empty() {
            return Err(JobError::Plan("no SQL statement given".into()));
        }
        Ok(statements.into_iter().collect())
    }

    /// Every task's limits: the session's; when the session limits memory
    /// as DataFusion does (`SET datafusion.runtime.memory_limit`), every
    /// task gets that limit and DataFusion's kind of pool (greedy).
    pub fn task_limits(&self) -> TaskLimits {
        let mut limits = self.options.limits.clone();
        if let MemoryLimit::Finite(bytes) = self.ctx.runtime_env().memory_pool.memory_limit() {
            limits.memory_bytes = limits.memory_bytes.min(bytes as u64);
            limits.memory_pool = MemoryPoolKind::Greedy;
        }
        limits
    }

    /// The DataFusion settings of this session that differ from the defaults:
    /// what every task applies to its own context.
    pub fn task_settings(&self) -> BTreeMap<String, String> {
        settings_of(&self.ctx)
    }

    /// Encodes every stage's fragment and checks that it decodes, in a context
    /// built like the workers' (same settings, same functions), to the same
    /// plan (see `squall_shuffle::fidelity`). Refuses the query otherwise.
    fn encode_fragments(
        &self,
        graph: &StageGraph,
        settings: &BTreeMap<String, String>,
    ) -> Result<Vec<Vec<u8>>> {
        let config = squall_worker::task_config(self.options.limits.batch_size, settings)?;
        // The coordinator's stores: decoding a scan looks its store up.
        let worker_ctx = SessionContext::new_with_config_rt(config, self.ctx.runtime_env());
        self.options.backend.functions().register_into(&worker_ctx);
        let task_ctx = worker_ctx.task_ctx();
        graph
            .stages
            .iter()
            .map(|stage| {
                encode_checked(&stage.plan, &task_ctx).map_err(|e| JobError::Fragment {
                    stage: stage.id,
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// Runs `plan`; a query that runs distributed tells `observer` too what
    /// it does.
    async fn run_logical(
        &self,
        plan: LogicalPlan,
        observer: Option<ProgressListener>,
    ) -> Result<StatementResult> {
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
                // CREATE TABLE ... AS SELECT: the query runs distributed; the
                // coordinator then creates the table from its rows, with
                // DataFusion's own semantics (IF NOT EXISTS, OR REPLACE,
                // constraints, defaults).
                // DataFusion's check, before the query runs: a table keeps
                // only unqualified names, so they must be unique.
                ensure_unique_column_names(create.input.schema())?;
                let input = self.materialize(&create.input).await?;
                let create = CreateMemoryTable {
                    input: Arc::new(input),
                    ..create
                };
                self.ctx
                    .execute_logical_plan(LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)))
                    .await?
                    .collect()
                    .await?;
                Ok(StatementResult::Done)
            }
            LogicalPlan::Statement(DfStatement::Execute(_)) => {
                // EXECUTE of a prepared statement: DataFusion binds the
                // parameters; the bound query runs distributed.
                let bound = self.ctx.execute_logical_plan(plan).await?;
                Box::pin(self.run_logical(bound.logical_plan().clone(), observer)).await
            }
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) => {
                // Catalog changes and settings happen on the coordinator.
                self.ctx.execute_logical_plan(plan).await?.collect().await?;
                Ok(StatementResult::Done)
            }
            LogicalPlan::Explain(_) | LogicalPlan::DescribeTable(_) => {
                // Plans and schemas: metadata the coordinator has, nothing to distribute.
                let df = self.ctx.execute_logical_plan(plan).await?;
                let schema = Arc::new(df.schema().as_arrow().clone());
                let batches = df.collect().await?;
                Ok(StatementResult::Rows(QueryStream::from_batches(
                    schema, batches,
                )))
            }
            LogicalPlan::Analyze(analyze) => {
                // The query runs distributed to its end; its rows are
                // counted and dropped; the stage graph comes back with
                // what every stage did.
                let schema = Arc::new(analyze.schema.as_arrow().clone());
                let text = self.explain_analyze(&analyze.input).await?;
                let batch = datafusion::arrow::record_batch::RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(datafusion::arrow::array::StringArray::from(vec![
                            "Squall plan with metrics",
                        ])),
                        Arc::new(datafusion::arrow::array::StringArray::from(vec![text])),
                    ],
                )
                .map_err(DataFusionError::from)?;
                Ok(StatementResult::Rows(QueryStream::from_batches(
                    schema,
                    vec![batch],
                )))
            }
            plan => {
                let physical = self.ctx.state().create_physical_plan(&plan).await?;
                Ok(StatementResult::Rows(
                    self.execute_physical_observed(
                        physical,
                        observer,
                        self.options.operator_metrics,
                        None,
                    )
                    .await?
                    .0,
                ))
            }
        }
    }

    /// Runs `plan` distributed and returns a plan that scans its rows from
    /// the coordinator's memory, with the same schema.
    async fn materialize(&self, plan: &LogicalPlan) -> Result<LogicalPlan> {
        // Optimized first, as DataFusion does for CREATE TABLE AS: the
        // optimizer may change column types (Utf8 to Utf8View).
        let state = self.ctx.state();
        let plan = state.optimize(plan)?;
        let physical = state.create_physical_plan(&plan).await?;
        let batches = self.execute_physical(physical).await?.collect().await?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let table = MemTable::try_new(Arc::clone(&schema), vec![batches])?;
        let scan =
            LogicalPlanBuilder::scan("materialized", provider_as_source(Arc::new(table)), None)?
                .build()?;
        // Same column names as the input, without the scan's qualifier.
        let columns = plan
            .schema()
            .iter()
            .zip(scan.schema().columns())
            .map(|((_, field), column)| Expr::Column(column).alias(field.name()))
            .collect::<Vec<_>>();
        Ok(LogicalPlanBuilder::from(scan).project(columns)?.build()?)
    }

    /// Sources that cannot be sent to a task read their rows here, once, and
    /// the rows travel instead: catalog tables (`information_schema`), an
    /// in-memory table's `UPDATE` or `DELETE` (which changes the coordinator's
    /// memory and returns a count), a custom table provider's scan. An
    /// unbounded source is refused.
    async fn read_coordinator_sources(
        &self,
        plan: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut leaves = Vec::new();
        plan.apply(|node| {
            // A work table is read by its recursive query, which travels whole.
            if node.children().is_empty()
                && !node.is::<WorkTableExec>()
                && encode_plan(Arc::clone(node)).is_err()
            {
                leaves.push(Arc::clone(node));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if leaves.is_empty() {
            return Ok(plan);
        }
        let mut replacements = Vec::with_capacity(leaves.len());
        for leaf in leaves {
            if leaf.boundedness().is_unbounded() {
                return Err(JobError::Unsupported(format!(
                    "{} is an unbounded source, which Squall cannot read",
                    leaf.name()
                )));
            }
            let mut partitions = Vec::new();
            for p in 0..leaf.output_partitioning().partition_count() {
                let stream = leaf.execute(p, self.ctx.task_ctx())?;
                partitions.push(datafusion::physical_plan::common::collect(stream).await?);
            }
            let mut rows = MemorySourceConfig::try_new(&partitions, leaf.schema(), None)?;
            if let Some(ordering) = leaf.output_ordering() {
                rows = rows.try_with_sort_information(vec![ordering.clone()])?;
            }
            let rows: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(rows);
            replacements.push((leaf, rows));
        }
        Ok(plan
            .transform_up(|node| {
                match replacements
                    .iter()
                    .find(|(leaf, _)| Arc::ptr_eq(leaf, &node))
                {
                    Some((_, rows)) => Ok(Transformed::yes(Arc::clone(rows))),
                    None => Ok(Transformed::no(node)),
                }
            })?
            .data)
    }

    /// A sink that only the coordinator can run (an in-memory table's):
    /// its input runs distributed, the coordinator writes the rows.
    async fn run_sink_on_coordinator(&self, sink: &DataSinkExec) -> Result<QueryStream> {
        let input = sink.input();
        let batches = self
            .execute_physical(Arc::clone(input))
            .await?
            .collect()
            .await?;
        let source = MemorySourceConfig::try_new_exec(&[batches], input.schema(), None)?;
        let local = replace_children_if_necessary(Arc::new(sink.clone()), vec![source])?;
        let schema = local.schema();
        let counts = collect(local, self.ctx.task_ctx()).await?;
        Ok(QueryStream::from_batches(schema, counts))
    }

    async fn cut(&self, physical: Arc<dyn ExecutionPlan>) -> Result<StageGraph> {
        cut_with(&self.ctx, physical, &self.planner_config()).await
    }

    /// The session's planner settings, with tasks small enough for their
    /// memory limit ([`PlannerConfig::fitting_memory`]).
    pub(crate) fn planner_config(&self) -> PlannerConfig {
        self.sizing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .fitting_memory(self.planning_memory_bytes())
    }

    /// The memory a task is planned for.
    pub(crate) fn planning_memory_bytes(&self) -> u64 {
        let mut memory_bytes = self.task_limits().memory_bytes;
        if let Some(worker) = self.options.backend.worker_memory_bytes() {
            // A worker lowers the task's limit to what it has (a Lambda
            // function's share of its memory): plan for that.
            memory_bytes = memory_bytes.min(worker);
        }
        memory_bytes
    }

    /// The input bytes per task the session plans for.
    pub fn target_task_bytes(&self) -> u64 {
        self.planner_config().target_task_bytes
    }

    /// Plans every later query as `candidate` was planned (what
    /// [`Session::choose_fanout`] chose): its input bytes per task, and the
    /// stages it sizes apart (by stage id, so meant for the statement it
    /// was chosen for).
    pub fn apply_fanout(&self, candidate: &crate::cloud_model::Candidate) {
        let mut sizing = self.sizing.write().unwrap_or_else(|e| e.into_inner());
        sizing.target_task_bytes = candidate.target_task_bytes;
        sizing.stage_target_task_bytes = candidate.stage_target_task_bytes.clone();
    }

    /// Runs `plan` distributed to its end and renders its stage graph
    /// with what each stage did (see [`crate::analyze`]).
    async fn explain_analyze(&self, plan: &LogicalPlan) -> Result<String> {
        let physical = self.ctx.state().create_physical_plan(plan).await?;
        let measures = crate::analyze::QueryMeasures::default();
        let started = std::time::Instant::now();
        let (mut stream, graph) = self
            .execute_physical_observed(physical, Some(measures.listener()), true, None)
            .await?;
        let mut rows = 0u64;
        while let Some(batch) = futures::StreamExt::next(&mut stream).await {
            rows += batch?.num_rows() as u64;
        }
        let elapsed = started.elapsed();
        Ok(match graph {
            Some(graph) => {
                let text = measures.render(&graph, elapsed, rows);
                let (run, stages) = text.split_once('\n').unwrap_or((&text, ""));
                format!(
                    "{run}\n{}{stages}",
                    self.predict_measured(&graph, &measures)
                        .map(|line| format!("{line}\n"))
                        .unwrap_or_default()
                )
            }
            None => format!(
                "Run: {:.3} s, {rows} result rows, on the coordinator (no stages)\n",
                elapsed.as_secs_f64()
            ),
        })
    }

    /// Cuts and runs a physical plan.
    pub async fn execute_physical(&self, physical: Arc<dyn ExecutionPlan>) -> Result<QueryStream> {
        Ok(self
            .execute_physical_observed(physical, None, self.options.operator_metrics, None)
            .await?
            .0)
    }

    /// [`Session::execute_physical`], telling `observer` too what the query
    /// does; returns the stage graph it runs, when it runs distributed.
    async fn execute_physical_observed(
        &self,
        physical: Arc<dyn ExecutionPlan>,
        observer: Option<ProgressListener>,
        operator_metrics: bool,
        staged_sinks: Option<crate::StagedSinks>,
    ) -> Result<(QueryStream, Option<Arc<StageGraph>>)> {
        if let Some(sink) = physical.downcast_ref::<DataSinkExec>()
            && !squall_shuffle::codec::can_encode_sink(sink)
        {
            if staged_sinks.is_some() {
                return Err(JobError::Plan(
                    "this sink writes from the coordinator and cannot stage its output for a later commit".into(),
                ));
            }
            return Ok((Box::pin(self.run_sink_on_coordinator(sink)).await?, None));
        }
        let physical = self.read_coordinator_sources(physical).await?;
        let graph = self.cut(physical).await?;
        crate::reach::check_stages(self.options.backend.as_ref(), &graph)?;
        let settings = self.task_settings();
        let fragments = self.encode_fragments(&graph, &settings)?;
        let run = QueryRun {
            fragments: Arc::new(fragments),
            settings,
            query_id: format!("q-{}", uuid::Uuid::new_v4().simple()),
            graph: Arc::new(graph),
            scratch: self.scratch.clone(),
            backend: Arc::clone(&self.options.backend),
            limits: self.task_limits(),
            stage_workers: self.options.stage_workers,
            task_attempts: self.options.task_attempts.max(1),
            task_timeout: self.options.task_timeout,
            speculation: self.options.speculation.clone(),
            requests: self.options.requests.clone(),
            progress: match (self.options.progress.clone(), observer) {
                (Some(progress), Some(observer)) => Some(Arc::new(move |event: ProgressEvent| {
                    observer(event.clone());
                    progress(event);
                })),
                (progress, observer) => progress.or(observer),
            },
            winners: Default::default(),
            pace: Default::default(),
            max_result_bytes: self.options.max_result_bytes,
            invocations: Default::default(),
            adaptive: self
                .options
                .adaptive_stages
                .then(|| crate::AdaptivePolicy::for_planner(&self.planner_config())),
            operator_metrics,
            staged_sinks,
            pending_commits: Default::default(),
        };
        let graph = Arc::clone(&run.graph);
        Ok((
            QueryStream::start(run, self.options.keep_scratch),
            Some(graph),
        ))
    }

    /// The schema `sql` would return, without running it.
    pub async fn schema_of(&self, sql: &str) -> Result<SchemaRef> {
        let df = self.ctx.sql(sql).await?;
        Ok(Arc::new(df.schema().as_arrow().clone()))
    }
}

/// The rows a sink reports it wrote: the sum of its `count` column.
fn rows_written(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> Result<u64> {
    let mut total = 0u64;
    for batch in batches {
        let column = datafusion::arrow::compute::cast(
            batch.column(0),
            &datafusion::arrow::datatypes::DataType::UInt64,
        )
        .map_err(DataFusionError::from)?;
        let counts = datafusion::arrow::array::AsArray::as_primitive::<
            datafusion::arrow::datatypes::UInt64Type,
        >(&column);
        total += counts.iter().flatten().sum::<u64>();
    }
    Ok(total)
}

/// The DataFusion settings of `ctx` that differ from the defaults.
fn settings_of(ctx: &SessionContext) -> BTreeMap<String, String> {
    let defaults: HashMap<String, Option<String>> = ConfigOptions::default()
        .entries()
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect();
    ctx.state()
        .config_options()
        .entries()
        .into_iter()
        .filter_map(|e| {
            let value = e.value?;
            let default = defaults.get(&e.key).cloned().flatten();
            (default.as_deref() != Some(value.as_str())).then_some((e.key, value))
        })
        .collect()
}

/// Cuts `physical` into stages with `ctx`'s stores and optimizer settings.
async fn cut_with(
    ctx: &SessionContext,
    physical: Arc<dyn ExecutionPlan>,
    planner: &PlannerConfig,
) -> Result<StageGraph> {
    let optimizer = ctx.state().config_options().optimizer.clone();
    Ok(cut_into_stages(physical, &ctx.runtime_env(), planner, &optimizer).await?)
}

/// DataFusion's error for a table whose columns would share a name once
/// their qualifiers are dropped (`CREATE TABLE t AS SELECT * FROM a JOIN a b`).
fn ensure_unique_column_names(schema: &DFSchema) -> Result<()> {
    let mut seen = HashSet::with_capacity(schema.fields().len());
    for field in schema.fields() {
        if !seen.insert(field.name().as_str()) {
            return Err(DataFusionError::SchemaError(
                Box::new(SchemaError::DuplicateUnqualifiedField {
                    name: field.name().to_string(),
                }),
                Box::new(None),
            )
            .into());
        }
    }
    Ok(())
}
