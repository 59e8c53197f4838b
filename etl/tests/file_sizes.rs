//! `file_size`: a sink's files come out at about the size asked for.

use squall_connectors::Location;
use squall_etl::{JobFile, JobPlan, RunOptions, run_job};
use squall_jobs::{Session, SessionOptions};

fn parquet_files(dir: &std::path::Path) -> Vec<u64> {
    let mut sizes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            sizes.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            sizes.push(entry.metadata().unwrap().len());
        }
    }
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_come_out_at_about_the_size_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tpch");
    squall_connectors::tpch::generate_tpch(
        0.02,
        &Location::parse(&format!("{}/", data.display())).unwrap(),
        1,
    )
    .await
    .unwrap();
    let out = dir.path().join("out");
    let job = format!(
        r#"
[sources.lineitem]
url = "{data}/lineitem/"

[[steps]]
name = "lines"
sql = "SELECT * FROM lineitem"

[[sinks]]
step = "lines"
url = "{out}"
file_size = "1MiB"
"#,
        data = data.display(),
        out = out.display()
    );
    let session = Session::try_new(SessionOptions::default()).unwrap();
    let plan = JobPlan::check(&session, JobFile::parse("sized.toml", &job, &[]).unwrap())
        .await
        .unwrap();
    assert!(
        plan.materialized.contains("lines"),
        "measured in scratch first"
    );
    let outcome = run_job(&session, &plan, &RunOptions::default())
        .await
        .unwrap();
    let mut sizes = parquet_files(&out);
    sizes.sort();
    let total: u64 = sizes.iter().sum();
    assert!(total > 3 << 20, "enough data for several files: {total}");
    assert_eq!(outcome.sinks[0].files, sizes.len());
    let mib = (1u64 << 20) as f64;
    let largest = *sizes.last().unwrap() as f64 / mib;
    let median = sizes[sizes.len() / 2] as f64 / mib;
    assert!(
        (0.6..1.5).contains(&largest) && (0.5..1.5).contains(&median),
        "files of about 1 MiB, got {sizes:?}"
    );
    // Every row is there once.
    let count = session
        .query(&format!("SELECT count(*) FROM '{}/'", out.display()))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let rows = count[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(rows as u64, outcome.sinks[0].rows);
    assert!(rows > 100_000);
}
