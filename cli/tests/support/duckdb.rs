//! DuckDB (the `duckdb` pip package) as an independent engine: it reads
//! what Squall wrote and computes the same answers on its own.

use std::process::Command;

/// The rows of `sql` run by DuckDB, one string per row: values joined by
/// tabs, numbers with two decimals, sorted. Panics, saying how to install
/// DuckDB, when it is missing.
pub fn rows(sql: &str) -> Vec<String> {
    let script = r#"
import sys
try:
    import duckdb
except ImportError:
    sys.exit("the duckdb Python package is missing: run scripts/install-test-deps.sh (pip install duckdb)")
import decimal
def cell(v):
    if isinstance(v, (float, decimal.Decimal)):
        return "%.2f" % float(v)
    return "NULL" if v is None else str(v)
rows = duckdb.sql(sys.argv[1]).fetchall()
for row in sorted("\t".join(cell(v) for v in r) for r in rows):
    print(row)
"#;
    let out = Command::new("python3")
        .args(["-c", script, sql])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "DuckDB failed on {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}
