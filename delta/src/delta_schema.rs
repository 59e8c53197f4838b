//! Between Arrow columns and a Delta table's schema.

use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit};
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::{TryFromArrow, TryIntoArrow};

/// The type a column of type `t` is cast to before it is written to a
/// Delta table, when Delta cannot hold `t` as it is: Delta has no unsigned
/// integers (each becomes the next wider signed type; 64-bit ones a
/// DECIMAL(20, 0)), its timestamps are microseconds, its dates days, its
/// smallest float 32 bits. `None`: written as it is.
pub fn delta_compatible_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::UInt8 => Some(DataType::Int16),
        DataType::UInt16 => Some(DataType::Int32),
        DataType::UInt32 => Some(DataType::Int64),
        DataType::UInt64 => Some(DataType::Decimal128(20, 0)),
        DataType::Float16 => Some(DataType::Float32),
        DataType::Date64 => Some(DataType::Date32),
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond => {
            Some(DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))
        }
        _ => None,
    }
}

/// The Delta schema of Arrow columns (after [`delta_compatible_type`]).
pub(crate) fn kernel_schema(schema: &Schema) -> Result<StructType, String> {
    StructType::try_from_arrow(schema).map_err(|e| e.to_string())
}

/// The Arrow columns of a Delta schema.
pub(crate) fn arrow_schema(schema: &StructType) -> Result<Schema, String> {
    schema.try_into_arrow().map_err(|e| e.to_string())
}

/// A schema as `name TYPE, ...`, for messages.
pub(crate) fn describe_columns(schema: &StructType) -> String {
    schema
        .fields()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;

    #[test]
    fn casts_what_delta_cannot_hold() {
        assert_eq!(delta_compatible_type(&DataType::Int64), None);
        assert_eq!(delta_compatible_type(&DataType::Utf8View), None);
        assert_eq!(
            delta_compatible_type(&DataType::UInt8),
            Some(DataType::Int16)
        );
        assert_eq!(
            delta_compatible_type(&DataType::UInt64),
            Some(DataType::Decimal128(20, 0))
        );
        assert_eq!(
            delta_compatible_type(&DataType::Timestamp(TimeUnit::Nanosecond, None)),
            Some(DataType::Timestamp(TimeUnit::Microsecond, None))
        );
    }

    #[test]
    fn round_trips_the_usual_columns() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
            Field::new("price", DataType::Decimal128(15, 2), true),
        ]);
        let delta = kernel_schema(&schema).unwrap();
        assert_eq!(
            describe_columns(&delta),
            "id long, name string, day date, price decimal(15,2)"
        );
        let back = arrow_schema(&delta).unwrap();
        assert_eq!(back.fields().len(), 4);
        assert_eq!(back.field(3).data_type(), &DataType::Decimal128(15, 2));
    }
}
