//! `squall`: run SQL over a data lake on stateless tasks.

mod args;
mod deploy;
mod lambda_worker;
mod output;
mod progress;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use squall_connectors::Location;
use squall_jobs::{
    LambdaBackend, LambdaOptions, LocalBackend, ProcessBackend, Session, SessionOptions,
    StatementResult,
};

/// Invocations in flight on the lambda backend unless --workers says otherwise.
const DEFAULT_LAMBDA_WORKERS: usize = 64;
use squall_planner::PlannerConfig;

use crate::args::{BackendKind, Cli, Command, DeployCommand, GenCommand, QueryArgs};

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
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
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
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the outermost context and its causes, joined.
            let msg = format!("{e:#}");
            eprintln!("error: {}", squall_connectors::table::one_line(&msg));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Sql(args) => run_sql(args).await,
        Command::Explain(args) => {
            let (session, sql) = open_session(&args, false).await?;
            print!("{}", session.explain(&sql).await?);
            Ok(())
        }
        Command::Deploy(DeployCommand::Lambda(args)) => deploy::deploy_lambda(&args).await,
        Command::Worker => {
            use std::io::{Read, Write};
            let mut spec = Vec::new();
            std::io::stdin()
                .read_to_end(&mut spec)
                .context("reading the task spec from stdin")?;
            let report = squall_worker::run_task(&spec).await;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&report)
                .context("writing the task report")?;
            stdout.flush()?;
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

async fn run_sql(args: QueryArgs) -> Result<()> {
    let (session, sql) = open_session(&args, !args.no_progress).await?;
    if args.explain {
        eprint!("{}", session.explain(&sql).await?);
        eprintln!();
    }
    match session.sql(&sql).await? {
        StatementResult::Done => Ok(()),
        StatementResult::Rows(stream) => {
            output::write_result(stream, args.format, args.output.as_deref()).await
        }
    }
}

async fn open_session(args: &QueryArgs, progress: bool) -> Result<(Session, String)> {
    let sql = args.sql_text()?;
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let backend: Arc<dyn squall_jobs::Backend> = match args.backend {
        BackendKind::Local => Arc::new(LocalBackend::new(workers)),
        BackendKind::Process => Arc::new(
            ProcessBackend::current_exe(workers)
                .context("cannot find the squall binary to run workers")?,
        ),
        BackendKind::Lambda => {
            let options = LambdaOptions {
                function_name: args.function.clone().unwrap_or_default(),
                qualifier: args.qualifier.clone(),
                region: args.region.clone(),
                endpoint_url: args.lambda_endpoint.clone(),
                workers: args.workers.unwrap_or(DEFAULT_LAMBDA_WORKERS),
                launcher_threshold: args.launcher_threshold,
            };
            Arc::new(
                LambdaBackend::try_new(options)
                    .await
                    .map_err(anyhow::Error::msg)?,
            )
        }
    };
    let mut planner = PlannerConfig::default();
    if let Some(n) = args.max_tasks_per_stage {
        planner.max_tasks_per_stage = n;
    }
    if let Some(b) = args.target_task_bytes {
        planner.target_task_bytes = b;
    }
    let options = SessionOptions {
        backend,
        planner,
        scratch: args.scratch.clone(),
        keep_scratch: args.keep_scratch,
        progress: if progress { progress::listener() } else { None },
        ..SessionOptions::default()
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
