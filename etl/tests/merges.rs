//! `mode = "merge"`: a sink's destination becomes the step's rows plus
//! the destination's rows of other keys, as DuckDB computes that upsert
//! from the same files, for Parquet folders and Delta tables; rows that
//! change partition move; rows with a null key are kept from both sides;
//! the Delta table's earlier version still reads as it was.

mod common;

use std::path::Path;

use common::{duckdb_rows, python_rows, squall_query};
use squall_etl::{JobFile, JobOutcome, JobPlan, RunOptions, run_job};
use squall_jobs::{Session, SessionOptions};

const JOB: &str = r#"name = "customers"

[params]
drop = "."
out = "."
format = "parquet"

[sources.customers]
url = "${drop}"
format = "csv"

[[steps]]
name = "latest"
sql = "SELECT id, name, CAST(balance AS DOUBLE) AS balance, region FROM customers"

[[sinks]]
step = "latest"
url = "${out}"
format = "${format}"
partition_by = ["region"]
mode = "merge"
merge_on = ["id"]
"#;

/// A CSV drop of customers `ids`, named `tag`; every seventh moves to
/// region `z` in the later drop; one row has no id.
fn drop_file(path: &Path, ids: std::ops::RangeInclusive<i64>, tag: &str) {
    let mut text = "id,name,balance,region\n".to_string();
    for id in ids {
        let region = if tag == "new" && id % 7 == 0 {
            "z"
        } else {
            ["a", "b", "c"][(id % 3) as usize]
        };
        text.push_str(&format!("{id},{tag} {id},{}.25,{region}\n", id * 3));
    }
    text.push_str(&format!(",{tag} nobody,1.5,a\n"));
    // No region: a null partition value.
    text.push_str(&format!(
        "{},{tag} nowhere,2.5,\n",
        if tag == "new" { 500 } else { 400 }
    ));
    std::fs::write(path, text).unwrap();
}

async fn run(drop: &Path, out: &Path, format: &str) -> JobOutcome {
    let session = Session::try_new(SessionOptions::default()).unwrap();
    let sets = vec![
        format!("drop={}", drop.display()),
        format!("out={}", out.display()),
        format!("format={format}"),
    ];
    let job = JobFile::parse("customers.toml", JOB, &sets).unwrap();
    let plan = JobPlan::check(&session, job).await.unwrap();
    assert!(
        plan.materialized.contains("latest"),
        "a merge reads its step twice"
    );
    run_job(&session, &plan, &RunOptions::default())
        .await
        .unwrap()
}

/// The upsert, by DuckDB, from the two drops.
fn merged_by_duckdb(old: &Path, new: &Path) -> Vec<String> {
    let read = |p: &Path| format!("read_csv('{}', header = true)", p.display());
    duckdb_rows(&format!(
        "SELECT id, name, CAST(balance AS DOUBLE), region FROM {new} \
         UNION ALL SELECT id, name, CAST(balance AS DOUBLE), region FROM {old} AS o \
         WHERE NOT EXISTS (SELECT 1 FROM {new} AS n WHERE n.id = o.id)",
        new = read(new),
        old = read(old),
    ))
}

const COLUMNS: &str = "SELECT id, name, balance, region FROM t";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_into_a_parquet_folder_is_duckdb_s_upsert() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old.csv"), dir.path().join("new.csv"));
    drop_file(&old, 1..=100, "old");
    drop_file(&new, 80..=130, "new");
    let out = dir.path().join("customers");

    // Into an empty folder: the first drop, as it is.
    let first = run(&old, &out, "parquet").await;
    assert_eq!(first.sinks[0].rows, 102);
    let second = run(&new, &out, "parquet").await;
    assert_eq!(second.sinks[0].replaced, first.sinks[0].files);
    let expected = merged_by_duckdb(&old, &new);
    assert_eq!(expected.len(), 79 + 51 + 2 + 2);
    let session = Session::try_new(SessionOptions::default()).unwrap();
    session
        .register_table("t", &format!("{}/", out.display()), None)
        .await
        .unwrap();
    // A null partition value's folder is Hive's `__HIVE_DEFAULT_PARTITION__`,
    // which reads back as null.
    let read_back = "SELECT id, name, balance, region FROM t";
    assert_eq!(squall_query(&session, read_back).await, expected);
    assert!(out.join("region=__HIVE_DEFAULT_PARTITION__").is_dir());
    assert!(
        out.join("region=z").is_dir(),
        "moved rows have their new partition"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_into_a_delta_table_is_one_commit_of_duckdb_s_upsert() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old.csv"), dir.path().join("new.csv"));
    drop_file(&old, 1..=100, "old");
    drop_file(&new, 80..=130, "new");
    let table = dir.path().join("lake/customers");

    let first = run(&old, &table, "delta").await;
    assert_eq!(first.sinks[0].delta_version, Some(0));
    let second = run(&new, &table, "delta").await;
    assert_eq!(second.sinks[0].delta_version, Some(1));
    assert_eq!(second.sinks[0].replaced, first.sinks[0].files);

    let expected = merged_by_duckdb(&old, &new);
    assert_eq!(python_rows(&table, None, COLUMNS), expected);
    let session = Session::try_new(SessionOptions::default()).unwrap();
    session
        .register_table("t", &format!("delta+{}", table.display()), None)
        .await
        .unwrap();
    assert_eq!(squall_query(&session, COLUMNS).await, expected);
    // Version 0 is the first drop.
    let first_drop = duckdb_rows(&format!(
        "SELECT id, name, CAST(balance AS DOUBLE), region FROM read_csv('{}', header = true)",
        old.display()
    ));
    assert_eq!(python_rows(&table, Some(0), COLUMNS), first_drop);
}
