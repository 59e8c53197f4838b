//! A `COPY` interrupted at any moment on the process backend (every task a
//! `squall worker` process, killed when the query is dropped) never leaves
//! part of its output visible; the same check as
//! `jobs/tests/interrupted_writes.rs` on the local backend.

#[path = "../../jobs/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use common::interrupted_copy::assert_interrupted_copies_leave_nothing_partial;
use common::{squall_session_on, tpch_data};
use squall_jobs::ProcessBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_on_worker_processes_interrupted_at_any_moment_leaves_nothing_partial() {
    let backend = ProcessBackend::new(env!("CARGO_BIN_EXE_squall"), vec!["worker".into()], 2);
    let session = squall_session_on(tpch_data().await, Arc::new(backend)).await;
    assert_interrupted_copies_leave_nothing_partial(&session).await;
}
