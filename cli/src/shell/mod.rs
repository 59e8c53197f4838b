//! The interactive shell: `squall`, or `squall sql` without SQL, on a
//! terminal.
//!
//! It reads statements with line editing, persistent history and Tab
//! completion ([`helper`]), runs them on one session (tables registered with
//! `--table` or `CREATE EXTERNAL TABLE` stay until it exits), prints each
//! result with a footer of rows, time, tasks and bytes read, and takes dot
//! commands ([`dot_command`]). Ctrl-C during a statement cancels it — its
//! tasks are stopped and its scratch deleted — and returns to the prompt.
//!
//! The shell owns the terminal conversation only: sessions are built by
//! [`crate::session_setup`], results printed by [`crate::output`].

pub mod dot_command;
pub mod helper;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Config as EditorConfig, Editor};
use squall::jobs::analyze::StageMeasures;
use squall::jobs::{StatementResult, cost};
use squall_planner::explain::human_bytes;

use crate::args::{OutputFormat, QueryArgs};
use crate::config::Config;
use crate::listener_slot::ListenerSlot;
use crate::output::{self, ResultStyle};
use crate::progress::LiveProgress;
use crate::stats::{self, StatsCollector};
use dot_command::DotCommand;
use helper::{ShellHelper, Vocabulary};
use squall::jobs::run_report::RunRecorder;

/// How long a cancelled statement may take to stop its tasks and delete its scratch.
const CANCEL_CLEANUP_LIMIT: Duration = Duration::from_secs(30);

/// Most nested `.read`s (a file reading itself stops there).
const MAX_READ_DEPTH: usize = 16;

/// Most tables whose columns Tab completes.
const MAX_COMPLETED_TABLES: usize = 500;

/// Lines of history kept.
const HISTORY_LINES: usize = 10_000;

/// The history file: `SQUALL_HISTORY`, else `~/.squall_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SQUALL_HISTORY") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".squall_history"))
}

/// The shell's state between inputs.
struct Shell<'a> {
    runtime: &'a tokio::runtime::Runtime,
    config: &'a Config,
    args: QueryArgs,
    session: squall::Session,
    slot: ListenerSlot,
    mode: OutputFormat,
    /// `None`: the default for where results go.
    max_rows: Option<usize>,
    timer: bool,
    /// Where results go instead of stdout (`.output FILE`).
    output: Option<(PathBuf, File)>,
    vocabulary: Arc<RwLock<Vocabulary>>,
    /// Records the statements for `--report`, written when the shell ends.
    recorder: Option<RunRecorder>,
}

/// Runs the shell until `.quit` or Ctrl-D.
pub fn run(args: QueryArgs, config: &Config, runtime: &tokio::runtime::Runtime) -> Result<()> {
    crate::report::check_paths(&args.exec.report)?;
    if args.cost || args.cost_goal().is_some() {
        anyhow::bail!(
            "--cost, --deadline and --budget plan one query: give it with -c, -f or as an argument"
        );
    }
    let slot = ListenerSlot::default();
    let session = runtime.block_on(crate::session_setup::open_session(
        &args,
        config,
        Some(slot.listener()),
    ))?;
    let vocabulary = Arc::new(RwLock::new(Vocabulary::default()));
    let mut shell = Shell {
        runtime,
        config,
        mode: args.format,
        max_rows: args.max_rows,
        timer: true,
        output: None,
        recorder: (!args.exec.report.is_empty()).then(RunRecorder::default),
        args,
        session,
        slot,
        vocabulary: Arc::clone(&vocabulary),
    };
    shell.refresh_vocabulary();
    let editor_config = EditorConfig::builder()
        .max_history_size(HISTORY_LINES)
        .context("history size")?
        .history_ignore_dups(true)
        .context("history")?
        .auto_add_history(true)
        .build();
    let mut editor: Editor<ShellHelper, FileHistory> =
        Editor::with_config(editor_config).context("cannot open the terminal")?;
    editor.set_helper(Some(ShellHelper::new(vocabulary)));
    let history = history_path();
    if let Some(path) = &history
        && path.exists()
    {
        // A history that cannot be read is started afresh.
        let _ = editor.load_history(path);
    }
    println!(
        "squall {} · {} backend · end statements with ';' · .help for commands, Ctrl-D to leave",
        env!("CARGO_PKG_VERSION"),
        backend_name(&shell.args, config)
    );
    loop {
        match editor.readline("squall> ") {
            Ok(input) => {
                let keep_going = shell.handle(&input, 0);
                if let Some(path) = &history {
                    save_history(&mut editor, path);
                }
                if !keep_going {
                    break;
                }
            }
            // Ctrl-C at the prompt clears the line.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("cannot read from the terminal"),
        }
    }
    if let Some(recorder) = &shell.recorder {
        crate::report::write_run(recorder, shell.session.jobs(), &shell.args.exec.report)?;
    }
    Ok(())
}

fn save_history(editor: &mut Editor<ShellHelper, FileHistory>, path: &Path) {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Err(e) = editor.save_history(path) {
        eprintln!("warning: cannot save history to {}: {e}", path.display());
    }
}

fn backend_name(args: &QueryArgs, config: &Config) -> &'static str {
    match args
        .exec
        .backend
        .or(config.query.backend)
        .unwrap_or(crate::args::BackendKind::Local)
    {
        crate::args::BackendKind::Local => "local",
        crate::args::BackendKind::Process => "process",
        crate::args::BackendKind::Lambda => "lambda",
    }
}

impl Shell<'_> {
    /// Runs one input (SQL statements or a dot command); false to leave.
    fn handle(&mut self, input: &str, depth: usize) -> bool {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return true;
        }
        if trimmed.starts_with('.') {
            return match dot_command::parse(trimmed) {
                Ok(command) => self.dot(command, depth),
                Err(message) => {
                    eprintln!("error: {message}");
                    true
                }
            };
        }
        self.run_sql(trimmed);
        self.refresh_vocabulary();
        true
    }

    fn dot(&mut self, command: DotCommand, depth: usize) -> bool {
        let outcome: Result<()> = match command {
            DotCommand::Quit => return false,
            DotCommand::Help => {
                print!("{}", dot_command::help());
                Ok(())
            }
            DotCommand::Tables => {
                let tables = self.table_names();
                if tables.is_empty() {
                    println!(
                        "no tables: register one with --table NAME=URL or CREATE EXTERNAL TABLE"
                    );
                } else {
                    println!("{}", tables.join("\n"));
                }
                Ok(())
            }
            DotCommand::Schema(name) => self.print_schema(&name),
            DotCommand::Timer(on) => {
                self.timer = on;
                Ok(())
            }
            DotCommand::Mode(mode) => {
                self.mode = mode;
                Ok(())
            }
            DotCommand::MaxRows(rows) => {
                self.max_rows = Some(rows.unwrap_or(0));
                Ok(())
            }
            DotCommand::Backend(kind) => self.switch_backend(kind),
            DotCommand::Read(path) => {
                if depth >= MAX_READ_DEPTH {
                    Err(anyhow::anyhow!(
                        ".read nested {MAX_READ_DEPTH} deep: does {} read itself?",
                        path.display()
                    ))
                } else {
                    match std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))
                    {
                        Ok(text) => return self.run_script(&text, depth + 1),
                        Err(e) => Err(e),
                    }
                }
            }
            DotCommand::Output(None) => {
                self.output = None;
                Ok(())
            }
            DotCommand::Output(Some(path)) => File::create(&path)
                .with_context(|| format!("cannot write {}", path.display()))
                .map(|file| self.output = Some((path, file))),
        };
        if let Err(e) = outcome {
            eprintln!(
                "error: {}",
                squall_connectors::table::one_line(&format!("{e:#}"))
            );
        }
        true
    }

    /// Runs a script's statements and dot commands in order (`.read`); a
    /// dot command is a line starting with '.' between statements.
    fn run_script(&mut self, text: &str, depth: usize) -> bool {
        let mut statement = String::new();
        for line in text.lines() {
            if statement.trim().is_empty() && line.trim_start().starts_with('.') {
                if !self.handle(line, depth) {
                    return false;
                }
                continue;
            }
            statement.push_str(line);
            statement.push('\n');
            if helper::is_complete(&statement) {
                self.handle(&statement, depth);
                statement.clear();
            }
        }
        self.handle(&statement, depth)
    }

    fn table_names(&self) -> Vec<String> {
        let ctx = self.session.jobs().context();
        let state = ctx.state();
        let catalog = &state.config_options().catalog;
        let mut names = ctx
            .catalog(&catalog.default_catalog)
            .and_then(|c| c.schema(&catalog.default_schema))
            .map(|s| s.table_names())
            .unwrap_or_default();
        names.sort();
        names
    }

    fn print_schema(&self, name: &str) -> Result<()> {
        let provider = self
            .runtime
            .block_on(self.session.jobs().context().table_provider(name))
            .with_context(|| format!("no table '{name}' (.tables lists them)"))?;
        let schema = provider.schema();
        let width = schema
            .fields()
            .iter()
            .map(|f| f.name().chars().count())
            .max()
            .unwrap_or(0);
        println!("{name}");
        for field in schema.fields() {
            println!(
                "  {:<width$}  {}{}",
                field.name(),
                field.data_type(),
                if field.is_nullable() { "" } else { " NOT NULL" }
            );
        }
        Ok(())
    }

    /// Table and column names for Tab.
    fn refresh_vocabulary(&self) {
        let tables = self.table_names();
        let ctx = self.session.jobs().context();
        let columns = self.runtime.block_on(async {
            let mut columns = Vec::new();
            for table in tables.iter().take(MAX_COMPLETED_TABLES) {
                if let Ok(provider) = ctx.table_provider(table.as_str()).await {
                    columns.extend(provider.schema().fields().iter().map(|f| f.name().clone()));
                }
            }
            columns
        });
        let mut vocabulary = self.vocabulary.write().unwrap_or_else(|e| e.into_inner());
        *vocabulary = Vocabulary { tables, columns };
    }

    /// A new session on `kind` that keeps this one's tables and settings.
    fn switch_backend(&mut self, kind: crate::args::BackendKind) -> Result<()> {
        let mut args = self.args.clone();
        args.exec.backend = Some(kind);
        let options = self
            .runtime
            .block_on(crate::session_setup::session_options(
                &args.exec,
                self.config,
                Some(self.slot.listener()),
            ))?;
        self.session = crate::session_setup::build(options, Some(&self.session))?;
        self.args = args;
        println!(
            "statements now run on the {} backend",
            backend_name(&self.args, self.config)
        );
        Ok(())
    }

    /// Runs `sql`'s statements; Ctrl-C cancels the one running and the rest.
    fn run_sql(&mut self, sql: &str) {
        let statements = match self.session.jobs().statements(sql) {
            Ok(statements) => statements,
            Err(e) => {
                eprintln!(
                    "error: {}",
                    squall_connectors::table::one_line(&e.to_string())
                );
                return;
            }
        };
        for statement in statements {
            let live = if self.args.exec.no_progress {
                None
            } else {
                LiveProgress::start()
            };
            let stats = StatsCollector::default();
            self.slot.set(stats::both(
                live.as_ref().map(LiveProgress::listener),
                stats::both(
                    Some(stats.listener()),
                    self.recorder.as_ref().map(RunRecorder::listener),
                ),
            ));
            if let Some(recorder) = &self.recorder {
                recorder.begin_statement(&statement.to_string());
            }
            let started = Instant::now();
            let outcome = self.runtime.block_on(async {
                tokio::select! {
                    result = self.run_statement(statement, &stats, started, live.clone()) => Some(result),
                    _ = tokio::signal::ctrl_c() => None,
                }
            });
            if let Some(live) = &live {
                live.finish();
            }
            // A cancelled statement's future is dropped: its tasks are
            // cancelled; wait (bounded) for its scratch to go, its attempts'
            // ends still reported.
            let cleaned = outcome.is_none().then(|| {
                self.runtime
                    .block_on(squall_connectors::cleanup::finish_cleanups(
                        CANCEL_CLEANUP_LIMIT,
                    ))
            });
            self.slot.set(None);
            if let Some(recorder) = &self.recorder {
                recorder.end_statement(match &outcome {
                    Some(Ok(())) => None,
                    Some(Err(e)) => Some(format!("{e:#}")),
                    None => Some("cancelled (Ctrl-C)".to_string()),
                });
            }
            match outcome {
                Some(Ok(())) => {
                    if self.args.exec.stats {
                        eprintln!("{}", stats.summary());
                        if let Some(memory) = self.session.jobs().backend().billed_memory_bytes() {
                            eprintln!("{}", stats.cost_line(memory));
                        }
                    }
                }
                Some(Err(e)) => {
                    eprintln!(
                        "error: {}",
                        squall_connectors::table::one_line(&format!("{e:#}"))
                    );
                    return;
                }
                None => {
                    eprintln!(
                        "cancelled: {}",
                        if cleaned == Some(true) {
                            "its tasks are stopped and its scratch deleted"
                        } else {
                            "its tasks are stopped; deleting its scratch took over 30 s \
                             (`squall scratch clean` deletes what is left once its lease expires)"
                        }
                    );
                    return;
                }
            }
        }
    }

    async fn run_statement(
        &self,
        statement: datafusion::sql::parser::Statement,
        stats: &StatsCollector,
        started: Instant,
        live: Option<LiveProgress>,
    ) -> Result<()> {
        let billed_memory_bytes = self.session.jobs().backend().billed_memory_bytes();
        let footer = || -> Option<String> {
            self.timer
                .then(|| run_footer(started.elapsed(), &stats.totals(), billed_memory_bytes))
        };
        match self.session.jobs().run_statement(statement).await? {
            StatementResult::Done => {
                if let Some(footer) = footer() {
                    eprintln!("done · {footer}");
                }
            }
            StatementResult::Rows(stream) => {
                let to_file = self.output.is_some();
                let style = ResultStyle::new(self.mode, self.max_rows, to_file);
                // Tables carry the footer themselves; other formats keep
                // their output clean and show it on stderr.
                let table = self.mode == OutputFormat::Table;
                let table_footer = || if table { footer() } else { None };
                match &self.output {
                    Some((path, file)) => {
                        let file = file
                            .try_clone()
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        output::write_to(
                            stream,
                            style,
                            Box::new(std::io::BufWriter::new(file)),
                            &table_footer,
                        )
                        .await?;
                    }
                    None => {
                        output::write_result(
                            stream,
                            style,
                            None,
                            &table_footer,
                            LiveProgress::clearing(live),
                        )
                        .await?;
                    }
                }
                if !table && let Some(footer) = footer() {
                    eprintln!("{footer}");
                }
            }
        }
        std::io::stdout().flush()?;
        Ok(())
    }
}

/// "0.42 s · 12 tasks · read 3.4 MiB", and on a backend billed per
/// invocation (functions of `billed_memory_bytes`), "· ≈ $0.0012".
fn run_footer(
    elapsed: Duration,
    totals: &StageMeasures,
    billed_memory_bytes: Option<u64>,
) -> String {
    let mut text = format!("{:.2} s", elapsed.as_secs_f64());
    let tasks = totals.finished_tasks;
    if tasks > 0 {
        text.push_str(&format!(
            " · {tasks} task{} · read {}",
            if tasks == 1 { "" } else { "s" },
            human_bytes(totals.input_bytes)
        ));
        if let Some(memory) = billed_memory_bytes {
            let cost = cost::estimate(totals, memory, &cost::CloudPrices::default());
            text.push_str(&format!(" · ≈ {}", cost::dollars(cost.usd)));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_footer_says_time_tasks_and_bytes() {
        let totals = StageMeasures {
            finished_tasks: 3,
            input_bytes: 5 << 20,
            busy_ms: 6000,
            ..StageMeasures::default()
        };
        let elapsed = Duration::from_millis(1234);
        assert_eq!(
            run_footer(elapsed, &totals, None),
            "1.23 s · 3 tasks · read 5.0 MiB"
        );
        // Six seconds on 1 GiB functions and three invocations.
        assert_eq!(
            run_footer(elapsed, &totals, Some(1 << 30)),
            "1.23 s · 3 tasks · read 5.0 MiB · ≈ $0.0001"
        );
        assert_eq!(
            run_footer(Duration::from_millis(5), &StageMeasures::default(), None),
            "0.01 s"
        );
    }
}
