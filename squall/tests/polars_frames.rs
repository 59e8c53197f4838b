//! The `polars` feature: results of distributed queries as Polars
//! DataFrames hold, cell for cell, what single-node DataFusion gives on the
//! same TPC-H files, for every type a result commonly has (integers of
//! every width, floats, decimals, strings, booleans, dates, timestamps,
//! nulls, dictionary-encoded columns); an empty result keeps its columns;
//! a type Polars lacks is an error naming the column.

#![cfg(feature = "polars")]

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Int32Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::error::DataFusionError;
use datafusion::prelude::*;
use squall::polars_core::prelude::{
    AnyValue, DataFrame as PolarsDataFrame, TimeUnit as PlTimeUnit,
};
use squall::{CollectPolars, PolarsConversionError};

mod common;

use common::tpch;

const TABLES: [&str; 4] = ["lineitem", "orders", "customer", "nation"];

/// A Squall session of two in-process workers with the TPC-H tables.
async fn squall_session() -> squall::Session {
    let session = squall::Session::builder()
        .workers(2)
        .target_task_bytes(256 * 1024)
        .build()
        .unwrap();
    for table in TABLES {
        session
            .register_table(table, &format!("{}/{table}/", tpch()))
            .await
            .unwrap();
    }
    session
}

/// Single-node DataFusion with the same tables: the reference.
async fn reference(sql: &str) -> Vec<RecordBatch> {
    let single = SessionContext::new();
    for table in TABLES {
        single
            .register_parquet(
                table,
                &format!("{}/{table}/", tpch()),
                ParquetReadOptions::default(),
            )
            .await
            .unwrap();
    }
    single.sql(sql).await.unwrap().collect().await.unwrap()
}

/// One value, in a form both Arrow and Polars cells map to exactly.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Text(String),
    /// Days since the epoch.
    Date(i32),
    /// Nanoseconds since the epoch.
    Instant(i128),
    /// Unscaled value and scale.
    Decimal(i128, usize),
}

fn same(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        // Sums over differently cut inputs round differently.
        (Cell::Float(x), Cell::Float(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
        _ => a == b,
    }
}

fn nanos_per(unit: &TimeUnit) -> i128 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// The cells of an Arrow column.
fn arrow_cells(array: &ArrayRef) -> Vec<Cell> {
    let array = match array.data_type() {
        DataType::Dictionary(_, values) => cast(array, values).unwrap(),
        _ => array.clone(),
    };
    (0..array.len())
        .map(|i| {
            if array.is_null(i) {
                return Cell::Null;
            }
            match array.data_type() {
                DataType::Boolean => Cell::Bool(array.as_boolean().value(i)),
                DataType::Int8 => Cell::Int(array.as_primitive::<Int8Type>().value(i).into()),
                DataType::Int16 => Cell::Int(array.as_primitive::<Int16Type>().value(i).into()),
                DataType::Int32 => Cell::Int(array.as_primitive::<Int32Type>().value(i).into()),
                DataType::Int64 => Cell::Int(array.as_primitive::<Int64Type>().value(i).into()),
                DataType::UInt8 => Cell::Int(array.as_primitive::<UInt8Type>().value(i).into()),
                DataType::UInt16 => Cell::Int(array.as_primitive::<UInt16Type>().value(i).into()),
                DataType::UInt32 => Cell::Int(array.as_primitive::<UInt32Type>().value(i).into()),
                DataType::UInt64 => Cell::Int(array.as_primitive::<UInt64Type>().value(i).into()),
                DataType::Float32 => {
                    Cell::Float(array.as_primitive::<Float32Type>().value(i).into())
                }
                DataType::Float64 => Cell::Float(array.as_primitive::<Float64Type>().value(i)),
                DataType::Decimal128(_, scale) => Cell::Decimal(
                    array.as_primitive::<Decimal128Type>().value(i),
                    *scale as usize,
                ),
                DataType::Utf8 => Cell::Text(array.as_string::<i32>().value(i).into()),
                DataType::LargeUtf8 => Cell::Text(array.as_string::<i64>().value(i).into()),
                DataType::Utf8View => Cell::Text(array.as_string_view().value(i).into()),
                DataType::Date32 => Cell::Date(array.as_primitive::<Date32Type>().value(i)),
                DataType::Timestamp(unit, _) => {
                    let raw = match unit {
                        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(i),
                        TimeUnit::Millisecond => {
                            array.as_primitive::<TimestampMillisecondType>().value(i)
                        }
                        TimeUnit::Microsecond => {
                            array.as_primitive::<TimestampMicrosecondType>().value(i)
                        }
                        TimeUnit::Nanosecond => {
                            array.as_primitive::<TimestampNanosecondType>().value(i)
                        }
                    };
                    Cell::Instant(i128::from(raw) * nanos_per(unit))
                }
                other => panic!("the test reads no {other} column"),
            }
        })
        .collect()
}

/// The cells of a Polars column.
fn polars_cells(frame: &PolarsDataFrame, index: usize) -> Vec<Cell> {
    let column = &frame.columns()[index];
    (0..column.len())
        .map(|i| match column.get(i).unwrap() {
            AnyValue::Null => Cell::Null,
            AnyValue::Boolean(v) => Cell::Bool(v),
            AnyValue::Int8(v) => Cell::Int(v.into()),
            AnyValue::Int16(v) => Cell::Int(v.into()),
            AnyValue::Int32(v) => Cell::Int(v.into()),
            AnyValue::Int64(v) => Cell::Int(v.into()),
            AnyValue::UInt8(v) => Cell::Int(v.into()),
            AnyValue::UInt16(v) => Cell::Int(v.into()),
            AnyValue::UInt32(v) => Cell::Int(v.into()),
            AnyValue::UInt64(v) => Cell::Int(v.into()),
            AnyValue::Float32(v) => Cell::Float(v.into()),
            AnyValue::Float64(v) => Cell::Float(v),
            AnyValue::Decimal(v, _precision, scale) => Cell::Decimal(v, scale),
            AnyValue::String(v) => Cell::Text(v.into()),
            AnyValue::StringOwned(v) => Cell::Text(v.to_string()),
            AnyValue::Date(v) => Cell::Date(v),
            AnyValue::Datetime(v, unit, _) | AnyValue::DatetimeOwned(v, unit, _) => {
                let per = match unit {
                    PlTimeUnit::Milliseconds => 1_000_000,
                    PlTimeUnit::Microseconds => 1_000,
                    PlTimeUnit::Nanoseconds => 1,
                };
                Cell::Instant(i128::from(v) * per)
            }
            other => panic!("the test reads no {other:?} cell"),
        })
        .collect()
}

/// Asserts that `frame` holds `expected`'s columns, names and cells.
fn assert_frame_matches(frame: &PolarsDataFrame, expected: &[RecordBatch], what: &str) {
    let schema = expected[0].schema();
    let names: Vec<&str> = frame
        .get_column_names()
        .iter()
        .map(|n| n.as_str())
        .collect();
    let expected_names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, expected_names, "{what}: column names");
    let rows: usize = expected.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(frame.height(), rows, "{what}: rows");
    assert!(rows > 0, "{what}: the reference has rows");
    for (index, name) in expected_names.iter().enumerate() {
        let want: Vec<Cell> = expected
            .iter()
            .flat_map(|b| arrow_cells(b.column(index)))
            .collect();
        let got = polars_cells(frame, index);
        for (row, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                same(g, w),
                "{what}: column {name}, row {row}: {g:?} != {w:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_results_as_polars_frames_hold_what_single_node_datafusion_gives() {
    let session = squall_session().await;
    let queries = [
        (
            "TPC-H Q1",
            "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, \
             sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price, \
             avg(l_discount) AS avg_disc, count(*) AS count_order \
             FROM lineitem WHERE l_shipdate <= DATE '1998-09-02' \
             GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus",
        ),
        (
            "TPC-H Q3",
            "SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, \
             o_orderdate, o_shippriority FROM customer, orders, lineitem \
             WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey \
             AND l_orderkey = o_orderkey AND o_orderdate < DATE '1995-03-15' \
             AND l_shipdate > DATE '1995-03-15' \
             GROUP BY l_orderkey, o_orderdate, o_shippriority \
             ORDER BY revenue DESC, o_orderdate, l_orderkey LIMIT 10",
        ),
        (
            "every common type",
            "SELECT o_orderkey, \
             CAST(o_orderkey % 100 AS TINYINT) AS i8, \
             CAST(o_custkey % 1000 AS SMALLINT) AS i16, \
             CAST(o_custkey AS INT) AS i32, \
             CAST(o_orderkey % 200 AS TINYINT UNSIGNED) AS u8, \
             CAST(o_custkey AS SMALLINT UNSIGNED) AS u16, \
             CAST(o_orderkey AS INT UNSIGNED) AS u32, \
             CAST(o_orderkey AS BIGINT UNSIGNED) AS u64, \
             CAST(o_totalprice AS REAL) AS f32, \
             CAST(o_totalprice AS DOUBLE) AS f64, \
             o_totalprice, \
             o_totalprice > 100000 AS big, \
             CASE WHEN o_orderkey % 7 = 0 THEN NULL ELSE o_comment END AS comment, \
             n_name, \
             o_orderdate, \
             CAST(o_orderdate AS TIMESTAMP) AS ordered_at \
             FROM orders JOIN customer ON o_custkey = c_custkey \
             JOIN nation ON c_nationkey = n_nationkey \
             ORDER BY o_orderkey",
        ),
    ];
    for (what, sql) in queries {
        let frame = session
            .sql(sql)
            .await
            .unwrap()
            .collect_polars()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_frame_matches(&frame, &reference(sql).await, what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_result_keeps_its_columns_and_types() {
    let session = squall_session().await;
    let frame = session
        .sql("SELECT o_orderkey, o_orderdate, o_comment FROM orders WHERE o_orderkey < 0")
        .await
        .unwrap()
        .collect_polars()
        .await
        .unwrap();
    assert_eq!(frame.shape(), (0, 3));
    let types: Vec<String> = frame.dtypes().iter().map(|t| t.to_string()).collect();
    assert_eq!(types, ["i64", "date", "str"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_polars_lacks_is_an_error_naming_the_column() {
    let session = squall_session().await;
    let error = session
        .sql("SELECT 1 AS n, INTERVAL '1 month' AS billing_period")
        .await
        .unwrap()
        .collect_polars()
        .await
        .unwrap_err();
    let DataFusionError::External(inner) = &error else {
        panic!("not a conversion error: {error}");
    };
    let conversion = inner
        .downcast_ref::<PolarsConversionError>()
        .unwrap_or_else(|| panic!("not a conversion error: {error}"));
    assert_eq!(conversion.column, "billing_period");
    assert!(error.to_string().contains("\"billing_period\""), "{error}");
}

#[test]
fn dictionary_columns_become_plain_polars_columns_and_batches_become_chunks() {
    let keys = Int32Array::from(vec![Some(0), Some(1), None, Some(0)]);
    let values = Arc::new(StringArray::from(vec!["FRANCE", "PERU"]));
    let dictionary: ArrayRef = Arc::new(DictionaryArray::try_new(keys, values).unwrap());
    let schema = Arc::new(Schema::new(vec![Field::new(
        "country",
        dictionary.data_type().clone(),
        true,
    )]));
    let batches = vec![
        RecordBatch::try_new(schema.clone(), vec![dictionary.clone()]).unwrap(),
        RecordBatch::try_new(schema.clone(), vec![dictionary.slice(1, 2)]).unwrap(),
    ];
    let frame = squall::record_batches_to_polars(&schema, &batches).unwrap();
    assert_eq!(frame.height(), 6);
    assert_eq!(frame.columns()[0].dtype().to_string(), "str");
    let text = |s: &str| Cell::Text(s.into());
    assert_eq!(
        polars_cells(&frame, 0),
        [
            text("FRANCE"),
            text("PERU"),
            Cell::Null,
            text("FRANCE"),
            text("PERU"),
            Cell::Null
        ]
    );
}
