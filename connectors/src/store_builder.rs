//! Building an object store from a URL and the process environment.
//!
//! Each cloud is configured the way its own tools are, so that a user's
//! existing set-up just works and a worker (another process, a cloud function)
//! builds the same store from its own environment without any credentials
//! travelling inside a task:
//!
//! - `s3://`: AWS_ENDPOINT_URL, AWS_REGION, AWS_ALLOW_HTTP, AWS_ACCESS_KEY_ID,
//!   ..., read by object_store; when no key is in the environment, the AWS
//!   SDK's default credential chain (AWS_PROFILE and `~/.aws` files, SSO,
//!   `credential_process`, web identity, container and instance roles), see
//!   [`crate::aws_credentials`].
//! - `gs://`: GOOGLE_SERVICE_ACCOUNT (a key file), GOOGLE_SERVICE_ACCOUNT_KEY,
//!   GOOGLE_APPLICATION_CREDENTIALS and application default credentials,
//!   GOOGLE_BASE_URL for an emulator.
//! - `az://container/`: AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY,
//!   a SAS, a service principal or managed identity; AZURE_STORAGE_USE_EMULATOR
//!   (with AZURITE_BLOB_STORAGE_URL) for Azurite.
//!
//! Every store retries a request a few times for a short while only, so that
//! an unreachable endpoint fails in seconds with a clear error. On top of the
//! store itself, [`build_store_with`] layers the request policy: hedging,
//! retries of transient failures and, in tests, injected faults (see
//! [`crate::request_policy`]), and aborts multipart uploads dropped
//! unfinished ([`crate::upload_guard`]).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};
use url::Url;

use crate::aws_credentials;
use crate::error::{ConnectorError, Result};
use crate::faulty_store::FaultyStore;
use crate::hedged_store::HedgedStore;
use crate::request_policy::{RequestPolicy, RequestStats, StoreFaults};
use crate::retrying_store::RetryingStore;
use crate::upload_guard::UploadGuardStore;

const MAX_REQUEST_RETRIES: usize = 3;
const RETRY_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `memory://` stores are process-wide so that tasks of the local backend share them.
static MEMORY_STORES: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Stores a program handed over as objects ([`provide_store`]), by
/// `scheme://host`: built in this process, so reachable by in-process
/// tasks only.
static PROVIDED_STORES: LazyLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The key of `url`'s store: `scheme://host`.
fn store_key(url: &Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""))
}

/// Makes `store` the store of every URL of `url`'s scheme and host
/// (`s3://lake`) that this process builds from now on, instead of one
/// built from the environment: the coordinator's requests and those of
/// in-process tasks. The request policy (retries, hedging, injected
/// faults) is layered on top as on any store. Workers in other processes
/// or on Lambda build their own stores and never see it. Process-wide: a
/// later call for the same scheme and host replaces it.
pub fn provide_store(url: &Url, store: Arc<dyn ObjectStore>) {
    PROVIDED_STORES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(store_key(url), store);
}

fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: MAX_REQUEST_RETRIES,
        retry_timeout: RETRY_TIMEOUT,
        ..RetryConfig::default()
    }
}

/// The connect timeout, as a config value. It is set as a config key because
/// `with_client_options` would replace the client options read from the
/// environment (AWS_ALLOW_HTTP, proxies).
fn connect_timeout() -> String {
    format!("{}s", CONNECT_TIMEOUT.as_secs())
}

/// Builds the object store for a URL, retrying transient failures but
/// hedging nothing: the coordinator's own requests (specs, leases, commit
/// manifests, results) rewrite and delete keys, where a hedged PUT landing
/// late could undo a later write. Credentials and endpoints come from the
/// environment.
pub fn build_store(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    let faults = COORDINATOR_FAULTS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let policy = RequestPolicy {
        hedging: None,
        retries: if faults.is_some() {
            COORDINATOR_REQUEST_RETRIES
        } else {
            RequestPolicy::default().retries
        },
        faults,
    };
    build_store_with(
        url,
        &policy,
        COORDINATOR_FAULT_SALT,
        Arc::clone(&COORDINATOR_STATS),
    )
}

/// Retries of the stores [`build_store`] built, in this process.
static COORDINATOR_STATS: LazyLock<Arc<RequestStats>> = LazyLock::new(Default::default);

/// How many requests of the stores [`build_store`] built (the
/// coordinator's) were sent again in this process.
pub fn coordinator_retries() -> u64 {
    COORDINATOR_STATS.retried()
}

/// Faults injected into the stores [`build_store`] builds: the
/// coordinator's own requests (a testing option).
static COORDINATOR_FAULTS: std::sync::RwLock<Option<StoreFaults>> = std::sync::RwLock::new(None);

/// Sends of a coordinator's request under injected faults: no task retry
/// stands above them, so they get as many as object_store's HTTP client
/// gives a cloud request by default (10 retries).
pub const COORDINATOR_REQUEST_RETRIES: u32 = 10;

/// Tells the coordinator's fault draws apart from those of task attempts.
const COORDINATOR_FAULT_SALT: u64 = u64::MAX;

/// Injects `faults` into every store [`build_store`] builds from now on in
/// this process: the coordinator's requests for specs, results, leases,
/// commits and cleanup (tasks' stores get theirs from their TaskSpec).
/// For `--inject-store-faults`; `None` stops it. Process-wide: a test that
/// calls it must run alone in its process.
pub fn inject_coordinator_faults(faults: Option<StoreFaults>) {
    *COORDINATOR_FAULTS
        .write()
        .unwrap_or_else(|e| e.into_inner()) = faults;
}

/// Builds the object store for a URL, sending its requests as `policy`
/// says and counting retries and hedges in `stats`. `salt` tells apart the
/// fault draws of different stores (task attempts) when faults are injected.
///
/// Requests to local disk and memory are not hedged, unless faults are
/// injected (then the store stands for a remote one): a second send would
/// go to the same disk.
pub fn build_store_with(
    url: &Url,
    policy: &RequestPolicy,
    salt: u64,
    stats: Arc<RequestStats>,
) -> Result<Arc<dyn ObjectStore>> {
    // Multipart uploads dropped unfinished are aborted.
    let mut store: Arc<dyn ObjectStore> = Arc::new(UploadGuardStore::new(build_base_store(url)?));
    if let Some(faults) = &policy.faults {
        store = Arc::new(FaultyStore::new(store, faults.clone(), salt));
    }
    // Cloud stores retry their own requests (`RetryConfig`, HTTP errors and
    // broken bodies included); Squall retries what nothing below it does:
    // local disk, memory, and faults injected above a cloud client.
    let remote = !matches!(url.scheme(), "file" | "memory");
    if policy.retries > 0 && (!remote || policy.faults.is_some()) {
        store = Arc::new(RetryingStore::new(
            store,
            policy.retries,
            Arc::clone(&stats),
        ));
    }
    if let Some(hedging) = &policy.hedging
        && (remote || policy.faults.is_some())
    {
        store = Arc::new(HedgedStore::new(store, hedging.clone(), stats));
    }
    Ok(store)
}

/// The store itself, without the request policy's layers.
fn build_base_store(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    let host = url.host_str().unwrap_or("").to_string();
    let config_error = |e: object_store::Error| ConnectorError::StoreConfig {
        url: url.to_string(),
        reason: e.to_string(),
    };
    if let Some(provided) = PROVIDED_STORES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&store_key(url))
    {
        return Ok(Arc::clone(provided));
    }
    match url.scheme() {
        "file" => Ok(Arc::new(LocalFileSystem::new())),
        "memory" => {
            let mut stores = MEMORY_STORES.lock().unwrap_or_else(|e| e.into_inner());
            let store = stores
                .entry(host)
                .or_insert_with(|| Arc::new(InMemory::new()))
                .clone();
            Ok(store)
        }
        "s3" | "s3a" => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(host)
                .with_retry(retry())
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    connect_timeout(),
                );
            if let Some(credentials) = aws_credentials::sdk_chain_if_needed() {
                builder = builder.with_credentials(credentials);
            }
            if let Some(region) = aws_credentials::profile_region_if_needed() {
                builder = builder.with_region(region);
            }
            Ok(Arc::new(builder.build().map_err(config_error)?))
        }
        "gs" => {
            let store = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(host)
                .with_retry(retry())
                .with_config(
                    GoogleConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    connect_timeout(),
                )
                .build()
                .map_err(config_error)?;
            Ok(Arc::new(store))
        }
        "az" | "azure" => {
            let store = MicrosoftAzureBuilder::from_env()
                .with_container_name(host)
                .with_retry(retry())
                .with_config(
                    AzureConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    connect_timeout(),
                )
                .build()
                .map_err(config_error)?;
            Ok(Arc::new(store))
        }
        other => Err(ConnectorError::InvalidLocation {
            location: url.to_string(),
            reason: format!(
                "unsupported scheme '{other}://' (supported: {})",
                crate::store::SUPPORTED_SCHEMES
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_build_without_requests_and_unknown_schemes_are_named() {
        // Stores are built lazily: no request is made, so no credentials are needed here.
        for url in ["file:///tmp/", "memory://m/", "s3://bucket/"] {
            let url = Url::parse(url).unwrap();
            assert!(build_store(&url).is_ok(), "{url}");
        }
        // GCS without any credentials in the environment may fail at build
        // time with object_store's message; the URL must then be named.
        let gs = Url::parse("gs://bucket/").unwrap();
        if let Err(e) = build_store(&gs) {
            assert!(e.to_string().contains("gs://bucket/"), "{e}");
        }
        let err = build_store(&Url::parse("ftp://host/x").unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ftp://") && err.contains("gs://"), "{err}");
    }
}
