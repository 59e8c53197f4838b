//! Cells' results kept between runs, under their [`crate::cell_key`]: one
//! Parquet object per key in a folder or under an object-store URL, holding
//! the rows the page shows and, in its metadata, the measures of the run
//! that made it.
//!
//! Writes are whole objects (a local file is written beside and renamed),
//! so a crash leaves an entry whole or absent. The cache is bounded: after
//! each run the oldest entries go until the rest fit in its byte budget. A
//! damaged or unreadable entry is a miss, never an error of the notebook.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::object_store::path::Path;
use datafusion::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;
use futures::TryStreamExt;
use squall_connectors::store::{Location, register_object_store};
use squall_jobs::Session;

use crate::error::{NotebookError, Result};
use crate::run::CellResult;

/// What a cache holds at most unless told otherwise: 1 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

const ROWS: &str = "squall.rows";
const ELAPSED_MS: &str = "squall.elapsed_ms";
const TASKS: &str = "squall.tasks";
const BYTES_READ: &str = "squall.bytes_read";
const COST_USD: &str = "squall.cost_usd";

/// A cache of cell results.
#[derive(Debug, Clone)]
pub struct CellCache {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    location: String,
    max_bytes: u64,
}

impl CellCache {
    /// The cache at `location` (a folder or an object-store URL), holding at
    /// most `max_bytes`; its store is the session's.
    pub fn open(session: &Session, location: &str, max_bytes: u64) -> Result<Self> {
        let invalid = |message: String| NotebookError::Cache {
            location: location.to_string(),
            message,
        };
        let loc = Location::parse(location)
            .map_err(|e| invalid(e.to_string()))?
            .as_prefix();
        let env = session.context().runtime_env();
        register_object_store(&env, &loc).map_err(|e| invalid(e.to_string()))?;
        let store = env
            .object_store(loc.store_url())
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            store,
            prefix: loc.path(),
            location: loc.to_string(),
            max_bytes,
        })
    }

    /// Where the cache is, as given.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn entry(&self, key: &str) -> Path {
        self.prefix.clone().join(format!("{key}.parquet"))
    }

    /// The result cached under `key`, if there is one that reads back.
    pub async fn get(&self, key: &str) -> Option<CellResult> {
        let bytes = self
            .store
            .get(&self.entry(key))
            .await
            .ok()?
            .bytes()
            .await
            .ok()?;
        decode(bytes).ok()
    }

    /// Keeps `result` under `key`.
    pub async fn put(&self, key: &str, result: &CellResult) -> std::result::Result<(), String> {
        let bytes = encode(result).map_err(|e| e.to_string())?;
        self.store
            .put(&self.entry(key), PutPayload::from(bytes))
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Deletes the oldest entries until the rest fit in the budget; returns
    /// how many went.
    pub async fn evict(&self) -> std::result::Result<usize, String> {
        let mut entries: Vec<_> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(|e| e.to_string())?;
        entries.retain(|e| e.location.extension() == Some("parquet"));
        let mut held: u64 = entries.iter().map(|e| e.size).sum();
        entries.sort_by_key(|e| e.last_modified);
        let mut deleted = 0;
        for entry in entries {
            if held <= self.max_bytes {
                break;
            }
            self.store
                .delete(&entry.location)
                .await
                .map_err(|e| e.to_string())?;
            held -= entry.size;
            deleted += 1;
        }
        Ok(deleted)
    }
}

fn encode(result: &CellResult) -> datafusion::parquet::errors::Result<Vec<u8>> {
    let measures = [
        (ROWS, result.rows),
        (ELAPSED_MS, result.elapsed.as_millis() as u64),
        (TASKS, result.tasks),
        (BYTES_READ, result.bytes_read),
    ];
    let mut metadata: Vec<KeyValue> = measures
        .iter()
        .map(|(k, v)| KeyValue::new(k.to_string(), v.to_string()))
        .collect();
    metadata.push(KeyValue::new(
        COST_USD.to_string(),
        result.cost_usd.to_string(),
    ));
    let properties = WriterProperties::builder()
        .set_key_value_metadata(Some(metadata))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, result.schema.clone(), Some(properties))?;
    for batch in &result.batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(bytes)
}

fn decode(bytes: bytes::Bytes) -> std::result::Result<CellResult, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    fn measure<T: std::str::FromStr>(
        builder: &ParquetRecordBatchReaderBuilder<bytes::Bytes>,
        name: &str,
    ) -> std::result::Result<T, String> {
        builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == name))
            .and_then(|k| k.value.as_deref())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {name} in the entry"))
    }
    let rows = measure(&builder, ROWS)?;
    let elapsed_ms = measure(&builder, ELAPSED_MS)?;
    let tasks = measure(&builder, TASKS)?;
    let bytes_read = measure(&builder, BYTES_READ)?;
    let cost_usd = measure(&builder, COST_USD)?;
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder
        .build()
        .map_err(|e| e.to_string())?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| e.to_string())?;
    Ok(CellResult {
        schema,
        batches,
        rows,
        elapsed: Duration::from_millis(elapsed_ms),
        tasks,
        bytes_read,
        cost_usd,
        cached: true,
    })
}
