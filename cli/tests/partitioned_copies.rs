//! `COPY ... TO 'dir/' PARTITIONED BY (k)` in SQL: a null partition value
//! goes to the folder `k=__HIVE_DEFAULT_PARTITION__` (DataFusion's own
//! writer would put a null number under `k=0`), and both DuckDB and Squall
//! read that folder back as null, with partition filters that must keep or
//! drop it. DuckDB computes every expected answer from the sources.

mod support;

use std::path::Path;

use support::duckdb;
use support::tpch::{generate, squall};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Squall's CSV output as DuckDB's rows print: tab-joined, an empty field
/// as NULL, sorted, without the header.
fn squall_rows(args: &[String]) -> Vec<String> {
    let mut args = args.to_vec();
    args.extend(s(&["--format", "csv"]));
    let csv = squall(&args, &[]);
    let mut rows: Vec<String> = csv
        .lines()
        .skip(1)
        .map(|line| {
            line.split(',')
                .map(|v| if v.is_empty() { "NULL" } else { v })
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect();
    rows.sort();
    rows
}

fn folders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The rows the copy below writes, as DuckDB computes them from the source.
const ROWS: &str = "SELECT l_orderkey, l_quantity, \
     CASE WHEN l_linenumber = 1 THEN NULL ELSE l_linenumber END AS line, \
     NULLIF(l_returnflag, 'N') AS flag FROM lineitem";

#[test]
fn null_partition_values_of_a_distributed_copy_read_back_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    generate(&data, &[]);
    let lineitem = format!("lineitem={data}/lineitem");
    let out = dir.path().join("out");
    // Many tasks write it: 1 MiB of input per task.
    squall(
        &s(&[
            "sql",
            "--table",
            &lineitem,
            "--target-task-bytes",
            "1MiB",
            "--workers",
            "4",
            &format!(
                "COPY ({ROWS}) TO '{}/' STORED AS PARQUET PARTITIONED BY (line, flag)",
                out.display()
            ),
        ]),
        &[],
    );
    let lines = folders(&out);
    assert!(
        lines.contains(&"line=__HIVE_DEFAULT_PARTITION__".to_string()),
        "{lines:?}"
    );
    assert!(!lines.contains(&"line=0".to_string()), "{lines:?}");
    assert_eq!(
        folders(&out.join("line=2")),
        ["flag=A", "flag=R", "flag=__HIVE_DEFAULT_PARTITION__"]
    );

    let source = format!("read_parquet('{data}/lineitem/*.parquet')");
    let duckdb_source = |select: &str, filter: &str| {
        duckdb::rows(&format!(
            "WITH lineitem AS (SELECT * FROM {source}), r AS ({ROWS}) \
             SELECT {select} FROM r {filter} GROUP BY ALL"
        ))
    };
    let select = "line, flag, count(*), CAST(sum(l_quantity) AS BIGINT)";
    let expected = duckdb_source(select, "");
    assert!(expected.iter().any(|r| r.starts_with("NULL\tNULL\t")));
    // DuckDB reads the folders back as the rows it computes itself.
    let written = duckdb::rows(&format!(
        "SELECT {select} FROM read_parquet('{}/*/*/*.parquet', hive_partitioning = true) GROUP BY ALL",
        out.display()
    ));
    assert_eq!(written, expected);
    // So does Squall, with filters that keep or drop the null folders.
    let table = format!("t={}/", out.display());
    for filter in [
        "",
        "WHERE line IS NULL",
        "WHERE flag IS NOT NULL",
        "WHERE flag <> 'A'",
        "WHERE flag = 'R' OR line IS NULL",
        "WHERE coalesce(line, '0') = '0'",
    ] {
        // Squall reads partition values as text; DuckDB's `line` is a number.
        let duckdb_filter = filter.replace("'0'", "0");
        assert_eq!(
            squall_rows(&s(&[
                "sql",
                "--table",
                &table,
                &format!("SELECT {select} FROM t {filter} GROUP BY line, flag"),
            ])),
            duckdb_source(select, &duckdb_filter),
            "{filter}"
        );
    }
}

#[test]
fn a_null_date_partition_reads_back_as_null_in_a_created_table() {
    let dir = tempfile::tempdir().unwrap();
    let days = dir.path().join("days");
    let out = squall_rows(&s(&[
        "sql",
        &format!(
            "COPY (SELECT * FROM (VALUES (1, DATE '2024-01-05'), (2, NULL), (3, DATE '2024-02-01')) AS t(id, day)) \
             TO '{0}/' STORED AS PARQUET PARTITIONED BY (day); \
             CREATE EXTERNAL TABLE d STORED AS PARQUET LOCATION '{0}/'; \
             SELECT id, day FROM d WHERE day IS NULL OR day > '2024-01-31'",
            days.display()
        ),
    ]));
    assert_eq!(
        folders(&days),
        [
            "day=2024-01-05",
            "day=2024-02-01",
            "day=__HIVE_DEFAULT_PARTITION__"
        ]
    );
    // The copy's count, then the query's rows.
    assert!(out.contains(&"2\tNULL".to_string()), "{out:?}");
    assert!(out.contains(&"3\t2024-02-01".to_string()), "{out:?}");
    assert!(!out.iter().any(|r| r.starts_with("1\t")), "{out:?}");
    let duckdb_rows = duckdb::rows(&format!(
        "SELECT id, day FROM read_parquet('{}/*/*.parquet', hive_partitioning = true)",
        days.display()
    ));
    assert_eq!(duckdb_rows, ["1\t2024-01-05", "2\tNULL", "3\t2024-02-01"]);
}
