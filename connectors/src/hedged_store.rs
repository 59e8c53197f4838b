//! An object store that hedges slow requests, as Starling does for its
//! reads and writes: a GET of a bounded range, a HEAD or an unconditional
//! PUT that has not completed within [`HedgePolicy::deadline`] of its size is
//! sent a second time, and the first complete response wins; the other is
//! dropped (cancelled where the store can).
//!
//! A few requests in ten thousand take seconds on S3 instead of
//! milliseconds; a stage of thousands of tasks making hundreds of requests
//! each meets them in almost every task, and a task waits for its slowest
//! request. Hedging is bounded per store (per task): at most one hedge plus
//! [`HedgePolicy::max_hedged_percent`] per hundred requests, so a store that
//! is slow for everyone is not answered with twice the load.
//!
//! Not hedged: requests of unknown or large size (more than
//! [`MAX_HEDGED_BYTES`]), conditional PUTs (the second would fail), multipart
//! uploads, listings, copies and deletes. A hedged PUT writes the same bytes
//! to the same key twice, which changes nothing a reader relies on.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    OBJECT_STORE_COALESCE_DEFAULT, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, coalesce_ranges,
};

use crate::request_policy::{HedgePolicy, MAX_HEDGED_BYTES, RequestStats};

/// Sends slow requests a second time.
#[derive(Debug)]
pub struct HedgedStore {
    inner: Arc<dyn ObjectStore>,
    policy: HedgePolicy,
    stats: Arc<RequestStats>,
    /// Requests that could have been hedged, and hedges sent, by this store.
    hedgeable: AtomicU64,
    hedged: AtomicU64,
}

impl HedgedStore {
    pub fn new(inner: Arc<dyn ObjectStore>, policy: HedgePolicy, stats: Arc<RequestStats>) -> Self {
        Self {
            inner,
            policy,
            stats,
            hedgeable: AtomicU64::new(0),
            hedged: AtomicU64::new(0),
        }
    }

    /// Takes one hedge from the budget, if any is left.
    fn take_hedge(&self) -> bool {
        let requests = self.hedgeable.load(Ordering::Relaxed);
        let allowed = 1 + requests * u64::from(self.policy.max_hedged_percent) / 100;
        self.hedged
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sent| {
                (sent < allowed).then_some(sent + 1)
            })
            .is_ok()
    }

    /// Runs `request`; if it has not completed after `deadline`, runs it a
    /// second time and returns whichever completes first with success (or,
    /// when both fail, the second failure).
    async fn hedged<T, F, Fut>(&self, deadline: Duration, request: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.hedgeable.fetch_add(1, Ordering::Relaxed);
        let first = request();
        tokio::pin!(first);
        tokio::select! {
            done = &mut first => return done,
            () = tokio::time::sleep(deadline) => {}
        }
        if !self.take_hedge() {
            return first.await;
        }
        log::debug!("hedging an object-store request slower than {deadline:?}");
        self.stats.count_hedge();
        let second = request();
        tokio::pin!(second);
        tokio::select! {
            done = &mut first => match done {
                Ok(value) => Ok(value),
                Err(_) => second.await,
            },
            done = &mut second => match done {
                Ok(value) => {
                    self.stats.count_hedge_won();
                    Ok(value)
                }
                Err(_) => first.await,
            },
        }
    }
}

impl fmt::Display for HedgedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hedged({})", self.inner)
    }
}

/// A whole GET: response and body, so that a hedge races the full transfer.
async fn get_whole(
    store: &dyn ObjectStore,
    location: &Path,
    options: GetOptions,
) -> Result<(ObjectMeta, Range<u64>, object_store::Attributes, Bytes)> {
    let result = store.get_opts(location, options).await?;
    let meta = result.meta.clone();
    let range = result.range.clone();
    let attributes = result.attributes.clone();
    let body = result.bytes().await?;
    Ok((meta, range, attributes, body))
}

#[async_trait]
impl ObjectStore for HedgedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let size = payload.content_length() as u64;
        if !matches!(opts.mode, PutMode::Overwrite) || size > MAX_HEDGED_BYTES {
            return self.inner.put_opts(location, payload, opts).await;
        }
        self.hedged(self.policy.deadline(size), || {
            self.inner.put_opts(location, payload.clone(), opts.clone())
        })
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            return self
                .hedged(self.policy.deadline(0), || {
                    self.inner.get_opts(location, options.clone())
                })
                .await;
        }
        let size = match &options.range {
            Some(GetRange::Bounded(range)) => range.end.saturating_sub(range.start),
            _ => return self.inner.get_opts(location, options).await,
        };
        if size > MAX_HEDGED_BYTES {
            return self.inner.get_opts(location, options).await;
        }
        let (meta, range, attributes, body) = self
            .hedged(self.policy.deadline(size), || {
                get_whole(self.inner.as_ref(), location, options.clone())
            })
            .await?;
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(body) }).boxed()),
            meta,
            range,
            attributes,
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        // Each coalesced range is a bounded GET, hedged on its own.
        coalesce_ranges(
            ranges,
            |range| self.get_range(location, range),
            OBJECT_STORE_COALESCE_DEFAULT,
        )
        .await
    }

    crate::forward::forward_deletes_and_listings!();

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use futures::stream::BoxStream;
    use object_store::memory::InMemory;

    use super::*;
    use crate::faulty_store::FaultyStore;
    use crate::request_policy::StoreFaults;

    fn policy() -> HedgePolicy {
        HedgePolicy {
            first_byte_ms: 50,
            bytes_per_second: 100 * 1024 * 1024,
            max_hedged_percent: 100,
        }
    }

    /// A store whose first send of every request takes 10 s; later sends
    /// (hedges) are answered at once.
    #[derive(Debug)]
    struct FirstSendSlow {
        inner: Arc<InMemory>,
        seen: std::sync::Mutex<std::collections::HashSet<String>>,
    }

    impl FirstSendSlow {
        async fn maybe_wait(&self, request: String) {
            if self.seen.lock().unwrap().insert(request) {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    }

    impl fmt::Display for FirstSendSlow {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "FirstSendSlow")
        }
    }

    #[async_trait]
    impl ObjectStore for FirstSendSlow {
        async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
            self.maybe_wait(format!("put {l}")).await;
            self.inner.put_opts(l, p, o).await
        }
        async fn put_multipart_opts(
            &self,
            l: &Path,
            o: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(l, o).await
        }
        async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
            self.maybe_wait(format!("get {l} {:?} {}", o.range, o.head))
                .await;
            self.inner.get_opts(l, o).await
        }
        fn delete_stream(
            &self,
            l: BoxStream<'static, Result<Path>>,
        ) -> BoxStream<'static, Result<Path>> {
            self.inner.delete_stream(l)
        }
        fn list(&self, p: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.inner.list(p)
        }
        async fn list_with_delimiter(&self, p: Option<&Path>) -> Result<ListResult> {
            self.inner.list_with_delimiter(p).await
        }
        async fn copy_opts(&self, f: &Path, t: &Path, o: CopyOptions) -> Result<()> {
            self.inner.copy_opts(f, t, o).await
        }
    }

    #[tokio::test]
    async fn slow_gets_heads_and_puts_are_answered_by_their_hedges() {
        let memory = Arc::new(InMemory::new());
        let slow = Arc::new(FirstSendSlow {
            inner: Arc::clone(&memory),
            seen: Default::default(),
        });
        let data = Bytes::from((0..4096u32).map(|i| i as u8).collect::<Vec<_>>());
        memory
            .put(&Path::from("x"), data.clone().into())
            .await
            .unwrap();
        let stats = Arc::new(RequestStats::default());
        let store = HedgedStore::new(slow, policy(), Arc::clone(&stats));
        let started = Instant::now();
        for i in 0..8u64 {
            let range = i * 100..i * 100 + 1000;
            let got = store
                .get_range(&Path::from("x"), range.clone())
                .await
                .unwrap();
            assert_eq!(got, data.slice(range.start as usize..range.end as usize));
            assert_eq!(store.head(&Path::from("x")).await.unwrap().size, 4096);
            let path = Path::from(format!("out/{i}"));
            store.put(&path, data.clone().into()).await.unwrap();
            assert_eq!(
                memory.get(&path).await.unwrap().bytes().await.unwrap(),
                data
            );
        }
        // The first send of 8 GETs, 8 PUTs and the first HEAD (the others
        // repeat it) met a 10 s delay; their hedges answered them.
        assert_eq!(stats.hedged(), 17, "{stats:?}");
        assert_eq!(stats.hedges_won(), 17, "{stats:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn hedges_are_bounded_and_fast_requests_are_not_hedged() {
        let memory = Arc::new(InMemory::new());
        memory
            .put(&Path::from("x"), Bytes::from_static(b"abc").into())
            .await
            .unwrap();
        let stats = Arc::new(RequestStats::default());
        let fast = HedgedStore::new(Arc::clone(&memory) as _, policy(), Arc::clone(&stats));
        for _ in 0..50 {
            fast.get_range(&Path::from("x"), 0..3).await.unwrap();
        }
        assert_eq!(stats.hedged(), 0);

        // Everything is slow: one hedge, plus 5 per hundred requests.
        let always_slow = Arc::new(FaultyStore::new(
            memory as _,
            StoreFaults {
                delay_rate: 1.0,
                delay_ms: 60,
                ..StoreFaults::default()
            },
            4,
        ));
        let stats = Arc::new(RequestStats::default());
        let bounded = HedgedStore::new(
            always_slow,
            HedgePolicy {
                first_byte_ms: 1,
                max_hedged_percent: 5,
                ..policy()
            },
            Arc::clone(&stats),
        );
        for _ in 0..40 {
            bounded.get_range(&Path::from("x"), 0..3).await.unwrap();
        }
        assert!(
            (1..=3).contains(&stats.hedged()),
            "{} hedges",
            stats.hedged()
        );
    }
}
