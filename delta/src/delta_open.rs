//! Opening a Delta table's log through Squall's object stores.
//!
//! delta-rs is handed the store Squall built for the table's bucket (with
//! its credentials, endpoint, retries and fault injection), so a Delta
//! table is reachable wherever a Parquet folder is. Commits go through
//! delta-rs's default log store, which writes each commit file with a
//! create-only PUT (`If-None-Match: *` on S3, GCS and Azure; an exclusive
//! create on a local disk): of two writers racing for one version exactly
//! one wins.

use std::sync::{Arc, Once};

use futures::StreamExt;

use deltalake::logstore::{
    LogStore, LogStoreFactory, StorageConfig, default_logstore, logstore_factories,
};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, ObjectStore};
use url::Url;

use crate::delta_location::{DeltaLocation, TimeTravel};
use crate::error::{DeltaError, Result};

/// delta-rs knows `file://` and `memory://` log stores by itself; the
/// cloud ones take the same default log store over Squall's stores.
fn register_log_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let factories = logstore_factories();
        for scheme in ["s3://", "s3a://", "gs://", "az://", "azure://", "abfss://"] {
            let url = Url::parse(scheme).expect("a scheme is a URL");
            if !factories.contains_key(&url) {
                factories.insert(url, Arc::new(ConditionalPutLogStores));
            }
        }
    });
}

/// Log stores whose commits are create-only PUTs.
struct ConditionalPutLogStores;

impl LogStoreFactory for ConditionalPutLogStores {
    fn with_options(
        &self,
        prefixed_store: Arc<dyn ObjectStore>,
        root_store: Arc<dyn ObjectStore>,
        location: &Url,
        options: &StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// A table handle on `location`'s log, not loaded.
pub(crate) fn table_handle(location: &DeltaLocation) -> Result<DeltaTable> {
    register_log_stores();
    let url = location.root.url().clone();
    let store = location.root.build_store()?;
    let builder = DeltaTableBuilder::from_url(url.clone())
        .map_err(|e| log_error(location, e))?
        .with_storage_backend(store, url);
    builder.build().map_err(|e| log_error(location, e))
}

/// Whether `location` has a transaction log: at least one object below
/// `_delta_log/` (delta-rs's own test differs between stores: a missing
/// local folder is an error there, a missing S3 prefix a missing table).
pub(crate) async fn has_log(location: &DeltaLocation) -> Result<bool> {
    let store = location.root.build_store()?;
    let log = location.root.join("_delta_log/")?;
    let first = store.list(Some(&log.path())).next().await;
    match first {
        None | Some(Err(object_store::Error::NotFound { .. })) => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(source)) => Err(squall_connectors::ConnectorError::ObjectStore {
            url: log.to_string(),
            source,
        }
        .into()),
    }
}

fn no_log(location: &DeltaLocation) -> DeltaError {
    DeltaError::NotATable {
        url: location.root.to_string(),
        reason: "it has no _delta_log/ folder (give the table's root folder)".into(),
    }
}

/// The snapshot of `location` it asks for.
pub(crate) async fn open_snapshot(location: &DeltaLocation) -> Result<DeltaTable> {
    if !has_log(location).await? {
        return Err(no_log(location));
    }
    let mut table = table_handle(location)?;
    let loaded = match location.time_travel {
        None => table.load().await,
        Some(TimeTravel::Version(v)) => table.load_version(v).await,
        Some(TimeTravel::Timestamp(t)) => table.load_with_datetime(t).await,
    };
    if let Err(e) = loaded {
        // Say which versions there are when the one asked for is not.
        if let Some(TimeTravel::Version(v)) = location.time_travel
            && let Ok(latest) = table_handle(location)?.get_latest_version().await
            && v > latest
        {
            return Err(DeltaError::NotATable {
                url: location.root.to_string(),
                reason: format!("it has no version {v} (its newest is {latest})"),
            });
        }
        return Err(open_error(location, e));
    }
    // delta-rs falls back to the first version for a time before it.
    if let Some(TimeTravel::Timestamp(t)) = location.time_travel
        && let Ok(snapshot) = table.snapshot()
        && let Some(committed_ms) = snapshot.version_timestamp(snapshot.version())
        && committed_ms > t.timestamp_millis()
    {
        let committed = chrono::DateTime::from_timestamp_millis(committed_ms)
            .map(|c| c.to_rfc3339())
            .unwrap_or_else(|| format!("{committed_ms} ms"));
        return Err(DeltaError::NotATable {
            url: location.root.to_string(),
            reason: format!(
                "it has no version as of {}: its first version was committed at {committed}",
                t.to_rfc3339()
            ),
        });
    }
    Ok(table)
}

/// The table at `location` if it has a log, else `None` (a write creates it).
pub(crate) async fn open_if_exists(location: &DeltaLocation) -> Result<Option<DeltaTable>> {
    if !has_log(location).await? {
        return Ok(None);
    }
    let mut table = table_handle(location)?;
    match table.load().await {
        Ok(()) => Ok(Some(table)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) => Err(open_error(location, e)),
    }
}

fn open_error(location: &DeltaLocation, e: DeltaTableError) -> DeltaError {
    match e {
        DeltaTableError::NotATable(_) => no_log(location),
        DeltaTableError::InvalidVersion(v) => DeltaError::NotATable {
            url: location.root.to_string(),
            reason: format!("it has no version {v}"),
        },
        other if location.time_travel.is_some() => DeltaError::NotATable {
            url: location.root.to_string(),
            reason: format!(
                "cannot read its {}: {}",
                location.time_travel.expect("checked"),
                one_line(&other.to_string())
            ),
        },
        other => log_error(location, other),
    }
}

pub(crate) fn log_error(location: &DeltaLocation, e: DeltaTableError) -> DeltaError {
    DeltaError::Log {
        url: location.root.to_string(),
        reason: one_line(&e.to_string()),
    }
}

pub(crate) fn one_line(text: &str) -> String {
    squall_connectors::table::one_line(text)
}
