//! The cloud model at scale: TPC-H queries run on the local backend at the
//! scale of `--data` (scale 1 by default), every stage's measures taken as
//! its profile, scaled `--factor` times (scale 1,000 by default) and
//! predicted on Lambda + S3 (`squall_jobs::cloud_model`). Prints one
//! Markdown table: per query, what ran here, then the predicted tasks,
//! latency and cost at the larger scale, next to what Athena would charge
//! for the bytes the scans cover ($5 per TB scanned).
//!
//! Predictions are a model's, not measurements: see docs/cost-model.md.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::StreamExt;
use squall_connectors::tpch::TPCH_TABLES;
use squall_jobs::analyze::QueryMeasures;
use squall_jobs::cloud_model::predict::predict;
use squall_jobs::cloud_model::{ModelParams, profile_from_measures, scaled_profiles};
use squall_jobs::cost::dollars;
use squall_jobs::{LocalBackend, Session, SessionOptions};
use squall_planner::PlannerConfig;

/// Athena's price per TB (10^12 bytes) scanned (us-east-1).
const ATHENA_USD_PER_TB: f64 = 5.0;

/// Predict TPC-H on Lambda + S3 at a larger scale from runs at a small one.
#[derive(Debug, Parser)]
struct Args {
    /// Folder with one folder of Parquet files per TPC-H table (`squall gen tpch`).
    #[arg(long)]
    data: PathBuf,
    /// Folder of q1.sql ... q22.sql.
    #[arg(long, default_value = "benches/queries/tpch")]
    queries: PathBuf,
    /// How many times more data to predict for.
    #[arg(long, default_value_t = 1000.0)]
    factor: f64,
    /// Input bytes per task at the larger scale (default: the planner's, 128 MiB).
    #[arg(long)]
    target_task_bytes: Option<u64>,
    /// Tasks at once on this machine.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let measures = QueryMeasures::default();
    let session = Session::try_new(SessionOptions {
        backend: Arc::new(LocalBackend::new(args.threads.max(1))),
        progress: Some(measures.listener()),
        ..SessionOptions::default()
    })?;
    for t in TPCH_TABLES {
        let path = args.data.join(t);
        let path = path.to_str().context("a UTF-8 data path")?;
        session.register_table(t, path, None).await?;
    }
    let mut planner = PlannerConfig::default();
    if let Some(bytes) = args.target_task_bytes {
        planner.target_task_bytes = bytes;
    }
    let params = ModelParams::default();
    println!(
        "| query | stages | tasks here | task-s here | scanned at ×{f} | tasks at ×{f} | predicted s | predicted $ | Athena $ |",
        f = args.factor
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let (mut total_usd, mut total_seconds, mut total_athena) = (0.0, 0.0, 0.0);
    for q in 1..=22 {
        let path = args.queries.join(format!("q{q}.sql"));
        let sql = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let graph = session.plan_stages(&sql).await?;
        let mut stream = session.query(&sql).await?;
        while let Some(batch) = stream.next().await {
            batch?;
        }
        let ran = measures.query_stages(measures.queries() - 1);
        let mut measured = Vec::new();
        for stage in &graph.stages {
            let Some(m) = ran.get(&stage.id) else {
                bail!("q{q}: stage {} has no measures", stage.id);
            };
            measured.push(profile_from_measures(stage, m));
        }
        let scaled = scaled_profiles(&graph, &measured, args.factor, &planner, &params);
        let prediction = predict(&scaled, &params);
        let scanned_bytes =
            graph.stages.iter().map(|s| s.scan_bytes).sum::<u64>() as f64 * args.factor;
        let athena = scanned_bytes / 1e12 * ATHENA_USD_PER_TB;
        let tasks_here: usize = measured.iter().map(|p| p.tasks).sum();
        let busy_seconds: f64 = measured.iter().map(|p| p.cpu_ms).sum::<f64>() / 1000.0;
        println!(
            "| q{q} | {} | {tasks_here} | {busy_seconds:.1} | {} | {} | {:.1} | {} | {} |",
            graph.stages.len(),
            squall_planner::explain::human_bytes(scanned_bytes as u64),
            prediction.tasks(),
            prediction.seconds,
            dollars(prediction.usd),
            dollars(athena)
        );
        total_usd += prediction.usd;
        total_seconds += prediction.seconds;
        total_athena += athena;
    }
    println!(
        "| all 22 | | | | | | {total_seconds:.1} | {} | {} |",
        dollars(total_usd),
        dollars(total_athena)
    );
    Ok(())
}
