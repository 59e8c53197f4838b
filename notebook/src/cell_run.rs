//! One SQL cell, start to end: its view defined for the cells that read
//! it, its key computed, its result taken from the cache or its query run
//! (measuring the tasks, bytes and estimated cost of that query alone) and
//! kept.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;
use squall_connectors::table::one_line;
use squall_jobs::analyze::QueryMeasures;
use squall_jobs::{ProgressEvent, ProgressListener, Session, cost};

use crate::cell_cache::CellCache;
use crate::cell_key::{CellKey, cell_key};
use crate::notebook_file::SqlCell;
use crate::run::{CellEvent, CellListener, CellOutcome, CellResult, KEPT_ROWS};

/// What running one cell gave.
#[derive(Debug)]
pub(crate) struct CellRan {
    pub outcome: CellOutcome,
    pub key: CellKey,
    /// Why its result could not be kept (it is right regardless).
    pub cache_warning: Option<String>,
}

impl CellRan {
    /// A cell stopped by a cancel before it ended.
    pub fn cancelled() -> Self {
        Self {
            outcome: CellOutcome::Skipped(CANCELLED.into()),
            key: CellKey::Uncached("it was cancelled".into()),
            cache_warning: None,
        }
    }
}

/// What a cancelled cell says.
pub const CANCELLED: &str = "cancelled before it ended: run it again to see its result";

/// Runs cell `index` of the notebook; `read_keys` are the keys of the cells
/// it reads, by lower-cased name (all of them have ended).
pub(crate) async fn run_cell(
    session: &Session,
    index: usize,
    cell: &SqlCell,
    read_keys: BTreeMap<String, CellKey>,
    cache: Option<&CellCache>,
    listener: Option<CellListener>,
) -> CellRan {
    let ran = |outcome, key| CellRan {
        outcome,
        key,
        cache_warning: None,
    };
    let uncached = || CellKey::Uncached("the cache is off".into());
    if let Err(message) = define_view(session, cell).await {
        return ran(CellOutcome::Failed(message), uncached());
    }
    let key = match cache {
        Some(_) => cell_key(session, cell, |table| read_keys.get(table).cloned()).await,
        None => uncached(),
    };
    if let (Some(cache), Some(k)) = (cache, key.key())
        && let Some(result) = cache.get(k).await
    {
        return ran(CellOutcome::Done(result), key);
    }

    if let Some(listener) = &listener {
        listener(CellEvent::Started { cell: index });
    }
    let measures = QueryMeasures::default();
    let counting = measures.listener();
    let observer: ProgressListener = match listener {
        Some(listener) => Arc::new(move |event: ProgressEvent| {
            counting(event.clone());
            listener(CellEvent::Progress { cell: index, event });
        }),
        None => counting,
    };
    let began = Instant::now();
    let rows = query(session, cell, observer).await;
    let (_, totals) = measures.totals();
    // What its tasks would bill on Lambda: on the functions it ran on, or
    // on those `squall deploy lambda` makes when it ran elsewhere.
    let memory = session
        .backend()
        .billed_memory_bytes()
        .unwrap_or(cost::DEFAULT_FUNCTION_MEMORY_BYTES);
    let result = match rows {
        Ok((schema, batches, rows)) => CellResult {
            schema,
            batches,
            rows,
            elapsed: began.elapsed(),
            tasks: totals.finished_tasks as u64,
            bytes_read: totals.input_bytes,
            cost_usd: cost::estimate(&totals, memory, &cost::CloudPrices::default()).usd,
            cached: false,
        },
        Err(message) => return ran(CellOutcome::Failed(message), key),
    };
    let cache_warning = match (cache, key.key()) {
        (Some(cache), Some(k)) => cache.put(k, &result).await.err().map(|e| {
            format!(
                "cannot keep the result of the cell at line {} in {}: {}",
                cell.line,
                cache.location(),
                one_line(&e)
            )
        }),
        _ => None,
    };
    CellRan {
        outcome: CellOutcome::Done(result),
        key,
        cache_warning,
    }
}

/// Defines a named cell as a view, for the cells that read it (it runs
/// nothing).
async fn define_view(session: &Session, cell: &SqlCell) -> Result<(), String> {
    if let Some(name) = &cell.name {
        session
            .sql(&format!("CREATE OR REPLACE VIEW {name} AS {}", cell.sql))
            .await
            .map_err(|e| one_line(&e.to_string()))?;
    }
    Ok(())
}

/// Runs the cell's query, keeping its first [`KEPT_ROWS`] rows and counting
/// the rest.
async fn query(
    session: &Session,
    cell: &SqlCell,
    observer: ProgressListener,
) -> Result<(SchemaRef, Vec<RecordBatch>, u64), String> {
    let message = |e: squall_jobs::JobError| one_line(&e.to_string());
    let mut stream = session
        .query_observed(&cell.sql, observer)
        .await
        .map_err(message)?;
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
