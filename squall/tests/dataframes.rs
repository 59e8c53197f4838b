//! DataFusion DataFrames through a `squall::Session` run distributed (tasks
//! are reported by the scheduler) and give what single-node DataFusion gives
//! on the same TPC-H files: `collect`, `execute_stream`, SQL, and
//! `write_parquet` read back by DataFusion.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::prelude::*;
use futures::StreamExt;
use squall::ProgressEvent;

mod common;

use common::tpch;

/// A session of two in-process workers, and a count of the tasks it ran.
fn session() -> (squall::Session, Arc<AtomicUsize>) {
    let tasks = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&tasks);
    let session = squall::Session::builder()
        .workers(2)
        .target_task_bytes(256 * 1024)
        .progress(Arc::new(move |event| {
            if let ProgressEvent::TaskFinished { .. } = event {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }))
        .build()
        .unwrap();
    (session, tasks)
}

fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

/// Revenue by return flag, as a DataFrame pipeline over `lineitem`.
fn revenue_by_flag(lineitem: DataFrame) -> DataFrame {
    lineitem
        .filter(col("l_quantity").gt(lit(5)))
        .unwrap()
        .aggregate(
            vec![col("l_returnflag"), col("l_linestatus")],
            vec![
                sum(col("l_extendedprice")).alias("revenue"),
                count(lit(1)).alias("lines"),
            ],
        )
        .unwrap()
        .sort(vec![
            col("l_returnflag").sort(true, true),
            col("l_linestatus").sort(true, true),
        ])
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataframe_pipeline_runs_distributed_and_agrees_with_datafusion() {
    let lineitem = format!("{}/lineitem/", tpch());
    let (session, tasks) = session();
    let distributed = revenue_by_flag(session.read_parquet(&lineitem).await.unwrap())
        .collect()
        .await
        .unwrap();
    assert!(tasks.load(Ordering::Relaxed) >= 2, "the query ran as tasks");
    let single = SessionContext::new();
    let expected = revenue_by_flag(
        single
            .read_parquet(&lineitem, ParquetReadOptions::default())
            .await
            .unwrap(),
    )
    .collect()
    .await
    .unwrap();
    assert_eq!(text(&distributed), text(&expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_streams_and_joins_like_datafusion() {
    let root = tpch();
    let (session, tasks) = session();
    session
        .register_table("orders", &format!("{root}/orders/"))
        .await
        .unwrap();
    session
        .register_table("customer", &format!("{root}/customer/"))
        .await
        .unwrap();
    let sql = "SELECT c_mktsegment, count(*) AS orders, sum(o_totalprice) AS total \
               FROM orders JOIN customer ON o_custkey = c_custkey \
               GROUP BY c_mktsegment ORDER BY c_mktsegment";
    let mut stream = session
        .sql(sql)
        .await
        .unwrap()
        .execute_stream()
        .await
        .unwrap();
    let mut streamed = Vec::new();
    while let Some(batch) = stream.next().await {
        streamed.push(batch.unwrap());
    }
    assert!(
        tasks.load(Ordering::Relaxed) >= 3,
        "a join and an aggregate make stages"
    );
    let single = SessionContext::new();
    for table in ["orders", "customer"] {
        single
            .register_parquet(
                table,
                &format!("{root}/{table}/"),
                ParquetReadOptions::default(),
            )
            .await
            .unwrap();
    }
    let expected = single.sql(sql).await.unwrap().collect().await.unwrap();
    assert_eq!(text(&streamed), text(&expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_parquet_runs_distributed_and_datafusion_reads_it_back() {
    let root = tpch();
    let out = tempfile::tempdir().unwrap();
    let destination = format!("{}/nation_by_region/", out.path().display());
    let (session, tasks) = session();
    let nation = session
        .read_parquet(&format!("{root}/nation/"))
        .await
        .unwrap()
        .select(vec![col("n_regionkey"), col("n_name")])
        .unwrap();
    nation
        .write_parquet(&destination, DataFrameWriteOptions::new(), None)
        .await
        .unwrap();
    assert!(tasks.load(Ordering::Relaxed) >= 1, "the write ran as tasks");
    let single = SessionContext::new();
    let back = single
        .read_parquet(&destination, ParquetReadOptions::default())
        .await
        .unwrap()
        .aggregate(vec![], vec![count(lit(1)).alias("n")])
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(
        text(&back),
        text(
            &single
                .sql("SELECT 25 AS n")
                .await
                .unwrap()
                .collect()
                .await
                .unwrap()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_the_workers_do_not_know_is_refused_with_its_name() {
    let (session, _) = session();
    // Registered on the context, not given to the builder: no worker has it.
    session.context().register_udf(double_it());
    let error = session
        .sql("SELECT double_it(value) FROM range(10)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("double_it"), "{error}");
}

/// `double_it(x) = 2x`, as the users of the library write functions.
fn double_it() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    create_udf(
        "double_it",
        vec![DataType::Int64],
        DataType::Int64,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let doubled =
                datafusion::arrow::compute::kernels::numeric::add(&arrays[0], &arrays[0])?;
            Ok(ColumnarValue::Array(doubled))
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_given_to_the_builder_reaches_the_workers() {
    let tasks = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&tasks);
    let session = squall::Session::builder()
        .workers(2)
        .udf(double_it())
        .progress(Arc::new(move |event| {
            if let ProgressEvent::TaskFinished { .. } = event {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        }))
        .build()
        .unwrap();
    let rows = session
        .sql("SELECT value % 2 AS odd, sum(double_it(value)) AS doubled FROM range(1000) GROUP BY 1 ORDER BY 1")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(
        tasks.load(Ordering::Relaxed) >= 2,
        "the function ran in tasks"
    );
    let single = SessionContext::new();
    single.register_udf(double_it());
    let expected = single
        .sql("SELECT value % 2 AS odd, sum(value * 2) AS doubled FROM range(1000) GROUP BY 1 ORDER BY 1")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(text(&rows), text(&expected));
}

#[test]
fn a_function_for_workers_that_cannot_know_it_is_refused_when_the_session_is_built() {
    let backend = process_backend();
    let error = squall::Session::builder()
        .backend(backend)
        .udf(double_it())
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("functions (double_it) reach in-process workers only"),
        "{error}"
    );
}

#[test]
fn a_backend_set_through_the_options_is_kept_and_checked() {
    let session = squall::Session::builder()
        .options(|o| o.backend = process_backend())
        .build()
        .unwrap();
    assert_eq!(session.jobs().backend().name(), "process");
    let error = squall::Session::builder()
        .options(|o| o.backend = process_backend())
        .udf(double_it())
        .build()
        .unwrap_err()
        .to_string();
    assert!(error.contains("in-process workers only"), "{error}");
}

/// Worker processes, whose binary knows no function or store of this program.
fn process_backend() -> Arc<squall::ProcessBackend> {
    Arc::new(squall::ProcessBackend::new(
        "squall",
        vec!["worker".into()],
        2,
    ))
}

/// `read_parquet` of a folder written `PARTITIONED BY` a column with nulls
/// has that column, nulls and all, as `register_table` reads it; the
/// groups equal single-node DataFusion's over the rows written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_parquet_reads_partition_folders_with_nulls_as_register_table_does() {
    let out = tempfile::tempdir().unwrap();
    let folder = format!("{}/by_k/", out.path().display());
    let rows =
        "SELECT * FROM (VALUES (1, 'a'), (2, NULL), (3, 'b'), (4, NULL), (5, 'a')) AS t(v, k)";
    let (session, _) = session();
    session
        .sql(&format!(
            "COPY ({rows}) TO '{folder}' STORED AS PARQUET PARTITIONED BY (k)"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(
        std::path::Path::new(&folder)
            .join("k=__HIVE_DEFAULT_PARTITION__")
            .is_dir(),
        "null values go to Hive's folder"
    );
    let groups = |df: DataFrame| async move {
        let batches = df
            .aggregate(vec![col("k")], vec![sum(col("v")).alias("v")])
            .unwrap()
            .sort(vec![col("k").sort(true, true)])
            .unwrap()
            .collect()
            .await
            .unwrap();
        text(&batches)
    };
    let read = groups(session.read_parquet(&folder).await.unwrap()).await;
    session.register_table("by_k", &folder).await.unwrap();
    let registered = groups(session.context().table("by_k").await.unwrap()).await;
    let single = SessionContext::new();
    let expected = groups(single.sql(rows).await.unwrap()).await;
    assert_eq!(read, expected);
    assert_eq!(registered, expected);
}
