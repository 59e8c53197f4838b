//! Running one `.slt` file on one engine, record by record.

use std::path::Path;
use std::time::Duration;

use datafusion_sqllogictest::{
    DataFusion, TestContext, df_value_validator, is_spark_path, setup_scratch_dir, value_normalizer,
};
use indicatif::ProgressBar;
use sqllogictest::{Condition, Record, TestErrorKind, parse_file, strict_column_validator};

use crate::engine::{DistributedConfig, SquallDb};

/// The label DataFusion's runner sets; records guarded by `skipif`/`onlyif`
/// on it run for Squall exactly as for DataFusion.
pub const ENGINE_LABEL: &str = "Datafusion";

/// The longest one record may take before it counts as failed.
pub const RECORD_TIMEOUT: Duration = Duration::from_secs(120);

/// Which engine runs the records.
#[derive(Debug, Clone)]
pub enum Engine {
    /// Single-node DataFusion: the reference.
    DataFusion,
    /// Squall's distributed path.
    Squall(DistributedConfig),
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Not run, with the reason.
    Skipped(&'static str),
    /// The engine raised an error where another result was expected (or a
    /// different error than expected).
    Error(String),
    /// The engine returned rows (or success) that differ from the expected
    /// ones, in the way `mismatch` says.
    WrongResult {
        mismatch: Mismatch,
        message: String,
    },
}

/// How returned rows differ from the expected ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The same rows in another order (the query does not fix one).
    Order,
    /// The same rows but for floating-point numbers that differ in their
    /// last digits (relative difference below 1e-12): sums and variances
    /// of floats depend on how rows are split into partial aggregates.
    Rounding,
    /// Another estimate from an approximate aggregate (`approx_...`), whose
    /// value depends on how rows are split into partial states.
    Approximate,
    /// `DESCRIBE` rows that differ only in columns Squall declares nullable
    /// (`YES`) where DataFusion says `NO`: a table's hive partition
    /// columns, which can hold nulls on Squall.
    DeclaredNullable,
    /// A different answer: a wrong result.
    Different,
}

impl Outcome {
    pub fn is_pass(&self) -> bool {
        matches!(self, Outcome::Pass)
    }
}

/// One statement or query of a file.
#[derive(Debug, Clone)]
pub struct RecordOutcome {
    /// Where the record is: its line in the file, or `PART:LINE` for a
    /// record of a file the test file includes.
    pub at: String,
    pub sql: String,
    pub outcome: Outcome,
}

/// Every record of one file.
#[derive(Debug, Clone)]
pub struct FileOutcome {
    /// Relative to `test_files/`.
    pub file: String,
    pub records: Vec<RecordOutcome>,
}

/// Files that test single-node concerns only, with the reason they are not run.
pub const SKIPPED_FILES: &[(&str, &str)] = &[(
    "information_schema.slt",
    "lists every setting of the session, and Squall sessions turn dynamic filter pushdown off",
)];

/// Why a record is not run on either engine, if it is not.
fn skip_reason(sql: &str) -> Option<&'static str> {
    let head = sql.trim_start().to_ascii_lowercase();
    if head.starts_with("explain") {
        // EXPLAIN prints DataFusion's single-node plan, whose text depends on
        // single-node settings; Squall's plan is its stage graph.
        return Some("EXPLAIN text is a single-node concern");
    }
    None
}

/// A record's place: its line in the test file at `path`, or `PART:LINE`
/// for a record of an included file.
fn record_at(path: &Path, loc: &sqllogictest::Location) -> String {
    if Path::new(loc.file()) == path {
        return loc.line().to_string();
    }
    let part = Path::new(loc.file())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{part}:{}", loc.line())
}

fn skipped_by_condition(conditions: &[Condition]) -> bool {
    conditions.iter().any(|c| match c {
        Condition::OnlyIf { label } => label != ENGINE_LABEL,
        Condition::SkipIf { label } => label == ENGINE_LABEL,
    })
}

fn classify(error: &sqllogictest::TestError) -> Outcome {
    let message = error.to_string();
    match error.kind() {
        TestErrorKind::QueryResultMismatch {
            sql,
            expected,
            actual,
        } => {
            let mut e: Vec<&str> = expected.lines().collect();
            let mut a: Vec<&str> = actual.lines().collect();
            let mismatch = if within_rounding(&e, &a) {
                Mismatch::Rounding
            } else if sql
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("describe")
                && only_declared_nullable(&e, &a)
            {
                Mismatch::DeclaredNullable
            } else {
                e.sort_unstable();
                a.sort_unstable();
                if e == a {
                    Mismatch::Order
                } else if sql.to_ascii_lowercase().contains("approx_") {
                    Mismatch::Approximate
                } else {
                    Mismatch::Different
                }
            };
            Outcome::WrongResult { mismatch, message }
        }
        TestErrorKind::StatementResultMismatch { .. }
        | TestErrorKind::QueryResultColumnsMismatch { .. }
        | TestErrorKind::Ok { .. } => Outcome::WrongResult {
            mismatch: Mismatch::Different,
            message,
        },
        _ => Outcome::Error(message),
    }
}

/// True when `DESCRIBE` rows are the same but for a last column (nullable)
/// that is `YES` in `actual` where it is `NO` in `expected` (at least once).
fn only_declared_nullable(expected: &[&str], actual: &[&str]) -> bool {
    if expected.len() != actual.len() {
        return false;
    }
    let mut differs = false;
    for (e, a) in expected.iter().zip(actual) {
        if e == a {
            continue;
        }
        match (e.strip_suffix(" NO"), a.strip_suffix(" YES")) {
            (Some(e), Some(a)) if e == a => differs = true,
            _ => return false,
        }
    }
    differs
}

/// True when the rows are the same but for floating-point values that
/// differ by a relative 1e-12 at most (and at least one differs).
fn within_rounding(expected: &[&str], actual: &[&str]) -> bool {
    if expected.len() != actual.len() {
        return false;
    }
    let mut rounded = false;
    for (e, a) in expected.iter().zip(actual) {
        let (ev, av): (Vec<&str>, Vec<&str>) = (
            e.split_whitespace().collect(),
            a.split_whitespace().collect(),
        );
        if ev.len() != av.len() {
            return false;
        }
        for (x, y) in ev.iter().zip(&av) {
            if x == y {
                continue;
            }
            match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(x), Ok(y)) if (x - y).abs() <= 1e-12 * x.abs().max(y.abs()) => rounded = true,
                _ => return false,
            }
        }
    }
    rounded
}

/// Runs every record of `relative` (below `test_files/` of the current
/// directory) on `engine`. The file gets a fresh context and scratch folder.
pub async fn run_file(relative: &Path, engine: &Engine) -> FileOutcome {
    let file = relative.display().to_string();
    let path = Path::new("test_files").join(relative);
    let records = match parse_file::<datafusion_sqllogictest::DFColumnType>(&path) {
        Ok(r) => r,
        Err(e) => {
            return FileOutcome {
                file,
                records: vec![RecordOutcome {
                    at: "0".into(),
                    sql: String::new(),
                    outcome: Outcome::Error(format!("cannot parse the file: {e}")),
                }],
            };
        }
    };
    let skipped_file = SKIPPED_FILES
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(_, reason)| *reason);
    let context = match skipped_file {
        Some(_) => None,
        None => TestContext::try_new_for_test_file(relative).await,
    };
    let mut outcomes = Vec::new();
    let Some(context) = context else {
        let reason = skipped_file.unwrap_or("needs a DataFusion feature this build lacks");
        for record in records {
            if let Record::Statement { loc, sql, .. } | Record::Query { loc, sql, .. } = record {
                outcomes.push(RecordOutcome {
                    at: record_at(&path, &loc),
                    sql,
                    outcome: Outcome::Skipped(reason),
                });
            }
        }
        return FileOutcome {
            file,
            records: outcomes,
        };
    };
    if let Err(e) = setup_scratch_dir(relative) {
        return FileOutcome {
            file,
            records: vec![RecordOutcome {
                at: "0".into(),
                sql: String::new(),
                outcome: Outcome::Error(format!("cannot set up the scratch folder: {e}")),
            }],
        };
    }
    let ctx = context.session_ctx().clone();
    let spark = is_spark_path(relative);
    match engine {
        Engine::DataFusion => {
            let relative = relative.to_path_buf();
            let mut runner = sqllogictest::Runner::new(move || {
                let db = DataFusion::new(ctx.clone(), relative.clone(), ProgressBar::hidden());
                async move { Ok(db) }
            });
            run_records(&path, &mut runner, records, &mut outcomes).await;
        }
        Engine::Squall(config) => {
            let config = config.clone();
            let mut runner = sqllogictest::Runner::new(move || {
                let db = SquallDb::try_new(ctx.clone(), &config, spark);
                async move {
                    db.map_err(|e| {
                        datafusion_sqllogictest::DFSqlLogicTestError::Other(e.to_string())
                    })
                }
            });
            run_records(&path, &mut runner, records, &mut outcomes).await;
        }
    }
    drop(context);
    FileOutcome {
        file,
        records: outcomes,
    }
}

async fn run_records<D, M>(
    path: &Path,
    runner: &mut sqllogictest::Runner<D, M>,
    records: Vec<Record<D::ColumnType>>,
    outcomes: &mut Vec<RecordOutcome>,
) where
    D: sqllogictest::AsyncDB,
    M: sqllogictest::MakeConnection<Conn = D>,
{
    runner.add_label(ENGINE_LABEL);
    runner.with_column_validator(strict_column_validator);
    runner.with_normalizer(value_normalizer);
    runner.with_validator(df_value_validator);
    for record in records {
        let (at, sql, skip) = match &record {
            Record::Halt { .. } => break,
            Record::Statement {
                loc,
                sql,
                conditions,
                ..
            }
            | Record::Query {
                loc,
                sql,
                conditions,
                ..
            } => {
                if skipped_by_condition(conditions) {
                    continue;
                }
                (record_at(path, loc), sql.clone(), skip_reason(sql))
            }
            _ => {
                // Control records (sort mode, hash threshold, ...) shape later records.
                let _ = runner.run_async(record).await;
                continue;
            }
        };
        let outcome = if let Some(reason) = skip {
            Outcome::Skipped(reason)
        } else {
            match tokio::time::timeout(RECORD_TIMEOUT, runner.run_async(record)).await {
                Ok(Ok(_)) => Outcome::Pass,
                Ok(Err(e)) => classify(&e),
                Err(_) => Outcome::Error(format!("timed out after {} s", RECORD_TIMEOUT.as_secs())),
            }
        };
        outcomes.push(RecordOutcome { at, sql, outcome });
    }
    runner.shutdown_async().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_no_to_yes_in_the_last_column_is_declared_nullable() {
        let expected = ["c Int64 YES", "a Dictionary(UInt16, Utf8) NO"];
        assert!(only_declared_nullable(
            &expected,
            &["c Int64 YES", "a Dictionary(UInt16, Utf8) YES"]
        ));
        // Nothing differs, another type, YES to NO, a row more: not this.
        assert!(!only_declared_nullable(&expected, &expected));
        assert!(!only_declared_nullable(
            &expected,
            &["c Int64 YES", "a Utf8 YES"]
        ));
        assert!(!only_declared_nullable(
            &expected,
            &["c Int64 NO", "a Dictionary(UInt16, Utf8) NO"]
        ));
        assert!(!only_declared_nullable(
            &expected,
            &[
                "c Int64 YES",
                "a Dictionary(UInt16, Utf8) YES",
                "b Utf8 YES"
            ]
        ));
    }
}
