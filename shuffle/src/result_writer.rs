//! [`ResultWriterExec`]: writes a final-stage task's rows as one result part.
//!
//! A part is one Arrow IPC stream (LZ4-compressed), so every Arrow type a
//! query produces reaches the client unchanged (intervals, Float16,
//! run-end-encoded, unions, negative-scale decimals: types Parquet cannot
//! hold). Parts are read back with the exchange reader.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::CompressionType;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};

use crate::wire_types::{to_wire, wire_schema};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use crate::error::ShuffleError;
use crate::writer::split_object_url;

const UPLOAD_PART_BYTES: usize = 8 * 1024 * 1024;
/// Upload parts in flight at once (object_store's default is 8).
const UPLOAD_PARTS_IN_FLIGHT: usize = 2;

/// Runs its input's partitions in order and writes all rows into one Arrow
/// IPC stream object at the bound URL; returns one batch `rows, bytes` (the
/// object's size). The upload is
/// aborted on error, so a failed task leaves no part visible. Its buffers
/// (the encoded bytes not yet handed to the upload, and the upload's own
/// buffer and parts in flight) are reserved in the task's memory pool when
/// it has room; a writer cannot spill, so a full pool does not fail it.
#[derive(Debug)]
pub struct ResultWriterExec {
    input: Arc<dyn ExecutionPlan>,
    stage_id: usize,
    output_url: Option<String>,
    properties: Arc<PlanProperties>,
}

impl ResultWriterExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, stage_id: usize) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(result_summary_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self {
            input,
            stage_id,
            output_url: None,
            properties: Arc::new(properties),
        }
    }

    /// The same writer, writing to `url`.
    pub fn with_output_url(&self, url: impl Into<String>) -> Self {
        Self {
            input: Arc::clone(&self.input),
            stage_id: self.stage_id,
            output_url: Some(url.into()),
            properties: Arc::clone(&self.properties),
        }
    }

    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
    pub fn stage_id(&self) -> usize {
        self.stage_id
    }
}

/// Schema of the writer's one output batch.
pub fn result_summary_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("rows", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
    ]))
}

/// Reads `(rows, bytes)` back from the writer's output batch.
pub fn result_summary_from_batch(batch: &RecordBatch) -> Option<(u64, u64)> {
    let rows = batch.column(0).as_any().downcast_ref::<UInt64Array>()?;
    let bytes = batch.column(1).as_any().downcast_ref::<UInt64Array>()?;
    (batch.num_rows() == 1).then(|| (rows.value(0), bytes.value(0)))
}

impl DisplayAs for ResultWriterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ResultWriterExec: stage={}, format=arrow-ipc",
            self.stage_id
        )
    }
}

impl ExecutionPlan for ResultWriterExec {
    fn name(&self) -> &str {
        "ResultWriterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("ResultWriterExec takes one child".into()))?;
        let mut new = Self::new(input, self.stage_id);
        new.output_url = self.output_url.clone();
        Ok(Arc::new(new))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "ResultWriterExec has one partition, asked for {partition}"
            )));
        }
        let url = self.output_url.clone().ok_or(ShuffleError::Unbound {
            operator: "ResultWriterExec",
            stage: self.stage_id,
        })?;
        let input = Arc::clone(&self.input);
        let stream = futures::stream::once(write_result(input, url, self.stage_id, context));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            result_summary_schema(),
            stream,
        )))
    }
}

async fn write_result(
    input: Arc<dyn ExecutionPlan>,
    url: String,
    stage_id: usize,
    context: Arc<TaskContext>,
) -> DFResult<RecordBatch> {
    let reservation = MemoryConsumer::new(format!("ResultWriterExec[stage={stage_id}]"))
        .register(context.memory_pool());
    // What the upload may hold of what it was handed: its buffer of one
    // part and the parts in flight.
    let upload_holds = |handed: u64| {
        handed.min(((UPLOAD_PARTS_IN_FLIGHT + 1) * UPLOAD_PART_BYTES) as u64) as usize
    };
    let (store_url, path) = split_object_url(&url)?;
    let store = context.runtime_env().object_store(&store_url)?;
    let ipc_err = |e: datafusion::arrow::error::ArrowError| ShuffleError::Ipc {
        url: url.clone(),
        reason: e.to_string(),
    };
    let upload_err = |e: object_store::Error| ShuffleError::Ipc {
        url: url.clone(),
        reason: format!("upload failed: {e}"),
    };
    let options = IpcWriteOptions::default()
        .try_with_compression(Some(CompressionType::LZ4_FRAME))
        .map_err(ipc_err)?;
    // Nothing half-written stays visible: a failed upload is aborted here;
    // one dropped unfinished (a failed completion, a cancelled task) by the
    // store (`squall_connectors::upload_guard`).
    let mut upload = BufWriter::with_capacity(store, path, UPLOAD_PART_BYTES)
        .with_max_concurrency(UPLOAD_PARTS_IN_FLIGHT);
    let wire = wire_schema(&input.schema());
    let mut writer =
        StreamWriter::try_new_with_options(Vec::new(), &wire, options).map_err(ipc_err)?;
    let mut rows = 0u64;
    let mut bytes = 0u64;
    let outcome: DFResult<()> = async {
        // Partitions run one after another so that the part keeps their order.
        for p in 0..input.output_partitioning().partition_count() {
            let mut stream = input.execute(p, Arc::clone(&context))?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer
                    .write(&to_wire(batch, &wire).map_err(ipc_err)?)
                    .map_err(ipc_err)?;
                // Counted where the pool has room; a result cannot spill, so
                // a full pool (held by a sort still emitting its rows) does
                // not fail it.
                if reservation
                    .try_resize(writer.get_ref().len() + upload_holds(bytes))
                    .is_err()
                {
                    log::debug!(
                        "stage {stage_id} result writer: memory pool full, writing unreserved"
                    );
                }
                if writer.get_ref().len() >= UPLOAD_PART_BYTES {
                    let chunk = std::mem::take(writer.get_mut());
                    bytes += chunk.len() as u64;
                    upload.put(Bytes::from(chunk)).await.map_err(upload_err)?;
                }
            }
        }
        writer.finish().map_err(ipc_err)?;
        let tail = std::mem::take(writer.get_mut());
        bytes += tail.len() as u64;
        upload.put(Bytes::from(tail)).await.map_err(upload_err)?;
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        let _ = upload.abort().await;
        return Err(e);
    }
    upload.shutdown().await.map_err(|e| ShuffleError::Ipc {
        url: url.clone(),
        reason: format!("upload failed: {e}"),
    })?;
    Ok(RecordBatch::try_new(
        result_summary_schema(),
        vec![
            Arc::new(UInt64Array::from(vec![rows])),
            Arc::new(UInt64Array::from(vec![bytes])),
        ],
    )?)
}
