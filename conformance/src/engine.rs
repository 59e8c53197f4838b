//! [`SquallDb`]: the sqllogictest database that runs every statement through Squall.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use datafusion_sqllogictest::{
    DFColumnType, DFOutput, DFSqlLogicTestError, convert_batches, convert_schema_to_types,
};
use sqllogictest::DBOutput;
use squall_jobs::{JobError, LocalBackend, Session, SessionOptions, StatementResult};
use squall_planner::PlannerConfig;
use squall_worker::FunctionLibrary;

/// How the suite distributes queries: small tasks, so that stages have several.
#[derive(Debug, Clone)]
pub struct DistributedConfig {
    /// Tasks at once (the local backend's workers).
    pub workers: usize,
    /// Input bytes per task; small, so that even the suite's small files split.
    pub target_task_bytes: u64,
    pub max_tasks_per_stage: usize,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            target_task_bytes: 1024,
            max_tasks_per_stage: 4,
        }
    }
}

/// Runs statements through a Squall [`Session`] built on the test file's
/// DataFusion context: same tables, functions and settings as the
/// single-node run, but every query is cut into stages and run as tasks on
/// the local backend, exchanging data through object storage on local disk.
pub struct SquallDb {
    session: Session,
    spark: bool,
}

impl std::fmt::Debug for SquallDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SquallDb").finish_non_exhaustive()
    }
}

impl SquallDb {
    /// A database over `ctx`. `spark` selects Spark's value formatting (files under `spark/`).
    pub fn try_new(
        ctx: SessionContext,
        config: &DistributedConfig,
        spark: bool,
    ) -> Result<Self, JobError> {
        // The tasks run in this process: give them every function the file's context knows.
        let functions = FunctionLibrary::from_state(&ctx.state());
        let backend = LocalBackend::new(config.workers).with_functions(functions);
        let options = SessionOptions {
            backend: Arc::new(backend),
            planner: PlannerConfig {
                target_task_bytes: config.target_task_bytes,
                max_tasks_per_stage: config.max_tasks_per_stage,
                ..PlannerConfig::default()
            },
            ..SessionOptions::default()
        };
        Ok(Self {
            session: Session::with_context(ctx, options)?,
            spark,
        })
    }

    async fn run_sql(&self, sql: &str) -> Result<DFOutput, DFSqlLogicTestError> {
        let stream = match self.session.sql(sql).await.map_err(to_slt_error)? {
            StatementResult::Done => return Ok(DBOutput::StatementComplete(0)),
            StatementResult::Rows(stream) => stream,
        };
        let schema = stream.schema();
        let batches = stream.collect().await.map_err(to_slt_error)?;
        let types = convert_schema_to_types(schema.fields());
        let rows = convert_batches(&schema, batches, self.spark)?;
        if rows.is_empty() && types.is_empty() {
            Ok(DBOutput::StatementComplete(0))
        } else {
            Ok(DBOutput::Rows { types, rows })
        }
    }
}

/// DataFusion's own errors keep DataFusion's text (the `.slt` files match
/// it); Squall's errors say where they happened and include the cause.
fn to_slt_error(e: JobError) -> DFSqlLogicTestError {
    match e {
        JobError::DataFusion(e) => DFSqlLogicTestError::DataFusion(e),
        JobError::TaskFailed {
            error: Some(error), ..
        } => DFSqlLogicTestError::DataFusion(DataFusionError::Shared(error)),
        other => DFSqlLogicTestError::Other(other.to_string()),
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for SquallDb {
    type Error = DFSqlLogicTestError;
    type ColumnType = DFColumnType;

    async fn run(&mut self, sql: &str) -> Result<DFOutput, DFSqlLogicTestError> {
        self.run_sql(sql).await
    }

    fn engine_name(&self) -> &str {
        "Squall"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }

    async fn shutdown(&mut self) {}
}
