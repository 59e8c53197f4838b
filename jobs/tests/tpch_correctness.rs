//! All 22 TPC-H queries through the local backend, checked against single-node
//! DataFusion on the same files (an independent execution of the same plan
//! input: no Squall operator, no exchange, no task split).

mod common;

use common::{
    assert_no_failures, partition_every_join, squall_session, tpch_data, tpch_differences,
    tpch_query,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_queries_match_single_node_datafusion() {
    let data = tpch_data().await;
    let session = squall_session(data, 4).await;
    for q in 1..=22 {
        let graph = session.plan_stages(&tpch_query(q)).await.expect("plans");
        let text = squall_planner::render_stage_graph(&graph);
        assert!(
            graph.stages.len() > 1,
            "q{q}: joins and aggregates must run as more than one stage:\n{text}"
        );
        assert!(
            graph.stages.iter().any(|s| s.task_count > 1),
            "q{q}: some stage must have more than one task:\n{text}"
        );
    }
    // Q13 counts orders per customer after a left join by customer, which
    // DataFusion plans as a broadcast of customer (one machine shares a
    // bitmap of matched customers; tasks cannot) and Squall partitions by
    // customer instead. Each task of the join then holds all rows of its
    // customers, so the count per customer runs there too, not behind
    // another exchange on c_custkey.
    let graph = session.plan_stages(&tpch_query(13)).await.expect("plans");
    let text = squall_planner::render_stage_graph(&graph);
    assert!(
        text.split("\nStage ").any(|stage| {
            stage.contains("HashJoinExec: mode=Partitioned, join_type=Left")
                && stage.contains("mode=SinglePartitioned, gby=[c_custkey@0 as c_custkey]")
        }),
        "q13: the count per customer must run in the join's stage:\n{text}"
    );
    let failures = tpch_differences(&session, data).await;
    assert_no_failures(&failures);
}

/// The same with stages sized from their inputs' exact bytes (on by default
/// on Lambda only): every hash-fed stage runs fewer tasks, each reading a
/// range of partitions, and the rows stay those of single-node DataFusion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_queries_match_single_node_datafusion_with_adaptive_stages() {
    let data = tpch_data().await;
    let session = common::squall_session_with(
        data,
        squall_jobs::SessionOptions {
            backend: std::sync::Arc::new(squall_jobs::LocalBackend::new(4)),
            adaptive_stages: true,
            ..squall_jobs::SessionOptions::default()
        },
    )
    .await;
    let failures = tpch_differences(&session, data).await;
    assert_no_failures(&failures);
}

/// The same with every join partitioned (no broadcast: both thresholds 0),
/// as joins of large tables run; at this scale DataFusion would broadcast
/// almost every build side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_queries_match_single_node_datafusion_with_partitioned_joins() {
    let data = tpch_data().await;
    let session = squall_session(data, 4).await;
    partition_every_join(&session).await;
    let failures = tpch_differences(&session, data).await;
    assert_no_failures(&failures);
}
