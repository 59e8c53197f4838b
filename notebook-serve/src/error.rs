//! The errors of the live notebook server.

/// What can stop `squall notebook serve` from serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The notebook cannot be read or does not parse when the server starts.
    #[error(transparent)]
    Notebook(#[from] squall_notebook::NotebookError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
}

pub type Result<T, E = ServeError> = std::result::Result<T, E>;
