//! All 22 TPC-H queries at scale 0.1 on the local backend under faults
//! injected at fixed rates from a fixed seed, into task attempts (crashes,
//! duplicate deliveries, hangs, lost exchange inputs) and into their
//! object-store requests (failures, stalls, bodies that break off); see
//! `common/mixed_faults.rs`. Every answer must be single-node DataFusion's.
//! The process backend runs the same in `cli/tests/mixed_faults_process.rs`.

mod common;

use std::sync::Arc;

use common::mixed_faults::assert_tpch_survives_mixed_faults;
use squall_jobs::LocalBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_under_mixed_faults_matches_single_node_datafusion() {
    assert_tpch_survives_mixed_faults(Arc::new(LocalBackend::new(4)), 20261123).await;
}
