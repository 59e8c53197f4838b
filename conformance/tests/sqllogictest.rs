//! DataFusion's sqllogictest suite through Squall's distributed path.
//!
//! ```sh
//! cargo test -p squall-conformance --test sqllogictest            # the whole suite
//! cargo test -p squall-conformance --test sqllogictest -- window  # files whose path contains "window"
//! ```
//! Environment: `SQUALL_SLT_VERBOSE=1` prints every failure;
//! `SQUALL_SLT_TABLE=FILE` writes the per-file table (for docs/correctness.md);
//! `SQUALL_SLT_BLESS=1` rewrites `expected-failures.txt` from this run
//! (records that pass leave it, new failures go under `unclassified`; with a
//! filter, records of the files not run stay as they are).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use futures::StreamExt;
use squall_conformance::engine::DistributedConfig;
use squall_conformance::expected::{Cause, ExpectedFailures};
use squall_conformance::layout::{SltLayout, sqllogictest_crate_dir};
use squall_conformance::run::{Engine, FileOutcome, Mismatch, Outcome, RecordOutcome, run_file};
use squall_conformance::summary::{Judgement, describe};

const LIST_HEADER: &str = "# Records of DataFusion 55.2's sqllogictest suite that Squall does not pass yet.\n\
# Read by conformance/tests/sqllogictest.rs; see docs/correctness.md. The list may only shrink:\n\
# the suite fails when a listed record passes. A wrong answer may never be listed.\n";

/// Files DataFusion's own runner leaves out by default.
fn included(file: &Path) -> bool {
    let s = file.to_string_lossy();
    !(s.starts_with("tpch") || s.starts_with("sqlite") || s.starts_with("encrypted_parquet"))
}

fn expected_list_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("expected-failures.txt")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        // `cargo test -- --list` asks every test binary for its tests; this one has no list.
        return ExitCode::SUCCESS;
    }
    let filters: Vec<String> = args.into_iter().filter(|a| !a.starts_with('-')).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(filters)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sqllogictest: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(filters: Vec<String>) -> squall_conformance::Result<bool> {
    let started = Instant::now();
    let crate_dir = sqllogictest_crate_dir()?;
    let layout = SltLayout::create(&crate_dir)?;
    std::env::set_current_dir(&layout.work_dir).map_err(|e| {
        squall_conformance::ConformanceError::Setup(format!("{}: {e}", layout.work_dir.display()))
    })?;
    let files: Vec<PathBuf> = layout
        .test_files()?
        .into_iter()
        .filter(|f| included(f))
        .filter(|f| {
            filters.is_empty()
                || filters
                    .iter()
                    .any(|flt| f.to_string_lossy().contains(flt.as_str()))
        })
        .collect();
    let complete = filters.is_empty();
    let file_count = files.len();
    println!(
        "sqllogictest: {file_count} files from {} through Squall (local backend, {} workers, exchange on local disk)",
        crate_dir.display(),
        DistributedConfig::default().workers
    );
    let squall = Engine::Squall(DistributedConfig::default());
    let mut done = 0usize;
    let results: Vec<(FileOutcome, FileOutcome)> = futures::stream::iter(files)
        .map(|file| {
            let squall = squall.clone();
            async move {
                let reference = run_isolated(file.clone(), Engine::DataFusion).await;
                let distributed = run_isolated(file, squall).await;
                (reference, distributed)
            }
        })
        .buffer_unordered(2)
        .inspect(|_| {
            done += 1;
            if done.is_multiple_of(50) {
                println!(
                    "sqllogictest: {done}/{file_count} files, {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
        })
        .collect()
        .await;
    let (reference, distributed): (Vec<_>, Vec<_>) = results.into_iter().unzip();

    let list_path = expected_list_path();
    let expected = ExpectedFailures::load(&list_path)?;
    let judgement = Judgement::new(&reference, &distributed, &expected, complete);

    if std::env::var_os("SQUALL_SLT_BLESS").is_some() {
        let ran: std::collections::BTreeSet<&str> =
            reference.iter().map(|f| f.file.as_str()).collect();
        let blessed = bless(&expected, &judgement, &ran);
        std::fs::write(&list_path, blessed.render(LIST_HEADER)).map_err(|e| {
            squall_conformance::ConformanceError::Setup(format!("{}: {e}", list_path.display()))
        })?;
        println!(
            "sqllogictest: wrote {} records to {}",
            blessed.len(),
            list_path.display()
        );
    }
    if let Some(path) = std::env::var_os("SQUALL_SLT_TABLE") {
        std::fs::write(&path, judgement.markdown_table()).map_err(|e| {
            squall_conformance::ConformanceError::Setup(format!(
                "{}: {e}",
                Path::new(&path).display()
            ))
        })?;
    }
    let verbose = std::env::var_os("SQUALL_SLT_VERBOSE").is_some();
    if verbose {
        for f in &judgement.failures {
            let detail = match &f.outcome {
                Outcome::Error(m) | Outcome::WrongResult { message: m, .. } => m.as_str(),
                _ => "",
            };
            println!(
                "FAIL {} {}\n  {}\n{}",
                f.record,
                describe(&f.outcome),
                f.sql.replace('\n', " "),
                detail
            );
        }
    }
    let totals = judgement.totals();
    println!(
        "sqllogictest: {} of {} records that single-node DataFusion passes also pass on Squall ({:.2}%); {} listed as expected failures; {} skipped; {} that DataFusion itself fails not counted; {:.0} s",
        totals.squall_passes,
        totals.reference_passes,
        judgement.pass_rate_percent(),
        judgement.failures.len(),
        totals.skipped,
        totals.reference_failures,
        started.elapsed().as_secs_f64()
    );
    let problems = judgement.problems();
    for p in problems.iter().take(200) {
        println!("sqllogictest: {p}");
    }
    if problems.len() > 200 {
        println!("sqllogictest: ... and {} more", problems.len() - 200);
    }
    Ok(problems.is_empty())
}

/// Runs one file on one engine in its own task, so that a panic fails that
/// file's records instead of the whole suite.
async fn run_isolated(file: PathBuf, engine: Engine) -> FileOutcome {
    let name = file.display().to_string();
    match tokio::spawn(async move { run_file(&file, &engine).await }).await {
        Ok(outcome) => outcome,
        Err(e) => FileOutcome {
            file: name,
            records: vec![RecordOutcome {
                at: "0".into(),
                sql: String::new(),
                outcome: Outcome::Error(format!("the file's run panicked: {e}")),
            }],
        },
    }
}

/// The list after this run: listed records that still fail keep their cause;
/// new failures go under `unclassified` (or `wrong-answer`).
/// The file of a record key (`file:LINE` or `file:PART:LINE`).
fn record_file(record: &str) -> &str {
    record.split(':').next().unwrap_or(record)
}

/// The expected-failures list after this run: listed records that pass
/// leave it, new failures join it; records of files this run did not run
/// stay as they are.
fn bless(
    expected: &ExpectedFailures,
    judgement: &Judgement,
    ran: &std::collections::BTreeSet<&str>,
) -> ExpectedFailures {
    let failing: std::collections::BTreeMap<&str, &Outcome> = judgement
        .failures
        .iter()
        .map(|f| (f.record.as_str(), &f.outcome))
        .collect();
    let mut causes: Vec<Cause> = expected
        .causes
        .iter()
        .map(|c| Cause {
            records: c
                .records
                .iter()
                .filter(|r| failing.contains_key(r.as_str()) || !ran.contains(record_file(r)))
                .cloned()
                .collect(),
            ..c.clone()
        })
        .collect();
    let listed = expected.by_record();
    let mut unclassified = Cause {
        tag: "unclassified".into(),
        text: "not yet classified".into(),
        records: vec![],
    };
    let mut wrong = Cause {
        tag: "wrong-answer".into(),
        text: "WRONG ANSWERS: must be fixed, never listed".into(),
        records: vec![],
    };
    for (record, outcome) in &failing {
        if listed.contains_key(record) {
            continue;
        }
        match outcome {
            Outcome::WrongResult {
                mismatch: Mismatch::Different,
                ..
            } => wrong.records.push(record.to_string()),
            _ => unclassified.records.push(record.to_string()),
        }
    }
    for extra in [unclassified, wrong] {
        match causes.iter_mut().find(|c| c.tag == extra.tag) {
            Some(c) => c.records.extend(extra.records),
            None => causes.push(extra),
        }
    }
    ExpectedFailures { causes }
}
