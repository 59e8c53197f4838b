//! [`ExchangeReaderExec`]: reads one stage's output partitions back with ranged GETs.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamDecoder;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit};
use datafusion::physical_expr::{
    AcrossPartitions, ConstExpr, EquivalenceProperties, LexOrdering, PhysicalExpr,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange};

use crate::error::ShuffleError;
use crate::format::ObjectRange;
use crate::wire_types::from_wire;
use crate::writer::split_object_url;

/// Largest byte range fetched by one GET; larger partitions are read in chunks.
pub const CHUNK_BYTES: u64 = 8 * 1024 * 1024;
/// Smallest chunk a reader cuts its GETs into when its memory is tight.
pub const MIN_CHUNK_BYTES: u64 = 64 * 1024;
/// Ranged GETs in flight per reader partition.
pub const MAX_GETS_IN_FLIGHT: usize = 16;
/// All partitions of one reader together buffer at most this fraction of
/// the task's memory pool (1/8: a join task has two readers, and its build
/// side cannot spill); an order-preserving merge opens one partition per map
/// task, all at once.
pub const READ_BUFFER_POOL_DIVISOR: usize = 8;

/// How much one reader partition fetches ahead: `in_flight` GETs of at
/// most `chunk_bytes` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAhead {
    pub chunk_bytes: u64,
    pub in_flight: usize,
}

impl Default for ReadAhead {
    /// [`MAX_GETS_IN_FLIGHT`] GETs of [`CHUNK_BYTES`]: for readers without a
    /// memory limit (the coordinator reading result parts).
    fn default() -> Self {
        Self {
            chunk_bytes: CHUNK_BYTES,
            in_flight: MAX_GETS_IN_FLIGHT,
        }
    }
}

impl ReadAhead {
    /// The read-ahead of one of `partitions` partitions of a reader in a
    /// task whose pool holds `pool_bytes`: their buffers together within
    /// `pool_bytes / READ_BUFFER_POOL_DIVISOR` (unless that leaves a
    /// partition less than one smallest chunk), in chunks of
    /// [`MIN_CHUNK_BYTES`] to [`CHUNK_BYTES`], one to [`MAX_GETS_IN_FLIGHT`] at once.
    pub fn within(pool_bytes: usize, partitions: usize) -> Self {
        let share = (pool_bytes / READ_BUFFER_POOL_DIVISOR / partitions.max(1)) as u64;
        let chunk_bytes = share.clamp(MIN_CHUNK_BYTES, CHUNK_BYTES);
        let in_flight = ((share / chunk_bytes) as usize).clamp(1, MAX_GETS_IN_FLIGHT);
        Self {
            chunk_bytes,
            in_flight,
        }
    }
}

/// What a reader partition reads from the map objects of its input stage.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadMode {
    /// Partition `task index` of every map object (a hash exchange).
    /// The reader declares hash partitioning on these expressions.
    Hash(Vec<Arc<dyn PhysicalExpr>>),
    /// The single partition of every map object, read by task 0 only (a gather).
    Gather,
    /// The single partition of every map object, read by every task (a broadcast).
    Broadcast,
    /// One reader partition per map object, each sorted by `ordering`
    /// (feeds an order-preserving merge).
    Merge {
        map_tasks: usize,
        ordering: LexOrdering,
    },
    /// A hash exchange that keeps order: partition `task index` of every map
    /// object, one reader partition per map object, each sorted by
    /// `ordering` (feeds an order-preserving merge).
    SortedHash {
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        map_tasks: usize,
        ordering: LexOrdering,
    },
}

impl ReadMode {
    fn name(&self) -> &'static str {
        match self {
            Self::Hash(_) => "hash",
            Self::Gather => "gather",
            Self::Broadcast => "broadcast",
            Self::Merge { .. } => "merge",
            Self::SortedHash { .. } => "sorted-hash",
        }
    }
}

/// Reads exchange data written by [`crate::ExchangeWriterExec`] tasks of one
/// input stage. It never lists: the worker binds, per reader partition, the
/// exact byte ranges of the committed (winning) map objects. Ranges are fetched
/// with at most [`MAX_GETS_IN_FLIGHT`] GETs of at most [`CHUNK_BYTES`] each, in
/// order, and decoded incrementally. What a partition fetches ahead is
/// reserved in the task's memory pool and sized to fit it ([`ReadAhead::within`]).
#[derive(Debug)]
pub struct ExchangeReaderExec {
    stage_id: usize,
    schema: SchemaRef,
    mode: ReadMode,
    /// Per output partition, the ranges to read; bound by the worker.
    inputs: Option<Vec<Vec<ObjectRange>>>,
    /// Expressions with one value in every row the map stage wrote: they
    /// stay constant through any exchange, so orders DataFusion derived from
    /// them (a join key that is a literal) still hold after it.
    constants: Vec<(Arc<dyn PhysicalExpr>, ScalarValue)>,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl ExchangeReaderExec {
    /// A reader of `stage_id` whose inputs are bound later.
    pub fn try_new(stage_id: usize, schema: SchemaRef, mode: ReadMode) -> DFResult<Self> {
        let properties = Self::compute_properties(&schema, &mode, &[])?;
        Ok(Self {
            stage_id,
            schema,
            mode,
            inputs: None,
            constants: Vec::new(),
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
        })
    }

    /// The same reader, knowing that each of `constants` has its value in every row.
    pub fn with_constants(
        &self,
        constants: Vec<(Arc<dyn PhysicalExpr>, ScalarValue)>,
    ) -> DFResult<Self> {
        let properties = Self::compute_properties(&self.schema, &self.mode, &constants)?;
        Ok(Self {
            stage_id: self.stage_id,
            schema: Arc::clone(&self.schema),
            mode: self.mode.clone(),
            inputs: self.inputs.clone(),
            constants,
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
        })
    }

    /// The expressions known to have one value in every row read.
    pub fn constants(&self) -> &[(Arc<dyn PhysicalExpr>, ScalarValue)] {
        &self.constants
    }

    fn compute_properties(
        schema: &SchemaRef,
        mode: &ReadMode,
        constants: &[(Arc<dyn PhysicalExpr>, ScalarValue)],
    ) -> DFResult<PlanProperties> {
        let (mut eq, partitioning) = match mode {
            ReadMode::Hash(exprs) => (
                EquivalenceProperties::new(Arc::clone(schema)),
                Partitioning::Hash(exprs.clone(), 1),
            ),
            ReadMode::Gather | ReadMode::Broadcast => (
                EquivalenceProperties::new(Arc::clone(schema)),
                Partitioning::UnknownPartitioning(1),
            ),
            ReadMode::Merge {
                map_tasks,
                ordering,
            }
            | ReadMode::SortedHash {
                map_tasks,
                ordering,
                ..
            } => (
                EquivalenceProperties::new_with_orderings(Arc::clone(schema), [ordering.clone()]),
                Partitioning::UnknownPartitioning((*map_tasks).max(1)),
            ),
        };
        eq.add_constants(constants.iter().map(|(expr, value)| {
            ConstExpr::new(
                Arc::clone(expr),
                AcrossPartitions::Uniform(Some(value.clone())),
            )
        }))?;
        Ok(PlanProperties::new(
            eq,
            partitioning,
            EmissionType::Incremental,
            Boundedness::Bounded,
        ))
    }

    /// The same reader reading `inputs` (one list of ranges per output partition).
    pub fn with_inputs(&self, inputs: Vec<Vec<ObjectRange>>) -> DFResult<Self> {
        let expected = self.partition_count();
        if inputs.len() != expected {
            return Err(DataFusionError::Internal(format!(
                "reader of stage {} has {expected} partitions but was given {} input lists",
                self.stage_id,
                inputs.len()
            )));
        }
        Ok(Self {
            stage_id: self.stage_id,
            schema: Arc::clone(&self.schema),
            mode: self.mode.clone(),
            inputs: Some(inputs),
            constants: self.constants.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::clone(&self.properties),
        })
    }

    /// The same reader of stage `stage_id` (the planner numbers stages again
    /// when it adds combining stages).
    pub fn with_stage_id(&self, stage_id: usize) -> DFResult<Self> {
        Ok(Self {
            stage_id,
            schema: Arc::clone(&self.schema),
            mode: self.mode.clone(),
            inputs: self.inputs.clone(),
            constants: self.constants.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::clone(&self.properties),
        })
    }

    /// The same reader with another mode (the planner turns gathers into broadcasts).
    pub fn with_mode(&self, mode: ReadMode) -> DFResult<Self> {
        Self::try_new(self.stage_id, Arc::clone(&self.schema), mode)?
            .with_constants(self.constants.clone())
    }

    pub fn stage_id(&self) -> usize {
        self.stage_id
    }
    pub fn mode(&self) -> &ReadMode {
        &self.mode
    }
    pub fn partition_count(&self) -> usize {
        self.properties.partitioning.partition_count()
    }
}

impl DisplayAs for ExchangeReaderExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ExchangeReaderExec: stage={}, mode={}",
            self.stage_id,
            self.mode.name()
        )?;
        if let ReadMode::Hash(exprs) = &self.mode {
            let exprs: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
            write!(f, "([{}])", exprs.join(", "))?;
        }
        if let ReadMode::Merge { ordering, .. } = &self.mode {
            write!(f, ", ordering=[{ordering}]")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ExchangeReaderExec {
    fn name(&self) -> &str {
        "ExchangeReaderExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return Err(DataFusionError::Internal(
                "ExchangeReaderExec is a leaf".into(),
            ));
        }
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let inputs = self.inputs.as_ref().ok_or(ShuffleError::Unbound {
            operator: "ExchangeReaderExec",
            stage: self.stage_id,
        })?;
        let ranges = inputs.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "reader of stage {} has no partition {partition}",
                self.stage_id
            ))
        })?;
        let bytes_read = MetricBuilder::new(&self.metrics).counter("bytes_read", partition);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let schema = Arc::clone(&self.schema);
        let pool = context.memory_pool();
        let read_ahead = match pool.memory_limit() {
            MemoryLimit::Finite(bytes) => ReadAhead::within(bytes, inputs.len()),
            _ => ReadAhead::default(),
        };
        // Reserved for the stream's life: the GETs in flight and the chunk
        // being decoded. A pool too full for even one chunk does not stop
        // the read (a reader cannot spill); it reads one chunk at a time.
        let reservation = MemoryConsumer::new(format!(
            "ExchangeReaderExec[stage={} partition={partition}]",
            self.stage_id
        ))
        .register(pool);
        let total_bytes: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        let wanted = |ahead: ReadAhead| {
            (ahead.chunk_bytes * ahead.in_flight as u64).min(total_bytes) as usize
        };
        let read_ahead = if reservation.try_grow(wanted(read_ahead)).is_ok() {
            read_ahead
        } else {
            let one = ReadAhead {
                in_flight: 1,
                ..read_ahead
            };
            if reservation.try_grow(wanted(one)).is_err() {
                log::debug!(
                    "stage {} reader partition {partition}: memory pool full, reading one chunk at a time",
                    self.stage_id
                );
            }
            one
        };
        let stream = read_ranges(ranges, context, Arc::clone(&schema), read_ahead);
        let stream = stream.inspect_ok(move |b| {
            let _held_while_reading = &reservation;
            output_rows.add(b.num_rows());
            bytes_read.add(b.get_array_memory_size());
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The part of one range that one GET returns; `last` closes that range's
/// IPC stream.
#[derive(Debug, Clone, PartialEq)]
struct Segment {
    range_idx: usize,
    start: u64,
    end: u64,
    last: bool,
    /// The CRC-32 of the whole range, checked after its last segment.
    range_crc32: Option<u32>,
    range_start: u64,
}

/// One GET: bytes `start..end` of `url`, covering the segments of one or
/// more ranges that lie next to each other in the object.
#[derive(Debug, Clone, PartialEq)]
struct Chunk {
    url: String,
    start: u64,
    end: u64,
    segments: Vec<Segment>,
}

/// The GETs that read `ranges` in order: ranges that follow each other in
/// one object (a task's hash partitions of one map object) are read as one
/// span, cut into GETs of at most `chunk_bytes`.
fn chunks_of(ranges: &[ObjectRange], chunk_bytes: u64) -> Vec<Chunk> {
    // Spans of adjacent ranges: (url, start, end, range indexes).
    let mut spans: Vec<(&str, u64, u64, Vec<usize>)> = Vec::new();
    for (range_idx, r) in ranges.iter().enumerate() {
        if r.start >= r.end {
            continue;
        }
        match spans.last_mut() {
            Some((url, _, end, members)) if *url == r.url && *end == r.start => {
                *end = r.end;
                members.push(range_idx);
            }
            _ => spans.push((&r.url, r.start, r.end, vec![range_idx])),
        }
    }
    let mut chunks = Vec::new();
    for (url, span_start, span_end, members) in spans {
        let mut start = span_start;
        while start < span_end {
            let end = (start + chunk_bytes.max(1)).min(span_end);
            let segments = members
                .iter()
                .filter_map(|&range_idx| {
                    let r = &ranges[range_idx];
                    let (seg_start, seg_end) = (r.start.max(start), r.end.min(end));
                    (seg_start < seg_end).then_some(Segment {
                        range_idx,
                        start: seg_start,
                        end: seg_end,
                        last: seg_end == r.end,
                        range_crc32: r.crc32,
                        range_start: r.start,
                    })
                })
                .collect();
            chunks.push(Chunk {
                url: url.to_string(),
                start,
                end,
                segments,
            });
            start = end;
        }
    }
    chunks
}

/// Streams the batches of `ranges` (each a whole Arrow IPC stream), in order,
/// fetching `read_ahead` ahead; stores come from `context`.
pub fn read_ranges(
    ranges: Vec<ObjectRange>,
    context: Arc<TaskContext>,
    schema: SchemaRef,
    read_ahead: ReadAhead,
) -> impl futures::Stream<Item = DFResult<RecordBatch>> + Send {
    let chunks = chunks_of(&ranges, read_ahead.chunk_bytes);
    let fetched = futures::stream::iter(chunks)
        .map(move |chunk| {
            let context = Arc::clone(&context);
            async move {
                let (store_url, path) = split_object_url(&chunk.url)?;
                let store = context.runtime_env().object_store(&store_url)?;
                let options = GetOptions {
                    range: Some(GetRange::Bounded(chunk.start..chunk.end)),
                    ..GetOptions::default()
                };
                let result = store.get_opts(&path, options).await.map_err(|source| {
                    ShuffleError::ObjectStore {
                        url: chunk.url.clone(),
                        source,
                    }
                })?;
                let bytes = result
                    .bytes()
                    .await
                    .map_err(|source| ShuffleError::ObjectStore {
                        url: chunk.url.clone(),
                        source,
                    })?;
                Ok::<_, DataFusionError>((chunk, bytes))
            }
        })
        .buffered(read_ahead.in_flight.max(1));

    let mut decoder: Option<(usize, StreamDecoder)> = None;
    let mut checksum: Option<(usize, crc32fast::Hasher)> = None;
    fetched
        .map(move |fetched: DFResult<(Chunk, bytes::Bytes)>| {
            let (chunk, bytes) = fetched?;
            let ipc_err = |e: datafusion::arrow::error::ArrowError| ShuffleError::Ipc {
                url: chunk.url.clone(),
                reason: e.to_string(),
            };
            // A short read is a truncated object; a range whose bytes do not
            // have the CRC-32 its writer recorded is a corrupt one. Either is
            // reported before its batches are used.
            let corrupt = |reason: String| ShuffleError::Corrupt {
                url: chunk.url.clone(),
                reason,
            };
            if bytes.len() as u64 != chunk.end - chunk.start {
                return Err(corrupt(format!(
                    "bytes {}..{} came back as {} bytes",
                    chunk.start,
                    chunk.end,
                    bytes.len()
                ))
                .into());
            }
            let mut batches = Vec::new();
            for segment in &chunk.segments {
                let part = bytes.slice(
                    (segment.start - chunk.start) as usize..(segment.end - chunk.start) as usize,
                );
                if checksum.as_ref().map(|(idx, _)| *idx) != Some(segment.range_idx) {
                    checksum = Some((segment.range_idx, crc32fast::Hasher::new()));
                }
                let (_, hasher) = checksum.as_mut().expect("just set");
                hasher.update(&part);
                if segment.last
                    && let Some(expected) = segment.range_crc32
                {
                    let (_, hasher) = checksum.take().expect("just set");
                    let actual = hasher.finalize();
                    if actual != expected {
                        return Err(corrupt(format!(
                            "bytes {}..{} have CRC-32 {actual:08x}, the writer recorded {expected:08x}",
                            segment.range_start, segment.end
                        ))
                        .into());
                    }
                }
                if decoder.as_ref().map(|(idx, _)| *idx) != Some(segment.range_idx) {
                    decoder = Some((segment.range_idx, StreamDecoder::new()));
                }
                let (_, dec) = decoder.as_mut().expect("just set");
                let mut buffer = Buffer::from(part);
                while !buffer.is_empty() {
                    if let Some(batch) = dec.decode(&mut buffer).map_err(ipc_err)? {
                        // With the reader's own schema (names and metadata as planned);
                        // the row count keeps batches without columns (`count(*)` inputs).
                        let options =
                            RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                        let columns = from_wire(batch.columns(), &schema).map_err(ipc_err)?;
                        batches.push(
                            RecordBatch::try_new_with_options(
                                Arc::clone(&schema),
                                columns,
                                &options,
                            )
                            .map_err(ipc_err)?,
                        );
                    }
                }
                if segment.last {
                    dec.finish().map_err(ipc_err)?;
                    decoder = None;
                }
            }
            Ok::<_, DataFusionError>(futures::stream::iter(
                batches.into_iter().map(Ok::<_, DataFusionError>),
            ))
        })
        .try_flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn read_ahead_fits_the_pool_share_of_every_partition() {
        // A roomy pool: the full read-ahead.
        assert_eq!(ReadAhead::within(2048 * MIB, 2), ReadAhead::default());
        // A merge of 100 map tasks in a 1 GiB pool: 128 MiB over 100 partitions.
        let merge = ReadAhead::within(1024 * MIB, 100);
        assert_eq!(merge.in_flight, 1);
        assert!(merge.chunk_bytes * 100 <= (128 * MIB) as u64, "{merge:?}");
        // A tiny pool: the smallest chunks, one at a time.
        let tiny = ReadAhead::within(MIB, 2);
        assert_eq!(
            tiny,
            ReadAhead {
                chunk_bytes: MIN_CHUNK_BYTES,
                in_flight: 1
            }
        );
        assert_eq!(ReadAhead::within(0, 0).chunk_bytes, MIN_CHUNK_BYTES);
    }

    #[test]
    fn chunks_cover_each_range_in_order() {
        let range = |url: &str, start, end| ObjectRange {
            url: url.into(),
            start,
            end,
            crc32: None,
        };
        let chunks = chunks_of(&[range("a", 10, 35), range("b", 0, 10)], 10);
        let spans: Vec<_> = chunks
            .iter()
            .map(|c| {
                let s = &c.segments[0];
                (c.url.as_str(), c.start, c.end, c.segments.len(), s.last)
            })
            .collect();
        assert_eq!(
            spans,
            vec![
                ("a", 10, 20, 1, false),
                ("a", 20, 30, 1, false),
                ("a", 30, 35, 1, true),
                ("b", 0, 10, 1, true)
            ]
        );
    }

    #[test]
    fn adjacent_ranges_of_one_object_share_their_gets() {
        let range = |url: &str, start, end| ObjectRange {
            url: url.into(),
            start,
            end,
            crc32: None,
        };
        // Partitions 0..10, 10..14 and 14..30 of object a, then b, then a
        // range of a that does not follow: three spans.
        let ranges = [
            range("a", 0, 10),
            range("a", 10, 14),
            range("a", 14, 30),
            range("b", 0, 5),
            range("a", 40, 50),
        ];
        let chunks = chunks_of(&ranges, 16);
        let gets: Vec<_> = chunks
            .iter()
            .map(|c| (c.url.as_str(), c.start, c.end))
            .collect();
        assert_eq!(
            gets,
            vec![("a", 0, 16), ("a", 16, 30), ("b", 0, 5), ("a", 40, 50)]
        );
        let segments: Vec<_> = chunks[0]
            .segments
            .iter()
            .map(|s| (s.range_idx, s.start, s.end, s.last))
            .collect();
        assert_eq!(
            segments,
            vec![(0, 0, 10, true), (1, 10, 14, true), (2, 14, 16, false)]
        );
        let segments: Vec<_> = chunks[1]
            .segments
            .iter()
            .map(|s| (s.range_idx, s.start, s.end, s.last))
            .collect();
        assert_eq!(segments, vec![(2, 16, 30, true)]);
        // Every byte of every range is in exactly one segment, in order.
        let covered: Vec<(usize, u64)> = chunks
            .iter()
            .flat_map(|c| c.segments.iter())
            .flat_map(|s| (s.start..s.end).map(move |b| (s.range_idx, b)))
            .collect();
        let expected: Vec<(usize, u64)> = ranges
            .iter()
            .enumerate()
            .flat_map(|(i, r)| (r.start..r.end).map(move |b| (i, b)))
            .collect();
        assert_eq!(covered, expected);
    }
}
