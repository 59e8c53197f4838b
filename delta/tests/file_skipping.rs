//! Files a filter rules out by the log's statistics are not scanned, and
//! the rows are those the `deltalake` Python package reads.

use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use squall_delta::{DeltaLocation, delta_table};

/// Writes a table of five files with ids 0-99, 100-199, ... (delta-rs logs
/// each file's minimum and maximum).
fn python_writes_five_files(path: &std::path::Path) {
    let script = r#"
import sys
try:
    import pyarrow as pa
    from deltalake import write_deltalake
except ImportError as e:
    sys.exit(f"{e}: run scripts/install-test-deps.sh (pip install deltalake pyarrow)")
for start in range(0, 500, 100):
    ids = list(range(start, start + 100))
    write_deltalake(sys.argv[1], pa.table({
        "id": pa.array(ids, pa.int64()),
        "label": pa.array([f"row {i}" for i in ids]),
        "maybe": pa.array([None] * 100, pa.int32()),
    }), mode="append")
"#;
    let out = Command::new("python3")
        .args(["-c", script, &path.display().to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Files the scan of `sql` reads.
async fn files_scanned(ctx: &SessionContext, sql: &str) -> usize {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let mut files = 0;
    let mut stack = vec![plan];
    while let Some(node) = stack.pop() {
        if let Some(config) = squall_connectors::scan_leaf::file_scan_config(&node) {
            files += squall_connectors::scan_leaf::scan_files(config).len();
        }
        stack.extend(node.children().into_iter().cloned());
    }
    files
}

#[tokio::test]
async fn files_the_statistics_rule_out_are_not_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    python_writes_five_files(&path);
    let ctx = SessionContext::new();
    let location = DeltaLocation::new(&path.display().to_string()).unwrap();
    let table = delta_table(ctx.runtime_env().as_ref(), &location)
        .await
        .unwrap();
    assert_eq!(table.file_count(), 5);
    ctx.register_table("t", Arc::new(table)).unwrap();

    assert_eq!(files_scanned(&ctx, "SELECT * FROM t").await, 5);
    assert_eq!(
        files_scanned(&ctx, "SELECT * FROM t WHERE id BETWEEN 120 AND 180").await,
        1
    );
    assert_eq!(
        files_scanned(&ctx, "SELECT * FROM t WHERE id < 50 OR id >= 450").await,
        2
    );
    assert_eq!(
        files_scanned(&ctx, "SELECT * FROM t WHERE id > 1000").await,
        0
    );
    // A column that is null in every file: no file can match.
    assert_eq!(
        files_scanned(&ctx, "SELECT * FROM t WHERE maybe = 3").await,
        0
    );
    // Strings are never used to skip (writers truncate them).
    assert_eq!(
        files_scanned(&ctx, "SELECT * FROM t WHERE label = 'row 7'").await,
        5
    );

    let rows = ctx
        .sql("SELECT count(*) AS n, min(id) AS lo, max(id) AS hi FROM t WHERE id BETWEEN 120 AND 180 OR id = 499")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = pretty_format_batches(&rows).unwrap().to_string();
    assert!(text.contains("| 62 | 120 | 499 |"), "{text}");
}
