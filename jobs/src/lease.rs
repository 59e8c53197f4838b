//! Scratch leases: finding the scratch of queries whose client died.
//!
//! A query deletes its scratch prefix when it ends, fails or is cancelled
//! (see [`crate::results`]). A client killed hard — SIGKILL, a lost machine —
//! cannot. So every query keeps a small lease object,
//! `{scratch}/{query_id}/_lease`, saying until when it is alive, renewed
//! while the query runs. The next query on the same scratch root, and
//! `squall scratch clean`, delete the prefixes of queries whose lease has
//! expired (or, written by a Squall without leases, whose newest object is
//! older than the lease's time to live). Only prefixes named like a query
//! (`q-...`) are ever touched.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use squall_connectors::Location;
use squall_connectors::store::delete_prefix;

use crate::error::{JobError, Result};

/// The lease object's name inside a query's prefix.
pub const LEASE_OBJECT: &str = "_lease";
/// How long a lease lasts unless renewed.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10 * 60);
/// Overrides [`DEFAULT_LEASE_TTL`], in seconds (for tests, and for clients
/// that want abandoned scratch found sooner).
pub const LEASE_TTL_ENV: &str = "SQUALL_SCRATCH_LEASE_SECONDS";
/// The "time to live" of a query's scratch kept with `--keep-scratch`: a
/// century, so that no clean deletes it; the user does.
pub const KEPT: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
/// Query prefixes start with this (`q-<uuid>`).
const QUERY_PREFIX_START: &str = "q-";

/// The lease's time to live: [`LEASE_TTL_ENV`] or [`DEFAULT_LEASE_TTL`].
pub fn lease_ttl() -> Duration {
    std::env::var(LEASE_TTL_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_LEASE_TTL)
}

/// What a lease object holds.
#[derive(Debug, Serialize, Deserialize)]
struct LeaseRecord {
    query_id: String,
    expires_unix_ms: u64,
    /// Who holds it, for a person reading the scratch.
    host: String,
    pid: u32,
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn lease_location(query_prefix: &Location) -> Result<Location> {
    Ok(query_prefix.join(LEASE_OBJECT)?)
}

/// Writes (or renews) the lease of `query_id`, whose prefix is `query_prefix`,
/// for `ttl` from now.
pub async fn write_lease(query_prefix: &Location, query_id: &str, ttl: Duration) -> Result<()> {
    let location = lease_location(query_prefix)?;
    let record = LeaseRecord {
        query_id: query_id.to_string(),
        expires_unix_ms: now_unix_ms().saturating_add(ttl.as_millis() as u64),
        host: std::env::var("HOSTNAME").unwrap_or_default(),
        pid: std::process::id(),
    };
    let bytes = serde_json::to_vec(&record).expect("a lease is JSON");
    crate::scheduler::put_object(&location, bytes).await
}

/// Renews the lease every third of `ttl` until the returned task is aborted.
/// A failed renewal is logged and tried again every twelfth of `ttl`; when
/// none succeeded for five sixths of `ttl` (the lease is about to expire,
/// after which any client may delete the query's scratch), the task ends
/// with [`JobError::LeaseLost`], and the query must stop.
pub fn keep_renewed(
    query_prefix: Location,
    query_id: String,
    ttl: Duration,
) -> tokio::task::JoinHandle<JobError> {
    tokio::spawn(async move {
        let mut renewed = std::time::Instant::now();
        let mut wait = ttl / 3;
        loop {
            tokio::time::sleep(wait).await;
            match write_lease(&query_prefix, &query_id, ttl).await {
                Ok(()) => {
                    renewed = std::time::Instant::now();
                    wait = ttl / 3;
                }
                Err(e) => {
                    log::warn!("renewing the scratch lease of {query_id}: {e}");
                    if renewed.elapsed() >= ttl.mul_f64(5.0 / 6.0) {
                        return JobError::LeaseLost {
                            query_id,
                            unrenewed_seconds: renewed.elapsed().as_secs(),
                            message: e.to_string(),
                        };
                    }
                    wait = ttl / 12;
                }
            }
        }
    })
}

/// What [`clean_abandoned`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScratchCleaning {
    /// Queries whose prefixes were deleted.
    pub deleted: Vec<String>,
    /// Queries still alive (their lease has not expired).
    pub alive: Vec<String>,
}

/// Deletes the prefixes below `scratch` of queries whose lease expired (or
/// that have no lease and nothing newer than `ttl`), except `own_query`.
pub async fn clean_abandoned(
    scratch: &Location,
    own_query: Option<&str>,
    ttl: Duration,
) -> Result<ScratchCleaning> {
    let scratch = scratch.as_prefix();
    let store = scratch.build_store()?;
    let storage_error = |url: String, e: object_store::Error| JobError::Storage {
        url,
        message: e.to_string(),
    };
    let listing = match store.list_with_delimiter(Some(&scratch.path())).await {
        Ok(listing) => listing,
        Err(object_store::Error::NotFound { .. }) => return Ok(ScratchCleaning::default()),
        Err(e) => return Err(storage_error(scratch.to_string(), e)),
    };
    let now = now_unix_ms();
    let mut cleaning = ScratchCleaning::default();
    for prefix in listing.common_prefixes {
        let Some(query_id) = prefix.filename().map(str::to_string) else {
            continue;
        };
        if !query_id.starts_with(QUERY_PREFIX_START) || Some(query_id.as_str()) == own_query {
            continue;
        }
        // One prefix that cannot be judged or deleted does not stop the others.
        match clean_one(&scratch, &query_id, ttl, now).await {
            Ok(true) => cleaning.deleted.push(query_id),
            Ok(false) => cleaning.alive.push(query_id),
            Err(e) => log::warn!("cleaning the scratch of {query_id}: {e}"),
        }
    }
    Ok(cleaning)
}

/// Deletes the prefix of `query_id` below `scratch` if it is abandoned;
/// returns whether it was.
async fn clean_one(scratch: &Location, query_id: &str, ttl: Duration, now: u64) -> Result<bool> {
    let store = scratch.build_store()?;
    let storage_error = |url: String, e: object_store::Error| JobError::Storage {
        url,
        message: e.to_string(),
    };
    {
        let query_prefix = scratch.join(&format!("{query_id}/"))?;
        let lease = lease_location(&query_prefix)?;
        let expired = match store.get(&lease.path()).await {
            Ok(found) => {
                let bytes = found
                    .bytes()
                    .await
                    .map_err(|e| storage_error(lease.to_string(), e))?;
                match serde_json::from_slice::<LeaseRecord>(&bytes) {
                    Ok(record) => record.expires_unix_ms < now,
                    // Unreadable: judged by age like a missing one.
                    Err(_) => newest_older_than(&query_prefix, ttl).await?,
                }
            }
            Err(object_store::Error::NotFound { .. }) => {
                newest_older_than(&query_prefix, ttl).await?
            }
            Err(e) => return Err(storage_error(lease.to_string(), e)),
        };
        if expired {
            delete_prefix(&query_prefix).await?;
        }
        Ok(expired)
    }
}

/// [`clean_abandoned`], unless this process cleaned `scratch` less than half
/// a lease's life ago (queries start often; dead clients are rare).
pub async fn clean_abandoned_now_and_then(
    scratch: &Location,
    own_query: Option<&str>,
    ttl: Duration,
) -> Result<()> {
    static LAST_CLEANED: std::sync::Mutex<Vec<(String, std::time::Instant)>> =
        std::sync::Mutex::new(Vec::new());
    {
        let mut last = LAST_CLEANED.lock().unwrap_or_else(|e| e.into_inner());
        let key = scratch.as_prefix().to_string();
        match last.iter_mut().find(|(root, _)| *root == key) {
            Some((_, at)) if at.elapsed() < ttl / 2 => return Ok(()),
            Some((_, at)) => *at = std::time::Instant::now(),
            None => last.push((key, std::time::Instant::now())),
        }
    }
    clean_abandoned(scratch, own_query, ttl).await.map(|_| ())
}

/// Prefix of the temporary scratch directories sessions create when given no scratch location.
pub const TEMP_SCRATCH_PREFIX: &str = "squall-scratch-";

/// The temporary scratch directories of sessions on this machine (in the
/// system's temporary directory), except `own`.
pub fn temp_scratch_dirs(own: Option<&std::path::Path>) -> Vec<Location> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(TEMP_SCRATCH_PREFIX)
        })
        .filter(|e| e.path().is_dir() && Some(e.path().as_path()) != own)
        .filter_map(|e| Location::parse(&e.path().display().to_string()).ok())
        .map(|l| l.as_prefix())
        .collect()
}

/// Whether every object below `prefix` was last modified more than `ttl` ago.
async fn newest_older_than(prefix: &Location, ttl: Duration) -> Result<bool> {
    let store = prefix.build_store()?;
    let objects: Vec<_> = store
        .list(Some(&prefix.path()))
        .try_collect()
        .await
        .map_err(|e| JobError::Storage {
            url: prefix.to_string(),
            message: e.to_string(),
        })?;
    let cutoff = cutoff_unix_ms(ttl);
    // No object yet: a query writing its first lease (the store's temporary
    // upload files are not listed) — alive.
    Ok(!objects.is_empty()
        && objects
            .iter()
            .all(|o| o.last_modified.timestamp_millis() < cutoff))
}

fn cutoff_unix_ms(ttl: Duration) -> i64 {
    now_unix_ms() as i64 - ttl.as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &std::path::Path, path: &str, text: &str) {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    #[tokio::test]
    async fn expired_and_leaseless_old_queries_are_deleted_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = Location::parse(dir.path().to_str().unwrap()).unwrap();
        let ttl = Duration::from_secs(600);
        // Alive: a fresh lease.
        let alive = scratch.join("q-alive/").unwrap();
        write_lease(&alive, "q-alive", ttl).await.unwrap();
        put(dir.path(), "q-alive/s0/t0-a0.arrow", "x");
        // Dead: its lease expired.
        let dead = scratch.join("q-dead/").unwrap();
        write_lease(&dead, "q-dead", Duration::ZERO).await.unwrap();
        put(dir.path(), "q-dead/s0/t0-a0.arrow", "x");
        // Leaseless and recent: kept (judged by age).
        put(dir.path(), "q-recent/s0/t0-a0.arrow", "x");
        // Starting: its lease still a temporary upload file, which stores do not list.
        put(dir.path(), "q-starting/_lease#1", "x");
        // Not a query's prefix: never touched.
        put(dir.path(), "other/keep.txt", "x");
        // Our own query, whatever its lease says.
        let own = scratch.join("q-own/").unwrap();
        write_lease(&own, "q-own", Duration::ZERO).await.unwrap();

        tokio::time::sleep(Duration::from_millis(5)).await;
        let cleaning = clean_abandoned(&scratch, Some("q-own"), ttl).await.unwrap();
        assert_eq!(cleaning.deleted, vec!["q-dead".to_string()]);
        let mut alive_ids = cleaning.alive.clone();
        alive_ids.sort();
        assert_eq!(alive_ids, ["q-alive", "q-recent", "q-starting"]);
        assert!(!dir.path().join("q-dead").exists());
        for kept in [
            "q-alive/_lease",
            "q-recent/s0/t0-a0.arrow",
            "other/keep.txt",
            "q-own/_lease",
        ] {
            assert!(dir.path().join(kept).exists(), "{kept}");
        }

        // With a time to live of zero, the leaseless one is old enough.
        let cleaning = clean_abandoned(&scratch, Some("q-own"), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(cleaning.deleted, vec!["q-recent".to_string()]);
    }

    #[tokio::test]
    async fn a_lease_that_cannot_be_renewed_stops_its_query_before_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Location::parse(dir.path().join("q-1/").to_str().unwrap()).unwrap();
        let ttl = Duration::from_millis(600);
        write_lease(&prefix, "q-1", ttl).await.unwrap();
        let renewal = keep_renewed(prefix.clone(), "q-1".into(), ttl);
        // Renewed while the store works...
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(!renewal.is_finished());
        // ...and given up on, with the lease not yet expired, once it does not:
        // a file where the query's folder was makes every write fail.
        std::fs::remove_dir_all(dir.path().join("q-1")).unwrap();
        std::fs::write(dir.path().join("q-1"), b"not a folder").unwrap();
        let started = std::time::Instant::now();
        let lost = tokio::time::timeout(Duration::from_secs(5), renewal)
            .await
            .expect("the renewal gives up")
            .unwrap();
        assert!(
            started.elapsed() < ttl + Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(lost, JobError::LeaseLost { .. }), "{lost}");
        assert!(lost.to_string().contains("query q-1 stopped"), "{lost}");
    }
}
