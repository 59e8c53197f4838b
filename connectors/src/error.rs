//! The one error type of this crate: every variant names the thing at fault.

use datafusion::error::DataFusionError;

/// Errors raised while resolving locations, reading footers or registering tables.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The user gave a location that is not a path or a supported URL.
    #[error("invalid location '{location}': {reason}")]
    InvalidLocation { location: String, reason: String },

    /// An object store could not be built for a URL (bad bucket name, bad config).
    #[error("cannot open object store for '{url}': {reason}")]
    StoreConfig { url: String, reason: String },

    /// A table could not be registered or read.
    #[error("table '{table}': {reason}")]
    Table { table: String, reason: String },

    /// A single file is unreadable or malformed.
    #[error("{url}: {reason}")]
    File { url: String, reason: String },

    /// An object-store request failed.
    #[error("object store request for '{url}' failed: {source}")]
    ObjectStore {
        url: String,
        #[source]
        source: object_store::Error,
    },

    /// Writing generated data failed.
    #[error("writing '{url}' failed: {reason}")]
    Write { url: String, reason: String },

    /// An error from DataFusion that has no better context.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

/// Result alias for this crate.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;
