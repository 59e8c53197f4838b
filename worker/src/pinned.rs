//! Objects named by a signed reference that pins their SHA-256: a spec too
//! large for its payload, the backup specs of a launcher group. Another
//! object put in its place, even a signed one, is refused.

use crate::error::{Result, WorkerError};

/// The bytes of the object at `url`, if their SHA-256 (hex) is `sha256`:
/// [`WorkerError::Unreadable`] when it cannot be read (a retry may
/// succeed), [`WorkerError::SpecRejected`] when it is another object.
pub async fn fetch_pinned(url: &str, sha256: &str) -> Result<Vec<u8>> {
    let unreadable = |reason: String| WorkerError::Unreadable {
        url: url.to_string(),
        reason,
    };
    let location =
        squall_connectors::Location::parse(url).map_err(|e| unreadable(e.to_string()))?;
    let store = location
        .build_store()
        .map_err(|e| unreadable(e.to_string()))?;
    let bytes = object_store::ObjectStoreExt::get(&store, &location.path())
        .await
        .map_err(|e| unreadable(e.to_string()))?
        .bytes()
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    if crate::signing::sha256_hex(&bytes) != sha256 {
        return Err(WorkerError::SpecRejected(format!(
            "the object {url} is not the one its reference names (SHA-256 differs)"
        )));
    }
    Ok(bytes.to_vec())
}
