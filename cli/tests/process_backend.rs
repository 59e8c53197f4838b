//! The process backend: every task a fresh `squall worker` process.

#[path = "../../jobs/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use common::{squall_session_on, tpch_data, tpch_differences};
use squall_jobs::ProcessBackend;

fn worker_backend(workers: usize) -> Arc<ProcessBackend> {
    Arc::new(ProcessBackend::new(
        env!("CARGO_BIN_EXE_squall"),
        vec!["worker".into()],
        workers,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_on_worker_processes_matches_single_node_datafusion() {
    let data = tpch_data().await;
    let session = squall_session_on(data, worker_backend(4)).await;
    let failures = tpch_differences(&session, data).await;
    assert!(
        failures.is_empty(),
        "{} queries differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A worker killed in every attempt fails the query after its attempts, saying how.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_fails_the_query_with_a_clear_error() {
    let data = tpch_data().await;
    // The real worker, started with the task's spec on stdin and killed with
    // SIGKILL while it runs.
    // (fd 3: a background job's stdin would otherwise be /dev/null.)
    let script = r#"exec 3<&0; "$0" worker <&3 & pid=$!; sleep 0.01; kill -9 $pid; wait $pid"#;
    let backend = Arc::new(ProcessBackend::new(
        "sh",
        vec![
            "-c".into(),
            script.into(),
            env!("CARGO_BIN_EXE_squall").into(),
        ],
        2,
    ));
    let session = squall_session_on(data, backend).await;
    let err = match session
        .query("SELECT l_returnflag, count(*) FROM lineitem GROUP BY 1")
        .await
    {
        Ok(stream) => stream
            .collect()
            .await
            .expect_err("a killed worker must fail the query"),
        Err(e) => e,
    }
    .to_string();
    assert!(err.contains("backend 'process'"), "{err}");
    assert!(err.contains("stage") && err.contains("task"), "{err}");
    assert!(
        err.contains("exited with status 137") || err.contains("SIGKILL"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_worker_program_is_named() {
    let backend = ProcessBackend::new("/no/such/squall", vec!["worker".into()], 1);
    let err = squall_jobs::Backend::invoke(&backend, b"{}".to_vec())
        .await
        .unwrap_err();
    assert!(err.contains("/no/such/squall"), "{err}");
}
