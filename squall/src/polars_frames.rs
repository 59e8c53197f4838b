//! Results as Polars DataFrames (the optional `polars` feature): Arrow
//! record batches handed to Polars through the Arrow C Data Interface, so
//! column buffers are shared, not copied.
//!
//! This module owns only the conversion. The query runs as every other
//! does, distributed, through DataFusion's `DataFrame::collect`.

use std::future::Future;

use datafusion::arrow::array::{Array, ArrayRef, new_empty_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema, to_ffi};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use polars_core::prelude::{Column, DataFrame as PolarsDataFrame, PlSmallStr, Series};

/// A result column Polars could not take.
#[derive(Debug, thiserror::Error)]
#[error("result column {column:?} ({data_type}) cannot become a Polars column: {reason}")]
pub struct PolarsConversionError {
    /// The column's name in the result.
    pub column: String,
    /// Its Arrow type.
    pub data_type: DataType,
    /// What Arrow or Polars said.
    pub reason: String,
}

/// Builds one Polars DataFrame from record batches of one `schema`: each
/// batch becomes one chunk of every column, sharing its buffers.
///
/// Dictionary-encoded columns (partition columns, for example) are decoded
/// first; a type Polars does not know (a month-day-nano interval, for one)
/// is an error naming the column.
///
/// ```
/// use std::sync::Arc;
/// use datafusion::arrow::array::{Int64Array, StringArray};
/// use datafusion::arrow::datatypes::{DataType, Field, Schema};
/// use datafusion::arrow::record_batch::RecordBatch;
///
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("id", DataType::Int64, false),
///     Field::new("name", DataType::Utf8, true),
/// ]));
/// let batch = RecordBatch::try_new(
///     schema.clone(),
///     vec![
///         Arc::new(Int64Array::from(vec![1, 2])),
///         Arc::new(StringArray::from(vec![Some("a"), None])),
///     ],
/// )?;
/// let frame = squall::record_batches_to_polars(&schema, &[batch])?;
/// assert_eq!(frame.shape(), (2, 2));
/// assert_eq!(frame.column("name")?.null_count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn record_batches_to_polars(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<PolarsDataFrame, PolarsConversionError> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let fail = |reason: String| PolarsConversionError {
                column: field.name().clone(),
                data_type: field.data_type().clone(),
                reason,
            };
            let arrays: Vec<ArrayRef> = if batches.is_empty() {
                vec![new_empty_array(field.data_type())]
            } else {
                batches.iter().map(|b| b.column(index).clone()).collect()
            };
            let chunks = arrays
                .iter()
                .map(|array| array_to_polars(array).map_err(&fail))
                .collect::<Result<Vec<_>, _>>()?;
            Series::from_arrow_chunks(PlSmallStr::from(field.name().as_str()), chunks)
                .map(Column::from)
                .map_err(|e| fail(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    PolarsDataFrame::new(rows, columns).map_err(|e| PolarsConversionError {
        column: String::new(),
        data_type: DataType::Null,
        reason: e.to_string(),
    })
}

/// One Arrow array as a Polars array, through the C Data Interface. The
/// crate's only `unsafe` code: arrow-rs exports, Polars imports.
#[allow(unsafe_code)]
fn array_to_polars(array: &ArrayRef) -> Result<polars_core::prelude::ArrayRef, String> {
    let decoded;
    let array = match array.data_type() {
        DataType::Dictionary(_, values) => {
            decoded = cast(array, values).map_err(|e| e.to_string())?;
            &decoded
        }
        _ => array,
    };
    let (ffi_array, ffi_schema) = to_ffi(&array.to_data()).map_err(|e| e.to_string())?;
    // SAFETY: arrow-rs's `FFI_ArrowArray`/`FFI_ArrowSchema` and Polars'
    // `ArrowArray`/`ArrowSchema` are both `#[repr(C)]` images of the C Data
    // Interface's `struct ArrowArray`/`struct ArrowSchema` (the same fields
    // in the same order; `transmute` checks the sizes). Ownership moves with
    // the value: the release callbacks arrow-rs set are called once, by
    // Polars, when it drops what it imported.
    let (polars_array, polars_schema) = unsafe {
        (
            std::mem::transmute::<FFI_ArrowArray, polars_arrow::ffi::ArrowArray>(ffi_array),
            std::mem::transmute::<FFI_ArrowSchema, polars_arrow::ffi::ArrowSchema>(ffi_schema),
        )
    };
    // SAFETY: both structures were just exported by arrow-rs and are valid.
    unsafe {
        let field =
            polars_arrow::ffi::import_field_from_c(&polars_schema).map_err(|e| e.to_string())?;
        polars_arrow::ffi::import_array_from_c(polars_array, field.dtype().clone())
            .map_err(|e| e.to_string())
    }
}

/// Runs a DataFrame as a distributed query and returns its result as one
/// Polars DataFrame (the optional `polars` feature).
///
/// The type is Polars' own: `polars::prelude::DataFrame` of the same Polars
/// release (0.55) is this very type, and [`polars_core`] is re-exported for
/// programs that do not depend on Polars themselves.
pub trait CollectPolars {
    /// [`DataFrame::collect`](datafusion::dataframe::DataFrame::collect),
    /// distributed, then [`record_batches_to_polars`]. A column Polars
    /// cannot take fails as a [`DataFusionError::External`] holding a
    /// [`PolarsConversionError`].
    ///
    /// ```
    /// use squall::CollectPolars;
    /// # #[tokio::main(flavor = "multi_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let session = squall::Session::builder().workers(2).build()?;
    /// let frame = session
    ///     .sql("SELECT value % 3 AS k, count(*) AS n FROM range(1000) GROUP BY 1 ORDER BY 1")
    ///     .await?
    ///     .collect_polars()
    ///     .await?;
    /// assert_eq!(frame.shape(), (3, 2));
    /// # Ok(())
    /// # }
    /// ```
    fn collect_polars(
        self,
    ) -> impl Future<Output = datafusion::error::Result<PolarsDataFrame>> + Send;
}

impl CollectPolars for datafusion::dataframe::DataFrame {
    async fn collect_polars(self) -> datafusion::error::Result<PolarsDataFrame> {
        let schema: SchemaRef = self.schema().inner().clone();
        let batches = self.collect().await?;
        record_batches_to_polars(&schema, &batches)
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }
}
