//! The errors of notebooks.

/// What can go wrong with a notebook as a whole (a failing cell is not an
/// error of the notebook: it is shown in the page).
#[derive(Debug, thiserror::Error)]
pub enum NotebookError {
    #[error("cannot read notebook {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is malformed: front matter, a cell, a chart, a cycle.
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
    #[error("cannot write {path}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    /// The result cache cannot be opened.
    #[error("notebook cache {location}: {message}")]
    Cache { location: String, message: String },
    #[error(transparent)]
    Job(Box<squall_jobs::JobError>),
}

impl From<squall_jobs::JobError> for NotebookError {
    fn from(e: squall_jobs::JobError) -> Self {
        Self::Job(Box::new(e))
    }
}

pub type Result<T, E = NotebookError> = std::result::Result<T, E>;
