//! TPC-H data generation (the `tpchgen` crates) written as Parquet to any store.
//!
//! Rows are generated on the blocking thread pool and handed to an async
//! Parquet writer through a bounded channel, so memory stays at a few batches
//! plus one row group per file, whatever the scale.
//!
//! The files are written below `_squall_staging/` beside `out` and published together
//! by the same commit as a `COPY` (see [`crate::sink_staging`]): a run that
//! fails or is interrupted half-way leaves no table file visible.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow,
    RecordBatchIterator, RegionArrow, SupplierArrow,
};

use crate::error::{ConnectorError, Result};
use crate::sink_staging::{self, SinkDestination};
use crate::store::Location;

/// The eight TPC-H tables.
pub const TPCH_TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

/// Rows per Parquet row group: small enough that scale-1 tables have several.
const ROW_GROUP_ROWS: usize = 122_880;
/// Batches in flight between a generator thread and its writer.
const CHANNEL_BATCHES: usize = 4;

/// One generated file.
#[derive(Debug, Clone)]
pub struct GeneratedFile {
    pub table: &'static str,
    /// Which part of the table (from 1).
    pub part: usize,
    pub location: Location,
    pub rows: u64,
}

/// The default number of files per large table for a scale factor.
pub fn default_parts(scale: f64) -> usize {
    (scale * 4.0).ceil().clamp(1.0, 4096.0) as usize
}

/// Generates all tables at `scale` under `out/{table}/part-{i}.parquet`.
/// Nation and region are always one file; the others are cut into `parts`.
pub async fn generate_tpch(scale: f64, out: &Location, parts: usize) -> Result<Vec<GeneratedFile>> {
    if scale.is_nan() || scale <= 0.0 {
        return Err(ConnectorError::InvalidLocation {
            location: out.to_string(),
            reason: format!("scale factor must be positive, got {scale}"),
        });
    }
    let parts = parts.max(1);
    let destination = SinkDestination {
        dir: out.as_prefix(),
        file_name: None,
        success_marker: false,
    };
    let run_id = format!("gen-{}", uuid::Uuid::new_v4().simple());
    sink_staging::recover(&destination, &run_id).await?;
    let staged = destination.query_staging(&run_id)?.join("tables/")?;
    // Dropped before the end (interrupted): what was staged is deleted.
    let mut guard = DiscardOnDrop(Some((destination.clone(), run_id.clone())));
    let generated = generate_into(scale, &staged, parts).await;
    guard.0 = None;
    match generated {
        Ok(files) => {
            sink_staging::commit(&destination, &run_id, std::slice::from_ref(&staged)).await?;
            files
                .into_iter()
                .map(|file| {
                    Ok(GeneratedFile {
                        location: destination.dir.join(&file_name(file.table, file.part))?,
                        ..file
                    })
                })
                .collect()
        }
        Err(e) => {
            let _ = sink_staging::discard(&destination, &run_id).await;
            Err(e)
        }
    }
}

/// Discards a run's staging, in the background, if dropped while armed.
struct DiscardOnDrop(Option<(SinkDestination, String)>);

impl Drop for DiscardOnDrop {
    fn drop(&mut self) {
        if let Some((destination, run_id)) = self.0.take() {
            crate::cleanup::spawn_cleanup(async move {
                let _ = sink_staging::discard(&destination, &run_id).await;
                // A file write already under way when the run was dropped
                // may land after that.
                tokio::time::sleep(crate::cleanup::LATE_WRITE_SWEEP_DELAY).await;
                let _ = sink_staging::discard(&destination, &run_id).await;
            });
        }
    }
}

/// The path of one generated file below the output location.
fn file_name(table: &str, part: usize) -> String {
    format!("{table}/part-{part}.parquet")
}

/// Generates every file below `out`.
async fn generate_into(scale: f64, out: &Location, parts: usize) -> Result<Vec<GeneratedFile>> {
    let store = out.build_store()?;
    let mut jobs = Vec::new();
    for table in TPCH_TABLES {
        let n = if matches!(table, "nation" | "region") {
            1
        } else {
            parts
        };
        for part in 1..=n {
            jobs.push((table, part, n));
        }
    }
    let concurrency = std::thread::available_parallelism().map_or(2, |n| n.get());
    let results: Vec<Result<GeneratedFile>> = futures::stream::iter(jobs)
        .map(|(table, part, n)| {
            let location = out.join(&file_name(table, part));
            let store = Arc::clone(&store);
            async move { write_part(store, table, scale, part, n, location?).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut files = results.into_iter().collect::<Result<Vec<_>>>()?;
    files.sort_by(|a, b| a.location.url().as_str().cmp(b.location.url().as_str()));
    Ok(files)
}

fn batches(table: &str, scale: f64, part: i32, parts: i32) -> Box<dyn RecordBatchIterator> {
    match table {
        "customer" => Box::new(CustomerArrow::new(CustomerGenerator::new(
            scale, part, parts,
        ))),
        "lineitem" => Box::new(LineItemArrow::new(LineItemGenerator::new(
            scale, part, parts,
        ))),
        "nation" => Box::new(NationArrow::new(NationGenerator::new(scale, part, parts))),
        "orders" => Box::new(OrderArrow::new(OrderGenerator::new(scale, part, parts))),
        "part" => Box::new(PartArrow::new(PartGenerator::new(scale, part, parts))),
        "partsupp" => Box::new(PartSuppArrow::new(PartSuppGenerator::new(
            scale, part, parts,
        ))),
        "region" => Box::new(RegionArrow::new(RegionGenerator::new(scale, part, parts))),
        "supplier" => Box::new(SupplierArrow::new(SupplierGenerator::new(
            scale, part, parts,
        ))),
        other => unreachable!("unknown TPC-H table {other}"),
    }
}

async fn write_part(
    store: Arc<dyn object_store::ObjectStore>,
    table: &'static str,
    scale: f64,
    part: usize,
    parts: usize,
    location: Location,
) -> Result<GeneratedFile> {
    let write_err = |reason: String| ConnectorError::Write {
        url: location.to_string(),
        reason,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(CHANNEL_BATCHES);
    let generator = tokio::task::spawn_blocking(move || {
        let iter = batches(table, scale, part as i32, parts as i32);
        let schema = iter.schema().clone();
        for batch in iter {
            if tx.blocking_send(batch).is_err() {
                break;
            }
        }
        schema
    });
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer: Option<AsyncArrowWriter<BufWriter>> = None;
    let mut rows = 0u64;
    while let Some(batch) = rx.recv().await {
        if writer.is_none() {
            let sink = BufWriter::new(Arc::clone(&store), location.path());
            writer = Some(
                AsyncArrowWriter::try_new(sink, batch.schema(), Some(props.clone()))
                    .map_err(|e| write_err(e.to_string()))?,
            );
        }
        rows += batch.num_rows() as u64;
        if let Some(w) = writer.as_mut() {
            w.write(&batch)
                .await
                .map_err(|e| write_err(e.to_string()))?;
        }
    }
    let schema = generator.await.map_err(|e| write_err(e.to_string()))?;
    let writer = match writer {
        Some(w) => w,
        // A part with no rows still gets a valid, empty file.
        None => {
            let sink = BufWriter::new(Arc::clone(&store), location.path());
            AsyncArrowWriter::try_new(sink, schema, Some(props))
                .map_err(|e| write_err(e.to_string()))?
        }
    };
    writer.close().await.map_err(|e| write_err(e.to_string()))?;
    Ok(GeneratedFile {
        table,
        part,
        location,
        rows,
    })
}
