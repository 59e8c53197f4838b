//! Task retries, checked by injecting faults: a backend that crashes chosen
//! attempts (before running them, or after they ran and wrote their output,
//! which it then garbles) must still give single-node DataFusion's answer;
//! a task that keeps failing fails the query after `task_attempts`
//! attempts, naming them and the first cause; a failure no retry can fix
//! (a cast error) is not retried; a hung attempt is abandoned at the task
//! timeout and tried again; a task delivered several times, at once or
//! one after another, writes the same bytes and changes no answer; a
//! straggler gets a backup attempt that wins; a COPY publishes the files
//! of exactly one attempt, and nothing when it fails.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{
    assert_same_rows, csv_rows_below, open_spec, reference_rows, squall_session_with, tpch_data,
    tpch_query,
};
use squall_jobs::{
    Backend, JobError, LocalBackend, ProgressEvent, SessionOptions, SpeculationPolicy, WorkerReach,
};
use squall_planner::PlannerConfig;
use squall_worker::TaskKey;

/// Which attempts fail, and how.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The first attempt of every task crashes before it runs.
    CrashFirstAttempts,
    /// The first attempt of every task runs (and writes its output), then
    /// its report is lost; what it wrote is then overwritten with garbage,
    /// so that reading a loser's object would break the query.
    LoseFirstReports,
    /// Every attempt runs (and writes its output), then its report is lost.
    LoseFirstReportsAlways,
    /// Every attempt of task 0 of stage 0 crashes.
    AlwaysCrashStage0Task0,
    /// The first attempt of task 0 of stage 0 hangs (until cancelled).
    HangFirstAttemptOfStage0Task0,
    /// The first attempt of task 0 of stage 0 takes a minute.
    StraggleFirstAttemptOfStage0Task0,
    /// Every spec is delivered twice at once (as Lambda may), then once
    /// more after both finished; the third run must write the same bytes.
    DeliverThrice,
    /// Nothing fails.
    None,
}

#[derive(Debug)]
struct FaultyBackend {
    inner: LocalBackend,
    fault: Fault,
    /// Attempts invoked, by (stage, task).
    attempts: Mutex<HashMap<(u64, u64), Vec<u64>>>,
}

impl FaultyBackend {
    fn new(fault: Fault) -> Arc<Self> {
        Arc::new(Self {
            inner: LocalBackend::new(2),
            fault,
            attempts: Mutex::new(HashMap::new()),
        })
    }

    fn attempts_of(&self, stage: u64, task: u64) -> Vec<u64> {
        self.attempts
            .lock()
            .unwrap()
            .get(&(stage, task))
            .cloned()
            .unwrap_or_default()
    }

    fn retried_tasks(&self) -> usize {
        self.attempts
            .lock()
            .unwrap()
            .values()
            .filter(|a| a.len() > 1)
            .count()
    }
}

#[async_trait]
impl Backend for FaultyBackend {
    fn name(&self) -> &str {
        "faulty"
    }

    fn task_key(&self) -> &TaskKey {
        self.inner.task_key()
    }

    fn reach(&self) -> WorkerReach {
        self.inner.reach()
    }

    fn max_concurrency(&self) -> usize {
        2
    }

    async fn invoke(&self, spec: Vec<u8>) -> Result<Vec<u8>, String> {
        let json = open_spec(&self.inner, &spec);
        let (stage, task, attempt) = (
            json["stage_id"].as_u64().unwrap(),
            json["task_index"].as_u64().unwrap(),
            json["attempt"].as_u64().unwrap(),
        );
        let output_url = json["output_url"].as_str().unwrap().to_string();
        self.attempts
            .lock()
            .unwrap()
            .entry((stage, task))
            .or_default()
            .push(attempt);
        match self.fault {
            Fault::CrashFirstAttempts if attempt == 0 => Err("injected crash".into()),
            Fault::AlwaysCrashStage0Task0 if stage == 0 && task == 0 => {
                Err(format!("injected crash of attempt {attempt}"))
            }
            Fault::HangFirstAttemptOfStage0Task0 if stage == 0 && task == 0 && attempt == 0 => {
                std::future::pending::<()>().await;
                unreachable!("a pending future never completes")
            }
            Fault::DeliverThrice => {
                let (a, b) = tokio::join!(
                    self.inner.invoke(spec.clone()),
                    self.inner.invoke(spec.clone())
                );
                let (a, b) = (a?, b?);
                let path = output_url.strip_prefix("file://").unwrap().to_string();
                let written = std::fs::read(&path).unwrap();
                let c = self.inner.invoke(spec).await?;
                assert_eq!(
                    std::fs::read(&path).unwrap(),
                    written,
                    "a repeated delivery wrote other bytes to {path}"
                );
                for report in [&a, &b, &c] {
                    let r: serde_json::Value = serde_json::from_slice(report).unwrap();
                    let status = r["outcome"]["status"].as_str();
                    assert!(matches!(status, Some("exchange" | "result")), "{r}");
                }
                Ok(a)
            }
            Fault::StraggleFirstAttemptOfStage0Task0 if stage == 0 && task == 0 && attempt == 0 => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                self.inner.invoke(spec).await
            }
            Fault::LoseFirstReports if attempt == 0 => {
                let _report = self.inner.invoke(spec).await?;
                let path = output_url.strip_prefix("file://").unwrap();
                std::fs::write(path, b"garbage written by a losing attempt").unwrap();
                Err("injected: the report was lost".into())
            }
            Fault::LoseFirstReportsAlways => {
                let _report = self.inner.invoke(spec).await?;
                Err("injected: the report was lost".into())
            }
            _ => self.inner.invoke(spec).await,
        }
    }
}

async fn session_on(backend: Arc<FaultyBackend>, task_attempts: u32) -> squall_jobs::Session {
    squall_session_with(
        tpch_data().await,
        SessionOptions {
            backend,
            task_attempts,
            // Generous for a loaded 2-core machine: only a hung task exceeds it.
            task_timeout: Some(Duration::from_secs(20)),
            ..SessionOptions::default()
        },
    )
    .await
}

/// Q3 on `fault`: the answer must be DataFusion's.
async fn q3_survives(fault: Fault) -> Arc<FaultyBackend> {
    let backend = FaultyBackend::new(fault);
    let session = session_on(Arc::clone(&backend), 4).await;
    let sql = tpch_query(3);
    let actual = session
        .query(&sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("Q3 failed despite retries: {e}"));
    let expected = reference_rows(tpch_data().await, &sql).await;
    assert_same_rows(&expected, &actual).unwrap();
    backend
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_attempts_are_retried_and_the_answer_is_unchanged() {
    let backend = q3_survives(Fault::CrashFirstAttempts).await;
    assert!(backend.retried_tasks() >= 3, "every task was retried");
    assert_eq!(backend.attempts_of(0, 0), vec![0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_losing_attempt_wrote_is_read() {
    let backend = q3_survives(Fault::LoseFirstReports).await;
    assert!(backend.retried_tasks() >= 3, "every task was retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_keeps_failing_fails_the_query_after_its_attempts() {
    let backend = FaultyBackend::new(Fault::AlwaysCrashStage0Task0);
    let session = session_on(Arc::clone(&backend), 3).await;
    let err = match session.query(&tpch_query(3)).await {
        Ok(stream) => stream
            .collect()
            .await
            .expect_err("task 0 of stage 0 never runs"),
        Err(e) => e,
    };
    assert!(
        matches!(
            err,
            JobError::Backend {
                stage: 0,
                task: 0,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("after 3 attempts"), "{text}");
    assert!(
        text.contains("first: injected crash of attempt 0"),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    assert_eq!(backend.attempts_of(0, 0), vec![0, 1, 2]);
}

/// Every file below `dir`, relative, sorted.
fn files_below(dir: &std::path::Path) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A COPY whose attempts crash, lose their reports after writing, or are
/// delivered three times publishes exactly one attempt's files, then
/// `_SUCCESS`, and leaves no staging behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_publishes_only_the_winning_attempts_files() {
    let sql = "SELECT n_nationkey, n_name FROM nation";
    let expected = reference_rows(tpch_data().await, sql).await;
    for fault in [
        Fault::CrashFirstAttempts,
        Fault::LoseFirstReports,
        Fault::DeliverThrice,
    ] {
        let backend = FaultyBackend::new(fault);
        let session = session_on(Arc::clone(&backend), 4).await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let copy = format!("COPY ({sql}) TO '{}/' STORED AS CSV", out.display());
        let counts = session
            .query(&copy)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(counts[0].num_rows(), 1, "{fault:?}: one count row");
        let files = files_below(&out);
        assert!(
            files.contains(&"_SUCCESS".to_string()),
            "{fault:?}: {files:?}"
        );
        assert!(
            files.iter().all(|f| !f.starts_with("_squall_staging")),
            "{fault:?}: staging left behind: {files:?}"
        );
        assert_same_rows(&expected, &csv_rows_below(&out).await)
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        if !matches!(fault, Fault::DeliverThrice) {
            assert!(
                backend.retried_tasks() >= 1,
                "{fault:?}: the COPY was retried"
            );
        }
    }
}

/// A COPY that fails leaves its destination as it was: no file appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_leaves_nothing_at_its_destination() {
    let backend = FaultyBackend::new(Fault::LoseFirstReportsAlways);
    let session = session_on(Arc::clone(&backend), 3).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let copy = format!(
        "COPY (SELECT n_name FROM nation) TO '{}/' STORED AS CSV",
        out.display()
    );
    let err = match session.query(&copy).await {
        Ok(stream) => stream.collect().await.expect_err("every report is lost"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
    // Three attempts ran and wrote their files; none was published, and
    // the staging went with the query.
    assert_eq!(files_below(&out), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_no_retry_can_fix_is_not_retried() {
    let backend = FaultyBackend::new(Fault::None);
    let session = session_on(Arc::clone(&backend), 4).await;
    let err = match session
        .query("SELECT CAST(l_comment AS INT) FROM lineitem")
        .await
    {
        Ok(stream) => stream.collect().await.expect_err("a cast error"),
        Err(e) => e,
    };
    assert!(matches!(err, JobError::TaskFailed { .. }), "{err}");
    assert!(err.to_string().contains("Cast error"), "{err}");
    assert!(!err.to_string().contains("attempts"), "{err}");
    assert_eq!(
        backend.retried_tasks(),
        0,
        "a cast error is the query's fault"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_attempt_is_abandoned_at_the_task_timeout_and_retried() {
    let backend = q3_survives(Fault::HangFirstAttemptOfStage0Task0).await;
    assert_eq!(backend.attempts_of(0, 0), vec![0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_delivered_several_times_changes_nothing() {
    let backend = q3_survives(Fault::DeliverThrice).await;
    assert_eq!(backend.retried_tasks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_straggler_gets_a_backup_attempt_that_wins() {
    let backend = FaultyBackend::new(Fault::StraggleFirstAttemptOfStage0Task0);
    let events = Arc::new(Mutex::new((0usize, 0usize)));
    let seen = Arc::clone(&events);
    let session = squall_session_with(
        tpch_data().await,
        SessionOptions {
            backend: Arc::clone(&backend) as Arc<dyn Backend>,
            // Small tasks: the first stage has several, so most can finish.
            planner: PlannerConfig {
                target_task_bytes: 256 * 1024,
                ..PlannerConfig::default()
            },
            // Half the stage finished (stage 0 may have two tasks).
            speculation: Some(SpeculationPolicy {
                min_finished_fraction: 0.5,
                floor: Duration::from_millis(200),
                ..SpeculationPolicy::default()
            }),
            task_timeout: Some(Duration::from_secs(45)),
            progress: Some(Arc::new(move |event| {
                let mut seen = seen.lock().unwrap();
                match event {
                    ProgressEvent::TaskSpeculated { .. } => seen.0 += 1,
                    ProgressEvent::SpeculationWon { .. } => seen.1 += 1,
                    _ => {}
                }
            })),
            ..SessionOptions::default()
        },
    )
    .await;
    let sql = tpch_query(3);
    let started = std::time::Instant::now();
    let actual = session.query(&sql).await.unwrap().collect().await.unwrap();
    let took = started.elapsed();
    let expected = reference_rows(tpch_data().await, &sql).await;
    assert_same_rows(&expected, &actual).unwrap();
    assert!(
        !backend.attempts_of(0, 1).is_empty(),
        "stage 0 needs several tasks for this test"
    );
    assert_eq!(backend.attempts_of(0, 0), vec![0, 1]);
    let (speculated, won) = *events.lock().unwrap();
    assert!(
        speculated >= 1 && won >= 1,
        "{speculated} backups, {won} won"
    );
    assert!(
        took < Duration::from_secs(40),
        "the backup, not the straggler or the timeout, finished the task: {took:?}"
    );
}
