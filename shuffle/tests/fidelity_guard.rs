//! The fidelity guard against the cases where datafusion-proto 55 changes a
//! plan's meaning: for each, DataFusion's own round trip is caught by the
//! guard, and Squall's codec either keeps the plan exactly or the fragment
//! is refused with a line naming the operator.

use std::sync::Arc;

use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use squall_shuffle::fidelity::{check_same, encode_checked};

async fn context() -> SessionContext {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    for sql in [
        "CREATE TABLE t (k INT, v INT) AS VALUES (1, NULL), (2, 20), (3, NULL), (4, 40)",
        "CREATE TABLE s (g VARCHAR, x INT) AS VALUES ('a', 1), ('b', 2)",
    ] {
        ctx.sql(sql).await.unwrap().collect().await.unwrap();
    }
    ctx
}

async fn plan(ctx: &SessionContext, sql: &str) -> Arc<dyn ExecutionPlan> {
    ctx.sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap()
}

/// What DataFusion's own codec gives back for `plan`.
fn datafusion_round_trip(
    ctx: &SessionContext,
    plan: &Arc<dyn ExecutionPlan>,
) -> Arc<dyn ExecutionPlan> {
    let bytes = datafusion_proto::bytes::physical_plan_to_bytes(Arc::clone(plan)).unwrap();
    datafusion_proto::bytes::physical_plan_from_bytes(&bytes, &ctx.task_ctx()).unwrap()
}

/// DataFusion's round trip of `sql`'s plan changes it where `needle` says,
/// the guard names the operator, and Squall's codec keeps the plan.
async fn lossy_in_datafusion_kept_by_squall(sql: &str, operator: &str, needle: &str) {
    let ctx = context().await;
    let plan = plan(&ctx, sql).await;
    let err = check_same(&plan, &datafusion_round_trip(&ctx, &plan))
        .expect_err("DataFusion's codec loses this")
        .to_string();
    assert!(
        err.contains(operator) && err.contains(needle),
        "{sql}: {err}"
    );
    encode_checked(&plan, &ctx.task_ctx()).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn a_window_evaluated_in_reverse_keeps_its_direction() {
    lossy_in_datafusion_kept_by_squall(
        "SELECT k, LAG(k, 1) OVER (ORDER BY k ASC) AS a, LAG(k, 1) OVER (ORDER BY k DESC) AS b FROM t",
        "WindowAggExec",
        "is_reversed",
    )
    .await;
}

#[tokio::test]
async fn ignore_nulls_is_kept() {
    lossy_in_datafusion_kept_by_squall(
        "SELECT k, lag(v) IGNORE NULLS OVER (ORDER BY k) AS a FROM t",
        "WindowAggExec",
        "ignore_nulls",
    )
    .await;
}

#[tokio::test]
async fn an_empty_grouping_set_is_kept() {
    lossy_in_datafusion_kept_by_squall(
        "SELECT count(*) FROM t GROUP BY GROUPING SETS (())",
        "AggregateExec",
        "groups",
    )
    .await;
}

#[tokio::test]
async fn csv_sink_formats_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "COPY (SELECT k FROM t) TO '{}' STORED AS CSV",
        dir.path().join("x.csv").display()
    );
    lossy_in_datafusion_kept_by_squall(&sql, "DataSinkExec", "timestamp_format").await;
}

#[tokio::test]
async fn a_float16_literal_stays_float16() {
    lossy_in_datafusion_kept_by_squall(
        "SELECT k + 0, arrow_cast(1.5, 'Float16') AS f FROM t",
        "ProjectionExec",
        "Float16",
    )
    .await;
}

#[tokio::test]
async fn a_window_filter_is_refused_with_one_line_naming_the_operator() {
    let ctx = context().await;
    let plan = plan(
        &ctx,
        "SELECT count(*) FILTER (WHERE k > 2) OVER () AS c FROM t",
    )
    .await;
    let err = encode_checked(&plan, &ctx.task_ctx())
        .expect_err("the filter cannot travel")
        .to_string();
    assert!(err.contains("WindowAggExec"), "{err}");
    assert!(err.contains("filter"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[tokio::test]
async fn plans_that_travel_whole_pass() {
    let ctx = context().await;
    for sql in [
        "SELECT g, sum(x) FROM s GROUP BY g",
        "SELECT k, rank() OVER (PARTITION BY v ORDER BY k) FROM t",
        "SELECT * FROM t JOIN s ON t.k = s.x",
    ] {
        let plan = plan(&ctx, sql).await;
        encode_checked(&plan, &ctx.task_ctx()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[tokio::test]
async fn a_compressed_scan_keeps_its_compression() {
    let ctx = context().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    for sql in [
        format!(
            "COPY (SELECT k FROM t) TO '{}' STORED AS CSV OPTIONS ('format.compression' gzip)",
            path.display()
        ),
        format!(
            "CREATE EXTERNAL TABLE gz STORED AS CSV LOCATION '{}' OPTIONS ('format.compression' gzip)",
            path.display()
        ),
    ] {
        ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    }
    let plan = plan(&ctx, "SELECT * FROM gz").await;
    let err = check_same(&plan, &datafusion_round_trip(&ctx, &plan))
        .expect_err("DataFusion's codec reads the files as plain text")
        .to_string();
    assert!(
        err.contains("DataSourceExec") && err.contains("GZIP"),
        "{err}"
    );
    encode_checked(&plan, &ctx.task_ctx()).unwrap();
}

#[tokio::test]
async fn parquet_file_metadata_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "COPY (SELECT k FROM t) TO '{}' STORED AS PARQUET OPTIONS ('format.metadata::origin' 'squall')",
        dir.path().join("x.parquet").display()
    );
    lossy_in_datafusion_kept_by_squall(&sql, "DataSinkExec", "origin").await;
}
