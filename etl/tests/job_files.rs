//! Job files with problems: every problem is reported at once, with its
//! line and key, first those of the file's shape, then those found against
//! a session (sources, SQL, partition columns, destinations), before
//! anything runs.

use squall_etl::{EtlError, JobFile, JobPlan, Problem, WriteMode};
use squall_jobs::{Session, SessionOptions};

fn problems(result: Result<impl std::fmt::Debug, EtlError>) -> Vec<Problem> {
    match result {
        Err(EtlError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

fn has(problems: &[Problem], line: usize, key: &str, words: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.line == line && p.key == key && p.message.contains(words)),
        "no problem at line {line}, {key}, saying '{words}' in:\n{}",
        problems
            .iter()
            .map(|p| format!("{}: {p}", p.line))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

const SHAPELESS: &str = r#"name = "broken"
colour = "blue"

[params]
day = "2024-01-01"

[sources.orders]
url = "data/${dy}/orders"
formatt = "parquet"

[sources.customers]
format = "csv"

[[steps]]
name = "daily"
sql = "SELECT 1 AS x"

[[steps]]
name = "bad name"
sql = "SELECT 2"

[[sinks]]
step = "dailly"
url = "out/a"
mode = "replace"

[[sinks]]
step = "daily"
url = "out/b"
format = "csv"
compression = "snappy"
rows_per_file = -3

[[sinks]]
step = "daily"
url = "out/b/inner/"
"#;

#[test]
fn every_problem_of_a_file_s_shape_is_reported_at_once() {
    let found = problems(JobFile::parse("job.toml", SHAPELESS, &["dya=1".into()]));
    has(
        &found,
        0,
        "",
        "--set dya: the job declares no such parameter",
    );
    has(&found, 2, "colour", "unknown key");
    has(&found, 8, "sources.orders.url", "${dy} is not a parameter");
    has(&found, 9, "sources.orders.formatt", "unknown key");
    has(&found, 11, "sources.customers", "has no url");
    has(&found, 19, "steps[1].name", "not a plain name");
    has(&found, 23, "sinks[0].step", "no step is named 'dailly'");
    has(&found, 25, "sinks[0].mode", "unknown mode 'replace'");
    has(
        &found,
        31,
        "sinks[1].compression",
        "csv files cannot be compressed with 'snappy'",
    );
    has(
        &found,
        32,
        "sinks[1].rows_per_file",
        "positive whole number",
    );
    has(&found, 36, "sinks[2].url", "are one inside the other");
    assert_eq!(found.len(), 11, "{found:#?}");
    // Sorted by line, as an editor would visit them.
    assert!(found.windows(2).all(|w| w[0].line <= w[1].line));
}

#[test]
fn the_error_names_the_file_and_every_problem_on_its_own_line() {
    let err = JobFile::parse("jobs/x.toml", "[[steps]]\nname = 3\n", &[]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("jobs/x.toml has 3 problems; nothing ran:"),
        "{text}"
    );
    assert!(
        text.contains("\n  jobs/x.toml:2: steps[0].name: must be a string, not integer"),
        "{text}"
    );
    assert!(
        text.contains("\n  jobs/x.toml:1: steps[0]: has no sql"),
        "{text}"
    );
    assert!(
        text.contains("\n  jobs/x.toml: sinks: a job needs at least one [[sinks]] table"),
        "{text}"
    );
}

#[test]
fn toml_syntax_errors_are_one_problem_with_their_line() {
    let found = problems(JobFile::parse("job.toml", "name = \"a\"\n[[steps]\n", &[]));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].line, 2);
    assert!(found[0].message.starts_with("not valid TOML"), "{found:?}");
}

#[test]
fn parameters_substitute_and_set_overrides() {
    let text = r#"
[params]
data = "/lake"
[sources.t]
url = "${data}/t/"
[[steps]]
name = "s"
sql = "SELECT * FROM t"
[[sinks]]
step = "s"
url = "${data}/out"
"#;
    let job = JobFile::parse("j.toml", text, &["data=s3://b/p".into()]).unwrap();
    assert_eq!(job.sources[0].url, "s3://b/p/t/");
    // A sink's URL is a directory.
    assert_eq!(job.sinks[0].url, "s3://b/p/out/");
    assert_eq!(job.sinks[0].mode, WriteMode::ErrorIfExists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problems_found_against_the_session_are_reported_at_once_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("people.csv");
    std::fs::write(&data, "id,name\n1,ann\n2,bob\n").unwrap();
    let taken = dir.path().join("taken");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("old.csv"), "x\n1\n").unwrap();
    let text = format!(
        r#"[sources.people]
url = "{data}"

[sources.missing]
url = "{dir}/nothing-here.parquet"

[[steps]]
name = "names"
sql = "SELECT name, upper(name) AS loud FROM people"

[[steps]]
name = "broken"
sql = "SELECT no_such_column FROM people"

[[steps]]
name = "after_broken"
sql = "SELECT * FROM broken"

[[sinks]]
step = "names"
url = "{dir}/out"
partition_by = ["nam"]

[[sinks]]
step = "names"
url = "{taken}"

[[sinks]]
step = "after_broken"
url = "{dir}/out3"
"#,
        data = data.display(),
        dir = dir.path().display(),
        taken = taken.display(),
    );
    let job = JobFile::parse("job.toml", &text, &[]).unwrap();
    let session = Session::try_new(SessionOptions::default()).unwrap();
    let found = problems(JobPlan::check(&session, job).await);
    has(&found, 4, "sources.missing", "no such file or directory");
    has(&found, 11, "steps[1].sql", "no_such_column");
    has(
        &found,
        22,
        "sinks[0].partition_by",
        "step 'names' produces no column 'nam' (it produces: name, loud)",
    );
    has(
        &found,
        24,
        "sinks[1].url",
        "already holds 1 file (mode is error_if_exists)",
    );
    // The step reading the broken one, and its sink, add nothing new.
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(!dir.path().join("out").exists(), "nothing ran");
}

#[test]
fn file_sizes_and_delta_keys_are_checked_with_the_shape() {
    let text = r#"
[sources.events]
url = "lake/events/"
format = "delta"
version = "latest"
incremental = true

[sources.plain]
url = "lake/plain/"
version = 3

[sources.both]
url = "delta+lake/both/"
version = 3
timestamp = "2026-01-01"

[[steps]]
name = "s"
sql = "SELECT 1 AS x"

[[sinks]]
step = "s"
url = "out/a/"
rows_per_file = 10
file_size = "128MiB"

[[sinks]]
step = "s"
url = "out/b/"
format = "csv"
file_size = "128MiB"

[[sinks]]
step = "s"
url = "out/c/"
file_size = "12 parsecs"

[[sinks]]
step = "s"
url = "out/d/"
format = "delta"
file_size = 1024

[[sinks]]
step = "s"
url = "out/e/"
mode = "merge"

[[sinks]]
step = "s"
url = "out/f/"
format = "csv"
mode = "merge"
merge_on = ["x"]

[[sinks]]
step = "s"
url = "out/g/"
merge_on = ["x"]
"#;
    let found = problems(JobFile::parse("job.toml", text, &[]));
    has(
        &found,
        5,
        "sources.events.version",
        "'latest' is not a commit version",
    );
    has(
        &found,
        2,
        "sources.events.incremental",
        "a Delta source cannot be incremental",
    );
    has(&found, 10, "sources.plain.version", "only a Delta source");
    has(
        &found,
        15,
        "sources.both.timestamp",
        "give version or timestamp, not both",
    );
    has(
        &found,
        25,
        "sinks[0].file_size",
        "rows_per_file or file_size, not both",
    );
    has(
        &found,
        31,
        "sinks[1].file_size",
        "only Parquet and Delta sinks",
    );
    has(
        &found,
        36,
        "sinks[2].file_size",
        "unknown size unit 'parsecs'",
    );
    has(&found, 42, "sinks[3].file_size", "at least 1MiB");
    has(&found, 44, "sinks[4].merge_on", "needs merge_on");
    has(
        &found,
        49,
        "sinks[5].mode",
        "only Parquet and Delta sinks merge",
    );
    has(
        &found,
        56,
        "sinks[6].merge_on",
        "merge_on is for mode = \"merge\"",
    );
    assert_eq!(found.len(), 11, "{found:#?}");
}
