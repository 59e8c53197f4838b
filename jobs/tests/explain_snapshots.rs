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

/// `EXPLAIN ANALYZE` runs the query and shows, under every stage of the
/// graph `explain` shows, what it did: tasks run of those planned (fewer
/// where a stage was sized from its inputs, here switched on), task time, bytes, rows and
/// requests; the rows it reports are the query's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_analyze_shows_what_every_stage_did() {
    let data = tpch_data().await;
    let session = common::squall_session_with(
        data,
        squall_jobs::SessionOptions {
            backend: std::sync::Arc::new(squall_jobs::LocalBackend::new(2)),
            adaptive_stages: true,
            ..squall_jobs::SessionOptions::default()
        },
    )
    .await;
    let sql = tpch_query(1);
    let expected_rows: usize = session
        .query(&sql)
        .await
        .expect("query")
        .collect()
        .await
        .expect("rows")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    let result = session
        .sql(&format!("EXPLAIN ANALYZE {sql}"))
        .await
        .expect("explain analyze");
    let squall_jobs::StatementResult::Rows(stream) = result else {
        panic!("EXPLAIN ANALYZE returns rows");
    };
    let batches = stream.collect().await.expect("plan rows");
    let plan = batches[0]
        .column(1)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::StringArray>()
        .expect("plan text")
        .value(0)
        .to_string();
    let explained = session.explain(&sql).await.expect("explain");
    let stage_headings = explained
        .lines()
        .filter(|l| l.starts_with("Stage "))
        .count();
    assert!(stage_headings >= 2, "{explained}");
    let actual_lines: Vec<&str> = plan
        .lines()
        .filter(|l| l.starts_with("  actual: ran "))
        .collect();
    assert_eq!(actual_lines.len(), stage_headings, "{plan}");
    assert!(
        plan.starts_with("Run: ") && plan.contains(&format!(" {expected_rows} result rows")),
        "{plan}"
    );
    // The run measured, predicted on Lambda by the cloud model.
    let predicted = plan.lines().nth(1).unwrap_or_default();
    assert!(
        predicted.starts_with(
            "Predicted on AWS Lambda + S3 from these measures (a model's estimate; docs/cost-model.md): "
        ) && predicted.ends_with(" on functions of 3538 MB"),
        "{plan}"
    );
    // Q1's aggregation of four groups is planned with several tasks (one
    // per hash partition) and runs fewer.
    let counts: Vec<(usize, usize)> = actual_lines
        .iter()
        .map(|line| {
            line.strip_prefix("  actual: ran ")
                .and_then(|rest| rest.split_once(" planned"))
                .and_then(|(counts, _)| counts.split_once(" of "))
                .map(|(ran, planned)| (ran.parse().unwrap(), planned.parse().unwrap()))
                .expect("ran N of M planned")
        })
        .collect();
    assert!(counts.iter().any(|(ran, planned)| ran < planned), "{plan}");
    // Under every stage, its operators' own metrics summed over its tasks:
    // the scan stage's leaf rows are the rows its tasks report reading.
    assert_eq!(
        plan.matches("  operators, summed over tasks:").count(),
        stage_headings,
        "{plan}"
    );
    let scan_stage = plan
        .split("\nStage ")
        .find(|stage| stage.contains("DataSourceExec: output_rows="))
        .expect("a stage scans lineitem");
    let read_rows: u64 = scan_stage
        .split_once("; read ")
        .and_then(|(_, rest)| rest.split_once(" rows"))
        .map(|(rows, _)| rows.parse().unwrap())
        .expect("read N rows");
    let scanned_rows: u64 = scan_stage
        .split_once("DataSourceExec: output_rows=")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .map(|rows| rows.parse().unwrap())
        .expect("output_rows=N");
    assert!(read_rows > 0, "{plan}");
    assert_eq!(scanned_rows, read_rows, "{scan_stage}");
    assert!(scan_stage.contains("elapsed_compute="), "{scan_stage}");
}
