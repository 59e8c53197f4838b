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

/// Workers on Lambda see object storage only: a local scratch directory (the
/// default one too) or a local table is refused before any task is invoked,
/// saying what to pass instead. No Lambda endpoint is needed to find out.
#[test]
fn lambda_workers_cannot_reach_local_paths() {
    let data = tempfile::tempdir().unwrap();
    let table = format!("people={}", csv_table(data.path()));
    let lambda = [
        "--backend",
        "lambda",
        "--function",
        "squall",
        "--lambda-endpoint",
        "http://127.0.0.1:9",
    ];
    let env = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("SQUALL_TASK_KEY", "bad-input-test-key-0123456789abcdef"),
    ];
    let mut args = vec!["sql", "-c", "SELECT 1"];
    args.extend(lambda);
    let out = squall(&args, &env);
    assert_one_line_error(
        &out,
        "the lambda backend's workers cannot reach a temporary local directory (the default scratch location): pass --scratch s3://",
    );

    let scratch = data.path().join("scratch");
    let mut args = vec![
        "sql",
        "--scratch",
        scratch.to_str().unwrap(),
        "-c",
        "SELECT 1",
    ];
    args.extend(lambda);
    let out = squall(&args, &env);
    assert_one_line_error(&out, "(the scratch location): pass --scratch s3://");

    let mut args = vec![
        "sql",
        "--scratch",
        "s3://scratch/squall/",
        "--table",
        &table,
        "-c",
        "SELECT count(*) FROM people",
    ];
    args.extend(lambda);
    let out = squall(&args, &env);
    assert_one_line_error(&out, "people.csv (read by stage");
    assert_one_line_error(&out, "its workers see only object storage");
    assert!(!scratch.exists(), "nothing may be written");
}

/// `squall worker` runs only specs signed with its SQUALL_TASK_KEY; without
/// a key it runs none. Refusals are reports (exit 0), so that the
/// coordinator reads why.
#[test]
fn squall_worker_refuses_specs_not_signed_with_its_key() {
    use std::io::Write;
    let key = squall_worker::TaskKey::new("worker-test-key-0123456789abcdef0123").unwrap();
    let other = squall_worker::TaskKey::new("another-key-0123456789abcdef0123456").unwrap();
    let spec = br#"{"version":1,"query_id":"q","stage_id":0,"task_index":0,"attempt":0}"#;
    let cases: Vec<(&str, Option<&str>, Vec<u8>, &str)> = vec![
        ("no key", None, key.sign(spec), "has no SQUALL_TASK_KEY"),
        (
            "unsigned",
            Some(key.expose_secret()),
            spec.to_vec(),
            "not signed",
        ),
        (
            "foreign",
            Some(key.expose_secret()),
            other.sign(spec),
            "does not match",
        ),
        (
            "expired",
            Some(key.expose_secret()),
            key.sign_until(spec, 1),
            "expired",
        ),
        (
            "altered",
            Some(key.expose_secret()),
            String::from_utf8(key.sign(spec))
                .unwrap()
                .replace("query_id\\\":\\\"q", "query_id\\\":\\\"r")
                .into_bytes(),
            "does not match",
        ),
        ("short key", Some("short"), key.sign(spec), "at least 32"),
    ];
    for (case, worker_key, payload, expected) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_squall"));
        cmd.arg("worker")
            .env_remove("SQUALL_TASK_KEY")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(k) = worker_key {
            cmd.env("SQUALL_TASK_KEY", k);
        }
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(&payload).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{case}: {out:?}");
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            report.contains("\"status\":\"failed\"") && report.contains(expected),
            "{case}: {report}"
        );
    }
}
