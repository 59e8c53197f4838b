//! [`Session`] and its [`SessionBuilder`].

use std::sync::Arc;

use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::prelude::{CsvReadOptions, SessionContext};
use object_store::ObjectStore;
use squall_connectors::store_builder::provide_store;
use squall_connectors::{CsvOptions, Location, TableFormat};
use squall_jobs::{Backend, JobError, LocalBackend, ProgressListener, SessionOptions};
use squall_worker::FunctionLibrary;

use crate::Result;
use crate::distributed_exec::DistributedPlanner;

/// Tables, a backend to run tasks on, and a DataFusion context whose
/// DataFrames run distributed there.
///
/// Tables registered through the session, through SQL (`CREATE EXTERNAL
/// TABLE`) or on its [`SessionContext`] are seen by both.
pub struct Session {
    jobs: Arc<squall_jobs::Session>,
    ctx: SessionContext,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("backend", &self.jobs.backend().name())
            .field("scratch", &self.jobs.scratch().to_string())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A builder, by default for in-process tasks (one worker per core) with
    /// scratch in a temporary directory.
    ///
    /// ```
    /// let session = squall::Session::builder().workers(2).task_attempts(3).build()?;
    /// assert_eq!(session.jobs().backend().name(), "local");
    /// # Ok::<(), squall::Error>(())
    /// ```
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    /// The statement's result as a DataFrame; DDL and `SET` take effect at
    /// once, queries run (distributed) when the DataFrame is executed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let session = squall::Session::builder().workers(2).build()?;
    /// let df = session.sql("SELECT sum(value) AS total FROM range(100)").await?;
    /// let mut stream = df.execute_stream().await?;
    /// while let Some(batch) = futures::StreamExt::next(&mut stream).await {
    ///     println!("{} rows", batch?.num_rows());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn sql(&self, sql: &str) -> datafusion::error::Result<DataFrame> {
        self.ctx.sql(sql).await
    }

    /// Parquet files at `url` (a file, a folder, a glob; local or in an
    /// object store) as a DataFrame, read as [`Session::register_table`]
    /// and `squall sql --table` read them: the `key=value` folders under
    /// `url` become columns, and `key=__HIVE_DEFAULT_PARTITION__` reads as
    /// null (DataFusion's own `read_parquet` adds no such columns unless
    /// told, and then reads that folder's value as text).
    pub async fn read_parquet(&self, url: &str) -> datafusion::error::Result<DataFrame> {
        let table = squall_connectors::table::listing_table(
            &self.ctx.state(),
            url,
            url,
            Some(TableFormat::Parquet),
            &CsvOptions::default(),
        )
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.ctx.read_table(table)
    }

    /// CSV files at `url` with a header line, as a DataFrame; `options`
    /// say otherwise (delimiter, no header, compression, ...).
    pub async fn read_csv(
        &self,
        url: &str,
        options: CsvReadOptions<'_>,
    ) -> datafusion::error::Result<DataFrame> {
        self.ctx.read_csv(url, options).await
    }

    /// Registers `location` as table `name`, its format from the file names
    /// (as `squall sql --table` does).
    pub async fn register_table(&self, name: &str, location: &str) -> Result<()> {
        self.jobs.register_table(name, location, None).await
    }

    /// The DataFusion context whose DataFrames run distributed: register
    /// tables and options on it as on any DataFusion context. Functions
    /// belong in the builder ([`SessionBuilder::udf`]): one registered here
    /// is unknown to the workers, and a query that calls it is refused,
    /// naming it.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The coordinator's session underneath: explain, stage graphs, and
    /// statements run as the CLI runs them.
    pub fn jobs(&self) -> &squall_jobs::Session {
        &self.jobs
    }
}

/// How a [`Session`] runs its tasks.
#[derive(Debug, Default)]
pub struct SessionBuilder {
    options: SessionOptions,
    workers: Option<usize>,
    /// A backend was given ([`SessionBuilder::backend`]).
    custom_backend: bool,
    /// User-defined functions for every task.
    functions: UserFunctions,
    /// Object stores given as objects, by the URL they serve.
    stores: Vec<(String, Arc<dyn ObjectStore>)>,
    /// The session whose tables, functions and settings to plan with.
    tables_of: Option<Arc<squall_jobs::Session>>,
}

#[derive(Debug, Default)]
struct UserFunctions {
    scalar: Vec<ScalarUDF>,
    aggregate: Vec<AggregateUDF>,
    window: Vec<WindowUDF>,
}

impl UserFunctions {
    /// As the workers' library: what DataFusion's built-ins lack.
    fn library(&self) -> FunctionLibrary {
        let ctx = SessionContext::new();
        for f in &self.scalar {
            ctx.register_udf(f.clone());
        }
        for f in &self.aggregate {
            ctx.register_udaf(f.clone());
        }
        for f in &self.window {
            ctx.register_udwf(f.clone());
        }
        FunctionLibrary::from_state(&ctx.state())
    }
}

impl SessionBuilder {
    /// Runs tasks on `backend` ([`LocalBackend`], [`squall_jobs::ProcessBackend`],
    /// [`squall_jobs::LambdaBackend`], or one of your own).
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.options.backend = backend;
        self.workers = None;
        self.custom_backend = true;
        self
    }

    /// A user-defined scalar function for SQL and DataFrames. In-process
    /// tasks (the default backend, or [`SessionBuilder::workers`]) know it;
    /// other backends run a worker binary built without it, so
    /// [`SessionBuilder::build`] refuses the combination.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use datafusion::arrow::datatypes::DataType;
    /// use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    ///
    /// # #[tokio::main(flavor = "multi_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let negate = create_udf(
    ///     "negate",
    ///     vec![DataType::Int64],
    ///     DataType::Int64,
    ///     Volatility::Immutable,
    ///     Arc::new(|args: &[ColumnarValue]| {
    ///         let arrays = ColumnarValue::values_to_arrays(args)?;
    ///         Ok(ColumnarValue::Array(datafusion::arrow::compute::kernels::numeric::neg(&arrays[0])?))
    ///     }),
    /// );
    /// let session = squall::Session::builder().workers(2).udf(negate).build()?;
    /// let rows = session.sql("SELECT sum(negate(value)) FROM range(10)").await?.collect().await?;
    /// assert_eq!(rows[0].num_rows(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn udf(mut self, function: ScalarUDF) -> Self {
        self.functions.scalar.push(function);
        self
    }

    /// A user-defined aggregate function (see [`SessionBuilder::udf`]).
    pub fn udaf(mut self, function: AggregateUDF) -> Self {
        self.functions.aggregate.push(function);
        self
    }

    /// A user-defined window function (see [`SessionBuilder::udf`]).
    pub fn udwf(mut self, function: WindowUDF) -> Self {
        self.functions.window.push(function);
        self
    }

    /// Serves the URLs of `url`'s scheme and bucket (`s3://lake`,
    /// `az://container`, `memory://name`) from `store` instead of a store
    /// built from the environment: for a store with credentials or options
    /// of your own, or an `ObjectStore` implementation of your own.
    /// Tables, scratch and `COPY` destinations there all use it.
    ///
    /// In-process tasks (the default backend, or
    /// [`SessionBuilder::workers`]) share it with the coordinator; workers
    /// in other processes or on Lambda build their stores from their own
    /// environment, so [`SessionBuilder::build`] refuses the combination.
    /// The store serves the whole process from then on (as does DataFusion's
    /// `register_object_store` for one context): a later session giving
    /// another store for the same URL replaces it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use object_store::memory::InMemory;
    ///
    /// # #[tokio::main(flavor = "multi_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let session = squall::Session::builder()
    ///     .workers(2)
    ///     .object_store("s3://my-lake", Arc::new(InMemory::new()))
    ///     .build()?;
    /// session
    ///     .sql("COPY (SELECT value AS v FROM range(10)) TO 's3://my-lake/ten/' STORED AS PARQUET")
    ///     .await?
    ///     .collect()
    ///     .await?;
    /// session.register_table("ten", "s3://my-lake/ten/").await?;
    /// let rows = session.sql("SELECT sum(v) FROM ten").await?.collect().await?;
    /// assert_eq!(rows[0].num_rows(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn object_store(mut self, url: impl Into<String>, store: Arc<dyn ObjectStore>) -> Self {
        self.stores.push((url.into(), store));
        self
    }

    /// In-process tasks, at most `workers` at once.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers.max(1));
        self
    }

    /// Where stages exchange data and results wait for the client: a
    /// folder or an object-store URL every worker can reach (`s3://...` on
    /// Lambda). Default: a temporary directory.
    pub fn scratch(mut self, url: impl Into<String>) -> Self {
        self.options.scratch = Some(url.into());
        self
    }

    /// Attempts of one task before its failure fails the query (default 4).
    pub fn task_attempts(mut self, attempts: u32) -> Self {
        self.options.task_attempts = attempts.max(1);
        self
    }

    /// Input bytes per task, which scan splits and stage sizes follow.
    pub fn target_task_bytes(mut self, bytes: u64) -> Self {
        self.options.planner.target_task_bytes = bytes;
        self
    }

    /// Told what the scheduler does (stages planned, tasks finished, ...).
    pub fn progress(mut self, listener: ProgressListener) -> Self {
        self.options.progress = Some(listener);
        self
    }

    /// Plans with the tables, functions and settings of `session`, which
    /// keeps them too (what one registers, the other sees): a session on
    /// another backend, say, as the `squall` shell's `.backend` builds one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let first = squall::Session::builder().workers(1).build()?;
    /// first.sql("CREATE TABLE t AS VALUES (1), (2)").await?.collect().await?;
    /// let second = squall::Session::builder().workers(2).tables_from(&first).build()?;
    /// let rows = second.sql("SELECT * FROM t").await?.collect().await?;
    /// assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn tables_from(mut self, session: &Session) -> Self {
        self.tables_of = Some(Arc::clone(&session.jobs));
        self
    }

    /// Everything else the coordinator takes, as it is so far. A backend
    /// set here counts as one given to [`SessionBuilder::backend`].
    pub fn options(mut self, edit: impl FnOnce(&mut SessionOptions)) -> Self {
        let before = Arc::clone(&self.options.backend);
        edit(&mut self.options);
        if !Arc::ptr_eq(&before, &self.options.backend) {
            self.workers = None;
            self.custom_backend = true;
        }
        self
    }

    /// The session; an error when user-defined functions or object stores
    /// were given with a backend whose workers cannot know them, or a
    /// store's URL is not one Squall reads.
    pub fn build(mut self) -> Result<Session> {
        let library = self.functions.library();
        if !library.is_empty() && self.custom_backend {
            return Err(JobError::Plan(format!(
                "user-defined functions ({}) reach in-process workers only: build the session \
                 with .workers(N) instead of .backend(...), or build the worker binary with them",
                library.names().join(", ")
            )));
        }
        if !self.stores.is_empty() && self.custom_backend {
            let urls: Vec<&str> = self.stores.iter().map(|(url, _)| url.as_str()).collect();
            return Err(JobError::Plan(format!(
                "object stores given as objects ({}) reach in-process workers only: build the \
                 session with .workers(N) instead of .backend(...), or configure the store \
                 through the environment every worker reads (AWS_ENDPOINT_URL, \
                 AZURE_STORAGE_ACCOUNT_NAME, ...)",
                urls.join(", ")
            )));
        }
        for (url, store) in &self.stores {
            let location = Location::parse(url)?;
            if location.url().scheme() == "file" {
                return Err(JobError::Plan(format!(
                    "object store for '{url}': local paths are read from this machine's disk; \
                     give a store for an s3://, gs://, az:// or memory:// URL"
                )));
            }
            provide_store(location.url(), Arc::clone(store));
        }
        if !self.custom_backend {
            let workers = self
                .workers
                .unwrap_or_else(|| self.options.backend.max_concurrency());
            self.options.backend =
                Arc::new(LocalBackend::new(workers).with_functions(library.clone()));
        }
        let jobs = Arc::new(match self.tables_of {
            Some(other) => {
                squall_jobs::Session::with_context(other.context().clone(), self.options)?
            }
            None => squall_jobs::Session::try_new(self.options)?,
        });
        library.register_into(jobs.context());
        // The same catalog, settings and stores; a planner that distributes.
        let state = squall_connectors::state_rebuild::builder_from(jobs.context().state())
            .with_query_planner(Arc::new(DistributedPlanner::new(Arc::clone(&jobs))))
            .build();
        Ok(Session {
            ctx: SessionContext::new_with_state(state),
            jobs,
        })
    }
}
