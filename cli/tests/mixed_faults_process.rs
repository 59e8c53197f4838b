//! All 22 TPC-H queries at scale 0.1 on the process backend (every task a
//! `squall worker` process) under injected task and object-store faults:
//! the same proof as `jobs/tests/mixed_faults.rs` on the local backend. The
//! store faults travel in each TaskSpec, so the worker processes inject them
//! into their own requests.

#[path = "../../jobs/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use common::mixed_faults::assert_tpch_survives_mixed_faults;
use squall_jobs::ProcessBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_under_mixed_faults_on_worker_processes_matches_single_node_datafusion() {
    let backend = ProcessBackend::new(env!("CARGO_BIN_EXE_squall"), vec!["worker".into()], 4);
    assert_tpch_survives_mixed_faults(Arc::new(backend), 20261124).await;
}
