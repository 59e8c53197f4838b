//! Tasks run under a memory limit: with a small one, operators spill to
//! disk and the answer is unchanged; with an impossible one, the query fails
//! at once with one line saying which flag to change; tasks are planned for
//! the memory their workers have when that is less than the limit (a
//! Lambda function's share of its memory).

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{assert_same_rows, reference_rows, squall_session_with, tpch_data, tpch_query};
use squall_jobs::{Backend, LocalBackend, SessionOptions, WorkerReach};
use squall_worker::{TaskKey, TaskLimits, TaskReport};

/// The local backend, keeping every report.
#[derive(Debug)]
struct Recording {
    inner: LocalBackend,
    reports: Mutex<Vec<TaskReport>>,
    /// What the backend says its workers' memory is.
    worker_memory_bytes: Option<u64>,
}

#[async_trait]
impl Backend for Recording {
    fn name(&self) -> &str {
        "recording"
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

    fn worker_memory_bytes(&self) -> Option<u64> {
        self.worker_memory_bytes
    }

    async fn invoke(&self, spec: Vec<u8>) -> Result<Vec<u8>, String> {
        let report = self.inner.invoke(spec).await?;
        if let Ok(parsed) = TaskReport::from_bytes(&report) {
            self.reports.lock().unwrap().push(parsed);
        }
        Ok(report)
    }
}

async fn run_q18(
    memory_bytes: u64,
) -> (
    Arc<Recording>,
    Result<Vec<datafusion::arrow::record_batch::RecordBatch>, squall_jobs::JobError>,
) {
    let backend = Arc::new(Recording {
        inner: LocalBackend::new(2),
        reports: Mutex::new(Vec::new()),
        worker_memory_bytes: None,
    });
    let session = squall_session_with(
        tpch_data().await,
        SessionOptions {
            backend: Arc::clone(&backend) as Arc<dyn Backend>,
            limits: TaskLimits {
                memory_bytes,
                ..TaskLimits::default()
            },
            ..SessionOptions::default()
        },
    )
    .await;
    let result = match session.query(&tpch_query(18)).await {
        Ok(stream) => stream.collect().await,
        Err(e) => Err(e),
    };
    (backend, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_memory_limit_spills_and_keeps_the_answer() {
    let (backend, result) = run_q18(1 << 20).await;
    let actual = result.unwrap_or_else(|e| panic!("Q18 under 1 MiB per task: {e}"));
    let expected = reference_rows(tpch_data().await, &tpch_query(18)).await;
    assert_same_rows(&expected, &actual).unwrap();
    let reports = backend.reports.lock().unwrap();
    let spilled: u64 = reports.iter().map(|r| r.spilled_bytes).sum();
    assert!(spilled > 0, "nothing spilled under 1 MiB");
    for report in reports.iter() {
        assert_eq!(report.memory_limit_bytes, 1 << 20);
        assert!(report.peak_memory_bytes <= 1 << 20, "{report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_memory_limit_fails_at_once_saying_what_to_change() {
    let (backend, result) = run_q18(4 << 10).await;
    let err = result
        .expect_err("4 KiB per task cannot run Q18")
        .to_string();
    assert!(
        err.contains(
            "ran out of memory (limit 4.0 KiB): raise --task-memory or lower --target-task-bytes"
        ),
        "{err}"
    );
    assert!(err.starts_with("stage ") && err.contains(" task "), "{err}");
    assert!(!err.contains('\n'), "{err}");
    // Not retried: another attempt would get the same limit.
    let reports = backend.reports.lock().unwrap();
    let failed: Vec<_> = reports.iter().filter(|r| r.failure().is_some()).collect();
    assert!(!failed.is_empty());
    assert!(
        failed.iter().all(|r| r.attempt == 0),
        "a failed task was retried"
    );
}

/// The tasks of the first stage of a scan of lineitem on a backend whose
/// workers have `worker_memory_bytes`.
async fn scan_tasks(worker_memory_bytes: Option<u64>) -> usize {
    let backend = Arc::new(Recording {
        inner: LocalBackend::new(2),
        reports: Mutex::new(Vec::new()),
        worker_memory_bytes,
    });
    // The default target of 128 MiB per task, not the tests' small one.
    let session = squall_jobs::Session::try_new(SessionOptions {
        backend: Arc::clone(&backend) as Arc<dyn Backend>,
        limits: TaskLimits {
            memory_bytes: 4 << 30,
            ..TaskLimits::default()
        },
        ..SessionOptions::default()
    })
    .unwrap();
    let lineitem = tpch_data().await.root.join("lineitem");
    session
        .register_table("lineitem", lineitem.to_str().unwrap(), None)
        .await
        .unwrap();
    let sql = "SELECT l_returnflag, sum(l_quantity) FROM lineitem GROUP BY l_returnflag";
    let actual = session.query(sql).await.unwrap().collect().await.unwrap();
    let expected = reference_rows(tpch_data().await, sql).await;
    assert_same_rows(&expected, &actual).unwrap();
    let reports = backend.reports.lock().unwrap();
    let first_stage: std::collections::BTreeSet<_> = reports
        .iter()
        .filter(|r| r.stage_id == 0)
        .map(|r| r.task_index)
        .collect();
    first_stage.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_planned_for_the_memory_their_workers_have() {
    let by_limit = scan_tasks(None).await;
    // 32 MiB of worker memory: tasks of 8 MiB of input (a quarter), where
    // the 4 GiB limit alone allows the default 128 MiB.
    let by_workers = scan_tasks(Some(32 << 20)).await;
    assert!(
        by_workers > by_limit,
        "{by_workers} tasks for small workers, {by_limit} by the limit alone"
    );
}
