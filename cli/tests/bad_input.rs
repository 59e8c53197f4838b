//! Bad input gets one line on stderr naming the culprit, exit status 1, and
//! leaves no scratch objects behind.

use std::path::Path;
use std::process::{Command, Output};

fn squall(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_squall"));
    cmd.args(args).arg("--no-progress");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("squall runs")
}

fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "'{needle}' not in: {stderr}"
    );
}

fn assert_empty_dir(dir: &Path) {
    let left: Vec<_> = walk(dir);
    assert!(left.is_empty(), "scratch objects left behind: {left:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A small CSV table with a text column that does not cast to an integer.
fn csv_table(dir: &Path) -> String {
    let path = dir.join("people.csv");
    std::fs::write(&path, "id,name\n1,ada\n2,grace\n3,barbara\n").expect("write csv");
    path.display().to_string()
}

#[test]
fn malformed_sql() {
    let scratch = tempfile::tempdir().unwrap();
    let out = squall(
        &[
            "sql",
            "--scratch",
            scratch.path().to_str().unwrap(),
            "-c",
            "SELEC 1",
        ],
        &[],
    );
    assert_one_line_error(&out, "SQL");
    assert_empty_dir(scratch.path());
}

#[test]
fn unknown_table() {
    let out = squall(&["sql", "-c", "SELECT * FROM nowhere_table"], &[]);
    assert_one_line_error(&out, "nowhere_table");
}

#[test]
fn unknown_column() {
    let dir = tempfile::tempdir().unwrap();
    let table = format!("people={}", csv_table(dir.path()));
    let out = squall(
        &[
            "sql",
            "--table",
            &table,
            "-c",
            "SELECT no_such_column FROM people",
        ],
        &[],
    );
    assert_one_line_error(&out, "no_such_column");
}

#[test]
fn missing_file() {
    let out = squall(
        &[
            "sql",
            "--table",
            "t=/no/such/dir/t.parquet",
            "-c",
            "SELECT 1",
        ],
        &[],
    );
    assert_one_line_error(&out, "/no/such/dir/t.parquet");
}

#[test]
fn parquet_file_that_is_not_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bogus.parquet");
    std::fs::write(&path, "id,name\n1,ada\n").unwrap();
    let table = format!("bogus={}", path.display());
    let out = squall(
        &["sql", "--table", &table, "-c", "SELECT * FROM bogus"],
        &[],
    );
    assert_one_line_error(&out, "not a valid Parquet file");
    assert_one_line_error(&out, "bogus.parquet");
}

#[test]
fn unreachable_object_store() {
    let envs = [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    let out = squall(
        &[
            "sql",
            "--table",
            "t=s3://unreachable-bucket/data/",
            "-c",
            "SELECT 1",
        ],
        &envs,
    );
    assert_one_line_error(&out, "s3://unreachable-bucket/data/");
}

#[test]
fn failing_task_names_stage_and_task_and_leaves_no_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let table = format!("people={}", csv_table(dir.path()));
    let out = squall(
        &[
            "sql",
            "--scratch",
            scratch.path().to_str().unwrap(),
            "--table",
            &table,
            "-c",
            "SELECT name, count(*) FROM people WHERE CAST(name AS INT) > 0 GROUP BY name",
        ],
        &[],
    );
    assert_one_line_error(&out, "stage");
    assert_one_line_error(&out, "task");
    assert_empty_dir(scratch.path());
}

#[test]
fn help_teaches_by_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("squall gen tpch"), "{text}");
    assert!(text.contains("--table"), "{text}");
}
