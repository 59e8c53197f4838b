//! Skipping whole files by the per-file statistics in a Delta log.
//!
//! Writers log, for each data file, its row count and each column's
//! minimum, maximum and null count (`stats` of an `add` action). A filter
//! on data columns is turned into DataFusion's `PruningPredicate`, which
//! asks [`LoggedFileStatistics`] for those values and keeps only the files
//! that may hold a matching row.
//!
//! [`footer_stats`] writes the same statistics for the files Squall
//! commits, from each file's Parquet footer: its row count, and the
//! minimum, maximum and null count of the columns whose bounds are used.
//!
//! Only statistics whose meaning is exact are used: integer columns, dates,
//! and decimals of up to 15 digits (JSON numbers are read as doubles, which
//! hold 15 digits exactly). Strings (writers truncate them) and timestamps
//! (logged to the millisecond, stored to the microsecond) are never used to
//! skip a file, nor are floats (NaN is outside any minimum and maximum).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, ScalarValue};
use datafusion::parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::file::metadata::ParquetMetaData;
use serde_json::Value;

/// One file's logged statistics, top-level columns only.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoggedStats {
    pub rows: Option<u64>,
    min: HashMap<String, Value>,
    max: HashMap<String, Value>,
    nulls: HashMap<String, u64>,
}

impl LoggedStats {
    /// Reads an `add` action's `stats` JSON; `None` when it is not JSON.
    pub(crate) fn parse(json: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(json).ok()?;
        let object = |key: &str| -> HashMap<String, Value> {
            value
                .get(key)
                .and_then(Value::as_object)
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        Some(Self {
            rows: value.get("numRecords").and_then(Value::as_u64),
            min: object("minValues"),
            max: object("maxValues"),
            nulls: object("nullCount")
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.as_u64()?)))
                .collect(),
        })
    }
}

/// Whether a column's logged minimum and maximum are exact bounds Squall
/// may skip files by.
fn skippable(data_type: &DataType) -> bool {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Date32 => true,
        DataType::Decimal128(precision, _) => *precision <= 15,
        _ => false,
    }
}

/// A logged bound as a value of `data_type`; `None` when it does not read
/// as one (then the file is not skipped by it).
fn bound(value: &Value, data_type: &DataType) -> Option<ScalarValue> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    ScalarValue::try_from_string(text, data_type).ok()
}

/// The logged statistics of a scan's files (in order; `None` for a file
/// that has none), as DataFusion's pruning asks for them.
pub(crate) struct LoggedFileStatistics<'a> {
    pub files: Vec<Option<&'a LoggedStats>>,
    /// The files' columns.
    pub schema: SchemaRef,
}

impl LoggedFileStatistics<'_> {
    fn bounds(
        &self,
        column: &Column,
        pick: impl Fn(&LoggedStats) -> &HashMap<String, Value>,
    ) -> Option<ArrayRef> {
        let field = self.schema.field_with_name(&column.name).ok()?;
        if !skippable(field.data_type()) {
            return None;
        }
        let null = ScalarValue::try_from(field.data_type()).ok()?;
        let values = self.files.iter().map(|stats| {
            stats
                .and_then(|s| pick(s).get(&column.name))
                .and_then(|v| bound(v, field.data_type()))
                .unwrap_or_else(|| null.clone())
        });
        ScalarValue::iter_to_array(values).ok()
    }
}

impl PruningStatistics for LoggedFileStatistics<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, |s| &s.min)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, |s| &s.max)
    }

    fn num_containers(&self) -> usize {
        self.files.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        self.schema.field_with_name(&column.name).ok()?;
        let counts: UInt64Array = self
            .files
            .iter()
            .map(|s| s.and_then(|s| s.nulls.get(&column.name).copied()))
            .collect();
        Some(Arc::new(counts))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        let rows: UInt64Array = self.files.iter().map(|s| s.and_then(|s| s.rows)).collect();
        Some(Arc::new(rows))
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

/// The `stats` JSON of a Parquet file from its footer: `numRecords`, and
/// for each column whose bounds Squall uses, its minimum, maximum and null
/// count over the file's row groups. A column is left out when a row group
/// with values has no bound in the footer.
pub(crate) fn footer_stats(metadata: &ParquetMetaData) -> Result<String, String> {
    let file = metadata.file_metadata();
    let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
        .map_err(|e| e.to_string())?;
    let row_groups = metadata.row_groups();
    let mut min = serde_json::Map::new();
    let mut max = serde_json::Map::new();
    let mut nulls = serde_json::Map::new();
    for field in schema.fields() {
        if !skippable(field.data_type()) {
            continue;
        }
        let Ok(converter) =
            StatisticsConverter::try_new(field.name(), &schema, file.schema_descr())
        else {
            continue;
        };
        let (Ok(mins), Ok(maxes), Ok(null_counts)) = (
            converter.row_group_mins(row_groups),
            converter.row_group_maxes(row_groups),
            converter.row_group_null_counts(row_groups),
        ) else {
            continue;
        };
        let mut bounds: Option<(ScalarValue, ScalarValue)> = None;
        let mut exact = true;
        let mut null_total = 0u64;
        for (i, group) in row_groups.iter().enumerate() {
            let group_nulls = null_counts.is_valid(i).then(|| null_counts.value(i));
            null_total += group_nulls.unwrap_or(0);
            let all_null = group_nulls == Some(group.num_rows().max(0) as u64);
            let (Ok(lo), Ok(hi)) = (
                ScalarValue::try_from_array(&mins, i),
                ScalarValue::try_from_array(&maxes, i),
            ) else {
                exact = false;
                break;
            };
            if lo.is_null() || hi.is_null() || group_nulls.is_none() {
                if all_null {
                    continue;
                }
                exact = false;
                break;
            }
            bounds = Some(match bounds {
                None => (lo, hi),
                Some((a, b)) => (if lo < a { lo } else { a }, if hi > b { hi } else { b }),
            });
        }
        if !exact {
            continue;
        }
        nulls.insert(field.name().clone(), Value::from(null_total));
        if let Some((lo, hi)) = bounds
            && let (Some(lo), Some(hi)) = (json_of(&lo), json_of(&hi))
        {
            min.insert(field.name().clone(), lo);
            max.insert(field.name().clone(), hi);
        }
    }
    Ok(serde_json::json!({
        "numRecords": file.num_rows().max(0),
        "minValues": min,
        "maxValues": max,
        "nullCount": nulls,
    })
    .to_string())
}

/// A bound as the log writes it: numbers as JSON numbers, dates as text.
fn json_of(value: &ScalarValue) -> Option<Value> {
    match value {
        ScalarValue::Date32(_) => Some(Value::String(value.to_string())),
        _ => serde_json::from_str::<Value>(&value.to_string())
            .ok()
            .filter(Value::is_number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{Field, Schema};

    #[test]
    fn reads_logged_bounds_of_exact_types_only() {
        let stats = LoggedStats::parse(
            r#"{"numRecords":10,"minValues":{"id":5,"name":"a","day":"2026-01-02"},
                "maxValues":{"id":9,"name":"z","day":"2026-02-01"},"nullCount":{"id":1}}"#,
        )
        .unwrap();
        assert_eq!(stats.rows, Some(10));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
        ]));
        let files = LoggedFileStatistics {
            files: vec![Some(&stats), None],
            schema,
        };
        let min = files.min_values(&Column::from_name("id")).unwrap();
        let min = min.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(min.value(0), 5);
        assert!(min.is_null(1), "a file without statistics has no bound");
        assert!(
            files.max_values(&Column::from_name("name")).is_none(),
            "strings are truncated"
        );
        assert!(files.max_values(&Column::from_name("day")).is_some());
        assert!(LoggedStats::parse("not json").is_none());
    }
}
