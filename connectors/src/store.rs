//! Object-store locations: parsing what the user typed, and building stores.
//!
//! A [`Location`] is always an absolute URL (`file:///abs/dir/`, `s3://bucket/key`,
//! `gs://bucket/key`, `az://container/key`, `memory://name/key`). Stores are built from the URL alone plus the process
//! environment (AWS_ENDPOINT_URL, AWS_REGION, credentials, ...), so a worker in a
//! different process or a cloud function builds the same store the coordinator
//! did without any credentials travelling inside a task.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::ObjectStore;
use object_store::path::Path;
use url::Url;

use crate::error::{ConnectorError, Result};
pub use crate::store_builder::build_store;

/// The URL schemes Squall reads and writes, for messages.
pub const SUPPORTED_SCHEMES: &str = "file://, s3://, gs://, az://, memory://";

/// An absolute, normalized storage location.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    url: Url,
}

impl Location {
    /// Parses a local path (absolute or relative) or a URL with a supported scheme.
    pub fn parse(input: &str) -> Result<Self> {
        let invalid = |reason: &str| ConnectorError::InvalidLocation {
            location: input.to_string(),
            reason: reason.to_string(),
        };
        if input.trim().is_empty() {
            return Err(invalid("empty location"));
        }
        let url = match Url::parse(input) {
            Ok(url) if url.scheme().len() > 1 => url,
            // Not a URL (or a Windows drive letter): a local path.
            _ => {
                let path = PathBuf::from(input);
                let abs = if path.is_absolute() {
                    path
                } else {
                    std::env::current_dir()
                        .map_err(|e| invalid(&format!("cannot resolve relative path: {e}")))?
                        .join(path)
                };
                let mut url =
                    Url::from_file_path(&abs).map_err(|_| invalid("not an absolute local path"))?;
                if abs.is_dir() && !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                url
            }
        };
        match url.scheme() {
            "file" => {}
            "s3" | "s3a" | "gs" | "az" | "azure" | "memory" => {
                if url.host_str().unwrap_or("").is_empty() {
                    return Err(invalid("the URL has no bucket name"));
                }
            }
            other => {
                return Err(invalid(&format!(
                    "unsupported scheme '{other}://' (supported: local paths, {SUPPORTED_SCHEMES})"
                )));
            }
        }
        Ok(Self { url })
    }

    /// The full URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The store part of the URL (`scheme://host`), as DataFusion registers stores.
    pub fn store_url(&self) -> ObjectStoreUrl {
        let host = self.url.host_str().unwrap_or("");
        ObjectStoreUrl::parse(format!("{}://{}", self.url.scheme(), host))
            .expect("scheme://host is always a valid object store URL")
    }

    /// The object path inside the store.
    pub fn path(&self) -> Path {
        Path::from_url_path(self.url.path()).unwrap_or_else(|_| Path::from(self.url.path()))
    }

    /// True when the location names a directory-like prefix (ends with `/`).
    pub fn is_prefix(&self) -> bool {
        self.url.path().ends_with('/')
    }

    /// Returns this location as a prefix (with a trailing `/`).
    pub fn as_prefix(&self) -> Self {
        if self.is_prefix() {
            return self.clone();
        }
        let mut url = self.url.clone();
        url.set_path(&format!("{}/", url.path()));
        Self { url }
    }

    /// A child location below this prefix. `relative` is a key of
    /// `/`-separated segments; one that could leave the prefix (a `.` or `..`
    /// segment, spelled plainly or percent-encoded, a leading `/`, a scheme,
    /// `?`, `#`, `\\`) is refused, so that names built from user input
    /// (function, file and table names) stay where the user pointed.
    pub fn join(&self, relative: &str) -> Result<Self> {
        let refuse = |reason: &str| ConnectorError::InvalidLocation {
            location: format!("{}{relative}", self.as_prefix()),
            reason: format!("'{relative}' {reason}"),
        };
        if relative.starts_with('/') {
            return Err(refuse("is not relative"));
        }
        if relative.contains(['?', '#', '\\', ':']) {
            return Err(refuse(
                "contains one of ? # \\ : which a key below a prefix may not",
            ));
        }
        let is_dot_segment = |segment: &str| {
            let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
            decoded == "." || decoded == ".."
        };
        if relative.split('/').any(is_dot_segment) {
            return Err(refuse(
                "has a '.' or '..' segment, which would leave the prefix",
            ));
        }
        let base = self.as_prefix();
        let url = base
            .url
            .join(relative)
            .map_err(|e| refuse(&e.to_string()))?;
        debug_assert!(url.as_str().starts_with(base.url.as_str()));
        Ok(Self { url })
    }

    /// The URL of an object path in the same store as this location.
    pub fn with_path(&self, path: &Path) -> Self {
        let mut url = self.url.clone();
        url.set_path(&format!("/{}", path.as_ref()));
        Self { url }
    }

    /// True for a local file system location.
    pub fn is_local(&self) -> bool {
        self.url.scheme() == "file"
    }

    /// The local file system path of a `file://` location.
    pub fn local_path(&self) -> Option<PathBuf> {
        self.url.to_file_path().ok()
    }

    /// Builds the object store this location lives in, from the URL and the environment.
    pub fn build_store(&self) -> Result<Arc<dyn ObjectStore>> {
        build_store(&self.url)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.url)
    }
}

/// Deletes every object below `prefix` (on a local disk: the folder, since
/// object stores have no folders to leave behind).
pub async fn delete_prefix(prefix: &Location) -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    if let Some(dir) = prefix.local_path() {
        return match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ConnectorError::Write {
                url: prefix.to_string(),
                reason: e.to_string(),
            }),
        };
    }
    let store = prefix.build_store()?;
    let locations = store
        .list(Some(&prefix.path()))
        .map_ok(|m| m.location)
        .boxed();
    store
        .delete_stream(locations)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|source| ConnectorError::ObjectStore {
            url: prefix.to_string(),
            source,
        })?;
    Ok(())
}

/// Registers the store of `location` with a DataFusion runtime, unless one is there already.
pub fn register_object_store(env: &RuntimeEnv, location: &Location) -> Result<()> {
    let store_url = location.store_url();
    if location.is_local() || env.object_store(&store_url).is_ok() {
        return Ok(());
    }
    let store = location.build_store()?;
    env.register_object_store(store_url.as_ref(), store);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_relative_path_becomes_absolute_file_url() {
        let loc = Location::parse("some/relative/file.parquet").unwrap();
        assert_eq!(loc.url().scheme(), "file");
        assert!(loc.url().path().ends_with("/some/relative/file.parquet"));
        assert_eq!(loc.store_url().as_str(), "file:///");
    }

    #[test]
    fn s3_url_keeps_bucket_and_key() {
        let loc = Location::parse("s3://lake/tpch/lineitem/").unwrap();
        assert_eq!(loc.store_url().as_str(), "s3://lake/");
        assert_eq!(loc.path().as_ref(), "tpch/lineitem");
        assert!(loc.is_prefix());
        assert_eq!(
            loc.join("a/b.parquet").unwrap().to_string(),
            "s3://lake/tpch/lineitem/a/b.parquet"
        );
    }

    #[test]
    fn keys_cannot_leave_their_prefix() {
        let loc = Location::parse("s3://lake/tpch/").unwrap();
        for key in [
            "../x",
            "a/../../x",
            "./x",
            "%2e%2E/x",
            ".%2e/x",
            "/etc/passwd",
            "s3://other/x",
            "c:x",
            "a?b",
            "a#b",
            "a\\..\\b",
        ] {
            let err = loc.join(key).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let local = Location::parse("/tmp/squall-out/").unwrap();
        assert!(local.join("../etc").is_err());
        assert_eq!(
            local.join("k=1/..a/b..c.csv").unwrap().to_string(),
            "file:///tmp/squall-out/k=1/..a/b..c.csv"
        );
    }

    #[test]
    fn unsupported_scheme_is_named() {
        let err = Location::parse("ftp://host/x").unwrap_err().to_string();
        assert!(err.contains("ftp://"), "{err}");
    }

    #[test]
    fn gcs_and_azure_urls_name_their_bucket_or_container() {
        let gs = Location::parse("gs://lake/tpch/orders/").unwrap();
        assert_eq!(gs.store_url().as_str(), "gs://lake/");
        assert_eq!(gs.path().as_ref(), "tpch/orders");
        let az = Location::parse("az://container/a/b.parquet").unwrap();
        assert_eq!(az.store_url().as_str(), "az://container/");
        assert!(!az.is_prefix());
        let err = Location::parse("gs:///x").unwrap_err().to_string();
        assert!(err.contains("bucket"), "{err}");
    }

    #[test]
    fn bucketless_s3_url_is_rejected() {
        let err = Location::parse("s3:///x").unwrap_err().to_string();
        assert!(err.contains("bucket"), "{err}");
    }
}
