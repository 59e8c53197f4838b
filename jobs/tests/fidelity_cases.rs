//! The silent wrong results and refusals the correctness issue found, each
//! run through Squall (a CSV cut into several tasks) and checked against
//! single-node DataFusion on the same data and statements; plus the cases
//! Squall refuses with a clear error instead of a different answer.

mod common;

use std::sync::Arc;

use common::{assert_same_rows, assert_same_rows_in_order};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{SessionConfig, SessionContext};
use squall_jobs::{JobError, LocalBackend, Session, SessionOptions};
use squall_planner::PlannerConfig;

fn aggregate_test_100() -> String {
    format!(
        "{}/../conformance/data/testing/data/csv/aggregate_test_100.csv",
        env!("CARGO_MANIFEST_DIR")
    )
}

const SETUP: &[&str] = &[
    "CREATE TABLE nulls_t (k INT, v INT) AS VALUES (1, NULL), (2, 20), (3, NULL), (4, 40), (5, NULL)",
    "CREATE TABLE sales (grp VARCHAR, amount INT, ts INT) AS VALUES ('a', 3, 1), ('a', 1, 2), ('b', 5, 3), ('a', 2, 4), ('b', 4, 5)",
];

/// A DataFusion context with the test tables, configured as the suite's.
async fn datafusion_context() -> SessionContext {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE aggregate_test_100 STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
        aggregate_test_100()
    ))
    .await
    .expect("register");
    for sql in SETUP {
        ctx.sql(sql)
            .await
            .expect("setup")
            .collect()
            .await
            .expect("setup");
    }
    ctx
}

/// A Squall session over its own context with the same tables; tasks of 1 KiB.
async fn squall_session() -> Session {
    let options = SessionOptions {
        backend: Arc::new(LocalBackend::new(4)),
        planner: PlannerConfig {
            target_task_bytes: 1024,
            max_tasks_per_stage: 4,
            ..PlannerConfig::default()
        },
        ..SessionOptions::default()
    };
    Session::with_context(datafusion_context().await, options).expect("session")
}

async fn squall_rows(session: &Session, sql: &str) -> Result<Vec<RecordBatch>, JobError> {
    session.query(sql).await?.collect().await
}

async fn datafusion_rows(sql: &str) -> Vec<RecordBatch> {
    datafusion_context()
        .await
        .sql(sql)
        .await
        .expect("DataFusion plans")
        .collect()
        .await
        .expect("DataFusion runs")
}

/// Queries whose answers Squall got wrong (windows) or differently: each must
/// now equal DataFusion's, in order.
const SAME_AS_DATAFUSION: &[&str] = &[
    // Two windows over opposite orders: DataFusion evaluates one in reverse.
    "SELECT c9, LAG(c9, 2, 10101) OVER (ORDER BY c9 ASC) AS lag1, LAG(c9, 2, 10101) OVER (ORDER BY c9 DESC ROWS BETWEEN 10 PRECEDING AND 1 FOLLOWING) AS lag2 FROM aggregate_test_100 ORDER BY c9 DESC LIMIT 3",
    "SELECT c9, LEAD(c9, 1) OVER (ORDER BY c9 ASC) AS a, LEAD(c9, 1) OVER (ORDER BY c9 DESC) AS b FROM aggregate_test_100 ORDER BY c9 LIMIT 5",
    "SELECT c9, FIRST_VALUE(c9) OVER (ORDER BY c9 ASC) AS a, FIRST_VALUE(c9) OVER (ORDER BY c9 DESC) AS b FROM aggregate_test_100 ORDER BY c9 LIMIT 5",
    // IGNORE NULLS.
    "SELECT k, lag(v) IGNORE NULLS OVER (ORDER BY k) AS a, lead(v) IGNORE NULLS OVER (ORDER BY k) AS b FROM nulls_t ORDER BY k",
    "SELECT k, first_value(v) IGNORE NULLS OVER (ORDER BY k) AS a, last_value(v) IGNORE NULLS OVER (ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS b, nth_value(v, 2) IGNORE NULLS OVER (ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS c FROM nulls_t ORDER BY k",
    // A grouping set without columns: one row.
    "SELECT count(*) FROM aggregate_test_100 GROUP BY GROUPING SETS (())",
    // Ordered aggregates with GROUP BY.
    "SELECT grp, ARRAY_AGG(amount ORDER BY ts) AS a, FIRST_VALUE(amount ORDER BY ts DESC) AS f FROM sales GROUP BY grp ORDER BY grp",
    "SELECT c1, ARRAY_AGG(c2 ORDER BY c2, c3) AS a FROM aggregate_test_100 GROUP BY c1 ORDER BY c1",
    // Batches without columns.
    "SELECT count(*) FROM (SELECT c1 FROM aggregate_test_100 LIMIT 7)",
    // Scalar subqueries anywhere.
    "SELECT c1, c2 FROM aggregate_test_100 WHERE c2 > (SELECT avg(c2) FROM aggregate_test_100) ORDER BY c1, c2, c3 LIMIT 5",
    "SELECT k FROM nulls_t ORDER BY (SELECT max(k) FROM nulls_t) - k",
    // Recursive CTEs.
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT sum(i) FROM n",
    // A join on one range predicate (piecewise merge join).
    "SELECT a.k, b.k FROM nulls_t a JOIN nulls_t b ON a.k > b.k ORDER BY a.k, b.k",
    // Types Parquet cannot hold reach the client.
    "SELECT INTERVAL '1 day 2 hours' AS i, arrow_cast(1.5, 'Float16') AS f, arrow_cast(12345, 'Decimal128(5, -2)') AS d",
    // A dictionary of dictionaries crosses exchanges and reaches the client.
    "SELECT c9, arrow_cast(arrow_cast(c1, 'Dictionary(UInt32, Utf8)'), 'Dictionary(Int32, Dictionary(UInt32, Utf8))') AS d FROM aggregate_test_100 ORDER BY c9 LIMIT 5",
    // DataFusion's default dialect: ^ is exponentiation... or whatever DataFusion says.
    "SELECT 2 ^ 3 AS p",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_equal_single_node_datafusion() {
    let session = squall_session().await;
    let mut failures = Vec::new();
    for sql in SAME_AS_DATAFUSION {
        let expected = datafusion_rows(sql).await;
        match squall_rows(&session, sql).await {
            Ok(actual) => {
                if let Err(diff) = assert_same_rows_in_order(&expected, &actual) {
                    failures.push(format!("{sql}\n  {diff}"));
                }
            }
            Err(e) => failures.push(format!("{sql}\n  failed: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_users_expect_change_what_later_queries_see() {
    let session = squall_session().await;
    let dir = tempfile::tempdir().unwrap();
    let script = [
        "CREATE TABLE t AS SELECT c1, c2 FROM aggregate_test_100 WHERE c2 < 3".to_string(),
        "INSERT INTO t SELECT c1, c2 FROM aggregate_test_100 WHERE c2 = 5".to_string(),
        format!(
            "CREATE EXTERNAL TABLE ext (c1 VARCHAR, c2 BIGINT) STORED AS CSV LOCATION '{}/ext/' OPTIONS ('format.has_header' 'true')",
            dir.path().display()
        ),
        "INSERT INTO ext SELECT c1, c2 FROM t".to_string(),
    ];
    for sql in &script {
        if let squall_jobs::StatementResult::Rows(rows) = session
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
        {
            rows.collect()
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    let expected =
        datafusion_rows("SELECT c1, c2 FROM aggregate_test_100 WHERE c2 < 3 OR c2 = 5").await;
    let in_memory = squall_rows(&session, "SELECT c1, c2 FROM t").await.unwrap();
    assert_same_rows(&expected, &in_memory).unwrap();
    let on_disk = squall_rows(&session, "SELECT c1, c2 FROM ext")
        .await
        .unwrap();
    assert_same_rows(&expected, &on_disk).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_csv_keeps_timestamps() {
    let session = squall_session().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.csv");
    squall_rows(
        &session,
        &format!(
            "COPY (SELECT to_timestamp('2020-12-07T10:00:00') AS t, NULL AS n, 1 AS c) TO '{}' STORED AS CSV",
            out.display()
        ),
    )
    .await
    .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, "t,n,c\n2020-12-07T10:00:00,,1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_datafusions() {
    let session = squall_session().await;
    // A scalar subquery with several rows is an error, as on one machine.
    let err = squall_rows(
        &session,
        "SELECT c1 FROM aggregate_test_100 WHERE c2 = (SELECT c2 FROM aggregate_test_100)",
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("Scalar subquery returned more than one row"),
        "{err}"
    );
    // The failing rows first in file order decide the message, every run.
    for _ in 0..3 {
        let err = squall_rows(&session, "SELECT CAST(c1 AS INT) FROM aggregate_test_100")
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("Cannot cast string 'c' to value of Int32 type"),
            "{err}"
        );
    }
    // Runtime settings reach the tasks.
    session
        .sql("SET datafusion.runtime.memory_limit = '1K'")
        .await
        .unwrap();
    let err = squall_rows(
        &session,
        "SELECT c1, c9, count(*) FROM aggregate_test_100 GROUP BY c1, c9 ORDER BY c9",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("Resources exhausted"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_filter_is_refused_not_dropped() {
    // DataFusion 55 keeps an aggregate window function's FILTER behind a
    // trait it does not export, and datafusion-proto drops it: Squall
    // refuses the query rather than run it without the filter.
    let session = squall_session().await;
    let err = squall_rows(
        &session,
        "SELECT count(*) FILTER (WHERE NULL) OVER () FROM (VALUES (1)) t(x)",
    )
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("WindowAggExec") && message.contains("filter"),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
}

/// A column a filter or a literal fixes keeps that value after an exchange:
/// the reading stage knows it, so the order DataFusion derived from it (here
/// a window partitioned by the fixed column) needs no second sort, and the
/// answer is DataFusion's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constants_survive_exchanges() {
    let session = squall_session().await;
    let sql = "SELECT c1, c2, c9, rank() OVER (PARTITION BY c1 ORDER BY c2) AS r \
               FROM aggregate_test_100 WHERE c1 = 'a' ORDER BY c2, c9";
    let graph = session.explain(sql).await.expect("explain");
    assert!(graph.contains("ExchangeReaderExec"), "{graph}");
    assert!(
        !graph.contains("SortExec: expr=[c1@"),
        "a sort on the constant column was added:\n{graph}"
    );
    let expected = datafusion_rows(sql).await;
    let actual = squall_rows(&session, sql).await.expect("runs");
    assert_same_rows_in_order(&expected, &actual).unwrap();
}
