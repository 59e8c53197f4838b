//! Building a session from `squall sql`'s flags and the config file,
//! through the library's [`squall::SessionBuilder`].

use std::sync::Arc;

use anyhow::{Context, Result};
use squall::jobs::{
    LambdaBackend, LambdaOptions, LocalBackend, ProcessBackend, ProgressListener, Session,
    SessionOptions,
};
use squall_connectors::RequestPolicy;
use squall_planner::PlannerConfig;

use crate::args::{self, BackendKind, ExecArgs, QueryArgs};
use crate::config::{self, Config};

/// The longest `--task-timeout` accepted: a year.
const MAX_TASK_TIMEOUT_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// This machine's cores.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// How tasks send object-store requests: flags first, then the config file.
fn request_policy(args: &ExecArgs, defaults: &config::QueryDefaults) -> RequestPolicy {
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

/// A session with the tables of `--table` registered.
pub async fn open_session(
    args: &QueryArgs,
    config: &Config,
    progress: Option<ProgressListener>,
) -> Result<squall::Session> {
    let session = build(session_options(&args.exec, config, progress).await?, None)?;
    register_tables(session.jobs(), args).await?;
    Ok(session)
}

/// A session that runs with `options`, built as a Rust program builds one,
/// planning with the tables of `tables_from` where given.
pub fn build(
    options: SessionOptions,
    tables_from: Option<&squall::Session>,
) -> Result<squall::Session> {
    let mut builder = squall::Session::builder().options(|o| *o = options);
    if let Some(session) = tables_from {
        builder = builder.tables_from(session);
    }
    Ok(builder.build()?)
}

/// Registers the tables of `--table`.
pub async fn register_tables(session: &Session, args: &QueryArgs) -> Result<()> {
    for table in &args.tables {
        let (name, url) = table
            .split_once('=')
            .with_context(|| format!("--table '{table}' must look like NAME=URL"))?;
        let csv = squall_connectors::CsvOptions {
            header: args.csv_header.unwrap_or(true),
            delimiter: args.csv_delimiter,
            quote: args.csv_quote.unwrap_or(b'"'),
        };
        session
            .register_table_with(name, url, args.table_format, &csv)
            .await?;
    }
    Ok(())
}

/// What a session runs with: flags (and their environment variables) first,
/// then the config file.
pub async fn session_options(
    args: &ExecArgs,
    config: &Config,
    progress: Option<ProgressListener>,
) -> Result<SessionOptions> {
    // Flags (and their environment variables) first, then the config file.
    let defaults = &config.query;
    let lambda = &config.lambda;
    let workers = args.workers.or(defaults.workers);
    let backend_kind = args
        .backend
        .or(defaults.backend)
        .unwrap_or(BackendKind::Local);
    let backend: Arc<dyn squall::jobs::Backend> = match backend_kind {
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
                workers: workers.unwrap_or(squall::jobs::DEFAULT_LAMBDA_WORKERS),
                launcher_threshold: args
                    .launcher_threshold
                    .or(lambda.launcher_threshold)
                    .unwrap_or(squall::jobs::DEFAULT_LAUNCHER_THRESHOLD),
                scaling_rate: args
                    .scaling_rate
                    .or(lambda.scaling_rate)
                    .unwrap_or(squall::jobs::LAMBDA_SCALING_RATE),
                task_key: None,
            };
            Arc::new(
                LambdaBackend::try_new(options)
                    .await
                    .map_err(anyhow::Error::msg)?
                    .read_function_configuration()
                    .await,
            )
        }
    };
    let backend: Arc<dyn squall::jobs::Backend> = match &args.inject_task_faults {
        Some(faults) => Arc::new(squall::jobs::FaultyBackend::new(backend, faults.clone())),
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
        cost_model: config.cost_model.clone(),
        scratch: args.scratch.clone().or(defaults.scratch.clone()),
        keep_scratch: args.keep_scratch,
        stage_workers: args.stage_workers.or(defaults.stage_workers),
        task_attempts: args
            .task_attempts
            .or(defaults.task_attempts)
            .unwrap_or(squall::jobs::DEFAULT_TASK_ATTEMPTS)
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
                squall::jobs::SpeculationPolicy::for_uncancellable_attempts()
            } else {
                squall::jobs::SpeculationPolicy::default()
            }
        }),
        requests: request_policy(args, defaults),
        max_result_bytes,
        adaptive_stages: args
            .adaptive_stages
            .or(defaults.adaptive_stages)
            .unwrap_or(backend_kind == BackendKind::Lambda),
        // Run reports show the operators' own metrics.
        operator_metrics: !args.report.is_empty(),
        progress,
        url_tables_root: None,
    };
    Ok(options)
}
