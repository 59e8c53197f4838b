//! The notebook being served: its file's text, the parsed notebook, the
//! outcomes of its current run, and the events that tell pages about them.
//!
//! One lock guards the state and the file together: an edit is written to
//! the file and taken as the current text under it, and the file watcher
//! reads the file under it, so the watcher never mistakes the server's own
//! write for another editor's. The lock is never held across an await.
//! Every change of the text cancels the run in progress and starts a new
//! one; the result cache makes the cells that did not change come back
//! without running.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use squall_connectors::table::one_line;
use squall_jobs::{ProgressEvent, Session, SessionOptions};
use squall_notebook::cell_cache::CellCache;
use squall_notebook::cell_cancel::CellCancels;
use squall_notebook::cell_run::CANCELLED;
use squall_notebook::notebook_edit::Edit;
use squall_notebook::render_html::{cell_state, render_block};
use squall_notebook::run::{CellEvent, CellListener};
use squall_notebook::{Block, CellOutcome, Notebook, RunOptions, run_notebook};
use tokio::sync::broadcast;

use crate::live_events::{BlockView, LiveEvent, Snapshot};

/// Events kept for a page that reads slowly; one that falls further behind
/// gets a fresh snapshot instead.
pub const EVENT_BUFFER: usize = 1024;

/// How cells run: the session's options and the cache.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub session: SessionOptions,
    /// The cache's location and byte budget; `None`: no cache.
    pub cache: Option<(String, u64)>,
    pub concurrent_cells: usize,
}

/// The served notebook; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct LiveNotebook {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<LiveEvent>,
    settings: Arc<RunSettings>,
    /// Which run is current: bumped before a run is cancelled, so that what
    /// the cancelled run still reports is dropped without taking the lock
    /// (its future may be dropped while the canceller holds it).
    current_run: Arc<AtomicU64>,
}

#[derive(Debug)]
struct State {
    path: PathBuf,
    sets: Vec<String>,
    /// The file's text as last read or written by the server.
    text: String,
    /// The last text that parsed.
    notebook: Notebook,
    /// Why `text` does not parse, when it does not.
    problem: Option<String>,
    generation: u64,
    /// Per SQL cell of `notebook`: its outcome in the current run.
    outcomes: Vec<Option<CellOutcome>>,
    /// Per running SQL cell: tasks done and planned.
    progress: std::collections::BTreeMap<usize, (u64, u64)>,
    run: Option<tokio::task::JoinHandle<()>>,
    /// The current run's cells to stop.
    cancels: CellCancels,
}

/// Why an edit was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditRefused {
    /// The page edited an older text than the current one.
    Stale { current: u64 },
    /// The edit would make the notebook unreadable (the one-line reason).
    Invalid(String),
    /// The file on disk does not parse: it must be fixed there first.
    Broken(String),
    /// The file could not be written.
    Write(String),
}

impl EditRefused {
    pub fn message(&self) -> String {
        match self {
            EditRefused::Stale { .. } => {
                "the notebook changed since this page showed it; it shows the new text now".into()
            }
            EditRefused::Invalid(why) => format!("not saved: {why}"),
            EditRefused::Broken(why) => {
                format!("not saved: the file does not parse; fix it in your editor first: {why}")
            }
            EditRefused::Write(why) => format!("not saved: {why}"),
        }
    }
}

impl LiveNotebook {
    /// Loads the notebook at `path` (`sets` override its parameters).
    pub fn load(
        path: &Path,
        sets: Vec<String>,
        settings: RunSettings,
    ) -> squall_notebook::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            squall_notebook::NotebookError::Read {
                path: path.display().to_string(),
                source,
            }
        })?;
        let notebook = Notebook::parse(&path.display().to_string(), &text, &sets)?;
        let cells = notebook.sql_cells().count();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Ok(Self {
            state: Arc::new(Mutex::new(State {
                path: path.to_path_buf(),
                sets,
                text,
                notebook,
                problem: None,
                generation: 1,
                outcomes: vec![None; cells],
                progress: Default::default(),
                run: None,
                cancels: CellCancels::default(),
            })),
            events,
            settings: Arc::new(settings),
            current_run: Arc::new(AtomicU64::new(0)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, event: LiveEvent) {
        // No page listening is not an error.
        let _ = self.events.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.events.subscribe()
    }

    /// The notebook as it is now.
    pub fn snapshot(&self) -> Snapshot {
        snapshot_of(&self.lock())
    }

    /// Makes `edit` on the text of generation `generation`: saves the file,
    /// tells the pages, and runs the notebook again. Returns the new
    /// generation.
    pub fn edit(&self, generation: u64, edit: &Edit) -> Result<u64, EditRefused> {
        let mut state = self.lock();
        if generation != state.generation {
            return Err(EditRefused::Stale {
                current: state.generation,
            });
        }
        if let Some(problem) = &state.problem {
            return Err(EditRefused::Broken(problem.clone()));
        }
        let text = edit
            .apply(&state.notebook)
            .map_err(|e| EditRefused::Invalid(one_line(&e.to_string())))?;
        let notebook = Notebook::parse(&state.path.display().to_string(), &text, &state.sets)
            .map_err(|e| EditRefused::Invalid(one_line(&e.to_string())))?;
        write_whole(&state.path, &text)
            .map_err(|e| EditRefused::Write(format!("{}: {e}", state.path.display())))?;
        state.text = text;
        Ok(self.replace(&mut state, Ok(notebook)))
    }

    /// Reads the file again if another editor changed it; returns whether
    /// it had.
    pub fn reload_if_changed(&self) -> bool {
        let mut state = self.lock();
        let Ok(text) = std::fs::read_to_string(&state.path) else {
            // A save in progress (removed, then renamed into place): the
            // next look sees it.
            return false;
        };
        if text == state.text {
            return false;
        }
        let parsed = Notebook::parse(&state.path.display().to_string(), &text, &state.sets);
        state.text = text;
        self.replace(&mut state, parsed);
        true
    }

    /// Takes `parsed` as the notebook of the current text (or its parse
    /// error), tells the pages and starts a run; the new generation.
    fn replace(&self, state: &mut State, parsed: squall_notebook::Result<Notebook>) -> u64 {
        state.generation += 1;
        match parsed {
            Ok(notebook) => {
                state.problem = None;
                state.outcomes = vec![None; notebook.sql_cells().count()];
                state.notebook = notebook;
                self.start_run(state);
            }
            Err(e) => {
                let message = one_line(&e.to_string());
                self.send(LiveEvent::Problem {
                    message: format!("{message} (the page shows the last text that parsed)"),
                });
                state.problem = Some(message);
            }
        }
        self.send(LiveEvent::Snapshot(snapshot_of(state)));
        state.generation
    }

    /// Sends every page the notebook as it is now.
    pub fn resend_snapshot(&self) {
        let snapshot = self.snapshot();
        self.send(LiveEvent::Snapshot(snapshot));
    }

    /// Runs the notebook again as it is (unchanged cells come from the cache).
    pub fn rerun(&self) {
        let mut state = self.lock();
        state.outcomes = vec![None; state.notebook.sql_cells().count()];
        self.start_run(&mut state);
        self.send(LiveEvent::Snapshot(snapshot_of(&state)));
    }

    /// Starts the first run.
    pub fn start(&self) {
        self.rerun();
    }

    /// Stops the whole run in progress: its running cells end as cancelled.
    /// Returns whether one was running.
    pub fn cancel(&self) -> bool {
        let mut state = self.lock();
        let Some(run) = state.run.take() else {
            return false;
        };
        if run.is_finished() {
            return false;
        }
        self.current_run.fetch_add(1, Ordering::SeqCst);
        run.abort();
        let generation = state.generation;
        for cell in 0..state.outcomes.len() {
            if state.outcomes[cell].is_none() {
                state.outcomes[cell] = Some(CellOutcome::Skipped(CANCELLED.into()));
                self.send_cell_blocks(&state, cell);
            }
        }
        let ended = |cached: bool| {
            state
                .outcomes
                .iter()
                .filter(|o| match o {
                    Some(CellOutcome::Done(result)) => cached && result.cached,
                    _ => !cached,
                })
                .count()
        };
        self.send(LiveEvent::RunEnded {
            generation,
            failures: ended(false),
            cached: ended(true),
            elapsed_ms: 0,
            cancelled: true,
        });
        true
    }

    /// Stops the cell at block `block` of generation `generation` (its
    /// readers are not run; other cells go on). Returns whether the block
    /// is a SQL cell of the current text.
    pub fn cancel_cell(&self, generation: u64, block: usize) -> bool {
        let state = self.lock();
        if state.generation != generation {
            return false;
        }
        let Some(cell) = state.notebook.cell_of_block(block) else {
            return false;
        };
        state.cancels.cancel(cell);
        true
    }

    /// Cancels the run in progress and starts one of `state.notebook`.
    fn start_run(&self, state: &mut State) {
        let run_id = self.current_run.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(run) = state.run.take() {
            run.abort();
        }
        state.progress.clear();
        state.cancels = CellCancels::default();
        let cancels = state.cancels.clone();
        let generation = state.generation;
        let notebook = state.notebook.clone();
        let live = self.clone();
        state.run = Some(tokio::spawn(async move {
            let started = Instant::now();
            let outcome = live.run(run_id, &notebook, cancels).await;
            if live.current_run.load(Ordering::SeqCst) != run_id {
                return;
            }
            let mut state = live.lock();
            match outcome {
                Ok((failures, cached)) => live.send(LiveEvent::RunEnded {
                    generation,
                    failures,
                    cached,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    cancelled: false,
                }),
                Err(message) => {
                    // The notebook could not run at all (a table that
                    // cannot be read): every cell says so.
                    for cell in 0..state.outcomes.len() {
                        if state.outcomes[cell].is_none() {
                            state.outcomes[cell] = Some(CellOutcome::Failed(message.clone()));
                        }
                    }
                    live.send(LiveEvent::Problem { message });
                    live.send(LiveEvent::Snapshot(snapshot_of(&state)));
                }
            }
            state.run = None;
        }));
    }

    /// One run of `notebook` on a new session (no view or table of an
    /// earlier text lingers); failures and cached cells, or why the
    /// notebook could not run.
    async fn run(
        &self,
        run_id: u64,
        notebook: &Notebook,
        cancels: CellCancels,
    ) -> Result<(usize, usize), String> {
        let message = |e: &dyn std::fmt::Display| one_line(&e.to_string());
        let session = Session::try_new(self.settings.session.clone()).map_err(|e| message(&e))?;
        let cache = match &self.settings.cache {
            Some((location, max_bytes)) => {
                Some(CellCache::open(&session, location, *max_bytes).map_err(|e| message(&e))?)
            }
            None => None,
        };
        let live = self.clone();
        let listener: CellListener = Arc::new(move |event| live.on_cell(run_id, event));
        let options = RunOptions {
            cache,
            concurrent_cells: self.settings.concurrent_cells,
            listener: Some(listener),
            cancels,
        };
        let run = run_notebook(&session, notebook, &options)
            .await
            .map_err(|e| message(&e))?;
        for warning in &run.cache_warnings {
            self.send(LiveEvent::Problem {
                message: warning.clone(),
            });
        }
        Ok((run.failures(), run.cached()))
    }

    /// What a running cell did, sent on to the pages.
    fn on_cell(&self, run_id: u64, event: CellEvent) {
        if self.current_run.load(Ordering::SeqCst) != run_id {
            return;
        }
        let mut state = self.lock();
        let generation = state.generation;
        match event {
            CellEvent::Started { cell } => {
                if let Some(index) = state.notebook.block_of_cell(cell) {
                    self.send(LiveEvent::Progress {
                        generation,
                        index,
                        done: 0,
                        planned: 0,
                    });
                }
            }
            CellEvent::Progress { cell, event } => {
                if !matches!(
                    event,
                    ProgressEvent::QueryPlanned { .. }
                        | ProgressEvent::StageStarted { .. }
                        | ProgressEvent::TaskFinished { .. }
                ) {
                    return;
                }
                let (done, planned) = progress_of(&mut state, cell, &event);
                if let Some(index) = state.notebook.block_of_cell(cell) {
                    self.send(LiveEvent::Progress {
                        generation,
                        index,
                        done,
                        planned,
                    });
                }
            }
            CellEvent::Ended { cell, outcome } => {
                if let Some(slot) = state.outcomes.get_mut(cell) {
                    *slot = Some(outcome);
                }
                self.send_cell_blocks(&state, cell);
            }
        }
    }

    /// Sends the blocks that show cell `cell`: the cell and its charts.
    fn send_cell_blocks(&self, state: &State, cell: usize) {
        let notebook = &state.notebook;
        let Some(index) = notebook.block_of_cell(cell) else {
            return;
        };
        let name = notebook.sql_cells().nth(cell).and_then(|c| c.name.clone());
        let outcomes: Vec<Option<&CellOutcome>> =
            state.outcomes.iter().map(Option::as_ref).collect();
        let charts = notebook
            .blocks
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match (b, &name) {
                (Block::Chart(chart), Some(name)) if chart.spec.cell.eq_ignore_ascii_case(name) => {
                    Some(i)
                }
                _ => None,
            });
        for block in std::iter::once(index).chain(charts) {
            self.send(LiveEvent::Block {
                generation: state.generation,
                index: block,
                state: block_state(notebook, &outcomes, block),
                html: render_block(notebook, &outcomes, block),
            });
        }
    }
}

/// Tasks done and planned of cell `cell`'s query so far, after `event`
/// (a stage sized from its inputs may run fewer tasks than planned).
fn progress_of(state: &mut State, cell: usize, event: &ProgressEvent) -> (u64, u64) {
    let (done, planned) = state.progress.entry(cell).or_default();
    match event {
        ProgressEvent::QueryPlanned { tasks, .. } => *planned += *tasks as u64,
        ProgressEvent::StageStarted {
            tasks,
            planned_tasks,
            ..
        } => *planned = planned.saturating_sub(*planned_tasks as u64) + *tasks as u64,
        ProgressEvent::TaskFinished { .. } => *done += 1,
        _ => {}
    }
    (*done, *planned)
}

/// `done`, `failed`, `skipped` or `pending` for a SQL cell's block; empty
/// for the others.
fn block_state(notebook: &Notebook, outcomes: &[Option<&CellOutcome>], block: usize) -> String {
    notebook
        .cell_of_block(block)
        .map_or("", |cell| cell_state(outcomes.get(cell).copied().flatten()))
        .into()
}

fn snapshot_of(state: &State) -> Snapshot {
    let notebook = &state.notebook;
    let lines: Vec<&str> = notebook.source.lines().collect();
    let outcomes: Vec<Option<&CellOutcome>> = state.outcomes.iter().map(Option::as_ref).collect();
    let blocks = (0..notebook.blocks.len())
        .map(|i| BlockView {
            kind: match notebook.blocks[i] {
                Block::Prose(_) => "prose",
                Block::Sql(_) => "sql",
                Block::Chart(_) => "chart",
            },
            source: lines[notebook.spans[i].clone()].join("\n"),
            state: block_state(notebook, &outcomes, i),
            html: render_block(notebook, &outcomes, i),
        })
        .collect();
    Snapshot {
        generation: state.generation,
        title: notebook.title.clone().unwrap_or_else(|| {
            state
                .path
                .file_stem()
                .map_or("notebook".into(), |s| s.to_string_lossy().to_string())
        }),
        problem: state.problem.clone(),
        running: state.run.as_ref().is_some_and(|r| !r.is_finished()),
        blocks,
    }
}

/// Writes `text` to `path` whole or not at all (beside it, then renamed).
fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map_or("notebook".into(), |n| n.to_string_lossy().to_string());
    let beside = path.with_file_name(format!(".{name}.squall-saving"));
    std::fs::write(&beside, text)?;
    std::fs::rename(&beside, path)
}
