//! A stage's estimated output, from DataFusion's statistics of the uncut
//! subtree the stage computes: shown by EXPLAIN and used by the cost model,
//! not used to size stages (see `Cutter::sizing_bytes` in `cut.rs`).
//!
//! DataFusion 55 computes statistics through a [`StatisticsContext`] walk;
//! the deprecated `ExecutionPlan::partition_statistics` answers "unknown" for
//! every operator that has moved to `statistics_from_inputs` (scans,
//! filters, joins, aggregates), so it must not be used here.
//!
//! Scans report exact rows and in-memory bytes from Parquet footers;
//! filters, joins and aggregates report DataFusion's inexact estimates.
//! Joins often know rows but not bytes: the bytes are then the rows times
//! the schema's row width (fixed-width types at their width, anything else
//! at [`VARIABLE_WIDTH_BYTES`]).

use datafusion::arrow::datatypes::Schema;
use datafusion::physical_plan::{ExecutionPlan, StatisticsArgs, StatisticsContext};

/// The bytes a value of a variable-width type (text, binary, lists) is
/// taken to take when DataFusion does not know: a short string.
pub const VARIABLE_WIDTH_BYTES: usize = 24;

/// What DataFusion estimates `plan` outputs over all its partitions:
/// `(bytes, rows)`, each `None` when unknown.
pub fn output_estimate(plan: &dyn ExecutionPlan) -> (Option<u64>, Option<u64>) {
    let Ok(stats) = StatisticsContext::new().compute(plan, &StatisticsArgs::new()) else {
        return (None, None);
    };
    let rows = stats.num_rows.get_value().map(|r| *r as u64);
    let bytes = stats
        .total_byte_size
        .get_value()
        .map(|b| *b as u64)
        .or_else(|| rows.map(|r| r.saturating_mul(row_width_bytes(&plan.schema()))));
    (bytes, rows)
}

/// The in-memory bytes of one row of `schema`, guessing variable widths.
pub fn row_width_bytes(schema: &Schema) -> u64 {
    schema
        .fields()
        .iter()
        .map(|f| {
            f.data_type()
                .primitive_width()
                .unwrap_or(VARIABLE_WIDTH_BYTES) as u64
        })
        .sum::<u64>()
        .max(1)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn scans_and_joins_have_estimates() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from((0..1000).collect::<Vec<i64>>())),
                Arc::new(StringArray::from(vec!["x"; 1000])),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        ctx.register_batch("t", batch.clone()).unwrap();
        ctx.register_batch("u", batch).unwrap();

        let scan = ctx
            .sql("SELECT k FROM t")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        assert_eq!(output_estimate(scan.as_ref()).1, Some(1000));

        let join = ctx
            .sql("SELECT t.k, u.s FROM t JOIN u ON t.k = u.k")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let (bytes, rows) = output_estimate(join.as_ref());
        let rows = rows.expect("a join of two scans has a row estimate");
        assert!(rows > 0, "{rows}");
        assert!(
            bytes.is_some_and(|b| b >= rows),
            "{bytes:?} for {rows} rows"
        );
    }

    #[test]
    fn row_width_counts_fixed_and_variable_columns() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        assert_eq!(row_width_bytes(&schema), 4 + VARIABLE_WIDTH_BYTES as u64);
    }
}
