//! Judging Squall's outcomes against DataFusion's and the expected-failures list.

use std::collections::BTreeMap;

use crate::expected::ExpectedFailures;
use crate::run::{FileOutcome, Mismatch, Outcome};

/// The pass rate the suite must reach, in percent of DataFusion's passes.
pub const REQUIRED_PASS_RATE_PERCENT: f64 = 99.0;

/// Counts of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// Records single-node DataFusion passes: the ones that count.
    pub reference_passes: usize,
    /// Of those, records Squall passes.
    pub squall_passes: usize,
    /// Records neither engine runs (EXPLAIN text, features this build lacks).
    pub skipped: usize,
    /// Records single-node DataFusion itself fails here (not counted).
    pub reference_failures: usize,
}

/// A record Squall fails although DataFusion passes it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// `FILE:LINE`.
    pub record: String,
    pub sql: String,
    pub outcome: Outcome,
}

/// Everything the suite found.
#[derive(Debug, Clone, Default)]
pub struct Judgement {
    pub files: BTreeMap<String, FileCounts>,
    /// Every record Squall fails that DataFusion passes.
    pub failures: Vec<Failure>,
    /// Failures not in the list.
    pub unexpected: Vec<Failure>,
    /// Listed records that now give a wrong answer (never allowed in the list).
    pub listed_wrong_answers: Vec<Failure>,
    /// Listed records that pass now: the list must shrink.
    pub now_passing: Vec<String>,
    /// Listed records that are not a record DataFusion passes.
    pub stale: Vec<String>,
}

impl Judgement {
    /// Compares the two engines' outcomes, file by file, with `expected`.
    /// `complete`: every file ran (listed records of files that did not run
    /// are not reported stale otherwise).
    pub fn new(
        reference: &[FileOutcome],
        squall: &[FileOutcome],
        expected: &ExpectedFailures,
        complete: bool,
    ) -> Self {
        let listed = expected.by_record();
        let mut judgement = Judgement::default();
        let mut reference_passing = std::collections::BTreeSet::new();
        let squall_by_file: BTreeMap<&str, &FileOutcome> =
            squall.iter().map(|f| (f.file.as_str(), f)).collect();
        for file in reference {
            let counts = judgement.files.entry(file.file.clone()).or_default();
            let squall_records: BTreeMap<&str, &crate::run::RecordOutcome> = squall_by_file
                .get(file.file.as_str())
                .map(|f| f.records.iter().map(|r| (r.at.as_str(), r)).collect())
                .unwrap_or_default();
            for record in &file.records {
                let key = format!("{}:{}", file.file, record.at);
                match &record.outcome {
                    Outcome::Skipped(_) => {
                        counts.skipped += 1;
                        continue;
                    }
                    Outcome::Pass => {}
                    _ => {
                        counts.reference_failures += 1;
                        continue;
                    }
                }
                counts.reference_passes += 1;
                reference_passing.insert(key.clone());
                let outcome = squall_records
                    .get(record.at.as_str())
                    .map(|r| r.outcome.clone())
                    .unwrap_or(Outcome::Error("not run on Squall".into()));
                if outcome.is_pass() {
                    counts.squall_passes += 1;
                    if listed.contains_key(key.as_str()) {
                        judgement.now_passing.push(key);
                    }
                    continue;
                }
                let failure = Failure {
                    record: key.clone(),
                    sql: record.sql.clone(),
                    outcome,
                };
                match listed.get(key.as_str()) {
                    None => judgement.unexpected.push(failure.clone()),
                    Some(_) => {
                        if let Outcome::WrongResult {
                            mismatch: Mismatch::Different,
                            ..
                        } = failure.outcome
                        {
                            judgement.listed_wrong_answers.push(failure.clone());
                        }
                    }
                }
                judgement.failures.push(failure);
            }
        }
        if complete {
            judgement.stale = listed
                .keys()
                .filter(|k| !reference_passing.contains(**k))
                .map(|k| k.to_string())
                .collect();
        }
        judgement
    }

    /// Totals over all files.
    pub fn totals(&self) -> FileCounts {
        self.files.values().fold(FileCounts::default(), |mut t, c| {
            t.reference_passes += c.reference_passes;
            t.squall_passes += c.squall_passes;
            t.skipped += c.skipped;
            t.reference_failures += c.reference_failures;
            t
        })
    }

    /// Squall's passes in percent of DataFusion's.
    pub fn pass_rate_percent(&self) -> f64 {
        let t = self.totals();
        if t.reference_passes == 0 {
            return 100.0;
        }
        100.0 * t.squall_passes as f64 / t.reference_passes as f64
    }

    /// What makes the suite fail, one line each (empty: it passes).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.unexpected {
            out.push(format!(
                "{}: fails on Squall and is not in the expected-failures list: {}",
                f.record,
                describe(&f.outcome)
            ));
        }
        for f in &self.listed_wrong_answers {
            out.push(format!(
                "{}: gives a wrong answer on Squall; a wrong answer may not be listed: {}",
                f.record,
                describe(&f.outcome)
            ));
        }
        for r in &self.now_passing {
            out.push(format!(
                "{r}: passes on Squall now; remove it from the expected-failures list"
            ));
        }
        for r in &self.stale {
            out.push(format!(
                "{r}: is listed but is not a record single-node DataFusion passes"
            ));
        }
        let rate = self.pass_rate_percent();
        if rate < REQUIRED_PASS_RATE_PERCENT {
            out.push(format!(
                "Squall passes {rate:.2}% of the records DataFusion passes; at least {REQUIRED_PASS_RATE_PERCENT}% are required"
            ));
        }
        out
    }

    /// The per-file table for `docs/correctness.md`.
    pub fn markdown_table(&self) -> String {
        let mut out = String::from(
            "| file | DataFusion passes | Squall passes | % | skipped | DataFusion fails |\n|---|---:|---:|---:|---:|---:|\n",
        );
        let row = |name: &str, c: &FileCounts| {
            let pct = if c.reference_passes == 0 {
                "–".to_string()
            } else {
                format!(
                    "{:.1}",
                    100.0 * c.squall_passes as f64 / c.reference_passes as f64
                )
            };
            format!(
                "| {name} | {} | {} | {pct} | {} | {} |\n",
                c.reference_passes, c.squall_passes, c.skipped, c.reference_failures
            )
        };
        for (file, counts) in &self.files {
            out.push_str(&row(file, counts));
        }
        out.push_str(&row("**total**", &self.totals()));
        out
    }
}

/// A short description of a failure: its kind and the first line of its message.
pub fn describe(outcome: &Outcome) -> String {
    let first = |m: &str| -> String {
        let line = m.lines().next().unwrap_or_default();
        let mut s: String = line.chars().take(300).collect();
        if line.len() > s.len() {
            s.push('…');
        }
        s
    };
    match outcome {
        Outcome::Pass => "passes".into(),
        Outcome::Skipped(r) => format!("skipped: {r}"),
        Outcome::Error(m) => format!("error: {}", first(m)),
        Outcome::WrongResult { mismatch, message } => {
            let what = match mismatch {
                Mismatch::Order => "same rows in another order",
                Mismatch::Rounding => "floating-point rounding",
                Mismatch::Approximate => "another estimate of an approximate aggregate",
                Mismatch::DeclaredNullable => {
                    "columns declared nullable that DataFusion declares not null"
                }
                Mismatch::Different => "WRONG RESULT",
            };
            format!("{what}: {}", first(message))
        }
    }
}
