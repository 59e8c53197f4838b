//! Independent engines for the ETL tests: the `deltalake` Python package
//! (delta-rs) and DuckDB, and Squall's rows printed as they print theirs.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use squall_jobs::Session;

/// Runs `script` with Python (the `deltalake`, `pyarrow` and `duckdb`
/// packages), `args` as `sys.argv[1:]`; returns its standard output.
pub fn python(script: &str, args: &[&str]) -> String {
    let prelude = r#"
import sys
try:
    import deltalake, pyarrow, duckdb
except ImportError as e:
    sys.exit(f"{e}: run scripts/install-test-deps.sh (pip install deltalake pyarrow duckdb)")
import decimal
def cell(v):
    if isinstance(v, (float, decimal.Decimal)):
        return "%.2f" % float(v)
    return "NULL" if v is None else str(v)
def show(rows):
    for row in sorted("\t".join(cell(v) for v in r) for r in rows):
        print(row)
"#;
    // Once the script has printed its rows, the process ends at once: with
    // deltalake's and DuckDB's threads both loaded, Python's own teardown
    // now and then aborts ("terminate called without an active exception",
    // seen once in a full test run) after all the work is done. A script
    // that fails raises before this line and exits as it always did.
    let epilogue = "\nsys.stdout.flush()\nimport os\nos._exit(0)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}\n{script}{epilogue}"))
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "Python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The rows of `sql` over the Delta table at `table` (as `t`), version
/// `version` or the newest, as the `deltalake` package reads it and
/// DuckDB computes over what it read.
pub fn python_rows(table: &Path, version: Option<i64>, sql: &str) -> Vec<String> {
    let script = r#"
path, version, sql = sys.argv[1], sys.argv[2], sys.argv[3]
dt = deltalake.DeltaTable(path, version=None if version == "" else int(version))
t = dt.to_pyarrow_table()
show(duckdb.sql(sql).fetchall())
"#;
    let version = version.map(|v| v.to_string()).unwrap_or_default();
    lines(python(
        script,
        &[&table.display().to_string(), &version, sql],
    ))
}

/// The rows of `sql` run by DuckDB alone.
pub fn duckdb_rows(sql: &str) -> Vec<String> {
    lines(python("show(duckdb.sql(sys.argv[1]).fetchall())", &[sql]))
}

fn lines(text: String) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// Rows as the Python side prints them: tab-joined, numbers with
/// fractions to two decimals, NULL for nulls, sorted.
pub fn squall_rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
                    cast(c, &DataType::Float64).unwrap()
                }
                _ => c.clone(),
            })
            .collect();
        for r in 0..batch.num_rows() {
            let row: Vec<String> = columns
                .iter()
                .map(|c| {
                    if c.is_null(r) {
                        "NULL".to_string()
                    } else if c.data_type() == &DataType::Float64 {
                        let f = c
                            .as_any()
                            .downcast_ref::<datafusion::arrow::array::Float64Array>()
                            .unwrap();
                        format!("{:.2}", f.value(r))
                    } else {
                        ArrayFormatter::try_new(c.as_ref(), &options)
                            .unwrap()
                            .value(r)
                            .to_string()
                    }
                })
                .collect();
            rows.push(row.join("\t"));
        }
    }
    rows.sort();
    rows
}

pub async fn squall_query(session: &Session, sql: &str) -> Vec<String> {
    let batches = session.query(sql).await.unwrap().collect().await.unwrap();
    squall_rows(&batches)
}
