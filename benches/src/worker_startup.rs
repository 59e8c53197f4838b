//! Cold start of `squall worker`: how long from spawning the process to its
//! report, for a trivial task, against the time the task itself reports.
//! The difference is process start, runtime start-up and exit.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use squall_connectors::Location;
use squall_jobs::specs::{StageTemplate, stage_object_stores, task_spec};
use squall_jobs::{Session, SessionOptions};
use squall_shuffle::codec::encode_plan;
use squall_worker::{FragmentRef, TASK_KEY_ENV, TaskKey, TaskLimits, TaskReport};

/// Measure `squall worker` start-up.
#[derive(Debug, Parser)]
struct Args {
    /// The squall binary to measure.
    #[arg(long)]
    squall: PathBuf,
    /// Spawns to time; the median is reported.
    #[arg(long, default_value_t = 30)]
    runs: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let session = Session::try_new(SessionOptions::default())?;
    let graph = session.plan_stages("SELECT 1 AS one").await?;
    let stage = graph.final_stage();
    let scratch_dir = tempfile::tempdir()?;
    let scratch = Location::parse(scratch_dir.path().to_str().context("utf-8 path")?)?.as_prefix();
    let template = StageTemplate {
        query_id: "startup".into(),
        stage_id: stage.id,
        fragment: FragmentRef::Inline {
            bytes: encode_plan(Arc::clone(&stage.plan))?,
        },
        object_stores: stage_object_stores(stage, &scratch),
        limits: TaskLimits::default(),
        scratch: scratch.clone(),
        is_final: stage.is_final,
        settings: Default::default(),
        sink: None,
        requests: Default::default(),
        operator_metrics: false,
    };
    // Workers run only specs signed with their key, as a coordinator signs them.
    let key = TaskKey::generate();
    let mut walls = Vec::new();
    let mut inside = Vec::new();
    for attempt in 0..args.runs.max(1) as u32 {
        let spec =
            key.sign(&task_spec(stage, &template, &Default::default(), 0, attempt).to_bytes());
        let started = Instant::now();
        let mut child = Command::new(&args.squall)
            .arg("worker")
            .env(TASK_KEY_ENV, key.expose_secret())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", args.squall.display()))?;
        child.stdin.take().context("stdin")?.write_all(&spec)?;
        let out = child.wait_with_output()?;
        walls.push(started.elapsed());
        let report = TaskReport::from_bytes(&out.stdout)?;
        if let Some(f) = report.failure() {
            bail!("the task failed: {f}");
        }
        inside.push(Duration::from_millis(report.decode_ms + report.execute_ms));
    }
    let (wall, task) = (median(walls), median(inside));
    println!("| measure | median (ms) |");
    println!("|---|---|");
    println!(
        "| spawn to report, `squall worker`, trivial task | {:.1} |",
        wall.as_secs_f64() * 1e3
    );
    println!(
        "| of which the task itself (decode + execute) | {:.1} |",
        task.as_secs_f64() * 1e3
    );
    println!(
        "| start-up and exit overhead | {:.1} |",
        (wall.saturating_sub(task)).as_secs_f64() * 1e3
    );
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
