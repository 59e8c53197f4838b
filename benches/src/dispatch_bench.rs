//! Dispatch overhead: what the coordinator spends per task, apart from
//! what the task itself does.
//!
//! One stage of N tasks runs through the scheduler three ways: on a backend
//! that answers every spec at once with a successful report without running
//! anything (the scheduler's own cost per task: spec, signing, permits,
//! report checks, winners), on the local backend with a trivial task
//! (`SELECT 1`: dispatch plus a worker's fixed cost per task), and on the
//! process backend (plus a `squall worker` process per task). It prints
//! microseconds per task and the coordinator's peak memory growth for the
//! largest stage.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use clap::Parser;
use squall_connectors::Location;
use squall_jobs::scheduler::{QueryRun, run_query};
use squall_jobs::{Backend, LocalBackend, ProcessBackend, Session, SessionOptions, WorkerReach};
use squall_planner::StageGraph;
use squall_shuffle::codec::encode_plan;
use squall_worker::{TaskKey, TaskOutcome, TaskReport, TaskSpec};

/// Measure the coordinator's cost per task.
#[derive(Debug, Parser)]
struct Args {
    /// Task counts of the stage.
    #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
    tasks: Vec<usize>,
    /// Tasks at once.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The squall binary, for the process backend (skipped without it).
    #[arg(long)]
    squall: Option<PathBuf>,
    /// Most tasks to run on the process backend (a process each).
    #[arg(long, default_value_t = 1000)]
    process_tasks: usize,
}

/// Answers every spec at once with a successful, empty result: no task runs.
#[derive(Debug)]
struct NoopBackend {
    key: TaskKey,
    workers: usize,
}

#[async_trait]
impl Backend for NoopBackend {
    fn name(&self) -> &str {
        "noop"
    }
    fn task_key(&self) -> &TaskKey {
        &self.key
    }
    fn reach(&self) -> WorkerReach {
        WorkerReach::ThisProcess
    }
    fn max_concurrency(&self) -> usize {
        self.workers
    }
    async fn invoke(&self, signed: Vec<u8>) -> Result<Vec<u8>, String> {
        let payload = self.key.open(&signed).map_err(|e| e.to_string())?;
        let spec = TaskSpec::from_bytes(&payload).map_err(|e| e.to_string())?;
        let mut report = TaskReport::new(
            &spec.query_id,
            spec.stage_id,
            spec.task_index,
            spec.attempt,
            &spec.output_url,
        );
        report.outcome = TaskOutcome::Result { rows: 0, bytes: 0 };
        Ok(report.to_bytes())
    }
}

/// `SELECT 1` as one final stage of `tasks` tasks.
async fn stage_of(tasks: usize) -> Result<(StageGraph, Vec<u8>)> {
    let session = Session::try_new(SessionOptions::default())?;
    let mut graph = session.plan_stages("SELECT 1 AS one").await?;
    let stage = graph.stages.last_mut().context("a final stage")?;
    stage.task_count = tasks;
    let fragment = encode_plan(Arc::clone(&stage.plan))?;
    Ok((graph, fragment))
}

/// Runs the stage on `backend`; returns the wall time.
async fn run(backend: Arc<dyn Backend>, tasks: usize) -> Result<Duration> {
    let (graph, fragment) = stage_of(tasks).await?;
    let scratch_dir = tempfile::tempdir()?;
    let scratch = Location::parse(scratch_dir.path().to_str().context("utf-8 path")?)?.as_prefix();
    let run = QueryRun {
        query_id: format!("q-{:032x}", tasks),
        graph: Arc::new(graph),
        fragments: Arc::new(vec![fragment]),
        scratch,
        backend,
        limits: Default::default(),
        stage_workers: None,
        progress: None,
        settings: Default::default(),
        task_attempts: 1,
        task_timeout: None,
        speculation: None,
        requests: Default::default(),
        winners: Default::default(),
        pace: Default::default(),
        max_result_bytes: None,
        invocations: Default::default(),
        adaptive: None,
        operator_metrics: false,
        staged_sinks: None,
        pending_commits: Default::default(),
    };
    let (parts, mut received) = tokio::sync::mpsc::channel(16);
    let drain = tokio::spawn(async move {
        let mut n = 0usize;
        while received.recv().await.is_some() {
            n += 1;
        }
        n
    });
    let started = Instant::now();
    run_query(run, parts).await?;
    let wall = started.elapsed();
    let delivered = drain.await?;
    anyhow::ensure!(delivered == tasks, "{delivered} parts for {tasks} tasks");
    Ok(wall)
}

/// The process's peak resident memory so far (Linux), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn per_task_us(wall: Duration, tasks: usize) -> f64 {
    wall.as_secs_f64() * 1e6 / tasks.max(1) as f64
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!("| backend | tasks | wall (s) | per task (µs) |");
    println!("|---|---|---|---|");
    let largest = args.tasks.iter().copied().max().unwrap_or(0);
    let mut memory_growth = None;
    for &tasks in &args.tasks {
        let noop = Arc::new(NoopBackend {
            key: TaskKey::generate(),
            workers: args.workers,
        });
        let before = peak_rss_bytes();
        let wall = run(noop, tasks).await?;
        if tasks == largest {
            memory_growth = before
                .zip(peak_rss_bytes())
                .map(|(b, a)| a.saturating_sub(b));
        }
        println!(
            "| scheduler only (no-op backend) | {tasks} | {:.2} | {:.1} |",
            wall.as_secs_f64(),
            per_task_us(wall, tasks)
        );
        let wall = run(Arc::new(LocalBackend::new(args.workers)), tasks).await?;
        println!(
            "| local, `SELECT 1` per task | {tasks} | {:.2} | {:.1} |",
            wall.as_secs_f64(),
            per_task_us(wall, tasks)
        );
        if let Some(squall) = &args.squall
            && tasks <= args.process_tasks
        {
            let backend = ProcessBackend::new(squall, vec!["worker".into()], args.workers);
            let wall = run(Arc::new(backend), tasks).await?;
            println!(
                "| process, `SELECT 1` per task | {tasks} | {:.2} | {:.1} |",
                wall.as_secs_f64(),
                per_task_us(wall, tasks)
            );
        }
    }
    if let Some(growth) = memory_growth {
        println!(
            "\ncoordinator peak memory growth while scheduling {largest} tasks: {:.1} MiB",
            growth as f64 / (1024.0 * 1024.0)
        );
    }
    Ok(())
}
