//! The catalog of bad inputs in docs/reliability.md, checked: every case
//! runs through the `squall` binary and must end with exit status 1, exactly
//! one line on stderr starting with "error: " and, for queries, an empty
//! scratch directory. The table of messages in docs/reliability.md must be
//! what this test renders (temporary paths shown as `<dir>`); run it with
//! `SQUALL_UPDATE_DOCS=1` to rewrite the table after a deliberate change.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::S3Server;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reliability.md");
const START: &str = "<!-- catalog:start -->";
const END: &str = "<!-- catalog:end -->";

struct Case {
    what: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    /// Whether the case runs a query, whose scratch must be left empty.
    query: bool,
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            found.extend(files_below(&entry.path()));
        } else {
            found.push(entry.path());
        }
    }
    found
}

fn squall_ok(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(args)
        .arg("--no-progress")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
}

/// Files the cases read, below `dir`.
fn fixtures(dir: &Path) {
    let p = |name: &str| dir.join(name).display().to_string();
    std::fs::write(dir.join("people.csv"), "id,name\n1,ada\n2,grace\n").unwrap();
    std::fs::write(dir.join("ragged.csv"), "id,name\n1,ada\n2,grace,extra\n3\n").unwrap();
    std::fs::write(dir.join("empty.parquet"), b"").unwrap();
    std::fs::write(dir.join("text.parquet"), b"this is not parquet at all\n").unwrap();
    std::fs::write(dir.join("bad.sql"), "SELEC 1").unwrap();
    squall_ok(&[
        "sql",
        "-c",
        &format!("COPY (SELECT 1 AS a, 'x' AS b) TO '{}'", p("good.parquet")),
    ]);
    let good = std::fs::read(dir.join("good.parquet")).unwrap();
    std::fs::write(dir.join("truncated.parquet"), &good[..good.len() / 2]).unwrap();
    std::fs::create_dir_all(dir.join("mixed")).unwrap();
    squall_ok(&[
        "sql",
        "-c",
        &format!("COPY (SELECT 1 AS a) TO '{}'", p("mixed/one.parquet")),
    ]);
    squall_ok(&[
        "sql",
        "-c",
        &format!(
            "COPY (SELECT 'x' AS a, 2 AS c) TO '{}'",
            p("mixed/two.parquet")
        ),
    ]);
    std::fs::write(dir.join("unknown-key.toml"), "[query]\nwokers = 4\n").unwrap();
    std::fs::write(dir.join("bad-value.toml"), "[query]\nbackend = \"cloud\"\n").unwrap();
    std::fs::write(dir.join("not-toml.toml"), "this is = = not toml\n").unwrap();
    let job = |steps: &str| {
        format!(
            "[sources.people]\nurl = \"people.csv\"\n\n{steps}\n[[sinks]]\nstep = \"s\"\nurl = \"out/\"\n"
        )
    };
    std::fs::write(dir.join("answer.md"), "```sql\nSELECT 42 AS answer\n```\n").unwrap();
    std::fs::write(
        dir.join("on-lambda.md"),
        "+++\nbackend = \"lambda\"\n+++\n```sql\nSELECT 42 AS answer\n```\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("job-unknown-key.toml"),
        job("[[steps]]\nname = \"s\"\nsql = \"SELECT * FROM people\"\nquery = \"x\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("job-bad-sql.toml"),
        job("[[steps]]\nname = \"s\"\nsql = \"SELECT age FROM people\"\n"),
    )
    .unwrap();
    let delta_job = |sql: &str, mode: &str| {
        format!(
            "[[steps]]\nname = \"s\"\nsql = \"{sql}\"\n\n[[sinks]]\nstep = \"s\"\nurl = \"{}\"\nformat = \"delta\"\nmode = \"{mode}\"\n",
            p("delta-table")
        )
    };
    std::fs::write(
        dir.join("job-delta.toml"),
        delta_job("SELECT 1 AS id", "error_if_exists"),
    )
    .unwrap();
    squall_ok(&["run", &p("job-delta.toml")]);
    std::fs::write(
        dir.join("job-delta-other-columns.toml"),
        delta_job("SELECT 'x' AS name", "append"),
    )
    .unwrap();
}

/// Two S3 servers (moto): one open to any credentials, one that checks them
/// against its IAM users and their policies (bucket `lake` on it, and a
/// user whose access key and secret are known and who may do nothing).
struct S3Servers {
    open: S3Server,
    checking: S3Server,
    known_access_key: String,
    known_secret: String,
}

impl S3Servers {
    fn start() -> Self {
        let open = S3Server::start();
        // Three requests without credentials: the bucket, a user, its key.
        let checking = S3Server::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]);
        assert!(checking.http("PUT", "/lake").starts_with("HTTP/1.1 200"));
        let iam = |action: &str| {
            checking.request(
                "iam",
                "POST",
                "/",
                &format!("Action={action}&UserName=analyst&Version=2010-05-08"),
            )
        };
        assert!(iam("CreateUser").contains("<UserName>analyst</UserName>"));
        let key = iam("CreateAccessKey");
        let element = |name: &str| {
            key.split(&format!("<{name}>"))
                .nth(1)
                .and_then(|rest| rest.split(&format!("</{name}>")).next())
                .unwrap_or_else(|| panic!("no {name} in {key}"))
                .to_string()
        };
        Self {
            open,
            checking,
            known_access_key: element("AccessKeyId"),
            known_secret: element("SecretAccessKey"),
        }
    }

    /// The environment of a client of `server` with these credentials.
    fn env(server: &S3Server, key: &str, secret: &str) -> Vec<(&'static str, String)> {
        let mut env: Vec<_> = server
            .envs()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && *k != "AWS_SECRET_ACCESS_KEY")
            .collect();
        env.push(("AWS_ACCESS_KEY_ID", key.to_string()));
        env.push(("AWS_SECRET_ACCESS_KEY", secret.to_string()));
        env
    }
}

fn cases(dir: &Path, s3: &S3Servers) -> Vec<Case> {
    let p = |name: &str| dir.join(name).display().to_string();
    let table = |name: &str, file: &str| format!("{name}={}", p(file));
    let sql = |what: &'static str, extra: &[String], sql: &str| {
        let mut args: Vec<String> = vec!["sql".into()];
        args.extend(extra.iter().cloned());
        args.extend(["-c".into(), sql.into()]);
        Case {
            what,
            args,
            env: vec![],
            query: true,
        }
    };
    let people = vec!["--table".to_string(), table("people", "people.csv")];
    let with = |name: &str, file: &str| vec!["--table".to_string(), table(name, file)];
    let cmd = |what: &'static str, args: &[&str]| Case {
        what,
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        query: false,
    };
    let unreachable_s3 = vec![
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ALLOW_HTTP", "true".to_string()),
    ];
    vec![
        // SQL
        sql("SQL that does not parse", &[], "SELEC 1"),
        sql("an unknown table", &[], "SELECT * FROM nowhere"),
        sql("an unknown column", &people, "SELECT age FROM people"),
        sql(
            "an unknown function",
            &people,
            "SELECT uppr(name) FROM people",
        ),
        sql(
            "a function with wrong arguments",
            &people,
            "SELECT abs(id, name) FROM people",
        ),
        sql(
            "comparing a number with a word",
            &people,
            "SELECT * FROM people WHERE id = 'ada'",
        ),
        sql(
            "a failing cast",
            &people,
            "SELECT CAST(name AS INT) FROM people",
        ),
        sql("division by zero", &people, "SELECT id / 0 FROM people"),
        sql(
            "a table created twice",
            &people,
            "CREATE TABLE people AS SELECT 1",
        ),
        sql(
            "dropping a table that does not exist",
            &[],
            "DROP TABLE nowhere",
        ),
        sql(
            "inserting into a table that does not exist",
            &[],
            "INSERT INTO nowhere VALUES (1)",
        ),
        sql(
            "inserting the wrong number of columns",
            &people,
            "INSERT INTO people VALUES (1)",
        ),
        sql("an empty statement", &[], " ; "),
        sql(
            "a statement Squall does not run",
            &[],
            "CREATE FUNCTION f() RETURNS INT RETURN 1",
        ),
        // Files and tables
        sql(
            "a table whose file does not exist",
            &with("t", "missing.parquet"),
            "SELECT * FROM t",
        ),
        sql(
            "a truncated Parquet file",
            &with("t", "truncated.parquet"),
            "SELECT * FROM t",
        ),
        sql(
            "an empty (0-byte) Parquet file",
            &with("t", "empty.parquet"),
            "SELECT * FROM t",
        ),
        sql(
            "a text file named .parquet",
            &with("t", "text.parquet"),
            "SELECT * FROM t",
        ),
        sql(
            "Parquet files whose schemas disagree",
            &with("t", "mixed/"),
            "SELECT * FROM t",
        ),
        sql(
            "CSV with ragged rows",
            &with("t", "ragged.csv"),
            "SELECT * FROM t",
        ),
        sql(
            "a location with an unsupported scheme",
            &["--table".into(), "t=ftp://host/x.parquet".into()],
            "SELECT 1",
        ),
        sql(
            "a --table without a name",
            &["--table".into(), p("people.csv")],
            "SELECT 1",
        ),
        sql(
            "an object-store URL without a bucket",
            &["--table".into(), "t=s3:///x.parquet".into()],
            "SELECT 1",
        ),
        Case {
            env: unreachable_s3.clone(),
            ..sql(
                "an unreachable object store",
                &["--table".into(), "t=s3://lake/t.parquet".into()],
                "SELECT * FROM t",
            )
        },
        Case {
            env: s3.open.envs(),
            ..sql(
                "a table in a bucket that does not exist",
                &["--table".into(), "t=s3://no-such-bucket/t/".into()],
                "SELECT * FROM t",
            )
        },
        Case {
            env: s3.open.envs(),
            ..cmd(
                "scratch in a bucket that does not exist",
                &[
                    "sql",
                    "--scratch",
                    "s3://no-such-bucket/scratch/",
                    "-c",
                    "SELECT 1",
                ],
            )
        },
        Case {
            env: S3Servers::env(&s3.checking, "AKIAUNKNOWNKEY000000", "secret"),
            ..sql(
                "an access key the object store does not know",
                &["--table".into(), "t=s3://lake/t/".into()],
                "SELECT * FROM t",
            )
        },
        Case {
            env: S3Servers::env(&s3.checking, &s3.known_access_key, "not-its-secret"),
            ..sql(
                "a secret key that does not belong to the access key",
                // At the bucket's root: moto checks signatures of listings
                // with an encoded prefix wrongly (it rejects right ones too).
                &["--table".into(), "t=s3://lake/".into()],
                "SELECT * FROM t",
            )
        },
        Case {
            env: S3Servers::env(&s3.checking, &s3.known_access_key, &s3.known_secret),
            ..sql(
                "valid credentials without permission to read",
                &["--table".into(), "t=s3://lake/".into()],
                "SELECT * FROM t",
            )
        },
        sql(
            "a result larger than --max-result-bytes",
            &["--max-result-bytes".into(), "1KiB".into()],
            "SELECT value FROM generate_series(1, 100000)",
        ),
        sql(
            "a spill larger than --spill-bytes (a full local disk)",
            &[
                "--task-memory".into(),
                "32MiB".into(),
                "--spill-bytes".into(),
                "1MiB".into(),
            ],
            "SELECT max(r) FROM (SELECT row_number() OVER (ORDER BY value DESC) AS r \
             FROM generate_series(1, 5000000))",
        ),
        sql(
            "COPY to a format Squall does not write",
            &people,
            &format!("COPY people TO '{}' STORED AS AVRO", p("out.avro")),
        ),
        // Flags and configuration
        cmd(
            "a misspelled flag",
            &["sql", "--wokers", "4", "-c", "SELECT 1"],
        ),
        cmd(
            "a flag value that is not a number",
            &["sql", "--workers", "four", "-c", "SELECT 1"],
        ),
        cmd(
            "a size without a unit Squall knows",
            &["sql", "--target-task-bytes", "12XB", "-c", "SELECT 1"],
        ),
        cmd(
            "an output format Squall does not write",
            &["sql", "--format", "xml", "-c", "SELECT 1"],
        ),
        cmd(
            "a report file that is neither .html nor .json",
            &["sql", "--report", "run.txt", "-c", "SELECT 1"],
        ),
        cmd(
            "a flag of running queries given to explain",
            &["explain", "--stats", "-o", "out.csv", "-c", "SELECT 1"],
        ),
        cmd(
            "a CSV delimiter of two characters",
            &["sql", "--csv-delimiter", ";;", "-c", "SELECT 1"],
        ),
        cmd(
            "a task memory of zero",
            &["sql", "--task-memory", "0", "-c", "SELECT 1"],
        ),
        cmd(
            "a spill disk of zero",
            &["sql", "--spill-bytes", "0", "-c", "SELECT 1"],
        ),
        cmd(
            "a negative task timeout",
            &["sql", "--task-timeout=-1", "-c", "SELECT 1"],
        ),
        cmd(
            "a deadline of zero seconds",
            &["explain", "--deadline", "0", "-c", "SELECT 1"],
        ),
        cmd(
            "a deadline and a task size together",
            &[
                "explain",
                "--deadline",
                "30",
                "--target-task-bytes",
                "64MiB",
                "-c",
                "SELECT 1",
            ],
        ),
        cmd(
            "a deadline for a run on this machine",
            &["sql", "--deadline", "30", "-c", "SELECT 1"],
        ),
        cmd(
            "a cost prediction asked of squall sql",
            &["sql", "--cost", "-c", "SELECT 1"],
        ),
        cmd("no SQL at all", &["sql"]),
        cmd(
            "a SQL file that does not exist",
            &["sql", "-f", "/no/such/query.sql"],
        ),
        Case {
            args: vec![
                "sql".into(),
                "--config".into(),
                p("unknown-key.toml"),
                "-c".into(),
                "SELECT 1".into(),
            ],
            ..cmd("a config file with an unknown key", &[])
        },
        Case {
            args: vec![
                "sql".into(),
                "--config".into(),
                p("bad-value.toml"),
                "-c".into(),
                "SELECT 1".into(),
            ],
            ..cmd("a config file with a bad value", &[])
        },
        Case {
            args: vec![
                "sql".into(),
                "--config".into(),
                p("not-toml.toml"),
                "-c".into(),
                "SELECT 1".into(),
            ],
            ..cmd("a config file that is not TOML", &[])
        },
        cmd(
            "a config file that does not exist",
            &["sql", "--config", "/no/such/config.toml", "-c", "SELECT 1"],
        ),
        // Backends
        cmd(
            "the lambda backend without a function",
            &[
                "sql",
                "--backend",
                "lambda",
                "--region",
                "us-east-1",
                "-c",
                "SELECT 1",
            ],
        ),
        Case {
            env: vec![(
                "SQUALL_TASK_KEY",
                "catalog-test-key-0123456789abcdef0123".into(),
            )],
            ..cmd(
                "the lambda backend with local scratch",
                &[
                    "sql",
                    "--backend",
                    "lambda",
                    "--function",
                    "f",
                    "--region",
                    "us-east-1",
                    "--lambda-endpoint",
                    "http://127.0.0.1:9",
                    "-c",
                    "SELECT 1",
                ],
            )
        },
        Case {
            env: vec![("SQUALL_TASK_KEY", "short".into())],
            ..cmd(
                "a task key that is too short",
                &[
                    "sql",
                    "--backend",
                    "lambda",
                    "--function",
                    "f",
                    "--region",
                    "us-east-1",
                    "-c",
                    "SELECT 1",
                ],
            )
        },
        // Other commands
        Case {
            what: "drawing a report from a file that is not one",
            args: vec!["report".into(), p("people.csv"), p("report.html")],
            env: vec![],
            query: false,
        },
        cmd(
            "an ETL job file that does not exist",
            &["run", "no-such-job.toml"],
        ),
        cmd(
            "an ETL job file with an unknown key",
            &["run", "job-unknown-key.toml"],
        ),
        cmd(
            "an ETL job whose step reads a column that does not exist",
            &["run", "job-bad-sql.toml"],
        ),
        sql(
            "a Delta table whose folder has no _delta_log",
            &["--table".to_string(), format!("t=delta+{}", p("mixed/"))],
            "SELECT * FROM t",
        ),
        sql(
            "a Delta table version that does not exist",
            &[
                "--table".to_string(),
                format!("t=delta+{}@v9", p("delta-table")),
            ],
            "SELECT * FROM t",
        ),
        cmd(
            "an ETL job appending other columns to a Delta table",
            &["run", "job-delta-other-columns.toml"],
        ),
        cmd(
            "an ETL job run with a parameter it does not declare",
            &["run", "job-bad-sql.toml", "--set", "day=1"],
        ),
        cmd(
            "TPC-H at a negative scale",
            &["gen", "tpch", "--scale=-1", "--out", "/tmp/never"],
        ),
        cmd(
            "a policy without a scratch location",
            &["deploy", "lambda", "--print-policy", "--name", "f"],
        ),
        cmd(
            "a policy for a scratch location that is not S3",
            &[
                "deploy",
                "lambda",
                "--print-policy",
                "--name",
                "f",
                "--scratch",
                "/tmp/x",
            ],
        ),
        cmd(
            "cleaning a scratch location with an unsupported scheme",
            &["scratch", "clean", "ftp://host/x/"],
        ),
        cmd(
            "serving a notebook that does not exist",
            &["notebook", "serve", "no-such-notebook.md"],
        ),
        cmd(
            "a notebook cache at a location with an unsupported scheme",
            &[
                "notebook",
                "run",
                "answer.md",
                "--cache",
                "ftp://host/cache/",
            ],
        ),
        cmd(
            "a notebook whose front matter runs it on Lambda without a function",
            &["notebook", "run", "on-lambda.md"],
        ),
        cmd(
            "a notebook run with no cells at a time",
            &["notebook", "run", "answer.md", "--concurrent-cells", "0"],
        ),
    ]
}

/// `text` with the test servers' ports shown as `<port>` and query ids as
/// `q-<id>`: what changes from run to run.
fn without_run_ids(text: &str, ports: &[u16]) -> String {
    let mut text = text.to_string();
    for port in ports {
        text = text.replace(&format!("127.0.0.1:{port}"), "127.0.0.1:<port>");
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("q-") {
        out.push_str(&rest[..at + 2]);
        rest = &rest[at + 2..];
        let hex = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        if hex == 32 {
            out.push_str("<id>");
            rest = &rest[hex..];
        }
    }
    out.push_str(rest);
    out
}

/// `text` with the fixture directory shown as `<dir>` and durations as `<time>`.
fn normalized(text: &str, dir: &Path) -> String {
    let dir = dir.display().to_string();
    let text = text
        .replace(&dir, "<dir>")
        .replace(dir.trim_start_matches('/'), "<dir>")
        .replace('|', "\\|");
    // "in 501.306855ms" and the like.
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find(" in ") {
        out.push_str(&rest[..at + 4]);
        rest = &rest[at + 4..];
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let unit = ["ms", "µs", "s"]
            .into_iter()
            .find(|u| rest[digits..].starts_with(u));
        if digits > 0
            && let Some(unit) = unit
        {
            out.push_str("<time>");
            rest = &rest[digits + unit.len()..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn every_bad_input_gets_one_line_and_exit_1_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    fixtures(dir.path());
    let s3 = S3Servers::start();
    let ports = [s3.open.port, s3.checking.port];
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, case) in cases(dir.path(), &s3).into_iter().enumerate() {
        let scratch = dir.path().join(format!("scratch-{i}"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_squall"));
        command.args(&case.args);
        if case.query {
            command.arg("--scratch").arg(&scratch);
        }
        if case.args.first().is_some_and(|c| c == "sql") {
            command.arg("--no-progress");
        }
        let out = command
            .env_remove("SQUALL_TASK_KEY")
            .envs(case.env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        if out.status.code() != Some(1) || lines.len() != 1 || !lines[0].starts_with("error: ") {
            problems.push(format!(
                "{}: exit {:?}, stderr: {stderr}",
                case.what,
                out.status.code()
            ));
            continue;
        }
        let left = files_below(&scratch);
        if !left.is_empty() {
            problems.push(format!("{}: left {left:?}", case.what));
        }
        let shown_args: Vec<String> = case
            .args
            .iter()
            .map(|a| {
                if a.contains(' ') || a.is_empty() {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            })
            .collect();
        rows.push(format!(
            "| {} | {} | `squall {}` | {} |",
            i + 1,
            case.what,
            normalized(&shown_args.join(" "), dir.path()),
            without_run_ids(
                &normalized(lines[0].trim_start_matches("error: "), dir.path()),
                &ports
            )
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        rows.len() >= 40,
        "the catalog has only {} cases",
        rows.len()
    );
    let table = format!(
        "{START}\n| # | bad input | command | error line (after `error: `) |\n|---|---|---|---|\n{}\n{END}",
        rows.join("\n")
    );
    let doc = std::fs::read_to_string(DOC).unwrap_or_default();
    let documented = match (doc.find(START), doc.find(END)) {
        (Some(s), Some(e)) => &doc[s..e + END.len()],
        _ => "",
    };
    if std::env::var_os("SQUALL_UPDATE_DOCS").is_some() {
        let updated = if documented.is_empty() {
            format!("{doc}\n{table}\n")
        } else {
            doc.replace(documented, &table)
        };
        std::fs::write(DOC, updated).unwrap();
        return;
    }
    assert_eq!(
        documented, table,
        "docs/reliability.md is stale: rerun with SQUALL_UPDATE_DOCS=1 and review the diff"
    );
}
