//! Multipart uploads that are aborted when dropped unfinished.
//!
//! A multipart upload that is neither completed nor aborted stays on S3,
//! invisible to listings but billed, until a lifecycle rule removes it.
//! Writers abort an upload whose writing failed; but an upload can also be
//! dropped in the middle of an `.await`: its task was cancelled (Ctrl-C, a
//! task timeout, a losing speculative attempt on the local backend), or
//! its final flush failed, after which object_store's `BufWriter` can no
//! longer be aborted. [`UploadGuardStore`] wraps every multipart upload its
//! store starts in [`AbortUnlessDone`], which hands the abort of an upload
//! dropped before it completed or was aborted to
//! [`crate::cleanup::spawn_cleanup`]; a process about to exit waits for
//! that. This covers every multipart upload through Squall's stores,
//! DataFusion's file sinks included. A process killed outright (a worker
//! process killed by SIGKILL) aborts nothing: the scratch bucket's lifecycle
//! rule is the backstop (see the README).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

use crate::cleanup::spawn_cleanup;

/// A multipart upload aborted in the background if dropped before it
/// completed or was aborted.
#[derive(Debug)]
pub struct AbortUnlessDone {
    /// `None` once completed or aborted.
    inner: Option<Box<dyn MultipartUpload>>,
}

impl AbortUnlessDone {
    pub fn new(inner: Box<dyn MultipartUpload>) -> Self {
        Self { inner: Some(inner) }
    }

    fn upload(&mut self) -> Result<&mut Box<dyn MultipartUpload>> {
        self.inner
            .as_mut()
            .ok_or_else(|| object_store::Error::Generic {
                store: "UploadGuardStore",
                source: "the multipart upload was already completed or aborted".into(),
            })
    }
}

#[async_trait]
impl MultipartUpload for AbortUnlessDone {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        match self.upload() {
            Ok(upload) => upload.put_part(data),
            Err(e) => Box::pin(futures::future::ready(Err(e))),
        }
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let result = self.upload()?.complete().await;
        if result.is_ok() {
            self.inner = None;
        }
        result
    }

    async fn abort(&mut self) -> Result<()> {
        let result = self.upload()?.abort().await;
        self.inner = None;
        result
    }
}

impl Drop for AbortUnlessDone {
    fn drop(&mut self) {
        if let Some(mut upload) = self.inner.take() {
            spawn_cleanup(async move {
                if let Err(e) = upload.abort().await {
                    log::debug!("aborting an abandoned multipart upload: {e}");
                }
            });
        }
    }
}

/// Wraps the multipart uploads of a store in [`AbortUnlessDone`].
#[derive(Debug)]
pub struct UploadGuardStore {
    inner: Arc<dyn ObjectStore>,
}

impl UploadGuardStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }
}

impl fmt::Display for UploadGuardStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadGuard({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for UploadGuardStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(AbortUnlessDone::new(upload)))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use futures::stream::BoxStream;
    use object_store::ObjectMeta;
    use object_store::memory::InMemory;

    use object_store::buffered::BufWriter;
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// Counts the multipart uploads aborted through it.
    #[derive(Debug)]
    struct CountingAborts {
        inner: InMemory,
        aborted: Arc<AtomicUsize>,
    }

    #[derive(Debug)]
    struct Upload {
        inner: Box<dyn MultipartUpload>,
        aborted: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl MultipartUpload for Upload {
        fn put_part(&mut self, data: PutPayload) -> UploadPart {
            self.inner.put_part(data)
        }
        async fn complete(&mut self) -> Result<PutResult> {
            self.inner.complete().await
        }
        async fn abort(&mut self) -> Result<()> {
            self.aborted.fetch_add(1, Ordering::SeqCst);
            self.inner.abort().await
        }
    }

    impl fmt::Display for CountingAborts {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "CountingAborts")
        }
    }

    #[async_trait]
    impl ObjectStore for CountingAborts {
        async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> Result<PutResult> {
            self.inner.put_opts(l, p, o).await
        }
        async fn put_multipart_opts(
            &self,
            l: &Path,
            o: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            Ok(Box::new(Upload {
                inner: self.inner.put_multipart_opts(l, o).await?,
                aborted: Arc::clone(&self.aborted),
            }))
        }
        async fn get_opts(&self, l: &Path, o: GetOptions) -> Result<GetResult> {
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

    /// Waits until `aborted` reaches `n`; the abort runs in the background.
    async fn aborts_reach(aborted: &AtomicUsize, n: usize) -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if aborted.load(Ordering::SeqCst) == n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn an_upload_dropped_unfinished_is_aborted_and_a_finished_one_is_not() {
        let aborted = Arc::new(AtomicUsize::new(0));
        let counting = Arc::new(CountingAborts {
            inner: InMemory::new(),
            aborted: Arc::clone(&aborted),
        });
        let store: Arc<dyn ObjectStore> =
            Arc::new(UploadGuardStore::new(Arc::clone(&counting) as _));
        let chunk = bytes::Bytes::from(vec![7u8; 64]);
        let upload =
            |name: &str| BufWriter::with_capacity(Arc::clone(&store), Path::from(name), 16);

        // Cancelled half-way: dropped while the multipart upload is open.
        let mut cancelled = upload("cancelled");
        cancelled.put(chunk.clone()).await.unwrap();
        drop(cancelled);
        assert!(aborts_reach(&aborted, 1).await);

        let mut finished = upload("finished");
        finished.put(chunk.clone()).await.unwrap();
        finished.shutdown().await.unwrap();
        drop(finished);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            aborted.load(Ordering::SeqCst),
            1,
            "a completed upload is not aborted"
        );
        let (finished, cancelled) = (Path::from("finished"), Path::from("cancelled"));
        let stored = counting.inner.get_opts(&finished, GetOptions::default());
        assert_eq!(stored.await.unwrap().bytes().await.unwrap(), chunk);
        let never = counting.inner.get_opts(&cancelled, GetOptions::default());
        assert!(never.await.is_err(), "a cancelled upload is never visible");
    }
}
