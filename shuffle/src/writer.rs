//! [`ExchangeWriterExec`]: writes all output partitions of one map task into one object.

use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::compute::BatchCoalescer;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::CompressionType;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{DiskManager, SpillFile, SpillWriter, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

use crate::error::ShuffleError;
use crate::format::{ExchangeIndex, PartitionRange};
use crate::wire_types::{to_wire, wire_schema};

/// In-memory encoded bytes a writer keeps before it spills to a local file.
pub const DEFAULT_SPILL_THRESHOLD_BYTES: usize = 64 * 1024 * 1024;
/// Buffer of the upload; larger objects go up as multipart uploads of this part size.
const UPLOAD_PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts of one multipart upload in flight at once.
const UPLOAD_CONCURRENCY: usize = 4;

/// How a map task's rows are cut into the partitions of its object.
#[derive(Debug, Clone)]
pub enum OutputPartitioning {
    /// Rows go to `hash(exprs) % n`, with DataFusion's own hash, so the
    /// partitions line up with what DataFusion's `RepartitionExec` would produce.
    Hash(Vec<Arc<dyn PhysicalExpr>>, usize),
    /// All rows in one partition (gather, merge and broadcast exchanges).
    Single,
}

impl OutputPartitioning {
    /// Number of partitions in each object.
    pub fn partition_count(&self) -> usize {
        match self {
            Self::Hash(_, n) => *n,
            Self::Single => 1,
        }
    }
}

impl fmt::Display for OutputPartitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hash(exprs, n) => {
                let exprs: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
                write!(f, "hash([{}], {n})", exprs.join(", "))
            }
            Self::Single => write!(f, "single"),
        }
    }
}

/// Writes every partition of its input into one exchange object (see
/// [`crate::format`]) and returns the object's index as a one-batch result
/// with columns `partition, offset, len_bytes, rows`.
///
/// Memory is bounded: encoded partitions are buffered under a memory
/// reservation and spilled to a local temporary file when the reservation or
/// the spill threshold is exceeded. The object is uploaded in one pass at the
/// end (multipart when large) and only becomes visible when complete.
#[derive(Debug)]
pub struct ExchangeWriterExec {
    input: Arc<dyn ExecutionPlan>,
    stage_id: usize,
    partitioning: OutputPartitioning,
    /// Object URL of this task attempt; bound by the worker.
    output_url: Option<String>,
    spill_threshold_bytes: usize,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl ExchangeWriterExec {
    /// A writer for `stage_id` whose output location is bound later.
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        stage_id: usize,
        partitioning: OutputPartitioning,
    ) -> DFResult<Self> {
        if partitioning.partition_count() == 0 {
            return Err(DataFusionError::Plan(format!(
                "exchange of stage {stage_id} must have at least one partition"
            )));
        }
        let schema = index_schema();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(Self {
            input,
            stage_id,
            partitioning,
            output_url: None,
            spill_threshold_bytes: DEFAULT_SPILL_THRESHOLD_BYTES,
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
        })
    }

    /// The same writer, writing to `url`.
    pub fn with_output_url(&self, url: impl Into<String>) -> Self {
        Self {
            input: Arc::clone(&self.input),
            stage_id: self.stage_id,
            partitioning: self.partitioning.clone(),
            output_url: Some(url.into()),
            spill_threshold_bytes: self.spill_threshold_bytes,
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::clone(&self.properties),
        }
    }

    /// The same writer with another spill threshold (tests use tiny ones).
    pub fn with_spill_threshold_bytes(mut self, bytes: usize) -> Self {
        self.spill_threshold_bytes = bytes;
        self
    }

    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
    pub fn stage_id(&self) -> usize {
        self.stage_id
    }
    pub fn partitioning(&self) -> &OutputPartitioning {
        &self.partitioning
    }
    pub fn output_url(&self) -> Option<&str> {
        self.output_url.as_deref()
    }
}

/// Schema of the writer's one output batch.
pub fn index_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::UInt32, false),
        Field::new("offset", DataType::UInt64, false),
        Field::new("len_bytes", DataType::UInt64, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("crc32", DataType::UInt32, true),
    ]))
}

/// Converts the writer's output batch back into an index.
pub fn index_from_batch(batch: &RecordBatch) -> Option<ExchangeIndex> {
    let col = |i: usize| batch.column(i).as_any().downcast_ref::<UInt64Array>();
    let (offset, len, rows) = (col(1)?, col(2)?, col(3)?);
    let crc = batch.column(4).as_any().downcast_ref::<UInt32Array>()?;
    Some(ExchangeIndex {
        partitions: (0..batch.num_rows())
            .map(|i| PartitionRange {
                offset: offset.value(i),
                len_bytes: len.value(i),
                rows: rows.value(i),
                crc32: crc.is_valid(i).then(|| crc.value(i)),
            })
            .collect(),
    })
}

fn index_to_batch(index: &ExchangeIndex) -> DFResult<RecordBatch> {
    let n = index.partitions.len();
    Ok(RecordBatch::try_new(
        index_schema(),
        vec![
            Arc::new(UInt32Array::from_iter_values(0..n as u32)),
            Arc::new(UInt64Array::from_iter_values(
                index.partitions.iter().map(|p| p.offset),
            )),
            Arc::new(UInt64Array::from_iter_values(
                index.partitions.iter().map(|p| p.len_bytes),
            )),
            Arc::new(UInt64Array::from_iter_values(
                index.partitions.iter().map(|p| p.rows),
            )),
            Arc::new(UInt32Array::from_iter(
                index.partitions.iter().map(|p| p.crc32),
            )),
        ],
    )?)
}

impl DisplayAs for ExchangeWriterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ExchangeWriterExec: stage={}, partitioning={}",
            self.stage_id, self.partitioning
        )
    }
}

impl ExecutionPlan for ExchangeWriterExec {
    fn name(&self) -> &str {
        "ExchangeWriterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        if let OutputPartitioning::Hash(exprs, _) = &self.partitioning {
            for e in exprs {
                if f(e)? == TreeNodeRecursion::Stop {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let input = children.pop().ok_or_else(|| {
            DataFusionError::Internal("ExchangeWriterExec takes one child".into())
        })?;
        let mut new = Self::try_new(input, self.stage_id, self.partitioning.clone())?;
        new.output_url = self.output_url.clone();
        new.spill_threshold_bytes = self.spill_threshold_bytes;
        Ok(Arc::new(new))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "ExchangeWriterExec has one partition, asked for {partition}"
            )));
        }
        let url = self.output_url.clone().ok_or(ShuffleError::Unbound {
            operator: "ExchangeWriterExec",
            stage: self.stage_id,
        })?;
        let job = WriteJob {
            input: Arc::clone(&self.input),
            partitioning: self.partitioning.clone(),
            url,
            spill_threshold_bytes: self.spill_threshold_bytes,
            output_rows: MetricBuilder::new(&self.metrics).output_rows(0),
            written_bytes: MetricBuilder::new(&self.metrics).counter("written_bytes", 0),
            repart_time: MetricBuilder::new(&self.metrics).subset_time("repart_time", 0),
        };
        let stream = futures::stream::once(job.run(context));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            index_schema(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

struct WriteJob {
    input: Arc<dyn ExecutionPlan>,
    partitioning: OutputPartitioning,
    url: String,
    spill_threshold_bytes: usize,
    output_rows: datafusion::physical_plan::metrics::Count,
    written_bytes: datafusion::physical_plan::metrics::Count,
    repart_time: datafusion::physical_plan::metrics::Time,
}

impl WriteJob {
    async fn run(self, context: Arc<TaskContext>) -> DFResult<RecordBatch> {
        let (store_url, path) = split_object_url(&self.url)?;
        let store = context.runtime_env().object_store(&store_url)?;
        let schema = self.input.schema();
        let reservation = MemoryConsumer::new(format!("ExchangeWriterExec[{}]", self.url))
            .with_can_spill(true)
            .register(context.memory_pool());
        let mut buffers = PartitionBuffers::new(
            self.partitioning.partition_count(),
            schema,
            &self.url,
            reservation,
            Arc::clone(&context.runtime_env().disk_manager),
            self.spill_threshold_bytes,
            context.session_config().batch_size(),
        );
        let mut partitioner = match &self.partitioning {
            OutputPartitioning::Hash(exprs, n) => Some(BatchPartitioner::new_hash_partitioner(
                exprs.clone(),
                *n,
                self.repart_time.clone(),
            )?),
            OutputPartitioning::Single => None,
        };
        let partitions = self.input.output_partitioning().partition_count();
        let streams = (0..partitions)
            .map(|p| self.input.execute(p, Arc::clone(&context)))
            .collect::<DFResult<Vec<_>>>()?;
        let mut merged = futures::stream::select_all(streams);
        while let Some(batch) = merged.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            self.output_rows.add(batch.num_rows());
            match partitioner.as_mut() {
                Some(p) => {
                    for part in p.partition_iter(batch)? {
                        let (i, b) = part?;
                        buffers.push(i, b)?;
                    }
                }
                None => buffers.push(0, batch)?,
            }
        }
        let index = buffers.upload(store, path).await?;
        self.written_bytes.add(index.data_bytes() as usize);
        index_to_batch(&index)
    }
}

/// Splits a full object URL into DataFusion's store URL and the object path.
pub fn split_object_url(
    url: &str,
) -> DFResult<(datafusion::execution::object_store::ObjectStoreUrl, Path)> {
    let parsed = url::Url::parse(url)
        .map_err(|e| DataFusionError::Plan(format!("invalid object URL '{url}': {e}")))?;
    let store_url = datafusion::execution::object_store::ObjectStoreUrl::parse(format!(
        "{}://{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or("")
    ))?;
    let path = Path::from_url_path(parsed.path())
        .map_err(|e| DataFusionError::Plan(format!("invalid object path in '{url}': {e}")))?;
    Ok((store_url, path))
}

/// Encoded IPC bytes per partition, in memory up to a bound, the rest in one spill file.
struct PartitionBuffers {
    schema: SchemaRef,
    /// The schema batches are encoded with (`crate::wire_types`).
    wire_schema: SchemaRef,
    url: String,
    options: IpcWriteOptions,
    parts: Vec<PartBuffer>,
    buffered_bytes: usize,
    spill_threshold_bytes: usize,
    target_batch_rows: usize,
    reservation: MemoryReservation,
    /// Where spill files come from: DataFusion's disk manager, which bounds
    /// the task's spill disk (`TaskLimits::spill_bytes`) across operators.
    disk_manager: Arc<DiskManager>,
    spill: Option<SpillTarget>,
}

/// The writer's one spill file: appended through the disk manager's
/// writer (which counts every byte against the bound), read back by path.
struct SpillTarget {
    /// Keeps the file (deleted when dropped) and its disk usage counted.
    _file: Arc<dyn SpillFile>,
    writer: Box<dyn SpillWriter>,
    reader: std::fs::File,
    len: u64,
}

#[derive(Default)]
struct PartBuffer {
    writer: Option<StreamWriter<Vec<u8>>>,
    /// Rows hashed to this partition but not yet encoded. Hash partitioning
    /// cuts every input batch into many small ones whose string views still
    /// point into the whole input's buffers; the coalescer copies just their
    /// bytes into batches of the session's batch size, so each IPC message is
    /// full-sized and carries only its own data.
    pending: Option<BatchCoalescer>,
    pending_bytes: usize,
    rows: u64,
    /// `(offset, len)` segments of this partition in the spill file, in order.
    spilled: Vec<(u64, u64)>,
}

impl PartitionBuffers {
    fn new(
        n: usize,
        schema: SchemaRef,
        url: &str,
        reservation: MemoryReservation,
        disk_manager: Arc<DiskManager>,
        spill_threshold_bytes: usize,
        target_batch_rows: usize,
    ) -> Self {
        let options = IpcWriteOptions::default()
            .try_with_compression(Some(CompressionType::LZ4_FRAME))
            .expect("LZ4 is compiled in");
        Self {
            wire_schema: wire_schema(&schema),
            schema,
            url: url.to_string(),
            options,
            parts: (0..n).map(|_| PartBuffer::default()).collect(),
            buffered_bytes: 0,
            spill_threshold_bytes,
            target_batch_rows: target_batch_rows.max(1),
            reservation,
            disk_manager,
            spill: None,
        }
    }

    fn ipc_err(&self, e: impl fmt::Display) -> ShuffleError {
        ShuffleError::Ipc {
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }

    fn push(&mut self, partition: usize, batch: RecordBatch) -> DFResult<()> {
        let part = &mut self.parts[partition];
        let coalescer = part.pending.get_or_insert_with(|| {
            BatchCoalescer::new(Arc::clone(&self.schema), self.target_batch_rows)
        });
        coalescer.push_batch(batch)?;
        let size = coalescer.size();
        self.buffered_bytes = (self.buffered_bytes + size).saturating_sub(part.pending_bytes);
        part.pending_bytes = size;
        self.encode_completed(partition, false)?;
        if self.buffered_bytes > self.spill_threshold_bytes
            || self.reservation.try_resize(self.buffered_bytes).is_err()
        {
            self.spill()?;
        }
        Ok(())
    }

    /// Encodes a partition's completed batches (all pending rows when `flush`).
    fn encode_completed(&mut self, partition: usize, flush: bool) -> DFResult<()> {
        let part = &mut self.parts[partition];
        let Some(coalescer) = part.pending.as_mut() else {
            return Ok(());
        };
        if flush {
            coalescer.finish_buffered_batch()?;
        }
        while let Some(batch) = coalescer.next_completed_batch() {
            if part.writer.is_none() {
                let w = StreamWriter::try_new_with_options(
                    Vec::new(),
                    &self.wire_schema,
                    self.options.clone(),
                )
                .map_err(|e| ShuffleError::Ipc {
                    url: self.url.clone(),
                    reason: e.to_string(),
                })?;
                part.writer = Some(w);
            }
            let writer = part.writer.as_mut().expect("just created");
            let before = writer.get_ref().len();
            let ipc_err = |e: datafusion::arrow::error::ArrowError| ShuffleError::Ipc {
                url: self.url.clone(),
                reason: e.to_string(),
            };
            let batch = to_wire(batch, &self.wire_schema).map_err(ipc_err)?;
            writer.write(&batch).map_err(ipc_err)?;
            part.rows += batch.num_rows() as u64;
            self.buffered_bytes += writer.get_ref().len() - before;
        }
        let size = coalescer.size();
        self.buffered_bytes = (self.buffered_bytes + size).saturating_sub(part.pending_bytes);
        part.pending_bytes = size;
        Ok(())
    }

    /// Moves every partition's buffered bytes to the spill file.
    fn spill(&mut self) -> DFResult<()> {
        for p in 0..self.parts.len() {
            self.encode_completed(p, true)?;
        }
        if self.spill.is_none() {
            let file = self
                .disk_manager
                .create_tmp_file(&format!("spilling the exchange writer of {}", self.url))?;
            let path = file.path().ok_or_else(|| {
                DataFusionError::Internal("the exchange writer spills only to local files".into())
            })?;
            let reader = std::fs::File::open(path).map_err(ShuffleError::Spill)?;
            let writer = file.open_writer()?;
            self.spill = Some(SpillTarget {
                _file: file,
                writer,
                reader,
                len: 0,
            });
        }
        let spill = self.spill.as_mut().expect("just created");
        for part in &mut self.parts {
            if let Some(w) = part.writer.as_mut() {
                let bytes = std::mem::take(w.get_mut());
                if bytes.is_empty() {
                    continue;
                }
                // Fails once the task's spill disk is used up.
                spill
                    .writer
                    .write_all(&bytes)
                    .map_err(ShuffleError::Spill)?;
                part.spilled.push((spill.len, bytes.len() as u64));
                spill.len += bytes.len() as u64;
            }
        }
        spill.writer.flush().map_err(ShuffleError::Spill)?;
        self.buffered_bytes = self.parts.iter().map(|p| p.pending_bytes).sum();
        self.reservation.free();
        Ok(())
    }

    /// Finishes every partition's stream and uploads data plus index as one object.
    async fn upload(
        mut self,
        store: Arc<dyn object_store::ObjectStore>,
        path: Path,
    ) -> DFResult<ExchangeIndex> {
        // Nothing half-written stays visible: a failed upload is aborted
        // here; one dropped unfinished (a failed completion, a cancelled
        // task) by the store (`squall_connectors::upload_guard`).
        let mut upload = BufWriter::with_capacity(store, path, UPLOAD_PART_BYTES)
            .with_max_concurrency(UPLOAD_CONCURRENCY);
        match self.write_all(&mut upload).await {
            Ok(index) => {
                upload
                    .shutdown()
                    .await
                    .map_err(|e| self.ipc_err(format!("upload failed: {e}")))?;
                Ok(index)
            }
            Err(e) => {
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }

    async fn write_all(&mut self, upload: &mut BufWriter) -> DFResult<ExchangeIndex> {
        for p in 0..self.parts.len() {
            self.encode_completed(p, true)?;
        }
        let mut index = ExchangeIndex::default();
        let mut offset = 0u64;
        for i in 0..self.parts.len() {
            let mut len = 0u64;
            let mut crc = crc32fast::Hasher::new();
            let segments = std::mem::take(&mut self.parts[i].spilled);
            for (seg_offset, seg_len) in segments {
                let chunk = self.read_spill(seg_offset, seg_len)?;
                len += chunk.len() as u64;
                crc.update(&chunk);
                upload
                    .put(Bytes::from(chunk))
                    .await
                    .map_err(|e| self.ipc_err(e))?;
            }
            if let Some(w) = self.parts[i].writer.take() {
                let tail = w.into_inner().map_err(|e| self.ipc_err(e))?;
                len += tail.len() as u64;
                crc.update(&tail);
                upload
                    .put(Bytes::from(tail))
                    .await
                    .map_err(|e| self.ipc_err(e))?;
            }
            index.partitions.push(PartitionRange {
                offset,
                len_bytes: len,
                rows: self.parts[i].rows,
                crc32: Some(crc.finalize()),
            });
            offset += len;
        }
        upload
            .put(Bytes::from(index.encode_trailer()))
            .await
            .map_err(|e| self.ipc_err(e))?;
        self.reservation.free();
        Ok(index)
    }

    fn read_spill(&mut self, offset: u64, len: u64) -> DFResult<Vec<u8>> {
        let spill = self
            .spill
            .as_mut()
            .ok_or_else(|| DataFusionError::Internal("spill segment without spill file".into()))?;
        let mut buf = vec![0u8; len as usize];
        spill
            .reader
            .seek(SeekFrom::Start(offset))
            .map_err(ShuffleError::Spill)?;
        spill
            .reader
            .read_exact(&mut buf)
            .map_err(ShuffleError::Spill)?;
        Ok(buf)
    }
}
