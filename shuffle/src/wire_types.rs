//! Arrow types Arrow IPC cannot write, carried as types it can.
//!
//! Exchange objects and result parts are Arrow IPC streams. arrow-rs cannot
//! write a dictionary whose values are themselves a dictionary
//! (`Dictionary(Int32, Dictionary(UInt32, Utf8))`, which DataFusion builds
//! from `arrow_cast`). Such a column travels with its inner dictionary
//! unpacked (`Dictionary(Int32, Utf8)`: the same keys, the values spelled
//! out), and the reader, which knows the planned type, packs it again. Other
//! columns travel as they are; a batch with none of these types is not
//! touched.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

/// The type a column of `data_type` travels as.
fn wire_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Dictionary(key, value) => {
            let mut value = value.as_ref();
            while let DataType::Dictionary(_, inner) = value {
                value = inner.as_ref();
            }
            DataType::Dictionary(key.clone(), Box::new(value.clone()))
        }
        other => other.clone(),
    }
}

/// True when some column of `schema` cannot travel as it is.
pub fn needs_wire_types(schema: &Schema) -> bool {
    schema
        .fields()
        .iter()
        .any(|f| wire_type(f.data_type()) != *f.data_type())
}

/// The schema batches of `schema` travel with.
pub fn wire_schema(schema: &SchemaRef) -> SchemaRef {
    if !needs_wire_types(schema) {
        return Arc::clone(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(wire_type(f.data_type())))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` in the types of `wire` (from [`wire_schema`] of its schema).
pub fn to_wire(batch: RecordBatch, wire: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if Arc::ptr_eq(&batch.schema(), wire) || batch.schema() == *wire {
        return Ok(batch);
    }
    let columns = convert(batch.columns(), wire)?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(wire), columns, &options)
}

/// Columns read from the wire, in the types of `planned`.
pub fn from_wire(columns: &[ArrayRef], planned: &SchemaRef) -> Result<Vec<ArrayRef>, ArrowError> {
    convert(columns, planned)
}

fn convert(columns: &[ArrayRef], schema: &SchemaRef) -> Result<Vec<ArrayRef>, ArrowError> {
    columns
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                cast(column, field.data_type())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, DictionaryArray, StringArray};
    use datafusion::arrow::datatypes::{Int32Type, UInt32Type};

    #[test]
    fn a_dictionary_of_dictionaries_travels_unpacked_and_comes_back() {
        let inner: DictionaryArray<UInt32Type> =
            vec!["foo", "bar", "foo", "baz"].into_iter().collect();
        let planned_type = DataType::Dictionary(
            Box::new(DataType::Int32),
            Box::new(inner.data_type().clone()),
        );
        let column = cast(&inner, &planned_type).unwrap();
        let planned = Arc::new(Schema::new(vec![Field::new("d", planned_type, true)]));
        let batch = RecordBatch::try_new(Arc::clone(&planned), vec![column]).unwrap();

        let wire = wire_schema(&planned);
        assert_eq!(
            wire.field(0).data_type(),
            &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        );
        let sent = to_wire(batch.clone(), &wire).unwrap();
        let back = from_wire(sent.columns(), &planned).unwrap();
        assert_eq!(back[0].data_type(), planned.field(0).data_type());
        let as_text = |a: &ArrayRef| {
            let s = cast(a, &DataType::Utf8).unwrap();
            let s = s.as_any().downcast_ref::<StringArray>().unwrap().clone();
            s.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>()
        };
        assert_eq!(as_text(&back[0]), as_text(batch.column(0)));
        let _: &DictionaryArray<Int32Type> = back[0].as_any().downcast_ref().unwrap();
    }

    #[test]
    fn other_schemas_are_untouched() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "d",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        )]));
        assert!(!needs_wire_types(&schema));
        assert!(Arc::ptr_eq(&wire_schema(&schema), &schema));
    }
}
