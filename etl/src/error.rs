//! The errors of ETL jobs.

use crate::problem::Problem;

/// What can go wrong with a job.
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    /// The job file cannot be read.
    #[error("cannot read job file {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The job file has problems; nothing ran.
    #[error("{}", render_problems(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
    /// An incremental source could not be read as it must be.
    #[error("source '{source_name}': {message}")]
    Source {
        source_name: String,
        message: String,
    },
    /// The job's scratch folder could not be leased.
    #[error("cannot lease the job's scratch folder {url}: {source}")]
    Scratch {
        url: String,
        source: Box<squall_jobs::JobError>,
    },
    /// A step's rows could not be computed into scratch.
    #[error("step '{step}' failed: {source}")]
    Step {
        step: String,
        source: Box<squall_jobs::JobError>,
    },
    /// A sink's files could not be written (nothing was published).
    #[error("sink {index} ({url}) failed: {source}")]
    Sink {
        index: usize,
        url: String,
        source: Box<squall_jobs::JobError>,
    },
    /// A Delta sink's commit failed: nothing of the job was published
    /// (but the Delta sinks committed before it, which `committed` names).
    #[error("commit failed: {source}{}", committed_note(committed))]
    DeltaCommit {
        source: squall_delta::DeltaError,
        /// Delta tables committed before this one failed.
        committed: Vec<String>,
    },
    /// Publishing the sinks failed.
    #[error("commit failed: {source}")]
    Commit {
        source: squall_connectors::ConnectorError,
    },
}

pub type Result<T, E = EtlError> = std::result::Result<T, E>;

fn committed_note(committed: &[String]) -> String {
    if committed.is_empty() {
        String::new()
    } else {
        format!(
            " (already committed, Delta tables have no joint commit: {})",
            committed.join(", ")
        )
    }
}

fn render_problems(file: &str, problems: &[Problem]) -> String {
    let mut out = match problems.len() {
        1 => format!("{file} has a problem; nothing ran:"),
        n => format!("{file} has {n} problems; nothing ran:"),
    };
    for p in problems {
        if p.line == 0 {
            out.push_str(&format!("\n  {file}: {p}"));
        } else {
            out.push_str(&format!("\n  {file}:{}: {p}", p.line));
        }
    }
    out
}
