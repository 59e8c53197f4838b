//! An object store that fails, delays and truncates requests at given rates:
//! the request-level faults of a cloud store under load (503 SlowDown, a
//! response that takes seconds, a connection reset half-way through a body),
//! injected at given rates from a seed so that tests can prove Squall
//! survives them.
//!
//! Used only when a session sets [`StoreFaults`] (`--inject-store-faults`).
//! Each request's fate is drawn from the seed, the store's salt (the task
//! attempt), the request's kind, path and range and how often that same
//! request was made before: within an attempt it does not depend on the
//! order in which concurrent requests arrive, and a retry draws afresh.
//! Paths are drawn without the query's random id (a `q-<32 hex digits>`
//! segment) and without the four-hex-digit spreading prefixes derived from
//! it, so that the same query run twice with the same seed meets the same
//! faults at the same requests, as far as its timing allows: hedged sends,
//! backup attempts and abandoned attempts depend on the clock.
//!
//! What is injected where: GETs, HEADs, unconditional PUTs and copies,
//! delimited listings, the start of a multipart upload and each of its
//! parts, each path of a delete and streamed listings can fail or be
//! delayed; GET bodies and streamed listings can break off half-way. A PUT,
//! a copy or a delete that fails does so before or, half of the time, after
//! it took effect (its response was lost), as on a real store. A failed
//! part fails its upload (a part cannot be sent twice under one number
//! through `object_store`'s interface, so cloud stores retry parts in their
//! HTTP client): the task's own retry takes over. Conditional PUTs and
//! copies and renames pass through untouched (they are not retried, see
//! [`crate::retrying_store`]).
//!
//! Workers' stores get these faults from their TaskSpec; the coordinator's
//! own stores (specs, results, leases, commits, cleanup) get them from
//! [`crate::store_builder::inject_coordinator_faults`], which the CLI calls
//! for `--inject-store-faults`.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, RenameOptions, Result, UploadPart,
};

use crate::request_policy::StoreFaults;

/// The error of an injected fault; [`crate::retrying_store::is_transient`]
/// recognises it.
#[derive(Debug, thiserror::Error)]
#[error("injected {0}")]
pub struct InjectedFault(pub &'static str);

const STORE_NAME: &str = "FaultyStore";

fn injected(what: &'static str) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE_NAME,
        source: Box::new(InjectedFault(what)),
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Pass,
    FailBefore,
    FailAfter,
    Delay,
    Truncate,
}

/// Wraps a store and disturbs its requests as [`StoreFaults`] says.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    draws: Arc<Draws>,
}

/// The fates of one store's requests.
#[derive(Debug)]
struct Draws {
    faults: StoreFaults,
    salt: u64,
    /// How often each request (kind, path, range) was made.
    seen: Mutex<HashMap<u64, u64>>,
}

impl FaultyStore {
    /// `salt` tells apart the stores of different task attempts.
    pub fn new(inner: Arc<dyn ObjectStore>, faults: StoreFaults, salt: u64) -> Self {
        Self {
            inner,
            draws: Arc::new(Draws {
                faults,
                salt,
                seen: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn fate(&self, kind: &str, path: &Path, range: Option<u64>, can_fail_after: bool) -> Fate {
        self.draws.fate(kind, path, range, can_fail_after)
    }

    async fn before(&self, fate: Fate) -> Result<Fate> {
        self.draws.before(fate).await
    }

    /// Runs `request`, then loses its response if the fate says so.
    async fn run<T>(
        &self,
        fate: Fate,
        request: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let fate = self.before(fate).await?;
        let result = request.await?;
        if fate == Fate::FailAfter {
            return Err(injected("lost response (the request took effect)"));
        }
        Ok(result)
    }

    /// `listing` as the fate of a streamed listing of `prefix` says: failed
    /// before its first item, delayed, or broken off after its first item.
    fn listing(
        &self,
        prefix: Option<&Path>,
        listing: BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let root = Path::default();
        let fate = self.fate("list-stream", prefix.unwrap_or(&root), None, false);
        let draws = Arc::clone(&self.draws);
        match fate {
            Fate::Pass | Fate::FailAfter => listing,
            Fate::FailBefore | Fate::Delay => {
                futures::stream::once(async move { draws.before(fate).await.map(|_| listing) })
                    .map(|started| match started {
                        Ok(listing) => listing,
                        Err(e) => futures::stream::once(async { Err(e) }).boxed(),
                    })
                    .flatten()
                    .boxed()
            }
            Fate::Truncate => listing
                .take(1)
                .chain(futures::stream::once(async {
                    Err(injected("connection reset in the middle of a listing"))
                }))
                .boxed(),
        }
    }
}

impl Draws {
    /// Draws the fate of a request. `can_fail_after`: the request has an
    /// effect that a lost response leaves in place.
    fn fate(&self, kind: &str, path: &Path, range: Option<u64>, can_fail_after: bool) -> Fate {
        let mut request = DefaultHasher::new();
        (kind, run_independent(path), range).hash(&mut request);
        let request = request.finish();
        let nth = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let count = seen.entry(request).or_default();
            *count += 1;
            *count
        };
        let mut draw = DefaultHasher::new();
        (self.faults.seed, self.salt, request, nth).hash(&mut draw);
        let bits = draw.finish();
        let roll = (bits >> 11) as f64 / (1u64 << 53) as f64;
        let faults = &self.faults;
        if roll < faults.fail_rate {
            if can_fail_after && bits & 1 == 1 {
                Fate::FailAfter
            } else {
                Fate::FailBefore
            }
        } else if roll < faults.fail_rate + faults.delay_rate {
            Fate::Delay
        } else if matches!(kind, "get" | "list-stream")
            && roll < faults.fail_rate + faults.delay_rate + faults.truncate_rate
        {
            Fate::Truncate
        } else {
            Fate::Pass
        }
    }

    /// Applies a fate that needs nothing of the request: a failure before it
    /// is sent, or a delay. Returns the fate for what remains to do.
    async fn before(&self, fate: Fate) -> Result<Fate> {
        match fate {
            Fate::FailBefore => Err(injected("request failure (503 SlowDown)")),
            Fate::Delay => {
                tokio::time::sleep(Duration::from_millis(self.faults.delay_ms)).await;
                Ok(Fate::Pass)
            }
            other => Ok(other),
        }
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

/// A body that yields its first half and then breaks off with an error.
async fn truncate(result: GetResult) -> Result<GetResult> {
    let meta = result.meta.clone();
    let range = result.range.clone();
    let attributes = result.attributes.clone();
    let body = result.bytes().await?;
    let half: Bytes = body.slice(..body.len() / 2);
    let stream = futures::stream::iter([
        Ok(half),
        Err(injected("connection reset in the middle of a body")),
    ])
    .boxed();
    Ok(GetResult {
        payload: GetResultPayload::Stream(stream),
        meta,
        range,
        attributes,
    })
}

fn range_start(range: &Option<GetRange>) -> Option<u64> {
    match range {
        Some(GetRange::Bounded(r)) => Some(r.start),
        Some(GetRange::Offset(o)) => Some(*o),
        Some(GetRange::Suffix(s)) => Some(u64::MAX - *s),
        None => None,
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if !matches!(opts.mode, PutMode::Overwrite) {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let fate = self.fate("put", location, None, true);
        self.run(fate, self.inner.put_opts(location, payload, opts))
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        // Starting an upload can fail, and so can each of its parts.
        let fate = self.fate("multipart", location, None, false);
        self.before(fate).await?;
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultyUpload {
            inner: upload,
            draws: Arc::clone(&self.draws),
            location: location.clone(),
            parts: 0,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let kind = if options.head { "head" } else { "get" };
        let fate = self.fate(kind, location, range_start(&options.range), false);
        let fate = self.before(fate).await?;
        let result = self.inner.get_opts(location, options).await?;
        if fate == Fate::Truncate && result.range.end > result.range.start + 1 {
            return truncate(result).await;
        }
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let first = ranges.first().map(|r| r.start);
        let fate = self.fate("get_ranges", location, first, false);
        self.run(fate, self.inner.get_ranges(location, ranges))
            .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Each path is deleted on its own, as its own fate says.
        let (inner, draws) = (Arc::clone(&self.inner), Arc::clone(&self.draws));
        locations
            .map(move |location| {
                let (inner, draws) = (Arc::clone(&inner), Arc::clone(&draws));
                async move {
                    let path = location?;
                    let fate = draws.fate("delete", &path, None, true);
                    let fate = draws.before(fate).await?;
                    let deleted = inner
                        .delete_stream(futures::stream::once(async { Ok(path) }).boxed())
                        .next()
                        .await
                        .ok_or_else(|| injected("a delete without a response"))??;
                    if fate == Fate::FailAfter {
                        return Err(injected("lost response (the delete took effect)"));
                    }
                    Ok(deleted)
                }
            })
            .buffered(DELETES_AT_ONCE)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.listing(prefix, self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.listing(prefix, self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let root = Path::default();
        let fate = self.fate("list", prefix.unwrap_or(&root), None, false);
        self.run(fate, self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        if !matches!(options.mode, CopyMode::Overwrite) {
            return self.inner.copy_opts(from, to, options).await;
        }
        let fate = self.fate("copy", to, None, true);
        self.run(fate, self.inner.copy_opts(from, to, options))
            .await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// Deletes a [`FaultyStore`] sends at once.
const DELETES_AT_ONCE: usize = 16;

/// A multipart upload whose parts fail or stall as their fates say.
#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    draws: Arc<Draws>,
    location: Path,
    parts: u64,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let fate = self
            .draws
            .fate("part", &self.location, Some(self.parts), false);
        self.parts += 1;
        match fate {
            // The part is never sent: the upload cannot complete.
            Fate::FailBefore => Box::pin(async { Err(injected("upload part failure (503)")) }),
            Fate::Delay => {
                let part = self.inner.put_part(data);
                let delay = Duration::from_millis(self.draws.faults.delay_ms);
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    part.await
                })
            }
            _ => self.inner.put_part(data),
        }
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

/// `path` without what differs between two runs of the same query: the
/// query's id (`q-` and 32 hex digits) and the four-hex-digit prefixes that
/// spread its objects (derived from the id).
fn run_independent(path: &Path) -> String {
    let is_hex = |part: &str| part.bytes().all(|b| b.is_ascii_hexdigit());
    path.parts()
        .map(|part| {
            let part = part.as_ref();
            match part.strip_prefix("q-") {
                Some(id) if id.len() == 32 && is_hex(id) => "q",
                _ if part.len() == 4 && is_hex(part) => "h",
                _ => part,
            }
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn multipart_parts_fail_and_stall_as_drawn() {
        let memory: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let faults = StoreFaults {
            fail_rate: 0.3,
            ..StoreFaults::default()
        };
        let store = FaultyStore::new(Arc::clone(&memory), faults, 7);
        let (mut refused, mut failed_parts, mut completed) = (0, 0, 0);
        for i in 0..50 {
            let path = Path::from(format!("m/{i}"));
            let Ok(mut upload) = store.put_multipart(&path).await else {
                refused += 1;
                continue;
            };
            let mut ok = true;
            for _ in 0..3 {
                ok &= upload.put_part(vec![1u8; 100].into()).await.is_ok();
            }
            if ok {
                upload.complete().await.unwrap();
                completed += 1;
                assert_eq!(memory.head(&path).await.unwrap().size, 300);
            } else {
                upload.abort().await.unwrap();
                failed_parts += 1;
                assert!(
                    memory.head(&path).await.is_err(),
                    "a failed upload is not visible"
                );
            }
        }
        assert!(
            refused > 0 && failed_parts > 0 && completed > 0,
            "{refused} refused, {failed_parts} failed in a part, {completed} completed"
        );
    }

    #[test]
    fn draws_ignore_the_query_id_and_its_spreading_prefixes() {
        let one = Path::from("scratch/q-0123456789abcdef0123456789abcdef/s1/ab12/t3-a0.sqx");
        let two = Path::from("scratch/q-fedcba9876543210fedcba9876543210/s1/9f0e/t3-a0.sqx");
        assert_eq!(run_independent(&one), run_independent(&two));
        assert_eq!(run_independent(&one), "scratch/q/s1/h/t3-a0.sqx");
        let other_task = Path::from("scratch/q-0123456789abcdef0123456789abcdef/s1/ab12/t4-a0.sqx");
        assert_ne!(run_independent(&one), run_independent(&other_task));
        let table = Path::from("lake/q-short/part-0.parquet");
        assert_eq!(run_independent(&table), "lake/q-short/part-0.parquet");
    }
}
