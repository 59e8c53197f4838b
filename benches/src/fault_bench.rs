//! TPC-H under injected stragglers and object-store faults, with and without
//! Squall's defences (speculative attempts and hedged requests), against the
//! same queries without faults; alternating per query in one run. Prints a
//! Markdown table of per-query medians and each setting's ratio to the
//! fault-free run, for docs/benchmarks.md.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use squall_connectors::tpch::{TPCH_TABLES, default_parts, generate_tpch};
use squall_connectors::{Location, RequestPolicy, StoreFaults};
use squall_jobs::{
    Backend, FaultyBackend, LocalBackend, Session, SessionOptions, SpeculationPolicy, TaskFaults,
};
use squall_planner::PlannerConfig;

/// Benchmark TPC-H on the local backend under injected faults.
#[derive(Debug, Parser)]
struct Args {
    /// Scale factor.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Data directory (generated when missing).
    #[arg(long, default_value = "./target/tpch-bench-data")]
    data: PathBuf,
    /// Runs per query per setting; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Tasks at once on the local backend (default: cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Input bytes per task.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    target_task_bytes: u64,
    /// Task faults of the faulty settings.
    #[arg(long, default_value = "slow=0.03,slow-ms=10000,crash=0.02,seed=7")]
    task_faults: TaskFaults,
    /// Object-store faults of the faulty settings.
    #[arg(long, default_value = "fail=0.05,delay=0.01,delay-ms=3000,seed=7")]
    store_faults: StoreFaults,
    /// Only these queries (default: all 22).
    #[arg(long, value_delimiter = ',')]
    queries: Vec<usize>,
}

/// One way of running the queries.
struct Setting {
    name: &'static str,
    session: Session,
}

async fn session(
    args: &Args,
    data: &std::path::Path,
    faults: bool,
    defences: bool,
) -> Result<Session> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(args.workers.unwrap_or(cores)));
    let mut requests = RequestPolicy::default();
    if faults {
        backend = Arc::new(FaultyBackend::new(backend, args.task_faults.clone()));
        requests.faults = Some(args.store_faults.clone());
    }
    if !defences {
        requests.hedging = None;
    }
    let session = Session::try_new(SessionOptions {
        backend,
        planner: PlannerConfig {
            target_task_bytes: args.target_task_bytes,
            ..PlannerConfig::default()
        },
        speculation: defences.then(SpeculationPolicy::default),
        requests,
        ..SessionOptions::default()
    })?;
    for t in TPCH_TABLES {
        let path = data.join(t);
        session
            .register_table(t, path.to_str().context("utf-8 path")?, None)
            .await?;
    }
    Ok(session)
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
    let settings = [
        Setting {
            name: "no faults",
            session: session(&args, &data, false, true).await?,
        },
        Setting {
            name: "faults, no speculation or hedging",
            session: session(&args, &data, true, false).await?,
        },
        Setting {
            name: "faults, speculation and hedging",
            session: session(&args, &data, true, true).await?,
        },
    ];
    let queries: Vec<usize> = if args.queries.is_empty() {
        (1..=22).collect()
    } else {
        args.queries.clone()
    };
    println!(
        "| query | {} |",
        settings
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(" (s) | ")
            + " (s)"
    );
    println!("|---|{}", "---|".repeat(settings.len()));
    let mut totals = vec![Duration::ZERO; settings.len()];
    for q in queries {
        let sql = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("queries/tpch/q{q}.sql")),
        )?;
        let mut times = vec![Vec::new(); settings.len()];
        for _ in 0..args.runs.max(1) {
            for (i, setting) in settings.iter().enumerate() {
                let t = Instant::now();
                setting
                    .session
                    .query(&sql)
                    .await?
                    .collect()
                    .await
                    .with_context(|| format!("q{q} ({})", setting.name))?;
                times[i].push(t.elapsed());
            }
        }
        let medians: Vec<Duration> = times.into_iter().map(median).collect();
        for (total, m) in totals.iter_mut().zip(&medians) {
            *total += *m;
        }
        println!(
            "| q{q} | {} |",
            medians
                .iter()
                .map(|m| format!("{:.3}", m.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    println!(
        "| total | {} |",
        totals
            .iter()
            .map(|t| format!("{:.3}", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!(
        "| ratio to no faults | {} |",
        totals
            .iter()
            .map(|t| format!("{:.2}", t.as_secs_f64() / totals[0].as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
