//! Stage estimates come from DataFusion's statistics (rows from Parquet
//! footers), and a guess of DataFusion's never shrinks the stage that
//! reads it.

mod common;

use common::{reference_context, squall_session, tpch_data};
use squall_jobs::Session;
use squall_planner::{ExchangeKind, StageGraph};

/// The stage that reads `graph`'s stage `id` through a hash exchange.
fn hash_reader(graph: &StageGraph, id: usize) -> &squall_planner::Stage {
    graph
        .stages
        .iter()
        .find(|s| {
            s.inputs
                .iter()
                .any(|i| i.stage_id == id && i.kind == ExchangeKind::Hash)
        })
        .expect("a stage reads it by hash")
}

/// Each stage's id, tasks and estimated rows.
fn summary(graph: &StageGraph) -> Vec<(usize, usize, Option<u64>)> {
    graph
        .stages
        .iter()
        .map(|s| (s.id, s.task_count, s.est_output_rows))
        .collect()
}

async fn plan(session: &Session, sql: &str) -> StageGraph {
    session.plan_stages(sql).await.expect("plan")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_stages_know_their_rows_from_parquet_footers() {
    let data = tpch_data().await;
    let session = squall_session(data, 2).await;
    let reference = reference_context(data).await;
    let count = reference
        .sql("SELECT count(*) FROM lineitem")
        .await
        .expect("count")
        .collect()
        .await
        .expect("rows");
    let rows = datafusion::arrow::array::AsArray::as_primitive::<
        datafusion::arrow::datatypes::Int64Type,
    >(count[0].column(0))
    .value(0) as u64;
    let graph = plan(&session, "SELECT l_orderkey FROM lineitem").await;
    let scan = graph
        .stages
        .iter()
        .find(|s| !s.scans.is_empty())
        .expect("a scan stage");
    assert_eq!(scan.est_output_rows, Some(rows), "{:?}", summary(&graph));
    let text = session
        .explain("SELECT l_orderkey FROM lineitem")
        .await
        .expect("explain");
    assert!(
        text.contains(&format!(", {rows} rows")),
        "EXPLAIN shows the footers' row count:\n{text}"
    );
}

/// DataFusion takes a filter it cannot judge (`NOT LIKE`) to keep 20% of
/// the rows; this one keeps nearly all. The stage reading the filtered scan
/// gets as many tasks as without the filter, not a fifth of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guessed_selectivity_does_not_shrink_the_reading_stage() {
    let data = tpch_data().await;
    let session = squall_session(data, 2).await;
    let grouped = |filter: &str| {
        format!("SELECT o_custkey, count(*) FROM orders {filter} GROUP BY o_custkey")
    };
    let all = plan(&session, &grouped("")).await;
    let filtered = plan(
        &session,
        &grouped("WHERE o_comment NOT LIKE '%special%requests%'"),
    )
    .await;
    let scan_id = |g: &StageGraph| {
        g.stages
            .iter()
            .find(|s| !s.scans.is_empty())
            .expect("a scan stage")
            .id
    };
    let (all_scan, filtered_scan) = (scan_id(&all), scan_id(&filtered));
    let filtered_rows = filtered.stages[filtered_scan]
        .est_output_rows
        .expect("an estimate");
    let all_rows = all.stages[all_scan].est_output_rows.expect("an estimate");
    assert!(
        filtered_rows < all_rows,
        "DataFusion guesses the filter drops rows: {filtered_rows} of {all_rows}"
    );
    let readers = hash_reader(&all, all_scan).task_count;
    assert!(readers > 1, "the data is big enough for several tasks");
    assert_eq!(
        hash_reader(&filtered, filtered_scan).task_count,
        readers,
        "{:?}",
        summary(&filtered)
    );
}
