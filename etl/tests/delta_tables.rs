//! Delta Lake tables, checked against independent engines: a job's Delta
//! sink holds what DuckDB computes from the same source files, and the
//! `deltalake` Python package (delta-rs, a separate implementation of the
//! log) reads it so; a table the Python package wrote, appended to and
//! deleted from reads in Squall as it reads in Python, at every version;
//! a commit that another writer's commit invalidated is refused and
//! changes nothing.

mod common;

use std::path::Path;

use common::{duckdb_rows, python, python_rows, squall_query, squall_rows};
use squall_connectors::Location;
use squall_etl::{EtlError, JobFile, JobOutcome, JobPlan, RunOptions, run_job};
use squall_jobs::{Session, SessionOptions};

/// TPC-H at scale 0.01 below `dir`, three files per large table.
async fn tpch(dir: &Path) -> String {
    let data = dir.join("tpch");
    let location = Location::parse(&format!("{}/", data.display())).unwrap();
    squall_connectors::tpch::generate_tpch(0.01, &location, 3)
        .await
        .unwrap();
    data.display().to_string()
}

/// The example job: monthly revenue into a Delta table.
fn monthly_job() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/jobs/monthly_revenue_delta.toml"
    );
    std::fs::read_to_string(path).unwrap()
}

/// The monthly revenue, computed by DuckDB from the TPC-H files.
fn monthly_by_duckdb(data: &str) -> Vec<String> {
    duckdb_rows(&format!(
        "SELECT year(o_orderdate) AS year, month(o_orderdate) AS month, o_orderstatus, COUNT(*), \
         SUM(l_extendedprice * (1 - l_discount)) \
         FROM '{data}/orders/*.parquet' JOIN '{data}/lineitem/*.parquet' ON l_orderkey = o_orderkey \
         GROUP BY ALL"
    ))
}

const MONTHLY_COLUMNS: &str = "SELECT year, month, status, lines, revenue FROM t";

async fn run_monthly(data: &str, out: &Path, mode: &str) -> squall_etl::Result<JobOutcome> {
    let session = Session::try_new(SessionOptions::default()).unwrap();
    let sets = vec![
        format!("data={data}"),
        format!("out={}", out.display()),
        format!("mode={mode}"),
    ];
    let job = JobFile::parse("monthly_revenue_delta.toml", &monthly_job(), &sets)?;
    let plan = JobPlan::check(&session, job).await?;
    run_job(&session, &plan, &RunOptions::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_sink_holds_what_duckdb_computes_and_python_reads_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let data = tpch(dir.path()).await;
    let table = dir.path().join("lake/monthly");
    let expected = monthly_by_duckdb(&data);
    assert!(expected.len() > 50, "{expected:?}");

    // Version 0: the table is created by the job's one commit.
    let first = run_monthly(&data, &table, "error_if_exists").await.unwrap();
    assert_eq!(first.sinks[0].delta_version, Some(0));
    assert_eq!(first.sinks[0].rows, expected.len() as u64);
    assert_eq!(python_rows(&table, None, MONTHLY_COLUMNS), expected);
    assert!(table.join("_delta_log/00000000000000000000.json").exists());
    assert!(
        table.join("year=1995").is_dir(),
        "hive-style partition folders"
    );
    // delta-rs reads the statistics Squall logged for every file.
    let with_bounds = python(
        r#"
actions = pyarrow.table(deltalake.DeltaTable(sys.argv[1]).get_add_actions(flatten=True)).to_pydict()
print(len(actions["path"]), sum(1 for v in actions["min.month"] if v is not None), min(actions["min.month"]), max(actions["max.month"]))
"#,
        &[&table.display().to_string()],
    );
    let files = first.sinks[0].files;
    assert_eq!(with_bounds.trim(), format!("{files} {files} 1 12"));
    // No staging left beside the table, nothing but the table's own folders in it.
    let beside: Vec<_> = std::fs::read_dir(dir.path().join("lake"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(beside, vec!["monthly".to_string()]);

    // Squall reads its own table as DuckDB computed it, and prunes by partition.
    let session = Session::try_new(SessionOptions::default()).unwrap();
    let url = format!("delta+{}", table.display());
    session.register_table("t", &url, None).await.unwrap();
    assert_eq!(squall_query(&session, MONTHLY_COLUMNS).await, expected);
    let in_1995: Vec<String> = expected
        .iter()
        .filter(|r| r.starts_with("1995\t"))
        .cloned()
        .collect();
    assert_eq!(
        squall_query(&session, &format!("{MONTHLY_COLUMNS} WHERE year = 1995")).await,
        in_1995
    );

    // error_if_exists now refuses before anything runs.
    let refused = run_monthly(&data, &table, "error_if_exists")
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, EtlError::Invalid { problems, .. }
            if problems[0].message.contains("exists (version 0)")),
        "{refused}"
    );

    // Version 1: an append doubles every row; version 0 is still there.
    let second = run_monthly(&data, &table, "append").await.unwrap();
    assert_eq!(second.sinks[0].delta_version, Some(1));
    let mut doubled: Vec<String> = expected.iter().chain(&expected).cloned().collect();
    doubled.sort();
    assert_eq!(python_rows(&table, None, MONTHLY_COLUMNS), doubled);
    assert_eq!(python_rows(&table, Some(0), MONTHLY_COLUMNS), expected);
    let session = Session::try_new(SessionOptions::default()).unwrap();
    session.register_table("t", &url, None).await.unwrap();
    assert_eq!(squall_query(&session, MONTHLY_COLUMNS).await, doubled);
    session
        .register_table("t0", &format!("{url}@v0"), None)
        .await
        .unwrap();
    assert_eq!(
        squall_query(
            &session,
            "SELECT year, month, status, lines, revenue FROM t0"
        )
        .await,
        expected
    );

    // Version 2: an overwrite removes both earlier commits' files.
    let third = run_monthly(&data, &table, "overwrite").await.unwrap();
    assert_eq!(third.sinks[0].delta_version, Some(2));
    assert_eq!(
        third.sinks[0].replaced,
        first.sinks[0].files + second.sinks[0].files
    );
    assert_eq!(python_rows(&table, None, MONTHLY_COLUMNS), expected);
    assert_eq!(python_rows(&table, Some(1), MONTHLY_COLUMNS), doubled);
}

/// Writes a partitioned table with the `deltalake` package: version 0
/// (200 rows, some of them of no region), 1 (50 more), 2 (every tenth
/// row deleted).
fn python_writes_a_table(path: &Path) {
    let script = r#"
import datetime
import pyarrow as pa
from deltalake import write_deltalake, DeltaTable
path = sys.argv[1]
def rows(start, n):
    ids = list(range(start, start + n))
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "name": pa.array([f"item {i}" for i in ids]),
        "price": pa.array([decimal.Decimal(i * 7 % 1000) / 100 for i in ids], pa.decimal128(10, 2)),
        "day": pa.array([datetime.date(2026, 1, 1) + datetime.timedelta(days=i % 40) for i in ids]),
        "region": pa.array([None if i % 9 == 0 else ["east", "west", "north"][i % 3] for i in ids]),
    })
write_deltalake(path, rows(0, 200), partition_by=["region"])
write_deltalake(path, rows(200, 50), partition_by=["region"], mode="append")
DeltaTable(path).delete("id % 10 = 0")
print(DeltaTable(path).version())
"#;
    let version = python(script, &[&path.display().to_string()]);
    assert_eq!(version.trim(), "2");
}

const ITEM_COLUMNS: &str = "SELECT id, name, price, CAST(day AS VARCHAR), region FROM t";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_python_wrote_reads_in_squall_as_in_python_at_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("items");
    python_writes_a_table(&table);
    let url = format!("delta+{}", table.display());

    let session = Session::try_new(SessionOptions::default()).unwrap();
    session.register_table("t", &url, None).await.unwrap();
    let newest = python_rows(&table, None, ITEM_COLUMNS);
    assert_eq!(newest.len(), 250 - 25);
    assert_eq!(squall_query(&session, ITEM_COLUMNS).await, newest);

    // Partition filters, a null partition and data filters.
    for filter in [
        "region = 'east'",
        "region IS NULL",
        "region <> 'west' AND id > 100",
        "day >= DATE '2026-01-20' AND price < 5",
    ] {
        let sql = format!("{ITEM_COLUMNS} WHERE {filter}");
        let expected = python_rows(&table, None, &sql);
        assert!(!expected.is_empty(), "{filter}");
        assert_eq!(squall_query(&session, &sql).await, expected, "{filter}");
    }
    let grouped = "SELECT region, COUNT(*), SUM(price), MIN(day) FROM t GROUP BY region";
    let expected = python_rows(&table, None, grouped);
    assert_eq!(expected.len(), 4);
    let batches = session
        .query(grouped)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut got = squall_rows(&batches);
    // Python prints dates as dates, Squall too; only the order differs.
    got.sort();
    assert_eq!(got, expected);

    // Time travel: `@vN`, and CREATE EXTERNAL TABLE with a version option.
    for version in [0, 1] {
        let expected = python_rows(&table, Some(version), ITEM_COLUMNS);
        let session = Session::try_new(SessionOptions::default()).unwrap();
        session
            .register_table("t", &format!("{url}@v{version}"), None)
            .await
            .unwrap();
        assert_eq!(
            squall_query(&session, ITEM_COLUMNS).await,
            expected,
            "@v{version}"
        );
        let session = Session::try_new(SessionOptions::default()).unwrap();
        session
            .sql(&format!(
                "CREATE EXTERNAL TABLE t STORED AS DELTA LOCATION '{}' OPTIONS ('version' '{version}')",
                table.display()
            ))
            .await
            .unwrap();
        assert_eq!(
            squall_query(&session, ITEM_COLUMNS).await,
            expected,
            "OPTIONS version {version}"
        );
    }
    assert_eq!(python_rows(&table, Some(0), ITEM_COLUMNS).len(), 200);
    // By time: the newest version at or before it.
    let session = Session::try_new(SessionOptions::default()).unwrap();
    session
        .sql(&format!(
            "CREATE EXTERNAL TABLE t STORED AS DELTA LOCATION '{}' OPTIONS ('timestamp' '2999-01-01')",
            table.display()
        ))
        .await
        .unwrap();
    assert_eq!(squall_query(&session, ITEM_COLUMNS).await, newest);
    let too_early = session
        .sql(&format!(
            "CREATE EXTERNAL TABLE early STORED AS DELTA LOCATION '{}' OPTIONS ('timestamp' '2000-01-01T00:00:00Z')",
            table.display()
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        too_early.contains("version as of 2000-01-01T00:00:00+00:00"),
        "{too_early}"
    );

    // Versions and places that are not there say so.
    let missing = session
        .register_table("old", &format!("{url}@v7"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("no version 7") || missing.contains("version 7"),
        "{missing}"
    );
    let not_delta = session
        .register_table("nothing", &format!("delta+{}", dir.path().display()), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(not_delta.contains("no _delta_log/"), "{not_delta}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_after_another_writer_s_commit_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = tpch(dir.path()).await;
    let table = dir.path().join("lake/monthly");
    run_monthly(&data, &table, "error_if_exists").await.unwrap();
    let before = python_rows(&table, None, MONTHLY_COLUMNS);

    // A job that read version 0 commits an overwrite after another writer
    // appended version 1: refused.
    let location = squall_delta::DeltaLocation::new(&table.display().to_string()).unwrap();
    let session = Session::try_new(SessionOptions::default()).unwrap();
    session
        .register_table("t", &format!("delta+{}", table.display()), None)
        .await
        .unwrap();
    let schema = session.schema_of("SELECT * FROM t").await.unwrap();
    python(
        r#"
from deltalake import DeltaTable, write_deltalake
dt = DeltaTable(sys.argv[1])
write_deltalake(sys.argv[1], dt.to_pyarrow_table().slice(0, 3), partition_by=["year"], mode="append")
"#,
        &[&table.display().to_string()],
    );
    let after_other_writer = python_rows(&table, None, MONTHLY_COLUMNS);
    assert_eq!(after_other_writer.len(), before.len() + 3);

    // What the refused job staged: one data file, beside the table.
    let staging = dir
        .path()
        .join("lake/_squall_staging/monthly/q-test/s0-t0-a0/d0");
    std::fs::create_dir_all(staging.join("year=1995")).unwrap();
    let some_file = std::fs::read_dir(table.join("year=1995"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(&some_file, staging.join("year=1995/new.parquet")).unwrap();
    let staged = squall_connectors::sink_staging::StagedSink {
        destination: squall_connectors::sink_staging::SinkDestination {
            dir: Location::parse(&format!("{}/", table.display())).unwrap(),
            file_name: None,
            success_marker: false,
        },
        query_id: "q-test".into(),
        staged: vec![Location::parse(&format!("{}/", staging.display())).unwrap()],
    };
    let write = squall_delta::DeltaWrite {
        table: location,
        schema,
        partition_by: vec!["year".into()],
        mode: squall_delta::DeltaWriteMode::Overwrite,
        read_version: Some(0),
    };
    let refused = squall_delta::commit_staged(&write, &staged)
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("another writer committed") && message.contains("read version 0"),
        "{message}"
    );
    assert_eq!(
        python_rows(&table, None, MONTHLY_COLUMNS),
        after_other_writer
    );
    assert!(!table.join("year=1995/new.parquet").exists());
    assert!(
        !dir.path().join("lake/_squall_staging").exists(),
        "staging deleted"
    );

    // Columns that are not the table's are refused before anything runs.
    let session = Session::try_new(SessionOptions::default()).unwrap();
    let job = JobFile::parse(
        "other.toml",
        &format!(
            r#"
[[steps]]
name = "other"
sql = "SELECT 1995 AS year, 'x' AS label"

[[sinks]]
step = "other"
url = "{}"
format = "delta"
partition_by = ["year"]
mode = "append"
"#,
            table.display()
        ),
        &[],
    )
    .unwrap();
    let problems = match JobPlan::check(&session, job).await {
        Err(EtlError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    };
    assert!(
        problems[0].key == "sinks[0].url"
            && problems[0]
                .message
                .contains("the rows have columns (year long, label string)"),
        "{problems:?}"
    );
    assert_eq!(
        python_rows(&table, None, MONTHLY_COLUMNS),
        after_other_writer
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_and_odd_partition_values_read_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("lake/odd");
    let job = format!(
        r#"
[[steps]]
name = "s"
sql = """
SELECT * FROM (VALUES (1, 'plain', 10), (2, 'x y', NULL), (3, 'v-1.5_z', 10), (4, NULL, 7), (5, 'a=b', NULL))
  AS v(id, label, grp)
"""

[[sinks]]
step = "s"
url = "{}"
format = "delta"
partition_by = ["grp"]

[[sinks]]
step = "s"
url = "{}"
format = "delta"
partition_by = ["label"]
"#,
        table.display(),
        dir.path().join("lake/by_label").display()
    );
    let session = Session::try_new(SessionOptions::default()).unwrap();
    let plan = JobPlan::check(&session, JobFile::parse("odd.toml", &job, &[]).unwrap())
        .await
        .unwrap();
    run_job(&session, &plan, &RunOptions::default())
        .await
        .unwrap();
    let expected = vec![
        "1\tplain\t10",
        "2\tx y\tNULL",
        "3\tv-1.5_z\t10",
        "4\tNULL\t7",
        "5\ta=b\tNULL",
    ];
    for path in [table.clone(), dir.path().join("lake/by_label")] {
        let sql = "SELECT id, label, grp FROM t";
        assert_eq!(
            python_rows(&path, None, sql),
            expected,
            "{}",
            path.display()
        );
        let session = Session::try_new(SessionOptions::default()).unwrap();
        session
            .register_table("t", &format!("delta+{}", path.display()), None)
            .await
            .unwrap();
        assert_eq!(
            squall_query(&session, sql).await,
            expected,
            "{}",
            path.display()
        );
        assert_eq!(
            squall_query(&session, "SELECT id FROM t WHERE grp IS NULL").await,
            vec!["2", "5"]
        );
    }
    // A value whose escaping differs between writers is refused, and
    // nothing is written.
    let job = format!(
        r#"
[[steps]]
name = "s"
sql = "SELECT 1 AS id, '50%' AS label"

[[sinks]]
step = "s"
url = "{}"
format = "delta"
partition_by = ["label"]
"#,
        dir.path().join("lake/percent").display()
    );
    let session = Session::try_new(SessionOptions::default()).unwrap();
    let plan = JobPlan::check(&session, JobFile::parse("percent.toml", &job, &[]).unwrap())
        .await
        .unwrap();
    let refused = run_job(&session, &plan, &RunOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("partition column 'label' has the value '50%'"),
        "{refused}"
    );
    assert!(!dir.path().join("lake/percent/_delta_log").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overwrite_of_a_table_the_job_reads_is_refused_after_another_writer_s_commit() {
    let dir = tempfile::tempdir().unwrap();
    let data = tpch(dir.path()).await;
    let table = dir.path().join("lake/monthly");
    run_monthly(&data, &table, "error_if_exists").await.unwrap();
    // A job that reads the table and overwrites it.
    let job = format!(
        r#"
[sources.monthly]
url = "{0}"
format = "delta"

[[steps]]
name = "kept"
sql = "SELECT * FROM monthly WHERE lines > 0"

[[sinks]]
step = "kept"
url = "{0}"
format = "delta"
partition_by = ["year"]
mode = "overwrite"
"#,
        table.display()
    );
    let session = Session::try_new(SessionOptions::default()).unwrap();
    let plan = JobPlan::check(&session, JobFile::parse("rewrite.toml", &job, &[]).unwrap())
        .await
        .unwrap();
    // Another writer appends after the job read version 0.
    python(
        r#"
from deltalake import DeltaTable, write_deltalake
dt = DeltaTable(sys.argv[1])
write_deltalake(sys.argv[1], dt.to_pyarrow_table().slice(0, 2), partition_by=["year"], mode="append")
"#,
        &[&table.display().to_string()],
    );
    let after_other_writer = python_rows(&table, None, MONTHLY_COLUMNS);
    let refused = run_job(&session, &plan, &RunOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("another writer committed") && refused.contains("read version 0"),
        "{refused}"
    );
    assert_eq!(
        python_rows(&table, None, MONTHLY_COLUMNS),
        after_other_writer
    );

    // An incremental source and a Delta sink in one job are refused.
    std::fs::create_dir_all(dir.path().join("drops")).unwrap();
    let job = format!(
        r#"
[sources.drops]
url = "{}/"
format = "csv"
schema = "id BIGINT"
incremental = true

[[steps]]
name = "s"
sql = "SELECT id FROM drops"

[[sinks]]
step = "s"
url = "{}"
format = "delta"
mode = "append"
"#,
        dir.path().join("drops").display(),
        dir.path().join("lake/ids").display()
    );
    let session = Session::try_new(SessionOptions::default()).unwrap();
    match JobPlan::check(&session, JobFile::parse("inc.toml", &job, &[]).unwrap()).await {
        Err(EtlError::Invalid { problems, .. }) => assert!(
            problems.iter().any(|p| p.key == "sinks[0].format"
                && p.message.contains("incremental source ('drops')")),
            "{problems:?}"
        ),
        other => panic!("expected problems, got {other:?}"),
    }
}
