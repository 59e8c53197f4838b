//! `squall sql --format ... -o ...` writes what it says, and `squall explain` prints stages.

use std::path::Path;
use std::process::Command;

fn table(dir: &Path) -> String {
    let path = dir.join("scores.csv");
    std::fs::write(&path, "team,points\nred,3\nblue,5\nred,4\n").unwrap();
    format!("scores={}", path.display())
}

fn squall(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(args)
        .arg("--no-progress")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "squall {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

const SQL: &str = "SELECT team, sum(points) AS total FROM scores GROUP BY team ORDER BY team";

#[test]
fn csv_has_a_header_row() {
    let dir = tempfile::tempdir().unwrap();
    let out = squall(&[
        "sql",
        "--table",
        &table(dir.path()),
        "--format",
        "csv",
        "-c",
        SQL,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "team,total\nblue,5\nred,7\n"
    );
}

#[test]
fn json_is_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = squall(&[
        "sql",
        "--table",
        &table(dir.path()),
        "--format",
        "json",
        "-c",
        SQL,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"team\":\"blue\",\"total\":5}\n{\"team\":\"red\",\"total\":7}\n"
    );
}

#[test]
fn parquet_goes_to_the_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("result.parquet");
    squall(&[
        "sql",
        "--table",
        &table(dir.path()),
        "--format",
        "parquet",
        "-o",
        target.to_str().unwrap(),
        "-c",
        SQL,
    ]);
    let file = std::fs::File::open(&target).unwrap();
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 2);
}

#[test]
fn table_output_counts_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = squall(&["sql", "--table", &table(dir.path()), "-c", SQL]);
    let text = String::from_utf8_lossy(&out.stdout);
    // Off a terminal: every row and column; numbers right-aligned.
    assert!(text.contains("│ blue    │     5 │"), "{text}");
    assert!(text.trim_end().ends_with("2 rows"), "{text}");
}

#[test]
fn explain_shows_stages_and_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let out = squall(&["explain", "--table", &table(dir.path()), SQL]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Squall plan: "), "{text}");
    assert!(text.contains("Stage 0"), "{text}");
    assert!(text.contains("(final)"), "{text}");
    assert!(
        text.contains("by hash exchange") || text.contains("by gather exchange"),
        "{text}"
    );
}

#[test]
fn stats_sum_the_tasks_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = squall(&[
        "sql",
        "--table",
        &table(dir.path()),
        "--format",
        "csv",
        "--stats",
        "-c",
        SQL,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "team,total\nblue,5\nred,7\n",
        "the result is unchanged"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("stats: "))
        .unwrap_or_else(|| panic!("no stats line: {stderr}"));
    // Two stages (aggregate, then the final merge), each with at least one task
    // that read its input and wrote its output through the store.
    let number_before = |what: &str| -> u64 {
        let at = line.find(what).unwrap_or_else(|| panic!("{what}: {line}"));
        line[..at]
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(number_before(" stages") >= 2, "{line}");
    assert!(number_before(" tasks") >= 2, "{line}");
    assert!(number_before(" GET") > 0, "{line}");
    assert!(number_before(" PUT") > 0, "{line}");
}

#[test]
fn explain_runs_none_of_the_statements() {
    let dir = tempfile::tempdir().unwrap();
    let copied = dir.path().join("copied.csv");
    let script = format!(
        "CREATE TABLE totals AS SELECT team, sum(points) AS total FROM scores GROUP BY team; \
         COPY (SELECT * FROM scores) TO '{}' STORED AS CSV; \
         SELECT * FROM totals WHERE total > 4 ORDER BY team",
        copied.display()
    );
    let out = squall(&["explain", "--table", &table(dir.path()), &script]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Squall plan: "), "{text}");
    assert!(!copied.exists(), "explain ran the COPY");
    // --explain shows the plan, then runs the script once: the CREATE does
    // not find its table already made by the explanation.
    let out = squall(&[
        "sql",
        "--explain",
        "--format",
        "csv",
        "--table",
        &table(dir.path()),
        "-c",
        &script,
    ]);
    // The COPY's count of rows written, then the SELECT's rows.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "count\n3\nteam,total\nblue,5\nred,7\n"
    );
    assert!(copied.exists(), "the real run writes the COPY");
}

#[test]
fn a_closed_stdout_is_a_quiet_exit() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["explain", "sql"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
            .args([command, "--no-progress", "--table", &table(dir.path()), SQL])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before squall writes anything (`| head -0`).
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "squall {command}: {stderr}");
        assert!(stderr.is_empty(), "squall {command}: {stderr}");
    }
}

/// SQL piped in runs statement by statement, each statement's rows written
/// before the next runs, as duckdb and datafusion-cli do; with `-o`, the
/// file gets the last statement's rows.
#[test]
fn statements_piped_in_print_every_result_in_order() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let piped = |extra: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
            .args(["sql", "--no-progress", "--format", "csv", "--table"])
            .arg(table(dir.path()))
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(
                b"CREATE VIEW best AS SELECT team FROM scores WHERE points = 5;\n\
                  SELECT count(*) AS n FROM scores;\n\
                  SELECT team FROM best;\n",
            )
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(piped(&[]), "n\n3\nteam\nblue\n");
    let file = dir.path().join("last.csv");
    assert_eq!(piped(&["-o", file.to_str().unwrap()]), "");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "team\nblue\n");

    // Nothing piped in: the one-line error says where SQL can come from.
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["sql", "--no-progress"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: no SQL given: pass it as an argument, with -c SQL, with -f FILE or on standard input"
    );
}

/// EXPLAIN in SQL prints its plans as text, uncut, whatever their width.
#[test]
fn explain_analyze_prints_plans_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let out = squall(&[
        "sql",
        "--table",
        &table(dir.path()),
        "-c",
        &format!("EXPLAIN ANALYZE {SQL}"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("Squall plan with metrics:\nRun: "),
        "{text}"
    );
    assert!(text.contains("(per task p50 "), "{text}");
    assert!(!text.contains('│'), "{text}");
}
