//! Recursive CTEs on the wire: `RecursiveQueryExec` and its `WorkTableExec`.
//!
//! datafusion-proto 55 has no encoding for either. The two share a work
//! table in memory, so they must run in the same task; the planner keeps a
//! whole recursive query in one task (see `planner::cut`). Decoding builds
//! the pair anew with `RecursiveQueryExec::try_new`, which links the
//! recursive term's `WorkTableExec` to a fresh work table.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::work_table::WorkTableExec;
use datafusion_proto::protobuf;

/// A `RecursiveQueryExec`; its inputs are the static and the recursive term.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RecursiveNode {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub schema: Option<protobuf::Schema>,
    #[prost(bool, tag = "3")]
    pub is_distinct: bool,
}

/// A `WorkTableExec`: the schema of its work table's rows and the columns
/// it reads of them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkTableNode {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub schema: Option<protobuf::Schema>,
    #[prost(bool, tag = "3")]
    pub projected: bool,
    #[prost(uint64, repeated, tag = "4")]
    pub projection: Vec<u64>,
}

fn codec_err(msg: impl Into<String>) -> DataFusionError {
    DataFusionError::Internal(format!("Squall plan codec: {}", msg.into()))
}

fn schema_to_proto(schema: &SchemaRef) -> DFResult<protobuf::Schema> {
    schema
        .as_ref()
        .try_into()
        .map_err(|e: protobuf::ToProtoError| codec_err(e.to_string()))
}

fn schema_from_proto(schema: Option<&protobuf::Schema>) -> DFResult<SchemaRef> {
    let schema: Schema = schema
        .ok_or_else(|| codec_err("node without schema"))?
        .try_into()
        .map_err(|e: protobuf::FromProtoError| codec_err(e.to_string()))?;
    Ok(Arc::new(schema))
}

/// Encodes a `RecursiveQueryExec`.
pub fn encode_recursive(node: &RecursiveQueryExec) -> DFResult<RecursiveNode> {
    Ok(RecursiveNode {
        name: node.name().to_string(),
        schema: Some(schema_to_proto(&node.schema())?),
        is_distinct: node.is_distinct(),
    })
}

/// Decodes a `RecursiveQueryExec` over its decoded terms.
pub fn decode_recursive(
    node: &RecursiveNode,
    inputs: &[Arc<dyn ExecutionPlan>],
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let [static_term, recursive_term] = inputs else {
        return Err(codec_err(format!(
            "a recursive query has two inputs, got {}",
            inputs.len()
        )));
    };
    Ok(Arc::new(RecursiveQueryExec::try_new(
        node.name.clone(),
        schema_from_proto(node.schema.as_ref())?,
        Arc::clone(static_term),
        Arc::clone(recursive_term),
        node.is_distinct,
    )?))
}

/// Encodes a `WorkTableExec`. `rows`: the schema of its recursive query's
/// rows, needed when a projection was pushed into the work table (the node
/// keeps only the projected schema; DataFusion has no accessor for the
/// projection, so it is read from the node's `Debug` text).
pub fn encode_work_table(node: &WorkTableExec, rows: Option<SchemaRef>) -> DFResult<WorkTableNode> {
    let debug = format!("{node:?}");
    let projection = debug
        .split_once("projection: Some([")
        .and_then(|(_, rest)| rest.split_once("])"))
        .map(|(list, _)| {
            list.split(',')
                .map(|i| i.trim().parse::<u64>())
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(|e| codec_err(format!("work table projection: {e}")))?;
    let schema = match (&projection, rows) {
        (None, _) => node.schema(),
        (Some(columns), Some(rows)) => {
            // The recursive query's columns, with the work table's own
            // fields (its nullability) where it reads them.
            let projected = node.schema();
            let mut fields: Vec<_> = rows.fields().iter().cloned().collect();
            for (j, &i) in columns.iter().enumerate() {
                if let (Some(slot), Some(field)) =
                    (fields.get_mut(i as usize), projected.fields().get(j))
                {
                    *slot = Arc::clone(field);
                }
            }
            Arc::new(Schema::new_with_metadata(fields, rows.metadata().clone()))
        }
        (Some(_), None) => {
            return Err(codec_err(
                "a projected work table outside of its recursive query",
            ));
        }
    };
    Ok(WorkTableNode {
        name: node.name().to_string(),
        schema: Some(schema_to_proto(&schema)?),
        projected: projection.is_some(),
        projection: projection.unwrap_or_default(),
    })
}

/// Decodes a `WorkTableExec`; its recursive query links it to its work table.
pub fn decode_work_table(node: &WorkTableNode) -> DFResult<Arc<dyn ExecutionPlan>> {
    let projection = node
        .projected
        .then(|| node.projection.iter().map(|i| *i as usize).collect());
    Ok(Arc::new(WorkTableExec::new(
        node.name.clone(),
        schema_from_proto(node.schema.as_ref())?,
        projection,
    )?))
}
