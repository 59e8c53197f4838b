//! `squall`: run SQL over a data lake on stateless tasks.

mod args;
mod config;
mod deploy;
mod lambda_worker;
mod listener_slot;
mod notebook_progress;
mod notebook_run;
mod notebook_serve;
mod output;
mod progress;
mod report;
mod run_job;
mod session_setup;
mod shell;
mod stats;
mod table_view;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use squall::jobs::StatementResult;
use squall::jobs::cloud_model::render::{render_choice, render_prediction};
use squall_connectors::Location;

use crate::args::{Cli, Command, DeployCommand, GenCommand, QueryArgs, ScratchCommand};
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
    // `squall`, or `squall sql` without SQL, on a terminal: the shell,
    // which handles Ctrl-C itself (a statement is cancelled, not the shell).
    let cli = match cli.command {
        None => Cli {
            command: Some(Command::Sql(args::QueryArgs::defaults())),
            ..cli
        },
        Some(_) => cli,
    };
    if let Some(Command::Sql(query)) = &cli.command
        && query.names_no_sql()
        && std::io::IsTerminal::is_terminal(&std::io::stdin())
    {
        let result = Config::load(cli.config.as_deref())
            .and_then(|config| shell::run(query.clone(), &config, &runtime));
        runtime.block_on(squall_connectors::cleanup::finish_cleanups(
            CLEANUP_AT_EXIT_LIMIT,
        ));
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!(
                    "error: {}",
                    squall_connectors::table::one_line(&format!("{e:#}"))
                );
                ExitCode::FAILURE
            }
        };
    }
    let cancellable = matches!(
        cli.command,
        Some(
            Command::Sql(_)
                | Command::Explain(_)
                | Command::Run(_)
                | Command::Notebook(args::NotebookCommand::Run(_))
                | Command::Gen(_)
        )
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

/// How long background cleanups may delay a normal exit: deleting the
/// scratch of abandoned queries, and that of a query whose abandoned Lambda
/// invocations (a losing backup) must end first
/// (`squall::jobs::invocations::ABANDONED_INVOCATIONS_WAIT`, then the deletes).
const CLEANUP_AT_EXIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// How long an interrupted query may take to stop its tasks and delete its scratch.
const CLEANUP_ON_INTERRUPT_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A signal that stops the client, and the exit status it leaves (128 + its number).
pub(crate) struct Interruption {
    pub(crate) name: &'static str,
    exit_code: u8,
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn interrupted() -> Interruption {
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
    let Some(command) = cli.command else {
        unreachable!("a missing command is `sql`");
    };
    match command {
        Command::Sql(args) => run_sql(args, &config).await,
        Command::Run(args) => run_job::run(args, &config).await,
        Command::Notebook(args::NotebookCommand::Run(args)) => {
            notebook_run::run(args, &config).await
        }
        Command::Notebook(args::NotebookCommand::Serve(args)) => {
            notebook_serve::serve(args, &config).await
        }
        Command::Explain(args) => {
            let ignored = args.flags_explain_ignores();
            if !ignored.is_empty() {
                anyhow::bail!(
                    "squall explain runs nothing, so {} would do nothing: use {} with squall sql",
                    ignored.join(", "),
                    if ignored.len() == 1 { "it" } else { "them" }
                );
            }
            let sql = args.sql_text()?;
            let library_session = session_setup::open_session(&args, &config, None).await?;
            let session = library_session.jobs();
            let mut text = String::new();
            if let Some(goal) = args.cost_goal() {
                let choice = session
                    .choose_fanout(&sql, goal, &config.cost_model)
                    .await?;
                text.push_str(&render_choice(goal, &choice.candidates, choice.chosen));
                text.push('\n');
                session.apply_fanout(choice.chosen());
            }
            if args.cost || args.cost_goal().is_some() {
                // Planned once: the graph shown is the graph predicted.
                let params = session.cost_model_params(&config.cost_model);
                let (graph, prediction) = session.predict_cost(&sql, &params).await?;
                text.push_str(&squall_planner::render_stage_graph(&graph));
                text.push('\n');
                text.push_str(&render_prediction(
                    &prediction,
                    &params,
                    session.target_task_bytes(),
                ));
            } else {
                text.push_str(&session.explain(&sql).await?);
            }
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
        Command::Report { input, output } => report::convert(&input, &output),
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
                None => squall::jobs::lease::temp_scratch_dirs(None),
            };
            let ttl = squall::jobs::lease::lease_ttl();
            for root in roots {
                let cleaning = squall::jobs::lease::clean_abandoned(&root, None, ttl).await?;
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
    let stats = args.exec.stats.then(stats::StatsCollector::default);
    report::check_paths(&args.exec.report)?;
    let recorder =
        (!args.exec.report.is_empty()).then(squall::jobs::run_report::RunRecorder::default);
    let sql = args.sql_text()?;
    if args.cost {
        bail!("--cost predicts without running: use it with squall explain");
    }
    let slot = listener_slot::ListenerSlot::default();
    let library_session = session_setup::open_session(&args, config, Some(slot.listener())).await?;
    let session = library_session.jobs();
    if let Some(goal) = args.cost_goal() {
        plan_for_goal(session, &sql, goal, config).await?;
    }
    if args.explain {
        eprint!("{}", session.explain(&sql).await?);
        eprintln!();
    }
    let outcome = run_statements(&args, session, &sql, &slot, &stats, &recorder).await;
    if let Some(recorder) = &recorder {
        // Failed runs get their report too: it shows where they failed.
        report::write_run(recorder, session, &args.exec.report)?;
    }
    outcome?;
    if let Some(stats) = stats {
        eprintln!("{}", stats.summary());
        if let Some(memory) = session.backend().billed_memory_bytes() {
            eprintln!("{}", stats.cost_line(memory));
        }
    }
    Ok(())
}

/// `--deadline` or `--budget` on `squall sql`: plans the run with the task
/// size the cloud model picks, and says what it picked and predicts.
async fn plan_for_goal(
    session: &squall::jobs::Session,
    sql: &str,
    goal: squall::jobs::cloud_model::Goal,
    config: &Config,
) -> Result<()> {
    if !session.backend().name().starts_with("lambda") {
        let flag = match goal {
            squall::jobs::cloud_model::Goal::Deadline { .. } => "--deadline",
            squall::jobs::cloud_model::Goal::Budget { .. } => "--budget",
        };
        bail!(
            "{flag} plans for AWS Lambda's speed and prices: use it with --backend lambda, or see the plans with squall explain {flag}"
        );
    }
    let choice = session.choose_fanout(sql, goal, &config.cost_model).await?;
    let chosen = choice.chosen();
    session.apply_fanout(chosen);
    eprintln!(
        "squall: planned for {goal}: {} of input per task{}, {} tasks, predicted {} and {} (docs/cost-model.md)",
        squall_planner::explain::human_bytes(chosen.target_task_bytes),
        squall::jobs::cloud_model::render::stages_apart_text(chosen),
        chosen.prediction.tasks(),
        squall::jobs::cloud_model::fanout::seconds_text(chosen.prediction.seconds),
        squall::jobs::cost::dollars(chosen.prediction.usd)
    );
    Ok(())
}

/// Runs the statements of `sql` one after the other, each with its
/// progress display, writing each one's rows before the next runs.
async fn run_statements(
    args: &QueryArgs,
    session: &squall::jobs::Session,
    sql: &str,
    slot: &listener_slot::ListenerSlot,
    stats: &Option<stats::StatsCollector>,
    recorder: &Option<squall::jobs::run_report::RunRecorder>,
) -> Result<()> {
    // Every statement's rows are written before the next statement runs, as
    // duckdb and datafusion-cli show them; to a file (-o), only the last
    // statement's (earlier ones are run to their end).
    let statements = session.statements(sql)?;
    let count = statements.len();
    for (i, statement) in statements.into_iter().enumerate() {
        let live = if args.exec.no_progress {
            None
        } else {
            progress::LiveProgress::start()
        };
        slot.set(stats::run_listener(live.as_ref(), stats, recorder));
        if let Some(recorder) = recorder {
            recorder.begin_statement(&statement.to_string());
        }
        let outcome = async {
            match session.run_statement(statement).await? {
                StatementResult::Done => {}
                StatementResult::Rows(stream) if args.output.is_some() && i + 1 < count => {
                    stream.collect().await?;
                }
                StatementResult::Rows(stream) => {
                    let style =
                        output::ResultStyle::new(args.format, args.max_rows, args.output.is_some());
                    // The display makes way for the first row written to stdout.
                    output::write_result(
                        stream,
                        style,
                        args.output.as_deref(),
                        &|| None,
                        progress::LiveProgress::clearing(live.clone()),
                    )
                    .await?;
                }
            }
            anyhow::Ok(())
        }
        .await;
        if let Some(live) = &live {
            live.finish();
        }
        if let Some(recorder) = recorder {
            recorder.end_statement(outcome.as_ref().err().map(|e| format!("{e:#}")));
        }
        outcome?;
    }
    Ok(())
}
