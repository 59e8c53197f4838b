//! Null partition values of file sinks, written as Hive writes them.
//!
//! DataFusion's hive writer (`COPY ... PARTITIONED BY (k)`, `INSERT INTO` a
//! partitioned listing table) names each folder after the value's text and
//! has no null: a null number lands in `k=0/`, a null date in
//! `k=1970-01-01/`, a null string in `k=/` — rows silently given another
//! key. Before cutting, every file sink's partition columns are projected
//! as text with null as `__HIVE_DEFAULT_PARTITION__`, the folder name Hive,
//! Spark, Trino, DuckDB and delta-rs read as null, and Squall too
//! (`squall_connectors::null_partitions`). The writer takes the folder
//! names from the rows' text and drops the partition columns from the
//! files, so nothing else about the written files changes.
//!
//! Columns of types DataFusion's writer refuses are left alone, for it to
//! refuse them.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, case, cast, is_null, lit};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{ExecutionPlan, replace_children_if_necessary};
use squall_connectors::null_partitions::HIVE_NULL_PARTITION;
use squall_connectors::sink_staging::file_sink_config;

use crate::error::Result;

/// `plan` with the partition columns of its file sinks written as text,
/// null as `__HIVE_DEFAULT_PARTITION__` (see the module docs).
pub fn null_partition_folders(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    Ok(plan
        .transform_up(|node| {
            let Some(sink) = node.downcast_ref::<DataSinkExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(config) = file_sink_config(&node) else {
                return Ok(Transformed::no(node));
            };
            let input = Arc::clone(sink.input());
            let schema = input.schema();
            let mut changed = false;
            let exprs = schema
                .fields()
                .iter()
                .enumerate()
                .map(|(index, field)| {
                    let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(field.name(), index));
                    let partition = config
                        .table_partition_cols
                        .iter()
                        .any(|(name, _)| name == field.name());
                    if !partition || !writes_as_text(field.data_type()) {
                        return Ok((column, field.name().clone()));
                    }
                    changed = true;
                    let text = cast(Arc::clone(&column), &schema, DataType::Utf8)?;
                    let folder = case(
                        None,
                        vec![(is_null(column)?, lit(HIVE_NULL_PARTITION))],
                        Some(text),
                    )?;
                    Ok((folder, field.name().clone()))
                })
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            if !changed {
                return Ok(Transformed::no(node));
            }
            // The projection goes below DataFusion's gather of the sink's
            // input, which the cut replaces with tasks of their own.
            let input = match sink.input().downcast_ref::<CoalescePartitionsExec>() {
                Some(gather) if gather.fetch().is_none() => {
                    let projected =
                        Arc::new(ProjectionExec::try_new(exprs, Arc::clone(gather.input()))?);
                    Arc::new(CoalescePartitionsExec::new(projected)) as Arc<dyn ExecutionPlan>
                }
                _ => Arc::new(ProjectionExec::try_new(exprs, input)?),
            };
            Ok(Transformed::yes(replace_children_if_necessary(
                node,
                vec![input],
            )?))
        })?
        .data)
}

/// True for the types DataFusion's hive writer names folders after.
fn writes_as_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Boolean
        | DataType::Date32
        | DataType::Date64
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64 => true,
        DataType::Dictionary(_, values) => writes_as_text(values),
        _ => false,
    }
}
