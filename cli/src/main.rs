//! `squall`: run SQL over a data lake on stateless tasks.

mod args;
mod config;
mod deploy;
mod lambda_worker;
mod output;
mod progress;
mod stats;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use squall_connectors::{Location, RequestPolicy};
use squall_jobs::{
    LambdaBackend, LambdaOptions, LocalBackend, ProcessBackend, Session, SessionOptions,
    StatementResult,
};

use squall_planner::PlannerConfig;

/// This machine's memory (Linux: `MemTotal` of `/proc/meminfo`).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

use crate::args::{
    BackendKind, Cli, Command, DeployCommand, GenCommand, QueryArgs, ScratchCommand,
};
use crate::config::Config;

fn main() -> ExitCode {
    if lambda_worker::started_by_lambda() {
        return match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => match rt.block_on(lambda_worker::serve()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: lambda runtime: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version, and their output, as clap prints them.
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        // A bad flag or value: one line, like every other error.
        Err(e) => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim()
                .trim_start_matches("error: ");
            eprintln!("error: {first} (see --help)");
            return ExitCode::FAILURE;
        }
    };
    let log_level = match cli.verbose {
        0 => "off",
        1 => "warn",
        2 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(log_level)).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cancellable = matches!(
        cli.command,
        Command::Sql(_) | Command::Explain(_) | Command::Gen(_)
    );
    let outcome = runtime.block_on(async {
        if !cancellable {
            return Ok(run(cli).await);
        }
        tokio::select! {
            result = run(cli) => Ok(result),
            signal = interrupted() => Err(signal),
        }
    });
    let result = match outcome {
        Ok(result) => {
            // Background cleanups (abandoned scratch of dead clients) finish
            // before the process exits, within a bound.
            runtime.block_on(squall_connectors::cleanup::finish_cleanups(
                CLEANUP_AT_EXIT_LIMIT,
            ));
            result
        }
        Err(signal) => {
            // The query's future is dropped: its tasks are cancelled; wait
            // (bounded) until they stopped and its scratch is deleted. A
            // second signal stops the wait.
            let cleaned = runtime.block_on(async {
                tokio::select! {
                    cleaned = squall_connectors::cleanup::finish_cleanups(
                        CLEANUP_ON_INTERRUPT_LIMIT,
                    ) => Some(cleaned),
                    _ = interrupted() => None,
                }
            });
            eprintln!(
                "error: interrupted by {}: {}",
                signal.name,
                match cleaned {
                    Some(true) => "cancelled; its scratch and staged files are deleted",
                    Some(false) => {
                        "cancelled; deleting its scratch and staged files took over 30 s, so some may be left behind \
                         (`squall scratch clean` deletes them once their lease expires)"
                    }
                    None => {
                        "cancelled; interrupted again before its scratch and staged files were deleted \
                         (`squall scratch clean` deletes them once their lease expires)"
                    }
                }
            );
            // Whatever still runs (blocking file I/O of cancelled tasks) is
            // not waited for.
            runtime.shutdown_background();
            return ExitCode::from(signal.exit_code);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever reads stdout went away (`squall ... | head`): a quiet exit.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the outermost context and its causes, joined.
            let msg = format!("{e:#}");
            eprintln!("error: {}", squall_connectors::table::one_line(&msg));
            ExitCode::FAILURE
        }
    }
}

/// The longest `--task-timeout` accepted: a year.
const MAX_TASK_TIMEOUT_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// How long background cleanups may delay a normal exit: deleting the
/// scratch of abandoned queries, and that of a query whose abandoned Lambda
/// invocations (a losing backup) must end first
/// (`squall_jobs::invocations::ABANDONED_INVOCATIONS_WAIT`, then the deletes).
const CLEANUP_AT_EXIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// How long an interrupted query may take to stop its tasks and delete its scratch.
const CLEANUP_ON_INTERRUPT_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A signal that stops the client, and the exit status it leaves (128 + its number).
struct Interruption {
    name: &'static str,
    exit_code: u8,
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM.
async fn interrupted() -> Interruption {
    let sigint = Interruption {
        name: "SIGINT",
        exit_code: 130,
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return sigint,
                _ = term.recv() => return Interruption { name: "SIGTERM", exit_code: 143 },
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    sigint
}

/// Whether `error` comes from writing to a closed pipe.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Sql(args) => run_sql(args, &config).await,
        Command::Explain(args) => {
            let (session, sql) = open_session(&args, &config, false, None).await?;
            let text = session.explain(&sql).await?;
            let mut stdout = std::io::stdout().lock();
            std::io::Write::write_all(&mut stdout, text.as_bytes())?;
            std::io::Write::flush(&mut stdout)?;
            Ok(())
        }
        Command::Deploy(DeployCommand::Lambda(mut args)) => {
            if args.name.is_none()
                && let Some(functions) = config.lambda.function.clone()
            {
                match functions.into_vec().as_slice() {
                    [one] => args.name = Some(one.clone()),
                    _ => anyhow::bail!(
                        "the config file names several functions: pass --name to say which to deploy"
                    ),
                }
            }
            args.region = args.region.or(config.lambda.region.clone());
            args.lambda_endpoint = args.lambda_endpoint.or(config.lambda.endpoint.clone());
            deploy::deploy_lambda(&args).await
        }
        Command::Worker => {
            use std::io::{Read, Write};
            let mut spec = Vec::new();
            std::io::stdin()
                .read_to_end(&mut spec)
                .context("reading the task spec from stdin")?;
            let report = squall_worker::run_task_with_env_key(&spec).await;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&report)
                .context("writing the task report")?;
            stdout.flush()?;
            Ok(())
        }
        Command::Scratch(ScratchCommand::Clean { url }) => {
            let roots = match url.or(config.query.scratch.clone()) {
                Some(url) => vec![Location::parse(&url)?.as_prefix()],
                None => squall_jobs::lease::temp_scratch_dirs(None),
            };
            let ttl = squall_jobs::lease::lease_ttl();
            for root in roots {
                let cleaning = squall_jobs::lease::clean_abandoned(&root, None, ttl).await?;
                eprintln!(
                    "{root}: deleted the scratch of {} abandoned {}; {} running {} kept",
                    cleaning.deleted.len(),
                    if cleaning.deleted.len() == 1 {
                        "query"
                    } else {
                        "queries"
                    },
                    cleaning.alive.len(),
                    if cleaning.alive.len() == 1 {
                        "query"
                    } else {
                        "queries"
                    },
                );
            }
            Ok(())
        }
        Command::Gen(GenCommand::Tpch { scale, out, parts }) => {
            let location = Location::parse(&out)?;
            let parts = parts.unwrap_or_else(|| squall_connectors::tpch::default_parts(scale));
            let files = squall_connectors::tpch::generate_tpch(scale, &location, parts).await?;
            let rows: u64 = files.iter().map(|f| f.rows).sum();
            eprintln!(
                "wrote TPC-H scale {scale}: {} files, {rows} rows under {}",
                files.len(),
                location.as_prefix()
            );
            Ok(())
        }
    }
}

async fn run_sql(args: QueryArgs, config: &Config) -> Result<()> {
    let stats = args.stats.then(stats::StatsCollector::default);
    let (session, sql) = open_session(&args, config, !args.no_progress, stats.as_ref()).await?;
    if args.explain {
        eprint!("{}", session.explain(&sql).await?);
        eprintln!();
    }
    // Every statement's rows are written before the next statement runs, as
    // duckdb and datafusion-cli show them; to a file (-o), only the last
    // statement's (earlier ones are run to their end).
    let statements = session.statements(&sql)?;
    let count = statements.len();
    for (i, statement) in statements.into_iter().enumerate() {
        match session.run_statement(statement).await? {
            StatementResult::Done => {}
            StatementResult::Rows(stream) if args.output.is_some() && i + 1 < count => {
                stream.collect().await?;
            }
            StatementResult::Rows(stream) => {
                output::write_result(stream, args.format, args.output.as_deref()).await?;
            }
        }
    }
    if let Some(stats) = stats {
        eprintln!("{}", stats.summary());
    }
    Ok(())
}

/// How tasks send object-store requests: flags first, then the config file.
fn request_policy(args: &QueryArgs, defaults: &config::QueryDefaults) -> RequestPolicy {
    // The coordinator's own requests meet the injected faults too.
    squall_connectors::store_builder::inject_coordinator_faults(args.inject_store_faults.clone());
    let mut policy = RequestPolicy {
        retries: args
            .request_retries
            .or(defaults.request_retries)
            .unwrap_or(squall_connectors::request_policy::DEFAULT_REQUEST_RETRIES),
        faults: args.inject_store_faults.clone(),
        ..RequestPolicy::default()
    };
    if args.no_hedging || defaults.hedging == Some(false) {
        policy.hedging = None;
    } else if let (Some(hedging), Some(ms)) = (
        policy.hedging.as_mut(),
        args.hedge_after_ms.or(defaults.hedge_after_ms),
    ) {
        hedging.first_byte_ms = ms;
    }
    policy
}

async fn open_session(
    args: &QueryArgs,
    config: &Config,
    progress: bool,
    stats: Option<&stats::StatsCollector>,
) -> Result<(Session, String)> {
    let sql = args.sql_text()?;
    // Flags (and their environment variables) first, then the config file.
    let defaults = &config.query;
    let lambda = &config.lambda;
    let workers = args.workers.or(defaults.workers);
    let backend_kind = args
        .backend
        .or(defaults.backend)
        .unwrap_or(BackendKind::Local);
    let backend: Arc<dyn squall_jobs::Backend> = match backend_kind {
        BackendKind::Local => Arc::new(LocalBackend::new(workers.unwrap_or_else(cores))),
        BackendKind::Process => Arc::new(
            ProcessBackend::current_exe(workers.unwrap_or_else(cores))
                .context("cannot find the squall binary to run workers")?,
        ),
        BackendKind::Lambda => {
            let functions = if args.function.is_empty() {
                lambda
                    .function
                    .clone()
                    .map(|f| f.into_vec())
                    .unwrap_or_default()
            } else {
                args.function.clone()
            };
            let options = LambdaOptions {
                functions,
                qualifier: args.qualifier.clone().or(lambda.qualifier.clone()),
                region: args.region.clone().or(lambda.region.clone()),
                endpoint_url: args.lambda_endpoint.clone().or(lambda.endpoint.clone()),
                workers: workers.unwrap_or(squall_jobs::DEFAULT_LAMBDA_WORKERS),
                launcher_threshold: args
                    .launcher_threshold
                    .or(lambda.launcher_threshold)
                    .unwrap_or(squall_jobs::DEFAULT_LAUNCHER_THRESHOLD),
                scaling_rate: args
                    .scaling_rate
                    .or(lambda.scaling_rate)
                    .unwrap_or(squall_jobs::LAMBDA_SCALING_RATE),
                task_key: None,
            };
            Arc::new(
                LambdaBackend::try_new(options)
                    .await
                    .map_err(anyhow::Error::msg)?
                    .read_function_memory()
                    .await,
            )
        }
    };
    let backend: Arc<dyn squall_jobs::Backend> = match &args.inject_task_faults {
        Some(faults) => Arc::new(squall_jobs::FaultyBackend::new(backend, faults.clone())),
        None => backend,
    };
    let mut planner = PlannerConfig::default();
    if let Some(n) = args.max_tasks_per_stage.or(defaults.max_tasks_per_stage) {
        planner.max_tasks_per_stage = n;
    }
    let config_task_bytes = match &defaults.target_task_bytes {
        Some(s) => Some(args::parse_bytes(s).map_err(anyhow::Error::msg)?),
        None => None,
    };
    if let Some(b) = args.target_task_bytes.or(config_task_bytes) {
        planner.target_task_bytes = b;
    }
    let config_task_memory = match &defaults.task_memory {
        Some(s) => Some(args::parse_bytes(s).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let max_result_bytes = match &defaults.max_result_bytes {
        Some(s) => Some(args::parse_bytes(s).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let max_result_bytes = args.max_result_bytes.or(max_result_bytes);
    if max_result_bytes == Some(0) {
        anyhow::bail!("--max-result-bytes must be more than 0 bytes");
    }
    let mut limits = squall_worker::TaskLimits::default();
    match args.task_memory.or(config_task_memory) {
        Some(0) => anyhow::bail!("--task-memory must be more than 0 bytes"),
        Some(bytes) => limits.memory_bytes = bytes,
        None if backend_kind != BackendKind::Lambda => {
            if let Some(share) =
                squall_worker::memory::machine_share_per_task(backend.max_concurrency())
            {
                limits.memory_bytes = share;
            }
        }
        None => {}
    }
    let config_spill_bytes = match &defaults.spill_bytes {
        Some(s) => Some(args::parse_bytes(s).map_err(anyhow::Error::msg)?),
        None => None,
    };
    match args.spill_bytes.or(config_spill_bytes) {
        Some(0) => anyhow::bail!("--spill-bytes must be more than 0 bytes"),
        Some(bytes) => limits.spill_bytes = bytes,
        None => {}
    }
    let options = SessionOptions {
        backend,
        limits,
        planner,
        scratch: args.scratch.clone().or(defaults.scratch.clone()),
        keep_scratch: args.keep_scratch,
        stage_workers: args.stage_workers.or(defaults.stage_workers),
        task_attempts: args
            .task_attempts
            .or(defaults.task_attempts)
            .unwrap_or(squall_jobs::DEFAULT_TASK_ATTEMPTS)
            .max(1),
        task_timeout: match args.task_timeout.or(defaults.task_timeout) {
            Some(s) if s.is_finite() && s > 0.0 && s <= MAX_TASK_TIMEOUT_SECONDS => {
                Some(std::time::Duration::from_secs_f64(s))
            }
            Some(s) => {
                anyhow::bail!(
                    "--task-timeout must be a positive number of seconds up to one year, not {s}"
                )
            }
            None => None,
        },
        speculation: (!args.no_speculation && defaults.speculation.unwrap_or(true)).then(|| {
            if backend_kind == BackendKind::Lambda {
                squall_jobs::SpeculationPolicy::for_uncancellable_attempts()
            } else {
                squall_jobs::SpeculationPolicy::default()
            }
        }),
        requests: request_policy(args, defaults),
        max_result_bytes,
        adaptive_stages: args
            .adaptive_stages
            .or(defaults.adaptive_stages)
            .unwrap_or(backend_kind == BackendKind::Lambda),
        progress: stats::both(
            if progress { progress::listener() } else { None },
            stats.map(stats::StatsCollector::listener),
        ),
    };
    let session = Session::try_new(options)?;
    for table in &args.tables {
        let (name, url) = table
            .split_once('=')
            .with_context(|| format!("--table '{table}' must look like NAME=URL"))?;
        session.register_table(name, url, args.table_format).await?;
    }
    Ok((session, sql))
}
