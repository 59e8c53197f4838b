//! Concurrency caps: `--workers` bounds the tasks of a query running at once,
//! `--stage-workers` those of one stage, and a launcher group is told how many
//! of its tasks it may keep in flight. Checked by a backend that counts the
//! tasks it is running, per stage and in all.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{open_spec, squall_session_with, tpch_data};
use squall_jobs::group_speculation::{GroupBackups, LaunchedTask, run_group};
use squall_jobs::{Backend, LocalBackend, SessionOptions, WorkerReach};
use squall_worker::TaskKey;

/// Runs tasks on a [`LocalBackend`], holding each a little longer so that
/// concurrent tasks overlap, and records the most seen in flight.
#[derive(Debug)]
struct CountingBackend {
    inner: LocalBackend,
    workers: usize,
    launcher_threshold: Option<usize>,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    in_flight: usize,
    max_in_flight: usize,
    stage_in_flight: HashMap<u64, usize>,
    max_stage_in_flight: usize,
    max_group_in_flight: usize,
}

impl CountingBackend {
    fn new(workers: usize, launcher_threshold: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            inner: LocalBackend::new(workers),
            workers,
            launcher_threshold,
            seen: Mutex::new(Seen::default()),
        })
    }

    fn seen(&self) -> (usize, usize, usize) {
        let seen = self.seen.lock().unwrap();
        (
            seen.max_in_flight,
            seen.max_stage_in_flight,
            seen.max_group_in_flight,
        )
    }
}

#[async_trait]
impl Backend for CountingBackend {
    fn name(&self) -> &str {
        "counting"
    }

    fn task_key(&self) -> &TaskKey {
        self.inner.task_key()
    }

    fn reach(&self) -> WorkerReach {
        self.inner.reach()
    }

    fn max_concurrency(&self) -> usize {
        self.workers
    }

    fn launcher_threshold(&self) -> Option<usize> {
        self.launcher_threshold
    }

    async fn invoke_group(
        &self,
        specs: Vec<Vec<u8>>,
        in_flight: usize,
        backups: Option<GroupBackups>,
    ) -> Result<Vec<LaunchedTask>, String> {
        {
            let mut seen = self.seen.lock().unwrap();
            seen.max_group_in_flight = seen.max_group_in_flight.max(in_flight);
        }
        let backups = backups.as_ref().map(|b| (b, self.task_key()));
        Ok(run_group(specs, in_flight, backups, |s| self.invoke(s)).await)
    }

    async fn invoke(&self, spec: Vec<u8>) -> Result<Vec<u8>, String> {
        let stage = open_spec(&self.inner, &spec)["stage_id"].as_u64().unwrap();
        {
            let mut seen = self.seen.lock().unwrap();
            seen.in_flight += 1;
            seen.max_in_flight = seen.max_in_flight.max(seen.in_flight);
            let in_stage = seen.stage_in_flight.entry(stage).or_default();
            *in_stage += 1;
            let in_stage = *in_stage;
            seen.max_stage_in_flight = seen.max_stage_in_flight.max(in_stage);
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        let report = self.inner.invoke(spec).await;
        let mut seen = self.seen.lock().unwrap();
        seen.in_flight -= 1;
        *seen.stage_in_flight.get_mut(&stage).unwrap() -= 1;
        report
    }
}

/// Q3's scans of lineitem and orders have several tasks each and run side by side.
async fn run_q3(backend: Arc<CountingBackend>, stage_workers: Option<usize>) {
    let data = tpch_data().await;
    let session = squall_session_with(
        data,
        SessionOptions {
            backend,
            stage_workers,
            ..SessionOptions::default()
        },
    )
    .await;
    let rows = session
        .query(&common::tpch_query(3))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(!rows.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_stage_cap_a_stage_uses_all_workers() {
    let backend = CountingBackend::new(4, None);
    run_q3(Arc::clone(&backend), None).await;
    let (max_in_flight, max_stage_in_flight, _) = backend.seen();
    assert!(max_in_flight <= 4, "query cap broken: {max_in_flight}");
    assert!(
        max_stage_in_flight > 1,
        "tasks of a stage should overlap: {max_stage_in_flight}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stage_cap_bounds_each_stage_and_the_query_cap_all() {
    let backend = CountingBackend::new(4, None);
    run_q3(Arc::clone(&backend), Some(1)).await;
    let (max_in_flight, max_stage_in_flight, _) = backend.seen();
    assert_eq!(max_stage_in_flight, 1);
    assert!(max_in_flight <= 4, "query cap broken: {max_in_flight}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launcher_groups_count_every_task_they_keep_in_flight() {
    // Stages of up to 8 tasks in groups of 4 or more; the query allows 3 at once.
    let backend = CountingBackend::new(3, Some(2));
    run_q3(Arc::clone(&backend), None).await;
    let (max_in_flight, _, max_group_in_flight) = backend.seen();
    assert_eq!(max_group_in_flight, 3, "a group runs as many as it may");
    assert!(max_in_flight <= 3, "query cap broken: {max_in_flight}");
}
