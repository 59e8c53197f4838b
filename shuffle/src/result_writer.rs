//! [`ResultWriterExec`]: writes a final-stage task's rows as one Parquet part.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use object_store::buffered::BufWriter;

use crate::error::ShuffleError;
use crate::writer::split_object_url;

/// Rows per row group of a result part: parts are read back whole by the client.
const RESULT_ROW_GROUP_ROWS: usize = 256 * 1024;
const UPLOAD_PART_BYTES: usize = 8 * 1024 * 1024;

/// Runs its input's partitions in order and writes all rows into one Parquet
/// object at the bound URL; returns one batch `rows, bytes`. The upload is
/// aborted on error, so a failed task leaves no part visible.
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
            "ResultWriterExec: stage={}, format=parquet",
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
        let stream = futures::stream::once(write_result(input, url, context));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            result_summary_schema(),
            stream,
        )))
    }
}

async fn write_result(
    input: Arc<dyn ExecutionPlan>,
    url: String,
    context: Arc<TaskContext>,
) -> DFResult<RecordBatch> {
    let (store_url, path) = split_object_url(&url)?;
    let store = context.runtime_env().object_store(&store_url)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(RESULT_ROW_GROUP_ROWS))
        .build();
    let upload = BufWriter::with_capacity(store, path, UPLOAD_PART_BYTES);
    let mut writer = AsyncArrowWriter::try_new(upload, input.schema(), Some(props))?;
    let mut rows = 0u64;
    let outcome: DFResult<()> = async {
        // Partitions run one after another so that the part keeps their order.
        for p in 0..input.output_partitioning().partition_count() {
            let mut stream = input.execute(p, Arc::clone(&context))?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch).await?;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        // Dropping the writer without close never completes the upload, so no part appears.
        drop(writer);
        return Err(e);
    }
    let bytes = writer.bytes_written() as u64;
    writer.close().await?;
    Ok(RecordBatch::try_new(
        result_summary_schema(),
        vec![
            Arc::new(UInt64Array::from(vec![rows])),
            Arc::new(UInt64Array::from(vec![bytes])),
        ],
    )?)
}
