//! An object store that sends a transiently failed request again, after a
//! short exponential backoff, up to [`RequestPolicy::retries`] times, and
//! resumes a GET whose body broke off from the byte where it stopped.
//!
//! Transient means: a fault injected by [`FaultyStore`], or an I/O error of a
//! kind that a second try can fix (a reset or aborted connection, a timeout,
//! an interrupted call, an early end of file) that did not come through a
//! cloud store's HTTP client. Anything else — not found, access denied, a
//! precondition, a bad path, and every error of a cloud store's HTTP client,
//! whose own retries (object_store's `RetryConfig`) already gave up — is
//! returned at once, and the task's own retries take over from there. So a
//! cloud request is never retried twice over.
//!
//! Retried: GET, HEAD, unconditional PUT and copy (the same bytes to the
//! same key: a retry after a lost response changes nothing), delimited
//! listing, ranges, starting a multipart upload, deletes (the paths whose
//! delete failed are sent again; deleting what is gone changes nothing),
//! and streamed listings (a listing that broke off is listed again and the
//! objects already yielded are skipped, whatever order the store lists
//! in). Not retried: conditional PUTs and copies and renames (a retry after
//! a lost response would fail although the first send succeeded), and
//! multipart parts (they cannot be re-sent under one number through this
//! interface).
//!
//! [`RequestPolicy::retries`]: crate::request_policy::RequestPolicy::retries
//! [`FaultyStore`]: crate::faulty_store::FaultyStore

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io::ErrorKind;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, RenameOptions, Result,
};

use crate::faulty_store::InjectedFault;
use crate::request_policy::RequestStats;

/// Whether sending the request again may succeed.
pub fn is_transient(error: &object_store::Error) -> bool {
    let object_store::Error::Generic { source, .. } = error else {
        return false;
    };
    let mut cause: Option<&(dyn StdError + 'static)> = Some(source.as_ref());
    while let Some(err) = cause {
        if err.is::<InjectedFault>() {
            return true;
        }
        if err.is::<object_store::client::HttpError>() {
            // The HTTP client retried it already.
            return false;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
                    | ErrorKind::TimedOut
                    | ErrorKind::Interrupted
                    | ErrorKind::UnexpectedEof
            );
        }
        cause = err.source();
    }
    false
}

/// The wait before retry number `retry` (0-based): 25 ms, 100 ms, 400 ms,
/// then 1 s.
fn backoff(retry: u32) -> Duration {
    Duration::from_millis((25u64 << (2 * retry.min(5))).min(1_000))
}

/// Retries the transient failures of the wrapped store's requests.
#[derive(Debug)]
pub struct RetryingStore {
    inner: Arc<dyn ObjectStore>,
    retries: u32,
    stats: Arc<RequestStats>,
}

impl RetryingStore {
    pub fn new(inner: Arc<dyn ObjectStore>, retries: u32, stats: Arc<RequestStats>) -> Self {
        Self {
            inner,
            retries,
            stats,
        }
    }

    async fn retry<T, F, Fut>(&self, mut request: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut retry = 0;
        loop {
            match request().await {
                Err(e) if retry < self.retries && is_transient(&e) => {
                    log::debug!("retrying an object-store request after: {e}");
                    self.stats.count_retry();
                    tokio::time::sleep(backoff(retry)).await;
                    retry += 1;
                }
                done => return done,
            }
        }
    }
}

impl fmt::Display for RetryingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Retrying({})", self.inner)
    }
}

/// A GET body being read, with what it takes to ask for the rest.
struct ResumableBody {
    inner: Arc<dyn ObjectStore>,
    location: Path,
    options: GetOptions,
    body: BoxStream<'static, Result<Bytes>>,
    next_byte: u64,
    end_byte: u64,
    retries_left: u32,
    stats: Arc<RequestStats>,
}

impl ResumableBody {
    /// Asks for the bytes not yet read, after `error` broke the body off.
    /// Returns the error that ends the body when that cannot be done: the
    /// rest must come from the same version of the object, so a body
    /// without an ETag is not resumed.
    async fn resume(&mut self, mut error: object_store::Error) -> Result<()> {
        loop {
            if self.retries_left == 0
                || !is_transient(&error)
                || self.next_byte >= self.end_byte
                || self.options.if_match.is_none()
            {
                return Err(error);
            }
            self.retries_left -= 1;
            self.stats.count_retry();
            tokio::time::sleep(backoff(0)).await;
            let mut options = self.options.clone();
            options.range = Some(GetRange::Bounded(self.next_byte..self.end_byte));
            match self.inner.get_opts(&self.location, options).await {
                Ok(rest) => {
                    self.body = rest.into_stream();
                    return Ok(());
                }
                Err(e) => error = e,
            }
        }
    }

    fn into_stream(self) -> BoxStream<'static, Result<Bytes>> {
        futures::stream::try_unfold(self, |mut body| async move {
            loop {
                match body.body.next().await {
                    None if body.next_byte < body.end_byte => {
                        // Ended early without an error: resumed like a broken body.
                        let short = std::io::Error::new(
                            ErrorKind::UnexpectedEof,
                            format!(
                                "the body ended at byte {} of {}",
                                body.next_byte, body.end_byte
                            ),
                        );
                        body.resume(object_store::Error::Generic {
                            store: "RetryingStore",
                            source: Box::new(short),
                        })
                        .await?
                    }
                    None => return Ok(None),
                    Some(Ok(bytes)) => {
                        body.next_byte += bytes.len() as u64;
                        return Ok(Some((bytes, body)));
                    }
                    Some(Err(e)) => body.resume(e).await?,
                }
            }
        })
        .into_stream()
        .boxed()
    }
}

/// Paths sent to the store's bulk delete at once (S3's DeleteObjects takes 1,000).
const DELETE_BATCH: usize = 1000;

/// Deletes `batch` in one bulk request; the paths whose delete failed
/// transiently are then sent again one by one (at most `retries` times
/// each), where a path found gone counts as deleted: an earlier send whose
/// response was lost took effect. One result per path.
async fn delete_batch(
    inner: Arc<dyn ObjectStore>,
    batch: Vec<Result<Path>>,
    retries: u32,
    stats: Arc<RequestStats>,
) -> Vec<Result<Path>> {
    let mut results = Vec::with_capacity(batch.len());
    let mut pending = std::collections::HashSet::with_capacity(batch.len());
    let mut paths = Vec::with_capacity(batch.len());
    for item in batch {
        match item {
            Ok(path) => {
                pending.insert(path.clone());
                paths.push(path);
            }
            Err(e) => results.push(Err(e)),
        }
    }
    let sent = futures::stream::iter(paths.clone().into_iter().map(Ok)).boxed();
    let mut failures = Vec::new();
    for outcome in inner.delete_stream(sent).collect::<Vec<_>>().await {
        match outcome {
            Ok(path) => {
                pending.remove(&path);
                results.push(Ok(path));
            }
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() || retries == 0 || !failures.iter().all(is_transient) {
        results.extend(failures.into_iter().map(Err));
        return results;
    }
    log::debug!(
        "deleting {} paths again after: {}",
        pending.len(),
        failures[0]
    );
    let retried = paths
        .into_iter()
        .filter(|p| pending.contains(p))
        .map(|path| {
            let (inner, stats) = (Arc::clone(&inner), Arc::clone(&stats));
            async move {
                for retry in 0..retries {
                    stats.count_retry();
                    tokio::time::sleep(backoff(retry)).await;
                    let one = futures::stream::once({
                        let path = path.clone();
                        async move { Ok(path) }
                    })
                    .boxed();
                    match inner.delete_stream(one).next().await {
                        Some(Ok(_)) | None => return Ok(path),
                        Some(Err(object_store::Error::NotFound { .. })) => return Ok(path),
                        Some(Err(e)) if retry + 1 < retries && is_transient(&e) => {}
                        Some(Err(e)) => return Err(e),
                    }
                }
                unreachable!("the last retry returns")
            }
        });
    results.extend(
        futures::stream::iter(retried)
            .buffered(DELETES_RETRIED_AT_ONCE)
            .collect::<Vec<_>>()
            .await,
    );
    results
}

/// Single deletes sent at once when a bulk delete is retried path by path.
const DELETES_RETRIED_AT_ONCE: usize = 16;

/// A streamed listing that is listed again when it broke off transiently,
/// skipping what it already yielded.
struct ResumableListing {
    inner: Arc<dyn ObjectStore>,
    prefix: Option<Path>,
    offset: Option<Path>,
    listing: BoxStream<'static, Result<ObjectMeta>>,
    /// The objects yielded so far: a store may list in any order, so a
    /// listing started again cannot resume after the last one.
    yielded: std::collections::HashSet<Path>,
    retries_left: u32,
    stats: Arc<RequestStats>,
}

impl ResumableListing {
    fn start(
        store: &RetryingStore,
        prefix: Option<&Path>,
        offset: Option<&Path>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let listing = Self {
            inner: Arc::clone(&store.inner),
            prefix: prefix.cloned(),
            offset: offset.cloned(),
            listing: futures::stream::empty().boxed(),
            yielded: Default::default(),
            retries_left: store.retries,
            stats: Arc::clone(&store.stats),
        };
        futures::stream::try_unfold(listing.restarted(), |mut listing| async move {
            loop {
                match listing.listing.next().await {
                    None => return Ok(None),
                    Some(Ok(meta)) => {
                        if listing.yielded.insert(meta.location.clone()) {
                            return Ok(Some((meta, listing)));
                        }
                    }
                    Some(Err(e)) if listing.retries_left > 0 && is_transient(&e) => {
                        log::debug!("listing again after: {e}");
                        listing.retries_left -= 1;
                        listing.stats.count_retry();
                        tokio::time::sleep(backoff(0)).await;
                        listing = listing.restarted();
                    }
                    Some(Err(e)) => return Err(e),
                }
            }
        })
        .boxed()
    }

    /// The same listing, from its start.
    fn restarted(mut self) -> Self {
        self.listing = match &self.offset {
            Some(offset) => self.inner.list_with_offset(self.prefix.as_ref(), offset),
            None => self.inner.list(self.prefix.as_ref()),
        };
        self
    }
}

#[async_trait]
impl ObjectStore for RetryingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if !matches!(opts.mode, PutMode::Overwrite) {
            return self.inner.put_opts(location, payload, opts).await;
        }
        self.retry(|| self.inner.put_opts(location, payload.clone(), opts.clone()))
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.retry(|| self.inner.put_multipart_opts(location, opts.clone()))
            .await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let result = self
            .retry(|| self.inner.get_opts(location, options.clone()))
            .await?;
        if !matches!(result.payload, GetResultPayload::Stream(_)) {
            // A local file: read where it lies.
            return Ok(result);
        }
        let mut resume_options = options;
        if resume_options.if_match.is_none() {
            // The rest must come from the same version of the object.
            resume_options.if_match = result.meta.e_tag.clone();
        }
        let GetResult {
            payload,
            meta,
            range,
            attributes,
        } = result;
        let GetResultPayload::Stream(body) = payload else {
            unreachable!("checked above")
        };
        let body = ResumableBody {
            inner: Arc::clone(&self.inner),
            location: location.clone(),
            options: resume_options,
            body,
            next_byte: range.start,
            end_byte: range.end,
            retries_left: self.retries,
            stats: Arc::clone(&self.stats),
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(body.into_stream()),
            meta,
            range,
            attributes,
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.retry(|| self.inner.get_ranges(location, ranges)).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let (inner, retries, stats) = (
            Arc::clone(&self.inner),
            self.retries,
            Arc::clone(&self.stats),
        );
        locations
            .ready_chunks(DELETE_BATCH)
            .then(move |batch| delete_batch(Arc::clone(&inner), batch, retries, Arc::clone(&stats)))
            .flat_map(futures::stream::iter)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        ResumableListing::start(self, prefix, None)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        ResumableListing::start(self, prefix, Some(offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.retry(|| self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        if !matches!(options.mode, CopyMode::Overwrite) {
            return self.inner.copy_opts(from, to, options).await;
        }
        self.retry(|| self.inner.copy_opts(from, to, options.clone()))
            .await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;
    use crate::faulty_store::FaultyStore;
    use crate::request_policy::StoreFaults;

    fn faulty(faults: StoreFaults) -> (Arc<InMemory>, Arc<dyn ObjectStore>) {
        let memory = Arc::new(InMemory::new());
        let store = Arc::new(FaultyStore::new(Arc::clone(&memory) as _, faults, 1));
        (memory, store)
    }

    #[tokio::test]
    async fn injected_failures_are_retried_until_the_request_succeeds() {
        let (memory, store) = faulty(StoreFaults {
            fail_rate: 0.5,
            ..StoreFaults::default()
        });
        let stats = Arc::new(RequestStats::default());
        let retrying = RetryingStore::new(store, 20, Arc::clone(&stats));
        for i in 0..20 {
            let path = Path::from(format!("p/{i}"));
            retrying
                .put(&path, Bytes::from(vec![i as u8; 100]).into())
                .await
                .unwrap();
            let back = retrying.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(back, vec![i as u8; 100]);
            assert_eq!(retrying.head(&path).await.unwrap().size, 100);
        }
        assert!(stats.retried() > 10, "{} retries", stats.retried());
        assert_eq!(memory.list(None).count().await, 20);
    }

    #[tokio::test]
    async fn broken_bodies_are_resumed_from_where_they_stopped() {
        let (memory, store) = faulty(StoreFaults {
            truncate_rate: 0.6,
            ..StoreFaults::default()
        });
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        memory
            .put(&Path::from("x"), data.clone().into())
            .await
            .unwrap();
        let stats = Arc::new(RequestStats::default());
        let retrying = RetryingStore::new(store, 30, Arc::clone(&stats));
        for start in [0u64, 17, 5_000] {
            let options = GetOptions {
                range: Some(GetRange::Bounded(start..9_999)),
                ..GetOptions::default()
            };
            let got = retrying.get_opts(&Path::from("x"), options).await.unwrap();
            let bytes = got.bytes().await.unwrap();
            assert_eq!(bytes, data[start as usize..9_999], "from {start}");
        }
        assert!(stats.retried() > 0);
    }

    #[tokio::test]
    async fn a_body_is_not_resumed_from_a_different_version_of_the_object() {
        let (memory, store) = faulty(StoreFaults {
            truncate_rate: 1.0,
            ..StoreFaults::default()
        });
        memory
            .put(&Path::from("x"), vec![1u8; 1000].into())
            .await
            .unwrap();
        let retrying = RetryingStore::new(store, 3, Arc::new(RequestStats::default()));
        let mut body = retrying.get(&Path::from("x")).await.unwrap().into_stream();
        let first = body.next().await.unwrap().unwrap();
        assert_eq!(first.len(), 500);
        // Replaced between the two halves: the rest must not come from the new object.
        memory
            .put(&Path::from("x"), vec![2u8; 1000].into())
            .await
            .unwrap();
        let rest = body.next().await.unwrap();
        assert!(
            matches!(rest, Err(object_store::Error::Precondition { .. })),
            "{rest:?}"
        );
    }

    #[tokio::test]
    async fn deletes_and_streamed_listings_survive_injected_failures() {
        let (memory, store) = faulty(StoreFaults {
            fail_rate: 0.3,
            truncate_rate: 0.3,
            ..StoreFaults::default()
        });
        for i in 0..100 {
            memory
                .put(&Path::from(format!("d/{i:03}")), vec![1u8; 10].into())
                .await
                .unwrap();
        }
        let stats = Arc::new(RequestStats::default());
        let retrying = RetryingStore::new(store, 20, Arc::clone(&stats));
        for _ in 0..5 {
            let listed: Vec<ObjectMeta> = retrying
                .list(Some(&Path::from("d")))
                .try_collect()
                .await
                .unwrap();
            let distinct: std::collections::HashSet<_> =
                listed.iter().map(|m| m.location.clone()).collect();
            assert_eq!((listed.len(), distinct.len()), (100, 100));
        }
        let from_offset: Vec<ObjectMeta> = retrying
            .list_with_offset(Some(&Path::from("d")), &Path::from("d/049"))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(from_offset.len(), 50);
        let paths = memory.list(None).map_ok(|m| m.location).boxed();
        let deleted: Vec<Path> = retrying.delete_stream(paths).try_collect().await.unwrap();
        assert_eq!(deleted.len(), 100);
        assert_eq!(memory.list(None).count().await, 0);
        assert!(stats.retried() > 0, "nothing was retried");
    }

    #[tokio::test]
    async fn lasting_and_permanent_failures_are_returned() {
        let (_memory, store) = faulty(StoreFaults {
            fail_rate: 1.0,
            ..StoreFaults::default()
        });
        let stats = Arc::new(RequestStats::default());
        let retrying = RetryingStore::new(store, 2, Arc::clone(&stats));
        let err = retrying.head(&Path::from("x")).await.unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        assert_eq!(stats.retried(), 2);

        let stats = Arc::new(RequestStats::default());
        let plain = RetryingStore::new(Arc::new(InMemory::new()), 2, Arc::clone(&stats));
        let err = plain.head(&Path::from("missing")).await.unwrap_err();
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
        assert_eq!(stats.retried(), 0, "not found is not retried");
    }
}
