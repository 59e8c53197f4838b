//! An `ObjectStore` wrapper that counts requests by kind, for task reports.
//!
//! Every request a task makes to object storage passes here, named by its
//! [`WorkerCall`]: the list the worker function's IAM policy is derived from.

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
        self.counters.count(WorkerCall::MultipartUpload, 1);
        self.inner.put_multipart_opts(location, opts).await
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
        self.counters
            .count(WorkerCall::GetObject, ranges.len() as u64);
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
        self.counters.count(WorkerCall::ListObjects, 1);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.counters.count(WorkerCall::ListObjects, 1);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.counters.count(WorkerCall::ListObjects, 1);
        self.inner.list_with_delimiter(prefix).await
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
