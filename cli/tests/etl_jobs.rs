//! `squall run` end to end: the example jobs give DuckDB's answers (DuckDB
//! reading back what Squall wrote, against DuckDB computing the same from
//! the sources) on the local and process backends; a job with problems
//! reports them all and runs nothing; a failing job and a job killed at
//! any moment leave every destination as it was (or, killed inside its
//! commit, as the next run leaves it).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use support::duckdb;
use support::tpch::{generate, squall};

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/jobs")
        .join(name)
        .display()
        .to_string()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Visible files below `dir` (no `_` names), relative, sorted.
fn visible(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('_') {
                continue;
            }
            if entry.path().is_dir() {
                walk(root, &entry.path(), out);
            } else {
                out.insert(
                    entry
                        .path()
                        .strip_prefix(root)
                        .unwrap()
                        .display()
                        .to_string(),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// The rows the daily revenue job computes, as DuckDB computes them from
/// the TPC-H sources under `data`, grouped by `group` with `measures`.
fn expected_from_sources(data: &str, group: &str, measures: &str) -> Vec<String> {
    duckdb::rows(&format!(
        "WITH order_lines AS (
           SELECT o_orderdate AS order_date, o_orderpriority AS priority,
                  l_extendedprice * (1 - l_discount) AS revenue, l_quantity AS quantity
           FROM read_parquet('{data}/orders/*.parquet')
           JOIN read_parquet('{data}/lineitem/*.parquet') ON l_orderkey = o_orderkey
           WHERE l_returnflag <> 'R')
         SELECT {group}, {measures} FROM order_lines GROUP BY ALL"
    ))
}

fn expected_daily(data: &str) -> Vec<String> {
    expected_from_sources(
        data,
        "year(order_date), month(order_date), order_date, priority",
        "sum(revenue), sum(quantity), count(*)",
    )
}

fn expected_monthly(data: &str) -> Vec<String> {
    expected_from_sources(
        data,
        "year(order_date), month(order_date)",
        "sum(revenue), count(*)",
    )
}

/// What Squall wrote for the daily revenue sink, as DuckDB reads it.
fn written_daily(out: &str) -> Vec<String> {
    duckdb::rows(&format!(
        "SELECT year, month, order_date, priority, revenue, quantity, lines
         FROM read_parquet('{out}/daily_revenue/**/*.parquet', hive_partitioning = true)"
    ))
}

fn written_monthly(out: &str) -> Vec<String> {
    duckdb::rows(&format!(
        "SELECT year, month, revenue, lines FROM read_csv('{out}/monthly_revenue/*.csv', header = true)"
    ))
}

fn run_args(job: &str, data: &str, out: &str, extra: &[&str]) -> Vec<String> {
    let mut args = s(&[
        "run",
        job,
        "--set",
        &format!("data={data}"),
        "--set",
        &format!("out={out}"),
        // Small tasks: several writers per sink.
        "--target-task-bytes",
        "1MiB",
    ]);
    args.extend(extra.iter().map(|x| x.to_string()));
    args
}

#[test]
fn the_daily_revenue_job_gives_duckdb_s_answers_on_local_and_process_backends() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tpch").display().to_string();
    generate(&data, &[]);
    let expected = expected_daily(&data);
    assert!(expected.len() > 1000, "{} daily rows", expected.len());
    for backend in ["local", "process"] {
        let out = dir
            .path()
            .join(format!("out-{backend}"))
            .display()
            .to_string();
        let job = example("daily_revenue.toml");
        let summary = squall(&run_args(&job, &data, &out, &["--backend", backend]), &[]);
        assert!(summary.contains("2 sinks published together"), "{summary}");
        assert!(
            summary.contains(&format!("{} rows", expected.len())),
            "{backend}: {summary}"
        );
        assert!(
            summary.contains("computed once for several readers: daily_revenue"),
            "{summary}"
        );
        let written = written_daily(&out);
        assert_eq!(written.len(), expected.len(), "{backend}");
        assert_eq!(
            written, expected,
            "{backend}: daily revenue differs from DuckDB's"
        );
        assert_eq!(written_monthly(&out), expected_monthly(&data), "{backend}");
        // Partitioned by year and month: no marker beside the folders.
        let daily_dir = Path::new(&out).join("daily_revenue");
        let files = visible(&daily_dir);
        assert!(
            files
                .iter()
                .all(|f| f.starts_with("year=") && f.contains("/month=")),
            "{files:?}"
        );
        assert!(Path::new(&out).join("monthly_revenue/_SUCCESS").exists());
        // Run again: the overwrite replaces every file, with the same rows.
        let again = squall(&run_args(&job, &data, &out, &["--backend", backend]), &[]);
        assert!(
            again.contains(&format!("replacing {} files", files.len())),
            "{again}"
        );
        assert!(
            visible(&daily_dir).is_disjoint(&files),
            "{backend}: old files survived"
        );
        assert_eq!(
            written_daily(&out),
            expected,
            "{backend}: after the overwrite"
        );
    }
}

#[test]
fn the_csv_drops_job_deduplicates_and_drops_bad_rows_as_duckdb_does() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out").display().to_string();
    let drops = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/jobs/data/drops");
    let drops = drops.canonicalize().unwrap().display().to_string();
    let summary = squall(
        &s(&[
            "run",
            &example("customer_drops.toml"),
            "--set",
            &format!("drops={drops}"),
            "--set",
            &format!("out={out}"),
        ]),
        &[],
    );
    assert!(summary.contains("2 sinks published together"), "{summary}");
    // DuckDB's own reading of the same drops, with the job's rules.
    let expected = duckdb::rows(&format!(
        "WITH customers AS (
           SELECT TRY_CAST(customer_id AS BIGINT) AS customer_id, trim(name) AS name,
                  upper(trim(country)) AS country, TRY_CAST(updated_at AS TIMESTAMP) AS updated_at
           FROM read_csv('{drops}/customers/*.csv', header = true, all_varchar = true)),
         valid AS (SELECT * FROM customers
                   WHERE customer_id IS NOT NULL AND updated_at IS NOT NULL AND name <> ''),
         latest AS (SELECT * FROM valid QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY updated_at DESC) = 1),
         orders AS (
           SELECT TRY_CAST(order_id AS BIGINT) AS order_id, TRY_CAST(customer_id AS BIGINT) AS customer_id,
                  TRY_CAST(amount AS DECIMAL(12, 2)) AS amount
           FROM read_csv('{drops}/orders/*.csv', header = true, all_varchar = true))
         SELECT l.country, l.customer_id, l.name, count(o.order_id), sum(o.amount)
         FROM latest l JOIN orders o ON o.customer_id = l.customer_id
         WHERE o.order_id IS NOT NULL AND o.amount IS NOT NULL
         GROUP BY ALL"
    ));
    assert_eq!(expected.len(), 4, "{expected:?}");
    let written = duckdb::rows(&format!(
        "SELECT country, customer_id, name, orders, amount
         FROM read_parquet('{out}/customer_orders/**/*.parquet', hive_partitioning = true)"
    ));
    assert_eq!(written, expected);
    let rejected = duckdb::rows(&format!(
        "SELECT count(*) FROM read_csv('{out}/rejected_customers/*.csv', header = true)"
    ));
    assert_eq!(
        rejected,
        vec!["3".to_string()],
        "three bad customer rows in the drops"
    );
}

#[test]
fn a_job_with_problems_reports_every_one_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("bad.toml");
    std::fs::write(
        &job,
        "[sources.t]\nurl = \"nowhere/\"\nformt = \"csv\"\n\n[[steps]]\nname = \"s\"\nsql = \"SELECT 1 AS x\"\n\n[[sinks]]\nstep = \"z\"\nurl = \"out\"\nmode = \"sometimes\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["run", job.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = job.display().to_string();
    for line in [
        format!(
            "{file}:3: sources.t.formt: unknown key (known here: delimiter, format, header, incremental, quote, schema, timestamp, url, version)"
        ),
        format!("{file}:10: sinks[0].step: no step is named 'z' (steps: s)"),
        format!(
            "{file}:12: sinks[0].mode: unknown mode 'sometimes' (expected overwrite, append, merge or error_if_exists)"
        ),
        format!("error: {file} has 3 problems; nothing ran"),
    ] {
        assert!(
            stderr.lines().any(|l| l == line),
            "missing '{line}' in:\n{stderr}"
        );
    }
    assert!(!dir.path().join("out").exists());
}

/// A job of two sinks whose second step fails at run time, over
/// destinations that already hold files: both keep exactly their files.
#[test]
fn a_failing_job_leaves_every_destination_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("people.csv");
    std::fs::write(&data, "id,name\n1,ann\n2,bob\n3,x9\n").unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("old.csv"), "id\n7\n").unwrap();
    }
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            r#"[sources.people]
url = "{data}"

[[steps]]
name = "names"
sql = "SELECT id, name FROM people"

[[steps]]
name = "numbers"
sql = "SELECT CAST(substr(name, 2) AS INT) AS n FROM people"

[[sinks]]
step = "names"
url = "{a}"
format = "csv"
mode = "overwrite"

[[sinks]]
step = "numbers"
url = "{b}"
format = "csv"
mode = "overwrite"
"#,
            data = data.display(),
            a = a.display(),
            b = b.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["run", job.to_str().unwrap(), "--no-progress"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sink 1") && stderr.contains("Cast error"),
        "{stderr}"
    );
    for d in [&a, &b] {
        let names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, vec!["old.csv".to_string()], "{}", d.display());
    }
}

/// The daily revenue job killed (SIGKILL) at moments spread over its run,
/// each run writing over the last: with no commit decided, every
/// destination shows exactly what it showed before the run, or (killed
/// after the commit) every one shows only new files; a kill inside the
/// commit is finished by the next run. The last run's output is DuckDB's
/// answer.
#[test]
fn a_job_killed_at_any_moment_leaves_old_or_new_outputs_never_a_mix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tpch").display().to_string();
    generate(&data, &[]);
    let out = dir.path().join("out").display().to_string();
    let job = example("daily_revenue.toml");
    let args = run_args(&job, &data, &out, &[]);
    let sinks = [
        PathBuf::from(&out).join("daily_revenue"),
        PathBuf::from(&out).join("monthly_revenue"),
    ];
    let started = Instant::now();
    squall(&args, &[]);
    let full = started.elapsed();
    let mut before: Vec<BTreeSet<String>> = sinks.iter().map(|d| visible(d)).collect();
    // Staging, and the joint commit's decision, are beside the destinations.
    let decision_dir = PathBuf::from(&out).join("_squall_staging/daily_revenue");
    let mut mid_commit = 0;
    for i in 1..=8 {
        let delay = full.mul_f64(i as f64 / 8.0);
        let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
            .args(&args)
            .arg("--no-progress")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let now: Vec<BTreeSet<String>> = sinks.iter().map(|d| visible(d)).collect();
        let decided = std::fs::read_dir(&decision_dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".decided"));
        if decided {
            // Killed inside the commit: the next run finishes it (and
            // writes over it).
            mid_commit += 1;
            squall(&args, &[]);
            before = sinks.iter().map(|d| visible(d)).collect();
            continue;
        } else {
            let all_old = now == before;
            let all_new = now
                .iter()
                .zip(&before)
                .all(|(n, b)| !n.is_empty() && n.is_disjoint(b));
            assert!(
                all_old || all_new,
                "killed after {delay:?}: a mix of old and new files: before {before:?}, now {now:?}"
            );
        }
        before = now;
    }
    eprintln!("{mid_commit} of 8 kills fell inside a commit");
    squall(&args, &[]);
    assert_eq!(written_daily(&out), expected_daily(&data));
}
