//! `squall explain` output for several TPC-H queries, as reviewed snapshots.
//! A change in how queries are cut into stages shows up as a snapshot diff.

mod common;

use common::{squall_session, tpch_data, tpch_query};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_tpch_stage_graphs() {
    let data = tpch_data().await;
    let session = squall_session(data, 4).await;
    for q in [1, 3, 6, 13, 18, 21] {
        let text = session.explain(&tpch_query(q)).await.expect("explain");
        insta::assert_snapshot!(format!("tpch_q{q}"), text);
    }
}
