//! Squall as one engine of the peer benchmark (`benches/peers/peer_bench.py`):
//! the local backend, object-store exchange on local disk, serving TPC-H
//! queries over a line protocol so that the driver runs it exactly like the
//! single-node engines beside it (`benches/peers/engine.py`).
//!
//! It registers the eight TPC-H tables of `--data` once, prints one JSON
//! line `{"ready": true, "version": ...}`, then answers one JSON line per
//! request line:
//!
//! ```text
//! request:  {"sql": "...", "out": "/path/result.parquet" or null}
//! response: {"seconds": 1.23, "rows": 10} or {"error": "..."}
//! ```
//!
//! `seconds` runs from submitting the SQL to holding the whole result in
//! memory, as for the other engines; writing it to `out` is not timed.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use serde::Deserialize;
use squall_connectors::tpch::TPCH_TABLES;
use squall_jobs::{LocalBackend, Session, SessionOptions};

/// Serve TPC-H queries through Squall's local backend, one JSON line each.
#[derive(Debug, Parser)]
struct Args {
    /// Folder with one folder of Parquet files per TPC-H table.
    #[arg(long)]
    data: PathBuf,
    /// Tasks at once (the other engines get as many threads).
    #[arg(long)]
    threads: usize,
}

#[derive(Debug, Deserialize)]
struct Request {
    sql: String,
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let session = Session::try_new(SessionOptions {
        backend: Arc::new(LocalBackend::new(args.threads.max(1))),
        ..SessionOptions::default()
    })?;
    for t in TPCH_TABLES {
        let path = args.data.join(t);
        let path = path.to_str().context("a UTF-8 data path")?;
        session.register_table(t, path, None).await?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{}",
        serde_json::json!({"ready": true, "version": env!("CARGO_PKG_VERSION")})
    )?;
    stdout.flush()?;
    for line in std::io::stdin().lock().lines() {
        let request: Request = serde_json::from_str(&line?).context("a request line")?;
        let response = match run(&session, &request).await {
            Ok((seconds, rows)) => serde_json::json!({"seconds": seconds, "rows": rows}),
            Err(e) => serde_json::json!({"error": format!("{e:#}").replace('\n', " ")}),
        };
        writeln!(stdout, "{response}")?;
        stdout.flush()?;
    }
    Ok(())
}

async fn run(session: &Session, request: &Request) -> Result<(f64, usize)> {
    let started = Instant::now();
    let stream = session.query(&request.sql).await?;
    let schema = stream.schema();
    let batches: Vec<RecordBatch> = stream.collect().await?;
    let seconds = started.elapsed().as_secs_f64();
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    if let Some(out) = &request.out {
        let file = std::fs::File::create(out).with_context(|| format!("{}", out.display()))?;
        let mut writer = ArrowWriter::try_new(file, schema, None)?;
        for batch in &batches {
            writer.write(batch)?;
        }
        writer.close()?;
    }
    Ok((seconds, rows))
}
