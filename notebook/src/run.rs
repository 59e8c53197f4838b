//! Running a notebook's cells on a session: each after the cells it reads,
//! cells that do not read each other at the same time (a bounded number),
//! unchanged ones from the cache.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use squall_connectors::table::one_line;
use squall_jobs::{ProgressEvent, Session};

use crate::cell_cache::CellCache;
use crate::cell_cancel::CellCancels;
use crate::cell_graph::CellGraph;
use crate::cell_key::CellKey;
use crate::cell_run::{CellRan, run_cell};
use crate::error::{NotebookError, Result};
use crate::notebook_file::Notebook;

/// Rows of a cell's result kept for the page and its charts; the rest are
/// counted, not held.
pub const KEPT_ROWS: usize = 10_000;

/// What one SQL cell did.
#[derive(Debug, Clone)]
pub enum CellOutcome {
    Done(CellResult),
    /// The cell failed: Squall's one-line message.
    Failed(String),
    /// Not run: a cell it reads failed or was not run (named).
    Skipped(String),
}

/// A cell's result: its first rows and its measures.
#[derive(Debug, Clone)]
pub struct CellResult {
    pub schema: datafusion::arrow::datatypes::SchemaRef,
    /// At most [`KEPT_ROWS`] rows.
    pub batches: Vec<RecordBatch>,
    pub rows: u64,
    pub elapsed: Duration,
    pub tasks: u64,
    pub bytes_read: u64,
    /// What its tasks would cost on AWS Lambda + S3 at list prices
    /// (`squall_jobs::cost::estimate`; start-ups not included).
    pub cost_usd: f64,
    /// Read from the cache: the measures are those of the run that made it.
    pub cached: bool,
}

impl CellResult {
    /// Its first `limit` rows, each value as text (`NULL` for nulls): what
    /// the page and the Markdown write-back show.
    pub fn first_rows(&self, limit: usize) -> Vec<Vec<String>> {
        use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &self.batches {
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<std::result::Result<_, _>>()
                .unwrap_or_default();
            for row in 0..batch.num_rows() {
                if rows.len() == limit {
                    return rows;
                }
                rows.push(
                    formatters
                        .iter()
                        .map(|f| f.value(row).to_string())
                        .collect(),
                );
            }
        }
        rows
    }
}

/// What a notebook's run did, cell by cell (in the order of
/// `Notebook::sql_cells`).
#[derive(Debug, Clone)]
pub struct NotebookRun {
    pub cells: Vec<CellOutcome>,
    /// Per cell: its cache key, or why it always runs.
    pub keys: Vec<CellKey>,
    pub elapsed: Duration,
    /// What went wrong keeping results in the cache (results are right
    /// regardless; the next run runs those cells again).
    pub cache_warnings: Vec<String>,
}

impl NotebookRun {
    /// How many cells failed or were skipped.
    pub fn failures(&self) -> usize {
        self.cells
            .iter()
            .filter(|c| !matches!(c, CellOutcome::Done(_)))
            .count()
    }

    /// How many cells were read from the cache rather than run.
    pub fn cached(&self) -> usize {
        self.cells
            .iter()
            .filter(|c| matches!(c, CellOutcome::Done(r) if r.cached))
            .count()
    }
}

/// Cells that run at once unless told otherwise.
pub const DEFAULT_CONCURRENT_CELLS: usize = 4;

/// What happens to a notebook's cells while it runs (`cell` indexes
/// `Notebook::sql_cells`), for a live display.
#[derive(Debug, Clone)]
pub enum CellEvent {
    /// The cell's query started (a cell from the cache does not start).
    Started { cell: usize },
    /// What the cell's query does.
    Progress { cell: usize, event: ProgressEvent },
    /// The cell ended, whether it ran, came from the cache, failed or was
    /// not run.
    Ended { cell: usize, outcome: CellOutcome },
}

/// Hears [`CellEvent`]s; called from the tasks running the cells.
pub type CellListener = Arc<dyn Fn(CellEvent) + Send + Sync>;

/// How to run a notebook.
#[derive(Clone)]
pub struct RunOptions {
    /// Where unchanged cells' results are found and new ones kept.
    pub cache: Option<CellCache>,
    /// Most cells running at once (at least 1); a cell waits for the cells
    /// it reads whatever this allows.
    pub concurrent_cells: usize,
    pub listener: Option<CellListener>,
    /// Cells to stop while the notebook runs.
    pub cancels: CellCancels,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            cache: None,
            concurrent_cells: DEFAULT_CONCURRENT_CELLS,
            listener: None,
            cancels: CellCancels::default(),
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("cache", &self.cache)
            .field("concurrent_cells", &self.concurrent_cells)
            .field("listener", &self.listener.is_some())
            .field("cancels", &self.cancels)
            .finish()
    }
}

/// Registers the notebook's tables and runs its cells: each once the cells
/// it reads have ended, at most `options.concurrent_cells` at once, those
/// whose key `options.cache` holds taken from it. A failing cell is an
/// outcome, not an error; errors are about the notebook itself (a table
/// that cannot be registered, a cycle).
pub async fn run_notebook(
    session: &Session,
    notebook: &Notebook,
    options: &RunOptions,
) -> Result<NotebookRun> {
    let started = Instant::now();
    for (name, url, line) in &notebook.tables {
        // Its table, whatever an earlier run of a notebook registered.
        let _ = session.context().deregister_table(name.as_str());
        session
            .register_table_with(name, url, None, &Default::default())
            .await
            .map_err(|e| NotebookError::Invalid {
                file: notebook.file.clone(),
                line: *line,
                message: one_line(&e.to_string()),
            })?;
    }
    let graph = CellGraph::of(notebook, session)?;
    let cells: Vec<_> = notebook.sql_cells().collect();
    let names: Vec<Option<String>> = cells
        .iter()
        .map(|c| c.name.as_deref().map(str::to_ascii_lowercase))
        .collect();
    let tell = |event: CellEvent| {
        if let Some(listener) = &options.listener {
            listener(event);
        }
    };
    let mut outcomes: Vec<Option<CellOutcome>> = vec![None; cells.len()];
    let mut keys: Vec<CellKey> = vec![CellKey::Uncached("it did not run".into()); cells.len()];
    let mut cache_warnings = Vec::new();
    let mut launched = vec![false; cells.len()];
    let mut running = FuturesUnordered::new();
    loop {
        // Start what is ready, in file order among the ready.
        for &i in &graph.order {
            if launched[i] || graph.reads[i].iter().any(|j| outcomes[*j].is_none()) {
                continue;
            }
            let blocked = graph.reads[i]
                .iter()
                .find(|j| !matches!(outcomes[**j], Some(CellOutcome::Done(_))));
            if let Some(j) = blocked {
                launched[i] = true;
                let name = cells[*j].name.clone().unwrap_or_default();
                let outcome = CellOutcome::Skipped(format!(
                    "not run: it reads cell '{name}', which did not run to its end"
                ));
                tell(CellEvent::Ended {
                    cell: i,
                    outcome: outcome.clone(),
                });
                outcomes[i] = Some(outcome);
                continue;
            }
            if running.len() >= options.concurrent_cells.max(1) {
                break;
            }
            launched[i] = true;
            let read_keys: BTreeMap<String, CellKey> = graph.reads[i]
                .iter()
                .filter_map(|j| Some((names[*j].clone()?, keys[*j].clone())))
                .collect();
            let cell = cells[i];
            let cache = options.cache.as_ref();
            let listener = options.listener.clone();
            let cancels = options.cancels.clone();
            running.push(async move {
                let ran = tokio::select! {
                    ran = run_cell(session, i, cell, read_keys, cache, listener) => ran,
                    // Its query is dropped: its tasks are cancelled.
                    () = cancels.cancelled(i) => CellRan::cancelled(),
                };
                (i, ran)
            });
        }
        let Some((i, ran)) = running.next().await else {
            break;
        };
        keys[i] = ran.key;
        cache_warnings.extend(ran.cache_warning);
        tell(CellEvent::Ended {
            cell: i,
            outcome: ran.outcome.clone(),
        });
        outcomes[i] = Some(ran.outcome);
    }
    if let Some(cache) = &options.cache
        && let Err(e) = cache.evict().await
    {
        cache_warnings.push(format!(
            "cannot trim the cache {}: {}",
            cache.location(),
            one_line(&e)
        ));
    }
    Ok(NotebookRun {
        cells: outcomes
            .into_iter()
            .map(|o| o.expect("every cell ends"))
            .collect(),
        keys,
        elapsed: started.elapsed(),
        cache_warnings,
    })
}
