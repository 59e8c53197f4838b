//! SQL and API features beyond plain queries: COPY TO, CREATE EXTERNAL TABLE,
//! DataFrames, hive partitions, large plan fragments, output streaming.

mod common;

use std::sync::Arc;

use common::{assert_same_rows, reference_rows, squall_session, tpch_data};
use datafusion::prelude::{ParquetReadOptions, SessionContext, col, lit};
use squall_jobs::{LocalBackend, Session, SessionOptions, StatementResult};

async fn rows_of(
    session: &Session,
    sql: &str,
) -> Vec<datafusion::arrow::record_batch::RecordBatch> {
    match session
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    {
        StatementResult::Rows(s) => s.collect().await.expect("runs"),
        StatementResult::Done => panic!("{sql} returned no rows"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_writes_parquet_through_the_distributed_plan() {
    let data = tpch_data().await;
    let session = squall_session(data, 4).await;
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("big_orders");
    let sql = format!(
        "COPY (SELECT o_orderkey, o_totalprice FROM orders WHERE o_totalprice > 300000) TO '{}/' STORED AS PARQUET",
        target.display()
    );
    let summary = rows_of(&session, &sql).await;
    let written: u64 = summary
        .iter()
        .map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                .expect("count column")
                .value(0)
        })
        .sum();
    let check = SessionContext::new();
    check
        .register_parquet(
            "copied",
            target.to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    let copied = check
        .sql("SELECT * FROM copied")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let expected = reference_rows(
        data,
        "SELECT o_orderkey, o_totalprice FROM orders WHERE o_totalprice > 300000",
    )
    .await;
    assert_same_rows(&expected, &copied).unwrap();
    let expected_rows: usize = expected.iter().map(|b| b.num_rows()).sum();
    assert_eq!(written as usize, expected_rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_external_table_then_query_in_one_script() {
    let data = tpch_data().await;
    let session = Session::try_new(SessionOptions {
        backend: Arc::new(LocalBackend::new(4)),
        ..SessionOptions::default()
    })
    .unwrap();
    let sql = format!(
        "CREATE EXTERNAL TABLE n STORED AS PARQUET LOCATION '{}/';
         SELECT n_regionkey, count(*) AS nations FROM n GROUP BY n_regionkey",
        data.root.join("nation").display()
    );
    let actual = rows_of(&session, &sql).await;
    let expected = reference_rows(
        data,
        "SELECT n_regionkey, count(*) AS nations FROM nation GROUP BY n_regionkey",
    )
    .await;
    assert_same_rows(&expected, &actual).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataframe_programs_run_distributed() {
    let data = tpch_data().await;
    let session = squall_session(data, 4).await;
    let df = session
        .context()
        .table("lineitem")
        .await
        .unwrap()
        .filter(col("l_quantity").gt(lit(45)))
        .unwrap()
        .aggregate(
            vec![col("l_returnflag")],
            vec![datafusion::functions_aggregate::count::count(lit(1)).alias("n")],
        )
        .unwrap();
    let actual = session
        .execute_dataframe(df)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let expected = reference_rows(data, "SELECT l_returnflag, count(1) AS n FROM lineitem WHERE l_quantity > 45 GROUP BY l_returnflag").await;
    assert_same_rows(&expected, &actual).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_plan_fragments_travel_by_reference() {
    let data = tpch_data().await;
    let session = squall_session(data, 4).await;
    // An IN list of 40,000 keys makes the scan stage's fragment far larger than 256 KiB.
    let keys: Vec<String> = (1..=40_000).map(|k| (k * 7).to_string()).collect();
    let sql = format!(
        "SELECT count(*), sum(o_totalprice) FROM orders WHERE o_orderkey IN ({})",
        keys.join(",")
    );
    let actual = rows_of(&session, &sql).await;
    let expected = reference_rows(data, &sql).await;
    assert_same_rows(&expected, &actual).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_partitioned_csv_table() {
    let dir = tempfile::tempdir().unwrap();
    for (year, rows) in [("2024", "1,a\n2,b\n"), ("2025", "3,c\n4,d\n5,e\n")] {
        let d = dir.path().join(format!("year={year}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("part.csv"), format!("id,name\n{rows}")).unwrap();
    }
    let session = Session::try_new(SessionOptions::default()).unwrap();
    session
        .register_table("events", dir.path().to_str().unwrap(), None)
        .await
        .unwrap();
    let actual = rows_of(
        &session,
        "SELECT year, count(*) AS n, sum(id) AS s FROM events GROUP BY year ORDER BY year",
    )
    .await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&actual)
        .unwrap()
        .to_string();
    assert!(text.contains("| 2024 | 2 | 3  |"), "{text}");
    assert!(text.contains("| 2025 | 3 | 12 |"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_is_empty_after_a_query() {
    let data = tpch_data().await;
    let scratch = tempfile::tempdir().unwrap();
    let session = Session::try_new(SessionOptions {
        backend: Arc::new(LocalBackend::new(4)),
        scratch: Some(scratch.path().display().to_string()),
        planner: squall_planner::PlannerConfig {
            target_task_bytes: 1 << 20,
            ..Default::default()
        },
        ..SessionOptions::default()
    })
    .unwrap();
    session
        .register_table(
            "lineitem",
            data.root.join("lineitem").to_str().unwrap(),
            None,
        )
        .await
        .unwrap();
    let rows = rows_of(
        &session,
        "SELECT l_suppkey, count(*) FROM lineitem GROUP BY l_suppkey",
    )
    .await;
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 1000);
    let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().collect();
    assert!(left.is_empty(), "scratch not cleaned: {left:?}");
}

/// Partition values come from the data: values that look like paths
/// (`..`, `../x`, `a/../../b`) name folders inside the destination, never
/// outside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_values_cannot_escape_a_copy_destination() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("nested").join("out");
    let session = Session::try_new(SessionOptions::default()).unwrap();
    let sql = format!(
        "COPY (SELECT * FROM (VALUES ('..', 1), ('../escaped', 2), ('a/../../b', 3), ('.', 4)) \
         AS t(k, v)) TO '{}/' STORED AS CSV PARTITIONED BY (k)",
        out.display()
    );
    rows_of(&session, &sql).await;
    fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.path().is_dir() {
                found.extend(files(&entry.path()));
            } else {
                found.push(entry.path());
            }
        }
        found
    }
    let written = files(root.path());
    assert!(written.len() >= 4, "{written:?}");
    for file in &written {
        let canonical = file.canonicalize().unwrap();
        assert!(
            canonical.starts_with(out.canonicalize().unwrap()),
            "{} is outside the destination",
            canonical.display()
        );
    }
    // One folder per value, each directly below the destination, holding
    // that value's row.
    let mut folders: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert_eq!(
        folders,
        ["k=.", "k=..", "k=..%2Fescaped", "k=a%2F..%2F..%2Fb"],
        "{written:?}"
    );
    let rows: usize = written
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "csv"))
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count() - 1)
        .sum();
    assert_eq!(rows, 4, "{written:?}");
}

/// A `.tsv` file is read with tabs, and a folder of `.csv.gz` files is
/// found and decompressed (each compressed file read whole by one task):
/// both give single-node DataFusion's rows over the same data as plain CSV.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsv_and_gzipped_csv_read_like_plain_csv() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = (0..3000)
        .map(|i| format!("{i},name {i},{}", i % 7))
        .collect();
    let plain = dir.path().join("plain.csv");
    std::fs::write(&plain, format!("id,name,k\n{}\n", rows.join("\n"))).unwrap();
    let tsv = dir.path().join("data.tsv");
    let tab_rows: Vec<String> = rows.iter().map(|r| r.replace(',', "\t")).collect();
    std::fs::write(&tsv, format!("id\tname\tk\n{}\n", tab_rows.join("\n"))).unwrap();
    let gz = dir.path().join("gz");
    std::fs::create_dir(&gz).unwrap();
    for (part, chunk) in rows.chunks(700).enumerate() {
        let path = gz.join(format!("part-{part}.csv"));
        std::fs::write(&path, format!("id,name,k\n{}\n", chunk.join("\n"))).unwrap();
        let status = std::process::Command::new("gzip")
            .arg(&path)
            .status()
            .expect("gzip runs (apt-get install gzip)");
        assert!(status.success());
    }
    let session = Session::try_new(SessionOptions {
        backend: Arc::new(LocalBackend::new(2)),
        // Small tasks: the plain files are cut into byte ranges.
        planner: squall_planner::PlannerConfig {
            target_task_bytes: 16 * 1024,
            ..squall_planner::PlannerConfig::default()
        },
        ..SessionOptions::default()
    })
    .unwrap();
    for (name, location) in [("t_tsv", &tsv), ("t_gz", &gz)] {
        session
            .register_table(name, location.to_str().unwrap(), None)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let reference = SessionContext::new();
    reference
        .register_csv(
            "plain",
            plain.to_str().unwrap(),
            datafusion::prelude::CsvReadOptions::new(),
        )
        .await
        .unwrap();
    let sql = |table: &str| {
        format!(
            "SELECT k, count(*) AS n, sum(id) AS s, max(name) AS m FROM {table} GROUP BY k ORDER BY k"
        )
    };
    let expected = reference
        .sql(&sql("plain"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    for table in ["t_tsv", "t_gz"] {
        let actual = rows_of(&session, &sql(table)).await;
        assert_same_rows(&expected, &actual).unwrap_or_else(|e| panic!("{table}: {e}"));
    }
}

/// CSV without a header, with ';' between values and '\'' as the quote,
/// read through `register_table_with` and through `CREATE EXTERNAL TABLE
/// ... OPTIONS`, gives single-node DataFusion's rows (with byte-range
/// splits of the file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_options_choose_header_delimiter_and_quote() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = (0..3000)
        .map(|i| format!("{i};'name; {i}';{}", i % 7))
        .collect();
    let path = dir.path().join("semi.csv");
    std::fs::write(&path, format!("{}\n", rows.join("\n"))).unwrap();
    let session = Session::try_new(SessionOptions {
        backend: Arc::new(LocalBackend::new(2)),
        planner: squall_planner::PlannerConfig {
            target_task_bytes: 16 * 1024,
            ..squall_planner::PlannerConfig::default()
        },
        ..SessionOptions::default()
    })
    .unwrap();
    let options = squall_connectors::CsvOptions {
        header: false,
        delimiter: Some(b';'),
        quote: b'\'',
    };
    session
        .register_table_with("flagged", path.to_str().unwrap(), None, &options)
        .await
        .unwrap();
    session
        .sql(&format!(
            "CREATE EXTERNAL TABLE created STORED AS CSV LOCATION '{}' \
             OPTIONS ('format.has_header' 'false', 'format.delimiter' ';', 'format.quote' '''')",
            path.display()
        ))
        .await
        .unwrap();
    let reference = SessionContext::new();
    reference
        .register_csv(
            "reference",
            path.to_str().unwrap(),
            datafusion::prelude::CsvReadOptions::new()
                .has_header(false)
                .delimiter(b';')
                .quote(b'\''),
        )
        .await
        .unwrap();
    let sql = |table: &str| {
        format!(
            "SELECT column_3 AS k, count(*) AS n, sum(column_1) AS s, max(column_2) AS m \
             FROM {table} GROUP BY column_3 ORDER BY k"
        )
    };
    let expected = reference
        .sql(&sql("reference"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&expected)
        .unwrap()
        .to_string();
    assert!(text.contains("name; 994"), "{text}");
    for table in ["flagged", "created"] {
        let actual = rows_of(&session, &sql(table)).await;
        assert_same_rows(&expected, &actual).unwrap_or_else(|e| panic!("{table}: {e}"));
    }
}

/// A function registered over another of the same name (as Spark's
/// `date_trunc` over the core one, whose alias `datetrunc` keeps pointing
/// at the core one) keeps its name in a session made from that context,
/// every time: making the session rebuilds DataFusion's state, which
/// registers the functions again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_registered_over_another_keeps_its_name_in_a_session() {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
    fn constant(name: &str, value: i64) -> ScalarUDF {
        create_udf(
            name,
            vec![],
            DataType::Int64,
            Volatility::Immutable,
            Arc::new(
                move |_: &[ColumnarValue]| -> datafusion::common::Result<ColumnarValue> {
                    Ok(ColumnarValue::Scalar(
                        datafusion::common::ScalarValue::Int64(Some(value)),
                    ))
                },
            ),
        )
    }
    for attempt in 0..8 {
        let ctx = SessionContext::new();
        ctx.register_udf(constant("squall_f", 1).with_aliases(["squall_g"]));
        ctx.register_udf(constant("squall_f", 2));
        let session = Session::with_context(
            ctx,
            SessionOptions {
                backend: Arc::new(LocalBackend::new(2)),
                ..SessionOptions::default()
            },
        )
        .expect("session");
        let state = session.context().state();
        let f = &state.scalar_functions()["squall_f"];
        let g = &state.scalar_functions()["squall_g"];
        assert!(
            f.aliases().is_empty() && g.aliases() == ["squall_g"],
            "attempt {attempt}: squall_f has aliases {:?}, squall_g {:?}",
            f.aliases(),
            g.aliases()
        );
    }
}
