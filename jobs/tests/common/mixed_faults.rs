//! All 22 TPC-H queries at scale 0.1 under every kind of fault at once, on
//! any backend: the proof shared by the local and process backend tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use squall_connectors::{RequestPolicy, StoreFaults};
use squall_jobs::{Backend, FaultyBackend, ProgressEvent, SessionOptions, TaskFaults};
use squall_worker::RequestCounts;

use super::{squall_session_with, tpch_data, tpch_differences};

/// Of all task attempts, 5% crash before they run, 5% are delivered twice at
/// once (as Lambda may), 2% hang until the task timeout abandons them, and
/// 2% find their first exchange input deleted just before they read it.
pub fn task_faults(seed: u64) -> TaskFaults {
    TaskFaults {
        seed,
        crash_rate: 0.05,
        duplicate_rate: 0.05,
        hang_rate: 0.02,
        lose_input_rate: 0.02,
        ..TaskFaults::default()
    }
}

/// Of the tasks' object-store requests, 10% fail (a PUT or copy half of the
/// time after it took effect), 2% stall for 2 s, and 2% of GET bodies break
/// off half-way.
pub fn store_faults(seed: u64) -> StoreFaults {
    StoreFaults {
        seed,
        fail_rate: 0.10,
        delay_rate: 0.02,
        delay_ms: 2_000,
        truncate_rate: 0.02,
    }
}

/// Runs the 22 queries on `inner` under [`task_faults`] and [`store_faults`]
/// and asserts that every answer is single-node DataFusion's, and that every
/// kind of fault happened and was answered: retried tasks, retried and
/// hedged requests.
pub async fn assert_tpch_survives_mixed_faults(inner: Arc<dyn Backend>, seed: u64) {
    let data = tpch_data().await;
    // The coordinator's own requests (specs, results, leases, cleanup) too;
    // this test runs alone in its process.
    squall_connectors::store_builder::inject_coordinator_faults(Some(store_faults(seed)));
    let coordinator_retries_before = squall_connectors::store_builder::coordinator_retries();
    let backend = Arc::new(FaultyBackend::new(inner, task_faults(seed)));
    let requests = Arc::new(Mutex::new(RequestCounts::default()));
    let retried_tasks = Arc::new(Mutex::new(0usize));
    let listener = {
        let (requests, retried_tasks) = (Arc::clone(&requests), Arc::clone(&retried_tasks));
        Arc::new(move |event: ProgressEvent| match event {
            ProgressEvent::TaskFinished { requests: r, .. } => requests.lock().unwrap().add(&r),
            ProgressEvent::TaskRetried { .. } => *retried_tasks.lock().unwrap() += 1,
            _ => {}
        })
    };
    let session = squall_session_with(
        data,
        SessionOptions {
            backend: Arc::clone(&backend) as Arc<dyn Backend>,
            // A task fault hits an attempt with 14% chance, and a request
            // failing all four of its sends (10^-4 each, a few dozen
            // requests per attempt) fails one too: with eight attempts, a
            // task that fails them all is a one-in-five-million event, and
            // a run of about a thousand tasks fails about once in 5,000.
            task_attempts: 8,
            // Healthy tasks at this scale take well under a second; a
            // stalled request (2 s) that is not hedged stays within it.
            task_timeout: Some(Duration::from_secs(8)),
            requests: RequestPolicy {
                faults: Some(store_faults(seed)),
                ..RequestPolicy::default()
            },
            progress: Some(listener),
            ..SessionOptions::default()
        },
    )
    .await;
    let failures = tpch_differences(&session, data).await;
    let injected = backend.injected();
    let requests = requests.lock().unwrap().clone();
    let retried_tasks = *retried_tasks.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} queries differ under faults {injected:?}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for fault in ["crash", "duplicate", "hang", "lost input"] {
        assert!(
            injected.get(fault).copied().unwrap_or(0) > 0,
            "no {fault} was injected: {injected:?}"
        );
    }
    assert!(retried_tasks > 0, "no task was retried");
    // Winning attempts alone made these; they still met failed, broken and
    // stalled requests and got past them.
    assert!(requests.retried > 0, "no request was retried: {requests:?}");
    assert!(requests.hedged > 0, "no request was hedged: {requests:?}");
    assert!(
        requests.hedges_won > 0,
        "no hedge answered first: {requests:?}"
    );
    let coordinator_retries =
        squall_connectors::store_builder::coordinator_retries() - coordinator_retries_before;
    assert!(
        coordinator_retries > 0,
        "no request of the coordinator was retried"
    );
    squall_connectors::store_builder::inject_coordinator_faults(None);
}
