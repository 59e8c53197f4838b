//! A `COPY` interrupted at any moment on the local backend never leaves
//! part of its output visible (see `common/interrupted_copy.rs`); the
//! process backend runs the same in `cli/tests/interrupted_writes_process.rs`.

mod common;

use common::interrupted_copy::assert_interrupted_copies_leave_nothing_partial;
use common::{squall_session, tpch_data};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_interrupted_at_any_moment_leaves_nothing_partial() {
    let session = squall_session(tpch_data().await, 2).await;
    assert_interrupted_copies_leave_nothing_partial(&session).await;
}
