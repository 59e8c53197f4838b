//! `squall run` with sources, sinks, scratch and job state on S3 (moto's
//! server on 127.0.0.1): the daily revenue example writes what it writes
//! on local disk, on worker processes; an incremental source on S3 is read
//! for its new objects only, by their ETags; nothing staged is left.

mod support;

use std::path::Path;

use support::S3Server;
use support::tpch::{generate, squall};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn csv_of(table: &str, sql: &str, envs: &[(&'static str, String)]) -> String {
    squall(
        &s(&[
            "sql",
            "--table",
            &format!("t={table}"),
            "--format",
            "csv",
            "-c",
            sql,
        ]),
        envs,
    )
}

#[test]
fn etl_jobs_read_and_write_s3_as_they_do_local_disk() {
    let s3 = S3Server::start();
    let envs = s3.envs();
    for bucket in ["lake", "scratch"] {
        let reply = s3.http("PUT", &format!("/{bucket}"));
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "bucket {bucket}: {reply}"
        );
    }
    let local = tempfile::tempdir().unwrap();
    let local_data = local.path().join("tpch").display().to_string();
    let local_out = local.path().join("out").display().to_string();
    generate(&local_data, &[]);
    generate("s3://lake/tpch", &envs);
    let job = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/jobs/daily_revenue.toml")
        .display()
        .to_string();
    squall(
        &s(&[
            "run",
            &job,
            "--set",
            &format!("data={local_data}"),
            "--set",
            &format!("out={local_out}"),
        ]),
        &[],
    );
    let summary = squall(
        &s(&[
            "run",
            &job,
            "--set",
            "data=s3://lake/tpch",
            "--set",
            "out=s3://lake/out",
            "--scratch",
            "s3://scratch/squall/",
            "--backend",
            "process",
            "--target-task-bytes",
            "1MiB",
        ]),
        &envs,
    );
    assert!(summary.contains("2 sinks published together"), "{summary}");
    for (sink, sql) in [
        (
            "daily_revenue",
            "SELECT year, month, count(*), sum(lines), sum(revenue) FROM t GROUP BY 1, 2 ORDER BY 1, 2",
        ),
        ("monthly_revenue", "SELECT * FROM t ORDER BY year, month"),
    ] {
        let on_disk = csv_of(&format!("{local_out}/{sink}/"), sql, &[]);
        let on_s3 = csv_of(&format!("s3://lake/out/{sink}/"), sql, &envs);
        assert!(on_disk.lines().count() > 12, "{on_disk}");
        assert_eq!(on_s3, on_disk, "{sink}");
    }
    let staging = s3.http("GET", "/lake?list-type=2&prefix=out/_squall_staging/");
    assert!(!staging.contains("<Key>"), "staging left behind: {staging}");
    let scratch = s3.http("GET", "/scratch?list-type=2");
    assert!(!scratch.contains("<Key>"), "scratch left behind: {scratch}");

    // An incremental source on S3: each run reads only the new objects.
    let drop_day = |day: u32| {
        squall(
            &s(&[
                "sql",
                "-c",
                &format!(
                    "COPY (SELECT {day} AS id, '{day}0' AS amount) TO 's3://lake/drops/day{day}.csv' STORED AS CSV"
                ),
            ]),
            &envs,
        );
    };
    let job_file = local.path().join("payments.toml");
    std::fs::write(
        &job_file,
        r#"name = "payments"

[sources.payments]
url = "s3://lake/drops/"
format = "csv"
schema = "id BIGINT, amount VARCHAR"
incremental = true

[[steps]]
name = "cleaned"
sql = "SELECT id, CAST(amount AS INT) AS amount FROM payments"

[[sinks]]
step = "cleaned"
url = "s3://lake/payments/"
mode = "append"
"#,
    )
    .unwrap();
    let run = || {
        squall(
            &s(&[
                "run",
                job_file.to_str().unwrap(),
                "--scratch",
                "s3://scratch/squall/",
            ]),
            &envs,
        )
    };
    drop_day(1);
    let first = run();
    assert!(
        first.contains("source payments: read 1 new or changed object of 1"),
        "{first}"
    );
    drop_day(2);
    let second = run();
    assert!(
        second.contains("source payments: read 1 new or changed object of 2"),
        "{second}"
    );
    let rows = csv_of(
        "s3://lake/payments/",
        "SELECT id, amount FROM t ORDER BY id",
        &envs,
    );
    assert_eq!(rows, "id,amount\n1,10\n2,20\n");
    let state = s3.http("GET", "/lake?list-type=2&prefix=_squall_state/");
    assert!(
        state.contains("<Key>_squall_state/payments/payments.json</Key>"),
        "{state}"
    );
}

/// The rows of `sql` over the Delta table at `url` (as `t`), as the
/// `deltalake` Python package reads it from the S3 server and DuckDB
/// computes over what it read: tab-joined, sorted.
fn python_delta_rows(url: &str, sql: &str, envs: &[(&'static str, String)]) -> String {
    let script = r#"
import sys, os
try:
    import deltalake, duckdb
except ImportError as e:
    sys.exit(f"{e}: run scripts/install-test-deps.sh (pip install deltalake pyarrow duckdb)")
options = {k: os.environ[k] for k in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ALLOW_HTTP"] if k in os.environ}
t = deltalake.DeltaTable(sys.argv[1], storage_options=options).to_pyarrow_table()
for row in sorted("\t".join(str(v) for v in r) for r in duckdb.sql(sys.argv[2]).fetchall()):
    print(row)
# Ends at once, its rows printed: with deltalake's and DuckDB's threads both
# loaded, Python's teardown now and then aborts after the work is done (see
# etl/tests/common/mod.rs).
sys.stdout.flush()
os._exit(0)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, url, sql])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "Python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn delta_sinks_commit_on_s3_from_worker_processes_and_delta_rs_reads_them() {
    let s3 = S3Server::start();
    let envs = s3.envs();
    for bucket in ["lake", "scratch"] {
        let reply = s3.http("PUT", &format!("/{bucket}"));
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "bucket {bucket}: {reply}"
        );
    }
    generate("s3://lake/tpch", &envs);
    let job = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/jobs/monthly_revenue_delta.toml")
        .display()
        .to_string();
    let run = |mode: &str| {
        squall(
            &s(&[
                "run",
                &job,
                "--set",
                "data=s3://lake/tpch",
                "--set",
                "out=s3://lake/delta/monthly",
                "--set",
                &format!("mode={mode}"),
                "--scratch",
                "s3://scratch/squall/",
                "--backend",
                "process",
                "--target-task-bytes",
                "1MiB",
            ]),
            &envs,
        )
    };
    let first = run("error_if_exists");
    assert!(first.contains("Delta version 0"), "{first}");
    let second = run("append");
    assert!(second.contains("Delta version 1"), "{second}");

    let per_year =
        "SELECT year, count(*), CAST(round(sum(revenue)) AS BIGINT) FROM t GROUP BY year";
    let by_delta_rs = python_delta_rows("s3://lake/delta/monthly", per_year, &envs);
    assert!(by_delta_rs.lines().count() >= 7, "{by_delta_rs}");
    let by_squall = squall(
        &s(&[
            "sql",
            "--table",
            "t=delta+s3://lake/delta/monthly",
            "--format",
            "csv",
            "-c",
            per_year,
        ]),
        &envs,
    );
    let mut squall_rows: Vec<String> = by_squall
        .lines()
        .skip(1)
        .map(|l| l.replace(',', "\t"))
        .collect();
    squall_rows.sort();
    assert_eq!(squall_rows.join("\n") + "\n", by_delta_rs);
    // Version 0 holds half of every count.
    let first_version = squall(
        &s(&[
            "sql",
            "--table",
            "t=delta+s3://lake/delta/monthly@v0",
            "--table",
            "n=delta+s3://lake/delta/monthly",
            "--format",
            "csv",
            "-c",
            "SELECT (SELECT count(*) FROM n) = 2 * (SELECT count(*) FROM t) AS doubled",
        ]),
        &envs,
    );
    assert_eq!(first_version, "doubled\ntrue\n");
    let staging = s3.http("GET", "/lake?list-type=2&prefix=delta/_squall_staging/");
    assert!(!staging.contains("<Key>"), "staging left behind: {staging}");
    let scratch = s3.http("GET", "/scratch?list-type=2");
    assert!(!scratch.contains("<Key>"), "scratch left behind: {scratch}");
}
