//! Running a notebook's cells on a session, in dependency order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use squall_connectors::table::one_line;
use squall_jobs::{ProgressEvent, ProgressListener, Session};

use crate::cell_graph::CellGraph;
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
    pub elapsed: Duration,
}

impl NotebookRun {
    /// How many cells failed or were skipped.
    pub fn failures(&self) -> usize {
        self.cells
            .iter()
            .filter(|c| !matches!(c, CellOutcome::Done(_)))
            .count()
    }
}

/// Counts the tasks and input bytes of the queries a session runs, for
/// each cell's footer; hand [`CellMeter::listener`] to the session.
#[derive(Debug, Clone, Default)]
pub struct CellMeter {
    tasks: Arc<AtomicU64>,
    bytes_read: Arc<AtomicU64>,
}

impl CellMeter {
    pub fn listener(&self) -> ProgressListener {
        let meter = self.clone();
        Arc::new(move |event| {
            if let ProgressEvent::TaskFinished { input_bytes, .. } = event {
                meter.tasks.fetch_add(1, Ordering::Relaxed);
                meter.bytes_read.fetch_add(input_bytes, Ordering::Relaxed);
            }
        })
    }

    fn take(&self) -> (u64, u64) {
        (
            self.tasks.swap(0, Ordering::Relaxed),
            self.bytes_read.swap(0, Ordering::Relaxed),
        )
    }
}

/// Registers the notebook's tables and runs its cells in dependency order.
/// A failing cell is an outcome, not an error; errors are about the
/// notebook itself (a table that cannot be registered, a cycle).
pub async fn run_notebook(
    session: &Session,
    notebook: &Notebook,
    meter: Option<&CellMeter>,
) -> Result<NotebookRun> {
    let started = Instant::now();
    for (name, url, line) in &notebook.tables {
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
    let mut outcomes: Vec<Option<CellOutcome>> = vec![None; cells.len()];
    for &i in &graph.order {
        let cell = cells[i];
        let blocked = graph.reads[i]
            .iter()
            .find(|j| !matches!(outcomes[**j], Some(CellOutcome::Done(_))));
        if let Some(j) = blocked {
            let name = cells[*j].name.clone().unwrap_or_default();
            outcomes[i] = Some(CellOutcome::Skipped(format!(
                "not run: it reads cell '{name}', which did not run to its end"
            )));
            continue;
        }
        if let Some(meter) = meter {
            meter.take();
        }
        let began = Instant::now();
        let outcome = run_cell(session, cell).await;
        let (tasks, bytes_read) = meter.map_or((0, 0), CellMeter::take);
        outcomes[i] = Some(match outcome {
            Ok((schema, batches, rows)) => CellOutcome::Done(CellResult {
                schema,
                batches,
                rows,
                elapsed: began.elapsed(),
                tasks,
                bytes_read,
            }),
            Err(message) => CellOutcome::Failed(message),
        });
    }
    Ok(NotebookRun {
        cells: outcomes
            .into_iter()
            .map(|o| o.expect("every cell is in the order"))
            .collect(),
        elapsed: started.elapsed(),
    })
}

type CellRows = (
    datafusion::arrow::datatypes::SchemaRef,
    Vec<RecordBatch>,
    u64,
);

/// Runs one cell: defines it as a view when named, then runs it, keeping
/// its first rows.
async fn run_cell(
    session: &Session,
    cell: &crate::notebook_file::SqlCell,
) -> std::result::Result<CellRows, String> {
    let message = |e: squall_jobs::JobError| one_line(&e.to_string());
    if let Some(name) = &cell.name {
        session
            .sql(&format!("CREATE OR REPLACE VIEW {name} AS {}", cell.sql))
            .await
            .map_err(message)?;
    }
    let mut stream = session.query(&cell.sql).await.map_err(message)?;
    let schema = stream.schema();
    let mut kept = Vec::new();
    let mut kept_rows = 0usize;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(message)?;
        rows += batch.num_rows() as u64;
        if kept_rows < KEPT_ROWS {
            let take = batch.num_rows().min(KEPT_ROWS - kept_rows);
            kept.push(batch.slice(0, take));
            kept_rows += take;
        }
    }
    Ok((schema, kept, rows))
}
