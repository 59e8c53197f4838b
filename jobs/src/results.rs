//! [`QueryStream`]: the result of a query as a stream of record batches.
//!
//! Each part of the final stage (an Arrow IPC stream object) is read as soon
//! as it and the parts before it are complete, while later parts are still
//! being computed. When the stream ends, fails or
//! is dropped, the query's scratch objects are deleted (unless kept).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::RuntimeEnv;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use squall_connectors::Location;
use squall_shuffle::ObjectRange;
use squall_shuffle::reader::{ReadAhead, read_ranges};
use tokio::sync::mpsc;

use crate::error::{JobError, Result};
use crate::invocations::{ABANDONED_INVOCATIONS_WAIT, LATE_WRITE_SWEEP_DELAY};
use crate::lease;
use crate::scheduler::{QueryRun, ResultPart, delete_query_scratch, run_query};

/// Result parts buffered between the scheduler and the reader.
const PART_CHANNEL_CAPACITY: usize = 16;

/// Batches of a query's result, in order when the query has ORDER BY.
pub struct QueryStream {
    schema: SchemaRef,
    inner: BoxStream<'static, Result<RecordBatch>>,
}

impl std::fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStream")
            .field("schema", &self.schema)
            .finish()
    }
}

impl QueryStream {
    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Collects all batches.
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        let mut s = self;
        while let Some(b) = s.next().await {
            out.push(b?);
        }
        Ok(out)
    }

    /// A result computed on the coordinator (EXPLAIN, DESCRIBE): no tasks, no scratch.
    pub fn from_batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        Self {
            schema,
            inner: futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
        }
    }

    /// Starts `run` in the background and streams its result parts.
    pub(crate) fn start(run: QueryRun, keep_scratch: bool) -> Self {
        let schema = Arc::clone(&run.graph.schema);
        let (tx, rx) = mpsc::channel(PART_CHANNEL_CAPACITY);
        let scheduler = tokio::spawn({
            let run = run.clone();
            async move { run_query(run, tx).await }
        });
        // Renewed until the result has been read (or the stream dropped):
        // the client reads result parts from scratch after the scheduler is done.
        let lease_renewal =
            lease::keep_renewed(run.query_prefix(), run.query_id.clone(), lease::lease_ttl());
        let state = State {
            run,
            lease_renewal,
            keep_scratch,
            rx,
            scheduler: Some(scheduler),
            current: None,
            finished: false,
        };
        let inner = futures::stream::unfold(state, |mut state| async move {
            if state.finished {
                return None;
            }
            match state.next_batch().await {
                Ok(Some(batch)) => Some((Ok(batch), state)),
                Ok(None) => {
                    state.finished = true;
                    match state.cleanup().await {
                        Ok(()) => None,
                        Err(e) => Some((Err(e), state)),
                    }
                }
                Err(e) => {
                    state.finished = true;
                    let _ = state.cleanup().await;
                    Some((Err(e), state))
                }
            }
        })
        .boxed();
        Self { schema, inner }
    }
}

impl Stream for QueryStream {
    type Item = Result<RecordBatch>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

struct State {
    run: QueryRun,
    /// Ends only if the lease could not be renewed (see [`lease::keep_renewed`]).
    lease_renewal: tokio::task::JoinHandle<JobError>,
    keep_scratch: bool,
    rx: mpsc::Receiver<ResultPart>,
    scheduler: Option<tokio::task::JoinHandle<Result<()>>>,
    current: Option<BoxStream<'static, Result<RecordBatch>>>,
    finished: bool,
}

impl State {
    /// The next batch of the result, unless the query's lease was lost first.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let State {
            lease_renewal,
            run,
            rx,
            scheduler,
            current,
            ..
        } = self;
        tokio::select! {
            biased;
            lost = lease_renewal => Err(lost.unwrap_or_else(|e| {
                JobError::Internal(format!("the lease renewal panicked: {e}"))
            })),
            next = next_result_batch(run, rx, scheduler, current) => next,
        }
    }

    async fn cleanup(&mut self) -> Result<()> {
        self.lease_renewal.abort();
        if let Some(handle) = self.scheduler.take() {
            handle.abort();
            let _ = handle.await;
        }
        if self.run.invocations.running() > 0 {
            // Invocations the backend cannot cancel (a losing backup on
            // Lambda) still run: the scratch goes once they end, in the
            // background, so that the result is not held up.
            let (run, keep_scratch) = (self.run.clone(), self.keep_scratch);
            squall_connectors::cleanup::spawn_cleanup(async move {
                let _ = finish_scratch(&run, keep_scratch).await;
            });
            return Ok(());
        }
        finish_scratch(&self.run, self.keep_scratch).await
    }
}

/// The next batch of the current part, or of the next part the scheduler
/// sends; `None` once every part was read.
async fn next_result_batch(
    run: &QueryRun,
    rx: &mut mpsc::Receiver<ResultPart>,
    scheduler: &mut Option<tokio::task::JoinHandle<Result<()>>>,
    current: &mut Option<BoxStream<'static, Result<RecordBatch>>>,
) -> Result<Option<RecordBatch>> {
    loop {
        if let Some(stream) = current.as_mut() {
            match stream.next().await {
                Some(batch) => return batch.map(Some),
                None => *current = None,
            }
        }
        match rx.recv().await {
            Some(part) => *current = Some(open_part(&part, &run.graph.schema).await?),
            None => {
                // All parts were sent, or the scheduler stopped with an error.
                // (Awaited in place: should a lost lease cancel this wait,
                // the handle stays for `cleanup` to abort.)
                if let Some(handle) = scheduler.as_mut() {
                    let outcome = handle.await;
                    *scheduler = None;
                    outcome
                        .map_err(|e| JobError::Internal(format!("scheduler panicked: {e}")))??;
                }
                return Ok(None);
            }
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // Dropped before the end (the client stopped reading, or was
        // interrupted): stop the scheduler and clean up in the background.
        if self.finished {
            return;
        }
        self.lease_renewal.abort();
        self.run.invocations.note_abandoned();
        let scheduler = self.scheduler.take();
        if let Some(handle) = &scheduler {
            handle.abort();
        }
        let run = self.run.clone();
        let keep_scratch = self.keep_scratch;
        squall_connectors::cleanup::spawn_cleanup(async move {
            // The aborted scheduler is dropped first: that kills worker
            // processes and aborts in-process tasks, so that they stop
            // writing before their scratch is deleted.
            if let Some(handle) = scheduler {
                let _ = handle.await;
            }
            let _ = finish_scratch(&run, keep_scratch).await;
        });
    }
}

/// Deletes the query's scratch (and what it staged), or, kept on request,
/// marks it kept: its lease then never expires, so no clean deletes it.
/// Invocations that cannot be cancelled are waited for first, within a
/// bound (see [`crate::invocations`]).
async fn finish_scratch(run: &QueryRun, keep_scratch: bool) -> Result<()> {
    if !run.invocations.settle(ABANDONED_INVOCATIONS_WAIT).await {
        log::info!(
            "{} abandoned invocations of query {} still run after {} s; \
             what they write later is deleted by a later query's scratch clean",
            run.invocations.running(),
            run.query_id,
            ABANDONED_INVOCATIONS_WAIT.as_secs()
        );
    }
    if keep_scratch {
        return lease::write_lease(&run.query_prefix(), &run.query_id, lease::KEPT).await;
    }
    delete_query_scratch(run).await?;
    if run.invocations.any_abandoned() {
        // A write sent before its attempt or request was dropped may land
        // after the deletion: sweep once more.
        let run = run.clone();
        squall_connectors::cleanup::spawn_cleanup(async move {
            tokio::time::sleep(LATE_WRITE_SWEEP_DELAY).await;
            let _ = delete_query_scratch(&run).await;
        });
    }
    Ok(())
}

async fn open_part(
    part: &ResultPart,
    schema: &SchemaRef,
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    let location = Location::parse(&part.url).map_err(|e| JobError::Storage {
        url: part.url.clone(),
        message: e.to_string(),
    })?;
    let store = location.build_store()?;
    let runtime = RuntimeEnv::default();
    runtime.register_object_store(location.store_url().as_ref(), store);
    let context = Arc::new(TaskContext::default().with_runtime(Arc::new(runtime)));
    let range = ObjectRange {
        url: part.url.clone(),
        start: 0,
        end: part.bytes,
        crc32: None,
    };
    let url = part.url.clone();
    Ok(read_ranges(
        vec![range],
        context,
        Arc::clone(schema),
        ReadAhead::default(),
    )
    .map(move |b| {
        b.map_err(|e| JobError::Storage {
            url: url.clone(),
            message: e.strip_backtrace(),
        })
    })
    .boxed())
}
