//! [`SquallCodec`]: serializes Squall's own operators inside DataFusion plan protobufs.
//!
//! DataFusion's operators are encoded by datafusion-proto; this codec adds
//! [`ExchangeReaderExec`], [`ExchangeWriterExec`] and [`ResultWriterExec`].
//! Only plan-time facts are encoded (stage, schema, partitioning, ordering);
//! task-time facts (inputs, output URL) are bound by the worker.

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::from_proto::{parse_physical_expr, parse_physical_sort_exprs};
use datafusion_proto::physical_plan::to_proto::{
    serialize_physical_expr, serialize_physical_sort_exprs,
};
use datafusion_proto::physical_plan::{
    DefaultPhysicalProtoConverter, PhysicalExtensionCodec, PhysicalPlanDecodeContext,
    PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf;
use prost::Message;

use crate::reader::{ExchangeReaderExec, ReadMode};
use crate::result_writer::ResultWriterExec;
use crate::writer::{ExchangeWriterExec, OutputPartitioning};

/// Extension codec for Squall's operators.
#[derive(Debug, Default, Clone, Copy)]
pub struct SquallCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct SquallPlanNode {
    #[prost(oneof = "squall_node::Node", tags = "1, 2, 3")]
    node: Option<squall_node::Node>,
}

mod squall_node {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Node {
        #[prost(message, tag = "1")]
        Reader(super::ReaderNode),
        #[prost(message, tag = "2")]
        Writer(super::WriterNode),
        #[prost(message, tag = "3")]
        Result(super::ResultNode),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct ReaderNode {
    #[prost(uint64, tag = "1")]
    stage_id: u64,
    #[prost(message, optional, tag = "2")]
    schema: Option<protobuf::Schema>,
    /// "hash", "gather", "broadcast" or "merge".
    #[prost(string, tag = "3")]
    mode: String,
    #[prost(message, repeated, tag = "4")]
    hash_exprs: Vec<protobuf::PhysicalExprNode>,
    #[prost(uint64, tag = "5")]
    map_tasks: u64,
    #[prost(message, repeated, tag = "6")]
    ordering: Vec<protobuf::PhysicalSortExprNode>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WriterNode {
    #[prost(uint64, tag = "1")]
    stage_id: u64,
    /// Zero for a single-partition exchange.
    #[prost(uint64, tag = "2")]
    hash_partitions: u64,
    #[prost(message, repeated, tag = "3")]
    hash_exprs: Vec<protobuf::PhysicalExprNode>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResultNode {
    #[prost(uint64, tag = "1")]
    stage_id: u64,
}

fn codec_err(msg: impl Into<String>) -> DataFusionError {
    DataFusionError::Internal(format!("Squall plan codec: {}", msg.into()))
}

impl PhysicalExtensionCodec for SquallCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let node = SquallPlanNode::decode(buf).map_err(|e| codec_err(e.to_string()))?;
        match node.node {
            Some(squall_node::Node::Reader(r)) => {
                let schema: Schema = r
                    .schema
                    .as_ref()
                    .ok_or_else(|| codec_err("reader without schema"))?
                    .try_into()
                    .map_err(|e: datafusion_proto::protobuf::FromProtoError| {
                        codec_err(e.to_string())
                    })?;
                let schema = Arc::new(schema);
                let mode = match r.mode.as_str() {
                    "hash" => ReadMode::Hash(
                        r.hash_exprs
                            .iter()
                            .map(|e| parse_physical_expr(e, ctx, &schema, self))
                            .collect::<DFResult<_>>()?,
                    ),
                    "gather" => ReadMode::Gather,
                    "broadcast" => ReadMode::Broadcast,
                    "merge" => {
                        let decode_ctx = PhysicalPlanDecodeContext::new(ctx, self);
                        let exprs = parse_physical_sort_exprs(
                            &r.ordering,
                            &decode_ctx,
                            &schema,
                            &DefaultPhysicalProtoConverter {},
                        )?;
                        let ordering = LexOrdering::new(exprs)
                            .ok_or_else(|| codec_err("merge reader with empty ordering"))?;
                        ReadMode::Merge {
                            map_tasks: r.map_tasks as usize,
                            ordering,
                        }
                    }
                    other => return Err(codec_err(format!("unknown read mode '{other}'"))),
                };
                Ok(Arc::new(ExchangeReaderExec::try_new(
                    r.stage_id as usize,
                    schema,
                    mode,
                )?))
            }
            Some(squall_node::Node::Writer(w)) => {
                let input = single_input(inputs)?;
                let partitioning = if w.hash_partitions == 0 {
                    OutputPartitioning::Single
                } else {
                    let schema = input.schema();
                    OutputPartitioning::Hash(
                        w.hash_exprs
                            .iter()
                            .map(|e| parse_physical_expr(e, ctx, &schema, self))
                            .collect::<DFResult<_>>()?,
                        w.hash_partitions as usize,
                    )
                };
                Ok(Arc::new(ExchangeWriterExec::try_new(
                    input,
                    w.stage_id as usize,
                    partitioning,
                )?))
            }
            Some(squall_node::Node::Result(r)) => Ok(Arc::new(ResultWriterExec::new(
                single_input(inputs)?,
                r.stage_id as usize,
            ))),
            None => Err(codec_err("empty extension node")),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DFResult<()> {
        let encoded = if let Some(r) = node.downcast_ref::<ExchangeReaderExec>() {
            let schema = node.schema();
            let mut msg = ReaderNode {
                stage_id: r.stage_id() as u64,
                schema: Some(schema.as_ref().try_into().map_err(
                    |e: datafusion_proto::protobuf::ToProtoError| codec_err(e.to_string()),
                )?),
                ..ReaderNode::default()
            };
            match r.mode() {
                ReadMode::Hash(exprs) => {
                    msg.mode = "hash".into();
                    msg.hash_exprs = exprs
                        .iter()
                        .map(|e| serialize_physical_expr(e, self))
                        .collect::<DFResult<_>>()?;
                }
                ReadMode::Gather => msg.mode = "gather".into(),
                ReadMode::Broadcast => msg.mode = "broadcast".into(),
                ReadMode::Merge {
                    map_tasks,
                    ordering,
                } => {
                    msg.mode = "merge".into();
                    msg.map_tasks = *map_tasks as u64;
                    msg.ordering = serialize_physical_sort_exprs(
                        ordering.iter().cloned(),
                        self,
                        &DefaultPhysicalProtoConverter {},
                    )?;
                }
            }
            squall_node::Node::Reader(msg)
        } else if let Some(w) = node.downcast_ref::<ExchangeWriterExec>() {
            let (hash_partitions, hash_exprs) = match w.partitioning() {
                OutputPartitioning::Hash(exprs, n) => (
                    *n as u64,
                    exprs
                        .iter()
                        .map(|e| serialize_physical_expr(e, self))
                        .collect::<DFResult<_>>()?,
                ),
                OutputPartitioning::Single => (0, vec![]),
            };
            squall_node::Node::Writer(WriterNode {
                stage_id: w.stage_id() as u64,
                hash_partitions,
                hash_exprs,
            })
        } else if let Some(r) = node.downcast_ref::<ResultWriterExec>() {
            squall_node::Node::Result(ResultNode {
                stage_id: r.stage_id() as u64,
            })
        } else {
            return Err(codec_err(format!("cannot encode operator {}", node.name())));
        };
        SquallPlanNode {
            node: Some(encoded),
        }
        .encode(buf)
        .map_err(|e| codec_err(e.to_string()))
    }
}

fn single_input(inputs: &[Arc<dyn ExecutionPlan>]) -> DFResult<Arc<dyn ExecutionPlan>> {
    match inputs {
        [one] => Ok(Arc::clone(one)),
        _ => Err(codec_err(format!(
            "expected one input, got {}",
            inputs.len()
        ))),
    }
}

/// Encodes a plan fragment (DataFusion operators plus Squall's) to bytes.
pub fn encode_plan(plan: Arc<dyn ExecutionPlan>) -> DFResult<Vec<u8>> {
    Ok(
        datafusion_proto::bytes::physical_plan_to_bytes_with_extension_codec(plan, &SquallCodec)?
            .to_vec(),
    )
}

/// Decodes a plan fragment encoded by [`encode_plan`].
pub fn decode_plan(bytes: &[u8], ctx: &TaskContext) -> DFResult<Arc<dyn ExecutionPlan>> {
    datafusion_proto::bytes::physical_plan_from_bytes_with_extension_codec(bytes, ctx, &SquallCodec)
}
