//! An `ObjectStore` wrapper that counts requests by kind, for task reports.
//!
//! Every request a task makes to object storage passes here, named by its
//! [`WorkerCall`]: the list the worker function's IAM policy is derived from.
//! Requests are counted as S3 bills them, whatever the store underneath:
//! a multipart upload is one request to start it, one per part and one to
//! complete or abort it; ranges fetched together are the GETs object_store
//! sends for them once it has merged ranges less than
//! [`object_store::OBJECT_STORE_COALESCE_DEFAULT`] apart; a listing is one
//! request per page of [`LIST_PAGE_KEYS`] entries.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use squall_connectors::RequestStats;

use crate::calls::WorkerCall;
use crate::report::RequestCounts;

/// Entries of one page of a listing (S3's `ListObjectsV2` default and most).
pub const LIST_PAGE_KEYS: u64 = 1000;

/// The GETs that fetch `ranges` once those less than `coalesce` bytes apart
/// are merged, as object_store's `get_ranges` sends them.
pub fn coalesced_get_count(ranges: &[Range<u64>], coalesce: u64) -> u64 {
    let mut sorted: Vec<&Range<u64>> = ranges.iter().collect();
    sorted.sort_unstable_by_key(|r| r.start);
    let mut gets = 0;
    let mut end: Option<u64> = None;
    for r in sorted {
        match end {
            Some(e) if r.start.saturating_sub(e) <= coalesce => end = Some(e.max(r.end)),
            _ => {
                gets += 1;
                end = Some(r.end);
            }
        }
    }
    gets
}

/// Shared counters of one task.
#[derive(Debug, Default)]
pub struct RequestCounters {
    get: AtomicU64,
    put: AtomicU64,
    multipart_put: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    copy: AtomicU64,
    /// Retries and hedges, counted by the stores' request-policy layers.
    resends: Arc<RequestStats>,
}

impl RequestCounters {
    /// A snapshot of the counts.
    pub fn snapshot(&self) -> RequestCounts {
        RequestCounts {
            get: self.get.load(Ordering::Relaxed),
            put: self.put.load(Ordering::Relaxed),
            multipart_put: self.multipart_put.load(Ordering::Relaxed),
            head: self.head.load(Ordering::Relaxed),
            list: self.list.load(Ordering::Relaxed),
            delete: self.delete.load(Ordering::Relaxed),
            copy: self.copy.load(Ordering::Relaxed),
            retried: self.resends.retried(),
            hedged: self.resends.hedged(),
            hedges_won: self.resends.hedges_won(),
        }
    }
}

impl RequestCounters {
    /// Where the request-policy layers of the task's stores count.
    pub fn resends(&self) -> Arc<RequestStats> {
        Arc::clone(&self.resends)
    }

    /// Counts `n` requests of kind `call`.
    fn count(&self, call: WorkerCall, n: u64) {
        let counter = match call {
            WorkerCall::GetObject => &self.get,
            WorkerCall::HeadObject => &self.head,
            WorkerCall::ListObjects => &self.list,
            WorkerCall::PutObject => &self.put,
            WorkerCall::MultipartUpload => &self.multipart_put,
            WorkerCall::DeleteObject => &self.delete,
            WorkerCall::CopyObject => &self.copy,
            // Not object-store requests.
            WorkerCall::InvokeFunction | WorkerCall::WriteLogs => return,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Counts every request before passing it to the wrapped store.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<RequestCounters>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>, counters: Arc<RequestCounters>) -> Self {
        Self { inner, counters }
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.counters.count(WorkerCall::PutObject, 1);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        // CreateMultipartUpload; then every part, and the completion or abort.
        self.counters.count(WorkerCall::MultipartUpload, 1);
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(CountingUpload {
            inner: upload,
            counters: Arc::clone(&self.counters),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            self.counters.count(WorkerCall::HeadObject, 1);
        } else {
            self.counters.count(WorkerCall::GetObject, 1);
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.counters.count(
            WorkerCall::GetObject,
            coalesced_get_count(ranges, object_store::OBJECT_STORE_COALESCE_DEFAULT),
        );
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let counters = Arc::clone(&self.counters);
        let counted = locations
            .map(move |p| {
                counters.count(WorkerCall::DeleteObject, 1);
                p
            })
            .boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        paged(self.inner.list(prefix), Arc::clone(&self.counters))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        paged(
            self.inner.list_with_offset(prefix, offset),
            Arc::clone(&self.counters),
        )
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let listed = self.inner.list_with_delimiter(prefix).await;
        let entries = listed
            .as_ref()
            .map_or(0, |l| (l.objects.len() + l.common_prefixes.len()) as u64);
        self.counters
            .count(WorkerCall::ListObjects, list_pages(entries));
        listed
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.counters.count(WorkerCall::CopyObject, 1);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.counters.count(WorkerCall::CopyObject, 1);
        self.inner.rename_opts(from, to, options).await
    }
}

/// Pages a listing of `entries` entries takes: one even when empty.
fn list_pages(entries: u64) -> u64 {
    entries.div_ceil(LIST_PAGE_KEYS).max(1)
}

/// `listing`, counted as one LIST request for its first page and one more
/// for every [`LIST_PAGE_KEYS`] entries after it.
fn paged(
    listing: BoxStream<'static, Result<ObjectMeta>>,
    counters: Arc<RequestCounters>,
) -> BoxStream<'static, Result<ObjectMeta>> {
    counters.count(WorkerCall::ListObjects, 1);
    let mut seen = 0u64;
    listing
        .inspect(move |_| {
            seen += 1;
            // Entry 1,001 arrived on the second page, and so on.
            if seen > 1 && (seen - 1).is_multiple_of(LIST_PAGE_KEYS) {
                counters.count(WorkerCall::ListObjects, 1);
            }
        })
        .boxed()
}

/// A multipart upload whose every part, completion and abort is counted.
#[derive(Debug)]
struct CountingUpload {
    inner: Box<dyn MultipartUpload>,
    counters: Arc<RequestCounters>,
}

#[async_trait]
impl MultipartUpload for CountingUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        self.counters.count(WorkerCall::MultipartUpload, 1);
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.counters.count(WorkerCall::MultipartUpload, 1);
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.counters.count(WorkerCall::MultipartUpload, 1);
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    fn counted() -> (CountingStore, Arc<RequestCounters>) {
        let counters = Arc::new(RequestCounters::default());
        (
            CountingStore::new(Arc::new(InMemory::new()), Arc::clone(&counters)),
            counters,
        )
    }

    #[test]
    fn ranges_close_together_are_one_get() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(coalesced_get_count(&[], MIB), 0);
        // Out of order, overlapping and near: one GET; far: another.
        let ranges = [
            10..20,
            0..5,
            15..30,
            30 + MIB..40 + MIB,
            50 + 3 * MIB..60 + 3 * MIB,
        ];
        assert_eq!(coalesced_get_count(&ranges, MIB), 2);
        assert_eq!(coalesced_get_count(&ranges, 0), 4);
    }

    #[tokio::test]
    async fn a_multipart_upload_counts_its_start_parts_and_completion() {
        let (store, counters) = counted();
        let path = Path::from("big");
        let mut upload = store.put_multipart(&path).await.expect("start");
        for _ in 0..3 {
            upload
                .put_part(PutPayload::from(vec![0u8; 16]))
                .await
                .expect("part");
        }
        upload.complete().await.expect("complete");
        assert_eq!(counters.snapshot().multipart_put, 5);
        assert_eq!(counters.snapshot().put, 0);
    }

    #[tokio::test]
    async fn a_listing_counts_one_request_per_page() {
        let (store, counters) = counted();
        for i in 0..2001 {
            store
                .put(&Path::from(format!("dir/{i:05}")), PutPayload::from("x"))
                .await
                .expect("put");
        }
        let before = counters.snapshot().list;
        let listed: Vec<_> = store.list(Some(&Path::from("dir"))).collect().await;
        assert_eq!(listed.len(), 2001);
        assert_eq!(counters.snapshot().list - before, 3, "1,000 + 1,000 + 1");
        let before = counters.snapshot().list;
        let empty: Vec<_> = store.list(Some(&Path::from("none"))).collect().await;
        assert!(empty.is_empty());
        assert_eq!(counters.snapshot().list - before, 1);
        let before = counters.snapshot().list;
        let listed = store
            .list_with_delimiter(Some(&Path::from("dir")))
            .await
            .expect("list");
        assert_eq!(listed.objects.len(), 2001);
        assert_eq!(counters.snapshot().list - before, 3);
    }
}
