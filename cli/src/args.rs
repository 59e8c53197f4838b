//! Command-line arguments.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use squall_connectors::TableFormat;

/// Squall runs SQL over files in object storage by cutting each query into
/// stages of stateless tasks that exchange data only through storage.
///
/// Examples:
///   squall gen tpch --scale 1 --out ./tpch
///   squall sql --table lineitem=./tpch/lineitem -c "SELECT count(*) FROM lineitem"
///   squall explain --table orders=s3://lake/orders/ "SELECT o_orderpriority, count(*) FROM orders GROUP BY 1"
#[derive(Debug, Parser)]
#[command(name = "squall", version, about, long_about, verbatim_doc_comment)]
pub struct Cli {
    /// Config file with defaults for flags ([query] and [lambda] sections;
    /// see the README). Default: ~/.config/squall/config.toml if it exists.
    #[arg(long, global = true, value_name = "FILE", env = "SQUALL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Show log messages of Squall's libraries (AWS SDK, DataFusion, ...) on
    /// stderr: -v warnings, -vv information, -vvv debugging. RUST_LOG, when
    /// set, decides instead. Quiet by default.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Without a command: the interactive shell on a terminal, else the
    /// SQL on standard input (as `squall sql`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run SQL statements and print each one's result; without SQL on a
    /// terminal, open the interactive shell.
    Sql(QueryArgs),
    /// Show how a query is cut into stages and tasks, without running it.
    Explain(QueryArgs),
    /// Run an ETL job file: sources, SQL steps, and sinks that are all
    /// published together when every one is written (see docs/etl.md).
    ///
    /// The whole file is checked before anything runs, and every problem
    /// is reported with its line and key. A job that fails, or is killed
    /// before its final commit decides, leaves every destination as it
    /// was; one killed inside that commit is finished by the next write.
    ///
    /// Examples:
    ///   squall run examples/jobs/daily_revenue.toml --set data=./tpch --dry-run
    ///   squall run examples/jobs/daily_revenue.toml --set data=s3://lake/tpch --backend lambda
    #[command(verbatim_doc_comment)]
    Run(RunArgs),
    /// Notebooks: Markdown files with SQL and chart cells (see docs/notebooks.md).
    #[command(subcommand)]
    Notebook(NotebookCommand),
    /// Generate data sets.
    #[command(subcommand)]
    Gen(GenCommand),
    /// Deploy the worker to a cloud.
    #[command(subcommand)]
    Deploy(DeployCommand),
    /// Look after scratch locations.
    #[command(subcommand)]
    Scratch(ScratchCommand),
    /// Draw a saved JSON report (from --report FILE.json) as an HTML page,
    /// or check it and write it again.
    ///
    /// Example:
    ///   squall report run.json run.html
    Report {
        /// The JSON report.
        input: PathBuf,
        /// The file to write: .html or .json.
        output: PathBuf,
    },
    /// Run one task: TaskSpec bytes on stdin, TaskReport bytes on stdout.
    /// Used by the process backend; not meant to be typed by hand.
    #[command(hide = true)]
    Worker,
}

#[derive(Debug, Subcommand)]
pub enum ScratchCommand {
    /// Delete the scratch of queries whose client died (killed, crashed,
    /// lost its machine): those whose lease expired. Running queries keep
    /// theirs; nothing but query folders (q-...) is touched. Every query
    /// also does this for its own scratch root as it starts.
    ///
    /// Examples:
    ///   squall scratch clean s3://scratch-bucket/squall/
    ///   squall scratch clean            # the config file's scratch, else this machine's temporary ones
    Clean {
        /// Scratch root (default: `scratch` of the config file, else every
        /// temporary scratch directory of this machine).
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// TPC-H tables as Parquet, one folder per table: OUT/lineitem/part-1.parquet, ...
    Tpch {
        /// Scale factor: 1 is about 1 GB of raw data (6 million lineitem rows).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Where to write: a local directory or an object-store URL (s3://bucket/prefix).
        #[arg(long)]
        out: String,
        /// Files per large table (default: four per unit of scale).
        #[arg(long)]
        parts: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Package `squall` as a Lambda function (provided.al2023) and create or update it.
    ///
    /// Examples:
    ///   squall deploy lambda --name squall-worker --role arn:aws:iam::123456789012:role/squall --arch arm64
    ///   squall deploy lambda --print-policy --name squall --bucket lake --scratch s3://scratch-bucket/squall/
    #[command(verbatim_doc_comment)]
    Lambda(DeployLambdaArgs),
}

#[derive(Debug, Args)]
pub struct DeployLambdaArgs {
    /// Function name.
    #[arg(long)]
    pub name: Option<String>,
    /// IAM role the function runs as (see --print-policy).
    #[arg(long, value_name = "ARN")]
    pub role: Option<String>,
    /// Memory in MB (Lambda gives one vCPU per 1,769 MB).
    #[arg(long = "memory", value_name = "MB", default_value_t = (squall::jobs::cost::DEFAULT_FUNCTION_MEMORY_BYTES >> 20) as u32)]
    pub memory_mb: u32,
    /// Instruction set of the binary.
    #[arg(long, value_enum, default_value_t = LambdaArch::X86_64)]
    pub arch: LambdaArch,
    /// Timeout of one task, in seconds (at most 900).
    #[arg(long = "timeout", value_name = "S", default_value_t = 900)]
    pub timeout_s: u32,
    /// Upload the package through S3 (s3://BUCKET/PREFIX/, in the function's
    /// region) instead of in the request; needed above Lambda's 50 MB direct limit.
    #[arg(long, value_name = "URL")]
    pub code_bucket: Option<String>,
    /// Binary to package (default: this squall). It must be built for Linux on --arch.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// AWS region (default: AWS_REGION or the profile's).
    #[arg(long)]
    pub region: Option<String>,
    /// Lambda API endpoint, for emulators (default: AWS_ENDPOINT_URL_LAMBDA, else AWS).
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL_LAMBDA")]
    pub lambda_endpoint: Option<String>,
    /// Give the function a new task key instead of keeping its current one.
    /// The key (SQUALL_TASK_KEY in the function's environment) is what its
    /// workers check every task against: taken from SQUALL_TASK_KEY here if
    /// set, else kept from the function, else generated.
    #[arg(long)]
    pub rotate_task_key: bool,
    /// Print the least-privilege IAM policy of the worker instead of deploying.
    #[arg(long)]
    pub print_policy: bool,
    /// Input bucket the worker reads (with --print-policy; repeatable).
    #[arg(long = "bucket", value_name = "BUCKET")]
    pub buckets: Vec<String>,
    /// COPY/INSERT destination the worker writes (with --print-policy;
    /// s3://BUCKET/PREFIX/, repeatable).
    #[arg(long = "destination", value_name = "URL")]
    pub destinations: Vec<String>,
    /// Scratch location the worker writes (with --print-policy).
    #[arg(long, value_name = "URL")]
    pub scratch: Option<String>,
}

/// Lambda instruction sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LambdaArch {
    #[value(name = "x86_64")]
    X86_64,
    Arm64,
}

/// Where tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Tokio tasks in this process.
    Local,
    /// A fresh `squall worker` process per task.
    Process,
    /// An AWS Lambda invocation per task.
    Lambda,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned table; on a terminal it fits the width and shows the first
    /// and last rows of long results (see --max-rows).
    Table,
    /// Every row as `column = value` lines.
    Line,
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Json,
    /// Parquet (needs --output, or a non-terminal stdout).
    Parquet,
}

#[derive(Debug, Subcommand)]
pub enum NotebookCommand {
    /// Run a notebook's SQL cells, distributed, in the order the names they
    /// read give, and write it as one self-contained HTML page: the prose,
    /// each query (folded), its first rows and measures, and the charts;
    /// or, with --format md, as the notebook with its results embedded.
    ///
    /// A failing cell shows its error on the page and stops the cells that
    /// read it; the page is still written, and the command exits 1.
    ///
    /// Examples:
    ///   squall notebook run examples/notebooks/revenue.md -o revenue.html --set data=./tpch
    ///   squall notebook run examples/notebooks/revenue.md --format md -o revenue.out.md --set data=./tpch
    #[command(verbatim_doc_comment)]
    Run(NotebookRunArgs),
    /// Serve a notebook on 127.0.0.1 for a browser to edit and run, and
    /// print its address (with a random token every request must carry).
    /// Opens nothing by itself; Ctrl-C stops it.
    ///
    /// In the page: edit a cell and press Shift+Enter (or Run) to save it
    /// to the Markdown file and run it; the cells that read it run again,
    /// the others come from the result cache. Add and delete cells; watch
    /// each running cell's tasks; Cancel stops the running cells. Editing
    /// the file in another editor updates the page. Cells read the tables
    /// the notebook declares and files in the notebook's folder only.
    ///
    /// Examples:
    ///   squall notebook serve analysis.md
    ///   squall notebook serve examples/notebooks/revenue.md --port 8750 --set data=./tpch
    #[command(verbatim_doc_comment)]
    Serve(NotebookServeArgs),
}

/// What `squall notebook run` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NotebookFormat {
    Html,
    Md,
}

#[derive(Debug, Clone, Args)]
pub struct NotebookRunArgs {
    /// The notebook (Markdown).
    #[arg(value_name = "NOTEBOOK.md")]
    pub notebook: PathBuf,
    /// Where to write the page (default: the notebook's name with .html;
    /// with --format md, the notebook itself).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// What to write: `html`, one self-contained page; or `md`, the notebook
    /// as it is with each SQL cell's first rows embedded under it as a
    /// Markdown table (for READMEs and code review). Results embedded by an
    /// earlier run are replaced, so a notebook can be written back to
    /// itself any number of times.
    #[arg(long, value_enum, default_value_t = NotebookFormat::Html)]
    pub format: NotebookFormat,
    /// Set a parameter the notebook declares in its front matter's
    /// [params]: NAME=VALUE, used as {{ NAME }} in its SQL. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub cells: NotebookCellArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// How a notebook's cells run: the result cache and how many at once.
#[derive(Debug, Clone, Args)]
pub struct NotebookCellArgs {
    /// Keep each cell's result here and show it again, without running the
    /// cell, while the cell's SQL, the cells it reads and its tables' files
    /// (names, sizes, ETags, modification times) are unchanged: a folder or
    /// an object-store URL [default: $XDG_CACHE_HOME/squall/notebooks,
    /// or ~/.cache/squall/notebooks]. Cells that are not one query, or that
    /// call random(), now() and the like, always run.
    #[arg(long, value_name = "DIR|URL", conflicts_with = "no_cache")]
    pub cache: Option<String>,
    /// Run every cell; read nothing from the cache and keep nothing in it.
    #[arg(long)]
    pub no_cache: bool,
    /// The most the cache holds: after a run, the oldest results go until
    /// the rest fit.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, default_value = "1GiB")]
    pub cache_bytes: u64,
    /// Most cells running at once: a cell starts once the cells it reads
    /// have ended, and cells that do not read each other run side by side.
    #[arg(long, value_name = "N", default_value_t = squall_notebook::run::DEFAULT_CONCURRENT_CELLS, value_parser = parse_at_least_one)]
    pub concurrent_cells: usize,
}

#[derive(Debug, Clone, Args)]
pub struct NotebookServeArgs {
    /// The notebook (Markdown); every change made in the browser is saved
    /// to it.
    #[arg(value_name = "NOTEBOOK.md")]
    pub notebook: PathBuf,
    /// The port to listen on, on 127.0.0.1 (0: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub port: u16,
    /// Set a parameter the notebook declares in its front matter's
    /// [params]: NAME=VALUE, used as {{ NAME }} in its SQL. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub cells: NotebookCellArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The job file (TOML).
    #[arg(value_name = "JOB.toml")]
    pub job: PathBuf,
    /// Set a parameter the job declares in [params]: NAME=VALUE, used as
    /// ${NAME} in its strings. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Check the job and print what it would do (its steps, and each sink
    /// with its destination and the stages that would write it); write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rebuild: read incremental sources whole, as if no run had consumed
    /// anything, and replace what `append` sinks hold.
    #[arg(long)]
    pub full_refresh: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// SQL to run (or use -c, or -f).
    #[arg(value_name = "SQL")]
    pub sql: Option<String>,
    /// SQL to run.
    #[arg(
        short = 'c',
        long = "command",
        value_name = "SQL",
        conflicts_with = "sql"
    )]
    pub command: Option<String>,
    /// File with SQL statements separated by semicolons.
    #[arg(short = 'f', long = "file", value_name = "FILE", conflicts_with_all = ["sql", "command"])]
    pub file: Option<PathBuf>,
    /// Register a table: NAME=LOCATION, where LOCATION is a file, a directory,
    /// a glob or an object-store prefix (s3://bucket/path/), or a Delta Lake
    /// table: delta+LOCATION, delta+LOCATION@vN for version N. Repeatable.
    #[arg(long = "table", value_name = "NAME=URL")]
    pub tables: Vec<String>,
    /// File format of --table locations when the extension does not tell (parquet, csv, tsv, json).
    #[arg(long, value_name = "FORMAT")]
    pub table_format: Option<TableFormat>,
    /// Whether the first line of --table CSV and TSV files names the columns
    /// (default true; without one, columns are column_1, column_2, ...).
    #[arg(long, value_name = "true|false")]
    pub csv_header: Option<bool>,
    /// The character between values of --table CSV files (default ',';
    /// tab for .tsv), e.g. ';' or '|' or 'tab'.
    #[arg(long, value_name = "CHAR", value_parser = parse_csv_char)]
    pub csv_delimiter: Option<u8>,
    /// The quote character of --table CSV and TSV files (default '"').
    #[arg(long, value_name = "CHAR", value_parser = parse_csv_char)]
    pub csv_quote: Option<u8>,
    /// Output format of the result.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Most rows a table shows: the first and the last half of them (0: all;
    /// default: 40 on a terminal, all otherwise). Rows are never all held
    /// in memory: long results print as they arrive.
    #[arg(long, value_name = "N")]
    pub max_rows: Option<usize>,
    /// Write the result to this file instead of stdout.
    #[arg(short = 'o', long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Print the stage graph to stderr before running (sql only).
    #[arg(long)]
    pub explain: bool,
    /// Predict the query's time and cost on AWS Lambda + S3, per stage, from
    /// its plan (explain only; a model's estimate: see docs/cost-model.md;
    /// its parameters can be overridden in the config file's [cost_model]).
    #[arg(long)]
    pub cost: bool,
    /// Plan the query to finish within this many seconds on Lambda at the
    /// lowest predicted cost: the model tries task sizes from 8 MiB to what
    /// a task's memory holds, keeps the cheapest that meets it, then sizes
    /// stages apart where that is cheaper still; or it says how fast the
    /// query can be (lambda backend, or squall explain to see the plans
    /// considered).
    #[arg(long, value_name = "SECONDS", value_parser = parse_positive, conflicts_with_all = ["budget", "target_task_bytes"])]
    pub deadline: Option<f64>,
    /// Plan the query to cost at most this many dollars on Lambda, as fast
    /// as the model predicts it can be (as --deadline).
    #[arg(long, value_name = "DOLLARS", value_parser = parse_positive, conflicts_with = "target_task_bytes")]
    pub budget: Option<f64>,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// How statements run: where tasks run and what bounds them, how requests
/// are sent, and what a run shows and records. Shared by `squall sql`,
/// `squall explain` and `squall run`.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Where tasks run: `local` (tokio tasks in this process), `process`
    /// (every task a fresh `squall worker` process) or `lambda` (every task an
    /// AWS Lambda invocation of a function deployed with `squall deploy lambda`).
    /// Default: local.
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// Most tasks of the query running at once (default: number of cores; 64 on lambda).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Most tasks of one stage running at once (default: --workers).
    #[arg(long, value_name = "N")]
    pub stage_workers: Option<usize>,
    /// Attempts of one task before its failure fails the query (default 4).
    /// A crashed, killed or timed-out task, or a storage hiccup, is tried
    /// again with backoff; SQL, type and cast errors, a missing input file
    /// or denied access fail at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub task_attempts: Option<u32>,
    /// Longest one task attempt may run, in seconds, before it is abandoned
    /// (cancelled on the local and process backends) and tried again.
    /// Default: 10 minutes plus one second per MiB of the attempt's input
    /// on the local and process backends; on Lambda, the function's own
    /// timeout.
    #[arg(long, value_name = "SECONDS")]
    pub task_timeout: Option<f64>,
    /// Memory one task may use (e.g. 512MiB, 2GiB); sorts, aggregates and
    /// joins spill to local disk beyond it, and a task that still needs more
    /// fails with a message saying so. Default: on the local and process
    /// backends, three quarters of this machine's memory shared by the
    /// --workers; on Lambda, 2 GiB, lowered by each worker to 60% of its
    /// function's memory.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub task_memory: Option<u64>,
    /// Local disk one task may spill to (e.g. 4GiB) before it fails with a
    /// message saying so; spill files go to the temporary directory (TMPDIR)
    /// and are deleted when the task ends. Default: 16 GiB; on Lambda at most
    /// 400 MB of /tmp unless the worker's SQUALL_SPILL_BYTES says more.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub spill_bytes: Option<u64>,
    /// Never start backup attempts for slow tasks. By default, once 75% of a
    /// stage's tasks finished, a task running over twice their median (and
    /// at least 1 s; 5 s on Lambda, where the losing attempt cannot be
    /// cancelled) gets a backup attempt; the first to finish wins. A task
    /// of a stage too small for that (one to three tasks) gets one once
    /// three tasks of the query finished and it has run twice as long as they
    /// took for as much input, longer than any of them, and at least that floor.
    #[arg(long)]
    pub no_speculation: bool,
    /// Size a stage fed by hash exchanges (joins and aggregations after
    /// their first step) once its inputs have finished, from the exact
    /// bytes they wrote: tasks of about a quarter of --target-task-bytes of
    /// exchange data each, at least four waves of workers, never more than
    /// planned. --stats and EXPLAIN ANALYZE show how many tasks ran of how
    /// many planned. Default: true on lambda (each task is an invocation),
    /// false on local and process (a task costs under a millisecond there).
    #[arg(long, value_name = "true|false")]
    pub adaptive_stages: Option<bool>,
    /// Largest result a query may return (e.g. 1GiB), in bytes of its
    /// compressed result parts; a larger result fails the query as soon as
    /// its tasks have written that much, saying what to do instead (rows of
    /// earlier parts may already be printed; default: no limit). Results
    /// include CREATE TABLE ... AS; COPY ... TO writes are not results.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub max_result_bytes: Option<u64>,
    /// Extra sends of a local-disk request that failed transiently (an
    /// interrupted call, an early end of file), after 25 ms, 100 ms, 400 ms,
    /// then 1 s (default 3; 0: none). Cloud stores retry HTTP errors such
    /// as 503 SlowDown in their own client (3 retries within 20 s); a
    /// request that still fails fails its task attempt, which
    /// --task-attempts retries.
    #[arg(long, value_name = "N")]
    pub request_retries: Option<u32>,
    /// Never send a slow object-store request a second time. By default a
    /// GET of a range, a HEAD or a PUT of up to 16 MiB that has not completed
    /// within --hedge-after-ms plus its size at 32 MiB/s is sent again and
    /// the first response wins (at most one plus 5% of a task's requests).
    #[arg(long)]
    pub no_hedging: bool,
    /// Expected first-byte latency of an object-store request, in
    /// milliseconds: the base of the hedging deadline (default 200).
    #[arg(long, value_name = "MS")]
    pub hedge_after_ms: Option<u64>,
    /// Testing option: make the tasks' object-store requests fail, stall and
    /// break off at given rates, e.g. `fail=0.1,delay=0.02,delay-ms=2000,
    /// truncate=0.02,seed=7` (see docs/reliability.md).
    #[arg(long, value_name = "SPEC", hide = true)]
    pub inject_store_faults: Option<squall_connectors::StoreFaults>,
    /// Testing option: make task attempts crash, arrive twice, hang, lose
    /// their first exchange input or start late at given rates, e.g.
    /// `crash=0.05,duplicate=0.05,hang=0.02,hang-ms=30000,lose-input=0.02,
    /// slow=0.02,slow-ms=10000,seed=7` (see docs/reliability.md). Hangs need
    /// a --task-timeout shorter than hang-ms (default 15 minutes).
    #[arg(long, value_name = "SPEC", hide = true)]
    pub inject_task_faults: Option<squall::jobs::TaskFaults>,
    /// Lambda function running the workers (lambda backend). Several names or
    /// aliases, comma-separated, spread each stage over them: each function
    /// scales at its own rate.
    #[arg(
        long,
        value_name = "NAME[,NAME...]",
        env = "SQUALL_LAMBDA_FUNCTION",
        value_delimiter = ','
    )]
    pub function: Vec<String>,
    /// Version or alias of the function.
    #[arg(long, value_name = "QUALIFIER", env = "SQUALL_LAMBDA_QUALIFIER")]
    pub qualifier: Option<String>,
    /// AWS region of the function (default: AWS_REGION or the profile's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Lambda Invoke API endpoint, for emulators (default: AWS_ENDPOINT_URL_LAMBDA, else AWS).
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL_LAMBDA")]
    pub lambda_endpoint: Option<String>,
    /// Stages with more tasks than this are launched through at most this many
    /// launcher invocations, each invoking its share (lambda backend; 0: never;
    /// default 32).
    #[arg(long, value_name = "N")]
    pub launcher_threshold: Option<usize>,
    /// New invocations in flight each function may add per 10 seconds: Lambda
    /// adds 1,000 execution environments per function per 10 s, and
    /// invocations beyond that are throttled (lambda backend; 0: no pacing;
    /// default 1000).
    #[arg(long, value_name = "N")]
    pub scaling_rate: Option<usize>,
    /// Most tasks in any one stage.
    #[arg(long, value_name = "N")]
    pub max_tasks_per_stage: Option<usize>,
    /// Input bytes per task; scan splits and stage sizes follow it (default
    /// 128 MiB, and at most a quarter of --task-memory).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub target_task_bytes: Option<u64>,
    /// Scratch location for exchange data and results (default: a temporary directory).
    #[arg(long, value_name = "URL")]
    pub scratch: Option<String>,
    /// Keep the query's scratch objects after it ends (for debugging).
    #[arg(long)]
    pub keep_scratch: bool,
    /// Do not show the progress display (on stderr when it is a terminal:
    /// a line per running stage, drawn once a statement ran half a second).
    #[arg(long)]
    pub no_progress: bool,
    /// Print totals over all tasks to stderr at the end: task-seconds, bytes
    /// read and written, object-store requests (what a serverless run is billed for).
    #[arg(long)]
    pub stats: bool,
    /// Write a report of the run when it ends (failed runs too): FILE.html
    /// is one page to open in a browser, with the stage graph, a timeline of
    /// every task attempt, task durations, bytes and requests per stage,
    /// and the cost; FILE.json is the same data for tools (schema in
    /// docs/report.md). Repeat the flag to write both.
    #[arg(long, value_name = "FILE")]
    pub report: Vec<PathBuf>,
}

impl QueryArgs {
    /// `squall sql` with no flags (what `squall` alone runs).
    pub fn defaults() -> Self {
        use clap::{Args as _, FromArgMatches as _};
        let command = Self::augment_args(clap::Command::new("sql"));
        let matches = command
            .try_get_matches_from(["sql"])
            .expect("no flags parse");
        Self::from_arg_matches(&matches).expect("no flags parse")
    }

    /// The flags given that only matter when a query runs (and so not to
    /// `squall explain`).
    pub fn flags_explain_ignores(&self) -> Vec<&'static str> {
        let mut flags = Vec::new();
        if self.format != OutputFormat::Table {
            flags.push("--format");
        }
        if self.output.is_some() {
            flags.push("--output");
        }
        if self.max_rows.is_some() {
            flags.push("--max-rows");
        }
        if self.exec.stats {
            flags.push("--stats");
        }
        if self.explain {
            flags.push("--explain");
        }
        if !self.exec.report.is_empty() {
            flags.push("--report");
        }
        flags
    }

    /// The goal of --deadline or --budget, if one was given.
    pub fn cost_goal(&self) -> Option<squall::jobs::cloud_model::Goal> {
        use squall::jobs::cloud_model::Goal;
        match (self.deadline, self.budget) {
            (Some(seconds), _) => Some(Goal::Deadline { seconds }),
            (None, Some(usd)) => Some(Goal::Budget { usd }),
            (None, None) => None,
        }
    }

    /// Whether no SQL was given (as an argument, -c or -f).
    pub fn names_no_sql(&self) -> bool {
        self.sql.is_none() && self.command.is_none() && self.file.is_none()
    }

    /// The SQL text from the argument, -c or -f, or else from standard
    /// input when that is not a terminal (`echo "SELECT 1" | squall sql`).
    pub fn sql_text(&self) -> Result<String> {
        if let Some(s) = self.sql.as_ref().or(self.command.as_ref()) {
            return Ok(s.clone());
        }
        if let Some(path) = &self.file {
            return std::fs::read_to_string(path)
                .with_context(|| format!("cannot read SQL file {}", path.display()));
        }
        let stdin = std::io::stdin();
        if !std::io::IsTerminal::is_terminal(&stdin) {
            let mut sql = String::new();
            std::io::Read::read_to_string(&mut stdin.lock(), &mut sql)
                .context("cannot read SQL from standard input")?;
            if !sql.trim().is_empty() {
                return Ok(sql);
            }
        }
        bail!(
            "no SQL given: pass it as an argument, with -c SQL, with -f FILE or on standard input"
        )
    }
}

/// Parses a one-byte CSV character: `;`, `|`, `tab` or `\t`.
pub fn parse_csv_char(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        _ => Err(format!(
            "'{s}' is not one ASCII character (for a tab, write tab)"
        )),
    }
}

/// Parses `1048576`, `64KiB`, `128MiB`, `1GiB` (also KB/MB/GB as powers of 1024).
/// A number above zero, such as `30` or `0.05`.
pub fn parse_positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(n),
        _ => Err(format!("'{s}' is not a number above zero")),
    }
}

/// A count of one or more.
pub fn parse_at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a whole number of 1 or more")),
    }
}

pub use squall_connectors::byte_sizes::parse_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_characters_parse() {
        assert_eq!(parse_csv_char(";"), Ok(b';'));
        assert_eq!(parse_csv_char("tab"), Ok(b'\t'));
        assert_eq!(parse_csv_char("\t"), Ok(b'\t'));
        assert!(parse_csv_char(";;").is_err());
        assert!(parse_csv_char("é").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
