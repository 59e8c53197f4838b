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
    assert_same_rows, csv_rows_below, first_exchange_input, open_spec, reference_rows,
    squall_session_with, tpch_data, tpch_query,
};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::DataType;
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
    /// The first attempt of task 0 of stage 0 crashes, and its retry
    /// (attempt 1) takes a minute.
    CrashThenStraggleStage0Task0,
    /// The first attempt of every task of the final stage (the one writing
    /// result objects) takes a minute.
    StraggleFirstAttemptsOfFinalStage,
    /// The first attempt of every task of the final stage runs, then its
    /// result part lands five seconds late (a slow upload).
    LateWriteOfFirstAttemptsOfFinalStage,
    /// The first attempt of every task of the final stage runs, then takes a
    /// minute; when it is dropped (a backup won), a write it had "sent"
    /// lands a second later, as a PUT already on the wire does.
    WriteLandingAfterDropOfFirstAttemptsOfFinalStage,
    /// Every spec is delivered twice at once (as Lambda may), then once
    /// more after both finished; the third run must write the same bytes.
    DeliverThrice,
    /// The first exchange object a reader is about to read is deleted.
    DeleteFirstExchangeInput,
    /// The first exchange object a reader is about to read gets its bytes
    /// flipped (same length: only the CRC-32 tells).
    CorruptFirstExchangeInput,
    /// Every reader's first exchange object is deleted before it reads it.
    AlwaysDeleteExchangeInputs,
    /// The final stage's first attempt loses its first exchange input, and
    /// so does the first re-run of the producer that wrote it.
    DeleteInputOfFinalStageAndOfTheReRun,
    /// Nothing fails.
    None,
}

/// The local backend with one targeted [`Fault`], recording every attempt
/// (`squall_jobs::FaultyBackend` injects faults at random rates instead).
#[derive(Debug)]
struct OneFaultBackend {
    inner: LocalBackend,
    fault: Fault,
    /// Attempts invoked, by (stage, task).
    attempts: Mutex<HashMap<(u64, u64), Vec<u64>>>,
    /// Whether a one-time fault was injected already.
    injected: std::sync::atomic::AtomicBool,
    /// Stages of more tasks than this run through launcher groups.
    launcher_threshold: Option<usize>,
}

impl OneFaultBackend {
    fn new(fault: Fault) -> Arc<Self> {
        Arc::new(Self {
            inner: LocalBackend::new(2),
            fault,
            attempts: Mutex::new(HashMap::new()),
            injected: Default::default(),
            launcher_threshold: None,
        })
    }

    /// [`OneFaultBackend::new`] running stages of more than one task
    /// through one launcher group each.
    fn with_launcher_groups(fault: Fault) -> Arc<Self> {
        let mut backend = Arc::try_unwrap(Self::new(fault)).unwrap();
        backend.launcher_threshold = Some(1);
        Arc::new(backend)
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
impl Backend for OneFaultBackend {
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

    fn launcher_threshold(&self) -> Option<usize> {
        self.launcher_threshold
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
            Fault::CrashThenStraggleStage0Task0 if stage == 0 && task == 0 && attempt == 0 => {
                Err("injected crash".into())
            }
            Fault::CrashThenStraggleStage0Task0 if stage == 0 && task == 0 && attempt == 1 => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                self.inner.invoke(spec).await
            }
            Fault::StraggleFirstAttemptOfStage0Task0 if stage == 0 && task == 0 && attempt == 0 => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                self.inner.invoke(spec).await
            }
            Fault::StraggleFirstAttemptsOfFinalStage
                if attempt == 0 && output_url.ends_with(".arrows") =>
            {
                tokio::time::sleep(Duration::from_secs(60)).await;
                self.inner.invoke(spec).await
            }
            Fault::LateWriteOfFirstAttemptsOfFinalStage
                if attempt == 0 && output_url.ends_with(".arrows") =>
            {
                let report = self.inner.invoke(spec).await;
                let path = output_url.strip_prefix("file://").unwrap().to_string();
                let written = std::fs::read(&path).unwrap();
                std::fs::remove_file(&path).unwrap();
                tokio::time::sleep(Duration::from_secs(5)).await;
                std::fs::create_dir_all(std::path::Path::new(&path).parent().unwrap()).unwrap();
                std::fs::write(&path, written).unwrap();
                report
            }
            Fault::WriteLandingAfterDropOfFirstAttemptsOfFinalStage
                if attempt == 0 && output_url.ends_with(".arrows") =>
            {
                let report = self.inner.invoke(spec).await;
                let path = std::path::PathBuf::from(output_url.strip_prefix("file://").unwrap());
                let bytes = std::fs::read(&path).unwrap();
                std::fs::remove_file(&path).unwrap();
                let _in_flight = LandsWhenDropped(Some((path, bytes)));
                tokio::time::sleep(Duration::from_secs(60)).await;
                report
            }
            Fault::LoseFirstReports if attempt == 0 => {
                let _report = self.inner.invoke(spec).await?;
                let path = output_url.strip_prefix("file://").unwrap();
                std::fs::write(path, b"garbage written by a losing attempt").unwrap();
                Err("injected: the report was lost".into())
            }
            Fault::DeleteInputOfFinalStageAndOfTheReRun
                if first_exchange_input(&json).is_some()
                    && ((attempt == 0 && output_url.ends_with(".arrows"))
                        || (attempt == RERUN_ATTEMPT_BASE
                            && !self
                                .injected
                                .swap(true, std::sync::atomic::Ordering::SeqCst))) =>
            {
                let url = first_exchange_input(&json).unwrap();
                std::fs::remove_file(url.strip_prefix("file://").unwrap()).unwrap();
                self.inner.invoke(spec).await
            }
            Fault::DeleteFirstExchangeInput
            | Fault::CorruptFirstExchangeInput
            | Fault::AlwaysDeleteExchangeInputs
                if first_exchange_input(&json).is_some() =>
            {
                let always = matches!(self.fault, Fault::AlwaysDeleteExchangeInputs);
                if always
                    || !self
                        .injected
                        .swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    let url = first_exchange_input(&json).unwrap();
                    let path = url.strip_prefix("file://").unwrap().to_string();
                    if matches!(self.fault, Fault::CorruptFirstExchangeInput) {
                        let mut bytes = std::fs::read(&path).unwrap();
                        for b in bytes.iter_mut().skip(8).step_by(7) {
                            *b ^= 0x5a;
                        }
                        std::fs::write(&path, bytes).unwrap();
                    } else {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                self.inner.invoke(spec).await
            }
            Fault::LoseFirstReportsAlways => {
                let _report = self.inner.invoke(spec).await?;
                Err("injected: the report was lost".into())
            }
            _ => self.inner.invoke(spec).await,
        }
    }
}

/// A write already sent when its sender is dropped: it lands a second later.
struct LandsWhenDropped(Option<(std::path::PathBuf, Vec<u8>)>);

impl Drop for LandsWhenDropped {
    fn drop(&mut self) {
        if let Some((path, bytes)) = self.0.take() {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            });
        }
    }
}

/// Runs every invocation of its inner backend to its end even when the
/// scheduler stops waiting for it, as a Lambda invocation runs on.
#[derive(Debug)]
struct Uncancellable(Arc<OneFaultBackend>);

#[async_trait]
impl Backend for Uncancellable {
    fn name(&self) -> &str {
        "uncancellable"
    }

    fn task_key(&self) -> &TaskKey {
        self.0.task_key()
    }

    fn reach(&self) -> WorkerReach {
        self.0.reach()
    }

    fn max_concurrency(&self) -> usize {
        self.0.max_concurrency()
    }

    fn cancels_abandoned_invocations(&self) -> bool {
        false
    }

    async fn invoke(&self, spec: Vec<u8>) -> Result<Vec<u8>, String> {
        let inner = Arc::clone(&self.0);
        tokio::spawn(async move { inner.invoke(spec).await })
            .await
            .map_err(|e| e.to_string())?
    }
}

async fn session_on(backend: Arc<OneFaultBackend>, task_attempts: u32) -> squall_jobs::Session {
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
async fn q3_survives(fault: Fault) -> Arc<OneFaultBackend> {
    let backend = OneFaultBackend::new(fault);
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
    let backend = OneFaultBackend::new(Fault::AlwaysCrashStage0Task0);
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

/// Attempts of re-run producers are numbered from 2^16.
const RERUN_ATTEMPT_BASE: u64 = 1 << 16;

/// A reader that finds its input deleted or corrupt gets it written again
/// by the producing task (one new attempt of that task alone), then reads
/// the new object; so do other readers of the same object, without another
/// re-run. The answer is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_or_corrupt_exchange_data_is_written_again_by_its_producer() {
    for fault in [
        Fault::DeleteFirstExchangeInput,
        Fault::CorruptFirstExchangeInput,
    ] {
        let backend = q3_survives(fault).await;
        let attempts = backend.attempts.lock().unwrap().clone();
        let reruns: Vec<_> = attempts
            .iter()
            .filter(|(_, a)| a.iter().any(|n| *n >= RERUN_ATTEMPT_BASE))
            .collect();
        assert_eq!(
            reruns.len(),
            1,
            "{fault:?}: one producer ran again: {attempts:?}"
        );
        let (_, rerun) = reruns[0];
        assert_eq!(rerun, &vec![0, RERUN_ATTEMPT_BASE], "{fault:?}");
        // The producer, and each reader of the lost object (not the whole query).
        let retried = attempts.values().filter(|a| a.len() > 1).count();
        assert!(
            retried >= 2 && retried < attempts.len(),
            "{fault:?}: {attempts:?}"
        );
    }
}

/// A re-run producer that finds its own input lost has that input's
/// producer run again first; the query still gives the right answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_run_that_loses_its_own_input_re_runs_that_producer_first() {
    let backend = q3_survives(Fault::DeleteInputOfFinalStageAndOfTheReRun).await;
    let attempts = backend.attempts.lock().unwrap().clone();
    let mut reruns: Vec<_> = attempts
        .iter()
        .filter(|(_, a)| a.iter().any(|n| *n >= RERUN_ATTEMPT_BASE))
        .map(|(key, a)| (*key, a.clone()))
        .collect();
    reruns.sort();
    assert_eq!(reruns.len(), 2, "two producers ran again: {attempts:?}");
    // The producer the final stage lost, twice (its first re-run lost its
    // own input), and that input's producer once, in between.
    let (earlier, later) = (&reruns[0].1, &reruns[1].1);
    assert_eq!(earlier, &vec![0, RERUN_ATTEMPT_BASE + 1], "{reruns:?}");
    assert_eq!(
        later,
        &vec![0, RERUN_ATTEMPT_BASE, RERUN_ATTEMPT_BASE + 2],
        "{reruns:?}"
    );
}

/// Data that keeps vanishing fails the query, bounded, naming the reader
/// and the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_data_that_keeps_vanishing_fails_the_query_in_bounded_time() {
    let backend = OneFaultBackend::new(Fault::AlwaysDeleteExchangeInputs);
    let session = session_on(Arc::clone(&backend), 4).await;
    let err = match session.query(&tpch_query(3)).await {
        Ok(stream) => stream.collect().await.expect_err("inputs always vanish"),
        Err(e) => e,
    };
    assert!(matches!(err, JobError::LostInput { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("exchange object"), "{text}");
    assert!(!text.contains('\n'), "{text}");
    let reruns: usize = backend
        .attempts
        .lock()
        .unwrap()
        .values()
        .flatten()
        .filter(|n| **n >= RERUN_ATTEMPT_BASE)
        .count();
    assert!(
        (1..=squall_jobs::rerun::MAX_PRODUCER_RERUNS as usize).contains(&reruns),
        "{reruns} re-runs"
    );
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
        let backend = OneFaultBackend::new(fault);
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

/// A partitioned COPY over split data is written by several tasks at once
/// (each `key=value/` folder by one of them), and still publishes exactly
/// one attempt's files of each task, all in one commit, under every fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_partitioned_copy_publishes_each_task_once() {
    let sql = "SELECT o_orderkey, o_totalprice, o_orderpriority FROM orders";
    let expected = reference_rows(tpch_data().await, sql).await;
    for fault in [
        Fault::None,
        Fault::CrashFirstAttempts,
        Fault::LoseFirstReports,
        Fault::DeliverThrice,
    ] {
        let backend = OneFaultBackend::new(fault);
        let session = session_on(Arc::clone(&backend), 4).await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let copy = format!(
            "COPY ({sql}) TO '{}/' STORED AS PARQUET PARTITIONED BY (o_orderpriority)",
            out.display()
        );
        let counts = session
            .query(&copy)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        let written: u64 = counts
            .iter()
            .map(|b| {
                datafusion::arrow::compute::cast(b.column(0), &DataType::UInt64)
                    .unwrap()
                    .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                    .value(0)
            })
            .sum();
        let expected_rows: usize = expected.iter().map(|b| b.num_rows()).sum();
        assert_eq!(written as usize, expected_rows, "{fault:?}: rows written");
        let files = files_below(&out);
        assert!(
            files.iter().all(|f| !f.starts_with("_")),
            "{fault:?}: staging or a marker beside partition folders: {files:?}"
        );
        // Each writer names its files after its own write id.
        let writers: std::collections::BTreeSet<&str> = files
            .iter()
            .filter_map(|f| f.rsplit('/').next()?.split(['_', '.']).next())
            .collect();
        assert!(
            writers.len() > 1,
            "{fault:?}: one task wrote every folder: {files:?}"
        );
        let actual = partitioned_parquet_rows(&out, "o_orderpriority", sql).await;
        assert_same_rows(&expected, &actual).unwrap_or_else(|e| panic!("{fault:?}: {e}"));
    }
}

/// `sql` over the Parquet files below `dir`, registered as `orders` with
/// `key` read from the `key=value` folders, by single-node DataFusion.
async fn partitioned_parquet_rows(
    dir: &std::path::Path,
    key: &str,
    sql: &str,
) -> Vec<datafusion::arrow::record_batch::RecordBatch> {
    let ctx = datafusion::prelude::SessionContext::new();
    let options = datafusion::prelude::ParquetReadOptions::default()
        .table_partition_cols(vec![(key.to_string(), DataType::Utf8)]);
    ctx.register_parquet("orders", format!("{}/", dir.display()), options)
        .await
        .expect("register the written files");
    ctx.sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("read the written files")
}

/// A COPY that fails leaves its destination as it was: no file appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_leaves_nothing_at_its_destination() {
    let backend = OneFaultBackend::new(Fault::LoseFirstReportsAlways);
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
    let backend = OneFaultBackend::new(Fault::None);
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

/// Q3 on `backend` with `speculation`: checks the answer; returns how long
/// it took, the backups started and the backups that won.
async fn q3_with_stragglers(
    backend: &Arc<OneFaultBackend>,
    planner: PlannerConfig,
    speculation: SpeculationPolicy,
) -> (Duration, usize, usize) {
    let events = Arc::new(Mutex::new((0usize, 0usize)));
    let seen = Arc::clone(&events);
    let session = squall_session_with(
        tpch_data().await,
        SessionOptions {
            backend: Arc::clone(backend) as Arc<dyn Backend>,
            planner,
            speculation: Some(speculation),
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
    let (speculated, won) = *events.lock().unwrap();
    (took, speculated, won)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_straggler_gets_a_backup_attempt_that_wins() {
    let backend = OneFaultBackend::new(Fault::StraggleFirstAttemptOfStage0Task0);
    let (planner, speculation) = many_small_tasks();
    let (took, speculated, won) = q3_with_stragglers(&backend, planner, speculation).await;
    assert!(
        !backend.attempts_of(0, 1).is_empty(),
        "stage 0 needs several tasks for this test"
    );
    assert_eq!(backend.attempts_of(0, 0), vec![0, 1]);
    assert!(
        speculated >= 1 && won >= 1,
        "{speculated} backups, {won} won"
    );
    assert!(
        took < Duration::from_secs(40),
        "the backup, not the straggler or the timeout, finished the task: {took:?}"
    );
}

/// Small tasks, so that stage 0 has several and most can finish; a backup
/// once half of them finished (stage 0 may have two tasks).
fn many_small_tasks() -> (PlannerConfig, SpeculationPolicy) {
    (
        PlannerConfig {
            target_task_bytes: 256 * 1024,
            ..PlannerConfig::default()
        },
        SpeculationPolicy {
            min_finished_fraction: 0.5,
            floor: Duration::from_millis(200),
            ..SpeculationPolicy::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_straggler_inside_a_launcher_group_gets_a_backup_that_wins() {
    let backend = OneFaultBackend::with_launcher_groups(Fault::StraggleFirstAttemptOfStage0Task0);
    let (planner, speculation) = many_small_tasks();
    let (took, speculated, won) = q3_with_stragglers(&backend, planner, speculation).await;
    assert!(
        !backend.attempts_of(0, 1).is_empty(),
        "stage 0 needs several tasks for this test"
    );
    // The launcher group's backup is the task's attempt 1.
    assert_eq!(backend.attempts_of(0, 0), vec![0, 1]);
    assert!(
        speculated >= 1 && won >= 1,
        "{speculated} backups, {won} won"
    );
    assert!(
        took < Duration::from_secs(40),
        "the backup, not the straggler or the timeout, finished the group: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_straggles_gets_a_backup_that_wins() {
    for backend in [
        OneFaultBackend::new(Fault::CrashThenStraggleStage0Task0),
        OneFaultBackend::with_launcher_groups(Fault::CrashThenStraggleStage0Task0),
    ] {
        let (planner, speculation) = many_small_tasks();
        let (took, speculated, won) = q3_with_stragglers(&backend, planner, speculation).await;
        // Attempt 0 crashed; its retry (1) straggled; the retry's backup (2) won.
        assert_eq!(backend.attempts_of(0, 0), vec![0, 1, 2]);
        assert!(
            speculated >= 1 && won >= 1,
            "{speculated} backups, {won} won"
        );
        assert!(
            took < Duration::from_secs(40),
            "the backup, not the straggling retry, finished the task: {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_straggler_alone_in_its_stage_is_backed_up_at_the_query_pace() {
    let backend = OneFaultBackend::new(Fault::StraggleFirstAttemptsOfFinalStage);
    // Q3 ends in a sort: its final stage is one task, after stages of several.
    let (took, _, won) = q3_with_stragglers(
        &backend,
        PlannerConfig::default(),
        SpeculationPolicy {
            floor: Duration::from_millis(500),
            ..SpeculationPolicy::default()
        },
    )
    .await;
    let attempts = backend.attempts.lock().unwrap().clone();
    let final_stage = attempts.keys().map(|(stage, _)| *stage).max().unwrap();
    let final_tasks: Vec<_> = attempts.keys().filter(|(s, _)| *s == final_stage).collect();
    assert_eq!(final_tasks.len(), 1, "Q3's final stage is one task");
    assert_eq!(backend.attempts_of(final_stage, 0), vec![0, 1]);
    // (Other stages may back up a task of their own on a loaded machine.)
    assert!(won >= 1, "the backup won");
    assert!(
        took < Duration::from_secs(40),
        "the backup, not the straggler or the timeout, finished the query: {took:?}"
    );
}

/// A losing attempt cancelled while a write it sent is still on its way (a
/// PUT the store applies after its sender was dropped): the query's scratch
/// is swept once more after it was deleted, and ends up empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_landing_after_its_attempt_was_dropped_does_not_outlive_its_query() {
    let faulty = OneFaultBackend::new(Fault::WriteLandingAfterDropOfFirstAttemptsOfFinalStage);
    let scratch = tempfile::tempdir().unwrap();
    let session = squall_session_with(
        tpch_data().await,
        SessionOptions {
            backend: Arc::clone(&faulty) as Arc<dyn Backend>,
            scratch: Some(scratch.path().display().to_string()),
            speculation: Some(SpeculationPolicy {
                floor: Duration::from_millis(500),
                ..SpeculationPolicy::default()
            }),
            task_timeout: Some(Duration::from_secs(45)),
            ..SessionOptions::default()
        },
    )
    .await;
    let sql = tpch_query(3);
    let actual = session.query(&sql).await.unwrap().collect().await.unwrap();
    let expected = reference_rows(tpch_data().await, &sql).await;
    assert_same_rows(&expected, &actual).unwrap();
    let attempts = faulty.attempts.lock().unwrap().clone();
    let final_stage = attempts.keys().map(|(stage, _)| *stage).max().unwrap();
    assert_eq!(
        faulty.attempts_of(final_stage, 0),
        vec![0, 1],
        "a backup ran"
    );
    // The loser's write lands a second after it was dropped.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        squall_connectors::cleanup::finish_cleanups(Duration::from_secs(30)).await,
        "the scratch was deleted in time"
    );
    let left = files_below(scratch.path());
    assert!(left.is_empty(), "left in scratch: {left:?}");
}

/// A losing attempt that cannot be cancelled (as on Lambda) writes its
/// result part after the winner's query has finished; the query's scratch
/// must still end up empty, not hold the loser's late object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_losing_attempt_that_runs_on_writes_nothing_that_outlives_its_query() {
    let faulty = OneFaultBackend::new(Fault::LateWriteOfFirstAttemptsOfFinalStage);
    let scratch = tempfile::tempdir().unwrap();
    let session = squall_session_with(
        tpch_data().await,
        SessionOptions {
            backend: Arc::new(Uncancellable(Arc::clone(&faulty))),
            scratch: Some(scratch.path().display().to_string()),
            speculation: Some(SpeculationPolicy {
                floor: Duration::from_millis(500),
                ..SpeculationPolicy::default()
            }),
            task_timeout: Some(Duration::from_secs(45)),
            ..SessionOptions::default()
        },
    )
    .await;
    let sql = tpch_query(3);
    let started = std::time::Instant::now();
    let actual = session.query(&sql).await.unwrap().collect().await.unwrap();
    let answered = started.elapsed();
    let expected = reference_rows(tpch_data().await, &sql).await;
    assert_same_rows(&expected, &actual).unwrap();
    let attempts = faulty.attempts.lock().unwrap().clone();
    let final_stage = attempts.keys().map(|(stage, _)| *stage).max().unwrap();
    assert_eq!(
        faulty.attempts_of(final_stage, 0),
        vec![0, 1],
        "a backup ran"
    );
    assert!(
        squall_connectors::cleanup::finish_cleanups(Duration::from_secs(30)).await,
        "the scratch was deleted in time"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "the cleanup waited for the loser, which writes after 5 s (answered after {answered:?})"
    );
    fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
        entries
            .flat_map(|e| match e.path().is_dir() {
                true => files_below(&e.path()),
                false => vec![e.path()],
            })
            .collect()
    }
    let left = files_below(scratch.path());
    assert!(left.is_empty(), "left in scratch: {left:?}");
}
