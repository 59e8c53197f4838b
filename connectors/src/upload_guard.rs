//! A buffered upload that is aborted when it is dropped unfinished.
//!
//! A multipart upload that is neither completed nor aborted stays on S3,
//! invisible to listings but billed, until a lifecycle rule removes it. An
//! upload whose writer fails is aborted by the writer; one whose task is
//! cancelled (Ctrl-C, a task timeout, a losing speculative attempt on the
//! local backend) is dropped in the middle of an `.await` and cannot abort
//! itself there. [`AbortOnDrop`] hands the abort to
//! [`crate::cleanup::spawn_cleanup`] then, which a process about to exit
//! waits for. A process killed outright (a worker process killed by
//! SIGKILL) aborts nothing: the scratch bucket's lifecycle rule is the
//! backstop (see the README).

use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use crate::cleanup::spawn_cleanup;

/// Owns a [`BufWriter`] until it is finished or aborted.
pub struct AbortOnDrop {
    writer: Option<BufWriter>,
}

impl std::fmt::Debug for AbortOnDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AbortOnDrop")
            .field("open", &self.writer.is_some())
            .finish()
    }
}

impl AbortOnDrop {
    pub fn new(writer: BufWriter) -> Self {
        Self {
            writer: Some(writer),
        }
    }

    /// The writer, to put bytes through.
    pub fn writer(&mut self) -> &mut BufWriter {
        self.writer
            .as_mut()
            .expect("the writer is only taken by finish and abort, which consume the guard")
    }

    /// Completes the upload: the object becomes visible.
    pub async fn finish(mut self) -> std::io::Result<()> {
        let mut writer = self.writer.take().expect("taken only here and in abort");
        writer.shutdown().await
    }

    /// Aborts the upload now; nothing it wrote becomes visible.
    pub async fn abort(mut self) {
        if let Some(mut writer) = self.writer.take() {
            let _ = writer.abort().await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            spawn_cleanup(async move {
                let _ = writer.abort().await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
    };

    use super::*;
    use crate::cleanup::finish_cleanups;

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

    #[tokio::test]
    async fn an_upload_dropped_unfinished_is_aborted_and_a_finished_one_is_not() {
        let aborted = Arc::new(AtomicUsize::new(0));
        let store = Arc::new(CountingAborts {
            inner: InMemory::new(),
            aborted: Arc::clone(&aborted),
        });
        let chunk = bytes::Bytes::from(vec![7u8; 64]);
        let upload = |name: &str| {
            AbortOnDrop::new(BufWriter::with_capacity(
                Arc::clone(&store) as _,
                Path::from(name),
                16,
            ))
        };

        // Cancelled half-way: dropped while the multipart upload is open.
        let mut cancelled = upload("cancelled");
        cancelled.writer().put(chunk.clone()).await.unwrap();
        drop(cancelled);
        assert!(finish_cleanups(Duration::from_secs(5)).await);
        assert_eq!(aborted.load(Ordering::SeqCst), 1);

        let mut finished = upload("finished");
        finished.writer().put(chunk.clone()).await.unwrap();
        finished.finish().await.unwrap();
        assert!(finish_cleanups(Duration::from_secs(5)).await);
        assert_eq!(aborted.load(Ordering::SeqCst), 1);
        let (finished, cancelled) = (Path::from("finished"), Path::from("cancelled"));
        let stored = store.inner.get_opts(&finished, GetOptions::default());
        assert_eq!(stored.await.unwrap().bytes().await.unwrap(), chunk);
        let never = store.inner.get_opts(&cancelled, GetOptions::default());
        assert!(never.await.is_err(), "a cancelled upload is never visible");
    }
}
