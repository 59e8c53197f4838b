//! TPC-H through Squall (local backend) and through single-node DataFusion on
//! the same files, alternating per query in one run; prints per-query times
//! and the ratio as a Markdown table for docs/benchmarks.md.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use squall_connectors::Location;
use squall_connectors::tpch::{TPCH_TABLES, default_parts, generate_tpch};
use squall_jobs::{LocalBackend, Session, SessionOptions};
use squall_planner::PlannerConfig;

/// Benchmark TPC-H on Squall's local backend against single-node DataFusion.
#[derive(Debug, Parser)]
struct Args {
    /// Scale factor.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Data directory (generated when missing).
    #[arg(long, default_value = "./target/tpch-bench-data")]
    data: PathBuf,
    /// Runs per query per engine; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Tasks at once on the local backend (default: cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Input bytes per task.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    target_task_bytes: u64,
    /// Only these queries (default: all 22).
    #[arg(long, value_delimiter = ',')]
    queries: Vec<usize>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let data = args.data.join(format!("sf{}", args.scale));
    if !data.join("lineitem").exists() {
        eprintln!(
            "generating TPC-H scale {} in {}",
            args.scale,
            data.display()
        );
        std::fs::create_dir_all(&data)?;
        let loc = Location::parse(data.to_str().context("utf-8 path")?)?;
        generate_tpch(args.scale, &loc, default_parts(args.scale)).await?;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let session = Session::try_new(SessionOptions {
        backend: Arc::new(LocalBackend::new(args.workers.unwrap_or(cores))),
        planner: PlannerConfig {
            target_task_bytes: args.target_task_bytes,
            ..PlannerConfig::default()
        },
        ..SessionOptions::default()
    })?;
    let reference = SessionContext::new();
    for t in TPCH_TABLES {
        let path = data.join(t);
        let path = path.to_str().context("utf-8 path")?;
        session.register_table(t, path, None).await?;
        reference
            .register_parquet(t, path, ParquetReadOptions::default())
            .await?;
    }
    let queries: Vec<usize> = if args.queries.is_empty() {
        (1..=22).collect()
    } else {
        args.queries.clone()
    };
    println!("| query | DataFusion (s) | Squall local (s) | Squall / DataFusion |");
    println!("|---|---|---|---|");
    let (mut total_df, mut total_sq) = (Duration::ZERO, Duration::ZERO);
    for q in queries {
        let sql = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("queries/tpch/q{q}.sql")),
        )?;
        let mut df_times = Vec::new();
        let mut sq_times = Vec::new();
        for _ in 0..args.runs.max(1) {
            let t = Instant::now();
            reference.sql(&sql).await?.collect().await?;
            df_times.push(t.elapsed());
            let t = Instant::now();
            session.query(&sql).await?.collect().await?;
            sq_times.push(t.elapsed());
        }
        let (df, sq) = (median(df_times), median(sq_times));
        total_df += df;
        total_sq += sq;
        println!(
            "| q{q} | {:.3} | {:.3} | {:.2} |",
            df.as_secs_f64(),
            sq.as_secs_f64(),
            sq.as_secs_f64() / df.as_secs_f64()
        );
    }
    println!(
        "| total | {:.3} | {:.3} | {:.2} |",
        total_df.as_secs_f64(),
        total_sq.as_secs_f64(),
        total_sq.as_secs_f64() / total_df.as_secs_f64()
    );
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
