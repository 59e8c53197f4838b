//! Two DataFusion 55 operators datafusion-proto cannot encode at all:
//! `PartitionedTopKExec` (per-partition top-K under `ROW_NUMBER() ... <= K`
//! and `RANK()`) and `PiecewiseMergeJoinExec` (a join on one range
//! predicate). Both are rebuilt on decode with their public constructors.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::PiecewiseMergeJoinExec;
use datafusion::physical_plan::sorts::partitioned_topk::{PartitionedTopKExec, WindowFnKind};
use datafusion_proto::physical_plan::from_proto::{
    parse_physical_expr_with_converter, parse_physical_sort_exprs,
};
use datafusion_proto::physical_plan::to_proto::{
    serialize_physical_expr_with_converter, serialize_physical_sort_exprs,
};
use datafusion_proto::physical_plan::{
    PhysicalExtensionCodec, PhysicalPlanDecodeContext, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf;

/// A `PartitionedTopKExec`; its input is the node's only input.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartitionedTopKNode {
    #[prost(message, repeated, tag = "1")]
    pub ordering: Vec<protobuf::PhysicalSortExprNode>,
    #[prost(uint64, tag = "2")]
    pub partition_prefix_len: u64,
    #[prost(uint64, tag = "3")]
    pub fetch: u64,
    /// "row_number" or "rank".
    #[prost(string, tag = "4")]
    pub function: String,
}

/// A `PiecewiseMergeJoinExec`; its inputs are the buffered and the streamed side.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PiecewiseMergeJoinNode {
    #[prost(message, optional, tag = "1")]
    pub buffered_on: Option<protobuf::PhysicalExprNode>,
    #[prost(message, optional, tag = "2")]
    pub streamed_on: Option<protobuf::PhysicalExprNode>,
    /// "<", "<=", ">" or ">=".
    #[prost(string, tag = "3")]
    pub operator: String,
    #[prost(string, tag = "4")]
    pub join_type: String,
    #[prost(uint64, tag = "5")]
    pub num_partitions: u64,
}

fn codec_err(msg: impl Into<String>) -> DataFusionError {
    DataFusionError::Internal(format!("Squall plan codec: {}", msg.into()))
}

pub fn encode_partitioned_topk(
    node: &PartitionedTopKExec,
    codec: &dyn PhysicalExtensionCodec,
    converter: &dyn PhysicalProtoConverterExtension,
) -> DFResult<PartitionedTopKNode> {
    Ok(PartitionedTopKNode {
        ordering: serialize_physical_sort_exprs(node.expr().iter().cloned(), codec, converter)?,
        partition_prefix_len: node.partition_prefix_len() as u64,
        fetch: node.fetch() as u64,
        function: match node.fn_kind() {
            WindowFnKind::RowNumber => "row_number",
            WindowFnKind::Rank => "rank",
        }
        .to_string(),
    })
}

pub fn decode_partitioned_topk(
    node: &PartitionedTopKNode,
    input: Arc<dyn ExecutionPlan>,
    ctx: &PhysicalPlanDecodeContext<'_>,
    converter: &dyn PhysicalProtoConverterExtension,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let schema = input.schema();
    let exprs = parse_physical_sort_exprs(&node.ordering, ctx, &schema, converter)?;
    let ordering = LexOrdering::new(exprs).ok_or_else(|| codec_err("top-K without an ordering"))?;
    let kind = match node.function.as_str() {
        "row_number" => WindowFnKind::RowNumber,
        "rank" => WindowFnKind::Rank,
        other => return Err(codec_err(format!("unknown top-K function '{other}'"))),
    };
    Ok(Arc::new(PartitionedTopKExec::try_new(
        input,
        ordering,
        node.partition_prefix_len as usize,
        node.fetch as usize,
        kind,
    )?))
}

pub fn encode_piecewise_merge_join(
    node: &PiecewiseMergeJoinExec,
    codec: &dyn PhysicalExtensionCodec,
    converter: &dyn PhysicalProtoConverterExtension,
) -> DFResult<PiecewiseMergeJoinNode> {
    let operator = match node.operator {
        Operator::Lt => "<",
        Operator::LtEq => "<=",
        Operator::Gt => ">",
        Operator::GtEq => ">=",
        other => return Err(codec_err(format!("a piecewise merge join on {other}"))),
    };
    // DataFusion keeps the partition count private; it shows in `Debug`.
    let debug = format!("{node:?}");
    let num_partitions = debug
        .split_once("num_partitions: ")
        .and_then(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .ok_or_else(|| codec_err("a piecewise merge join without a partition count"))?;
    Ok(PiecewiseMergeJoinNode {
        buffered_on: Some(serialize_physical_expr_with_converter(
            &node.on.0, codec, converter,
        )?),
        streamed_on: Some(serialize_physical_expr_with_converter(
            &node.on.1, codec, converter,
        )?),
        operator: operator.to_string(),
        join_type: node.join_type.to_string(),
        num_partitions,
    })
}

pub fn decode_piecewise_merge_join(
    node: &PiecewiseMergeJoinNode,
    inputs: &[Arc<dyn ExecutionPlan>],
    ctx: &PhysicalPlanDecodeContext<'_>,
    converter: &dyn PhysicalProtoConverterExtension,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let [buffered, streamed] = inputs else {
        return Err(codec_err(format!("a join with {} inputs", inputs.len())));
    };
    let on_side = |expr: &Option<protobuf::PhysicalExprNode>, side: &Arc<dyn ExecutionPlan>| {
        let expr = expr
            .as_ref()
            .ok_or_else(|| codec_err("a join without its keys"))?;
        parse_physical_expr_with_converter(expr, &side.schema(), ctx, converter)
    };
    let operator = match node.operator.as_str() {
        "<" => Operator::Lt,
        "<=" => Operator::LtEq,
        ">" => Operator::Gt,
        ">=" => Operator::GtEq,
        other => return Err(codec_err(format!("unknown join operator '{other}'"))),
    };
    Ok(Arc::new(PiecewiseMergeJoinExec::try_new(
        Arc::clone(buffered),
        Arc::clone(streamed),
        (
            on_side(&node.buffered_on, buffered)?,
            on_side(&node.streamed_on, streamed)?,
        ),
        operator,
        JoinType::from_str(&node.join_type)?,
        node.num_partitions as usize,
    )?))
}
