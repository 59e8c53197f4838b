//! [`SquallCodec`]: serializes Squall's own operators inside DataFusion plan protobufs.
//!
//! DataFusion's operators are encoded by datafusion-proto; this codec adds
//! [`ExchangeReaderExec`], [`ExchangeWriterExec`] and [`ResultWriterExec`].
//! Only plan-time facts are encoded (stage, schema, partitioning, ordering);
//! task-time facts (inputs, output URL) are bound by the worker. It also
//! carries DataFusion operators that datafusion-proto encodes lossily
//! ([`SquallConverter`] routes them here).

use std::cell::RefCell;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_expr_common::physical_expr::proto_decode::PhysicalExprDecodeCtx;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::joins::PiecewiseMergeJoinExec;
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::sorts::partitioned_topk::PartitionedTopKExec;
use datafusion::physical_plan::work_table::WorkTableExec;
use datafusion::physical_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion_proto::physical_plan::from_proto::{
    parse_physical_expr, parse_physical_expr_with_converter, parse_physical_sort_exprs,
};
use datafusion_proto::physical_plan::to_proto::{
    serialize_physical_expr, serialize_physical_expr_with_converter, serialize_physical_sort_exprs,
};
use datafusion_proto::physical_plan::{
    DefaultPhysicalProtoConverter, PhysicalExtensionCodec, PhysicalPlanDecodeContext,
    PhysicalPlanNodeExt, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf;
use datafusion_proto::protobuf::physical_plan_node::PhysicalPlanType;
use prost::Message;

use crate::builtin_functions::{
    BUILTIN_MARK, default_aggregate, default_scalar, default_window, is_default_aggregate,
    is_default_scalar, is_default_window,
};
use crate::expr_codec::{ExprPatch, apply_expr_patch, expr_patch};
use crate::grouping_sets_codec::{GroupingSetsNode, lossy_grouping_sets, restore_grouping_sets};
use crate::join_topk_codec::{
    PartitionedTopKNode, PiecewiseMergeJoinNode, decode_partitioned_topk,
    decode_piecewise_merge_join, encode_partitioned_topk, encode_piecewise_merge_join,
};
use crate::reader::{ExchangeReaderExec, ReadMode};
use crate::recursive_codec::{
    RecursiveNode, WorkTableNode, decode_recursive, decode_work_table, encode_recursive,
    encode_work_table,
};
use crate::result_writer::ResultWriterExec;
use crate::scan_codec::{ScanPatchNode, restore_scan, scan_patch, with_options_metadata_size_hint};
use crate::sink_codec::{
    CsvFormatsNode, ParquetMetadataNode, csv_formats, parquet_metadata, restore_csv_formats,
    restore_parquet_metadata,
};
use crate::window_codec::{WindowNode, decode_window_node, encode_window_node};
use crate::writer::{ExchangeWriterExec, OutputPartitioning};

/// Extension codec for Squall's operators.
#[derive(Debug, Default, Clone, Copy)]
pub struct SquallCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct SquallPlanNode {
    #[prost(
        oneof = "squall_node::Node",
        tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12"
    )]
    node: Option<squall_node::Node>,
}

mod squall_node {
    // A wire message, built and taken apart once per fragment: boxing its
    // largest variant would buy nothing.
    #[allow(clippy::large_enum_variant)]
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Node {
        #[prost(message, tag = "1")]
        Reader(super::ReaderNode),
        #[prost(message, tag = "2")]
        Writer(super::WriterNode),
        #[prost(message, tag = "3")]
        Result(super::ResultNode),
        /// A DataFusion window operator, encoded by Squall (see `window_codec`).
        #[prost(message, tag = "4")]
        Window(super::WindowNode),
        #[prost(message, tag = "5")]
        Recursive(super::RecursiveNode),
        #[prost(message, tag = "6")]
        WorkTable(super::WorkTableNode),
        /// Restores the grouping sets of the aggregate below it (see `grouping_sets_codec`).
        #[prost(message, tag = "7")]
        GroupingSets(super::GroupingSetsNode),
        /// Restores the formats of the CSV sink below it (see `sink_codec`).
        #[prost(message, tag = "8")]
        CsvFormats(super::CsvFormatsNode),
        #[prost(message, tag = "9")]
        PartitionedTopK(super::PartitionedTopKNode),
        #[prost(message, tag = "10")]
        PiecewiseMergeJoin(super::PiecewiseMergeJoinNode),
        /// Restores what datafusion-proto loses of the file scan below it (see `scan_codec`).
        #[prost(message, tag = "11")]
        ScanPatch(super::ScanPatchNode),
        /// Restores the file metadata of the Parquet sink below it (see `sink_codec`).
        #[prost(message, tag = "12")]
        ParquetMetadata(super::ParquetMetadataNode),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct ReaderNode {
    #[prost(uint64, tag = "1")]
    stage_id: u64,
    #[prost(message, optional, tag = "2")]
    schema: Option<protobuf::Schema>,
    /// "hash", "gather", "broadcast", "merge" or "sorted-hash".
    #[prost(string, tag = "3")]
    mode: String,
    #[prost(message, repeated, tag = "4")]
    hash_exprs: Vec<protobuf::PhysicalExprNode>,
    #[prost(uint64, tag = "5")]
    map_tasks: u64,
    #[prost(message, repeated, tag = "6")]
    ordering: Vec<protobuf::PhysicalSortExprNode>,
    /// Expressions with one value in every row, and their values (same order).
    #[prost(message, repeated, tag = "7")]
    constant_exprs: Vec<protobuf::PhysicalExprNode>,
    #[prost(message, repeated, tag = "8")]
    constant_values: Vec<protobuf::ScalarValue>,
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
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let node = SquallPlanNode::decode(buf).map_err(|e| codec_err(e.to_string()))?;
        match node.node {
            Some(squall_node::Node::Window(w)) => {
                let decode_ctx = PhysicalPlanDecodeContext::new(ctx, self);
                decode_window_node(&w, single_input(inputs)?, &decode_ctx, proto_converter)
            }
            Some(squall_node::Node::PartitionedTopK(t)) => {
                let decode_ctx = PhysicalPlanDecodeContext::new(ctx, self);
                decode_partitioned_topk(&t, single_input(inputs)?, &decode_ctx, proto_converter)
            }
            Some(squall_node::Node::PiecewiseMergeJoin(j)) => {
                let decode_ctx = PhysicalPlanDecodeContext::new(ctx, self);
                decode_piecewise_merge_join(&j, inputs, &decode_ctx, proto_converter)
            }
            Some(squall_node::Node::CsvFormats(f)) => {
                restore_csv_formats(&f, &single_input(inputs)?)
            }
            Some(squall_node::Node::ScanPatch(p)) => restore_scan(&p, &single_input(inputs)?),
            Some(squall_node::Node::ParquetMetadata(m)) => {
                restore_parquet_metadata(&m, &single_input(inputs)?)
            }
            Some(squall_node::Node::GroupingSets(g)) => {
                restore_grouping_sets(&g, &single_input(inputs)?)
            }
            Some(squall_node::Node::Recursive(r)) => decode_recursive(&r, inputs),
            Some(squall_node::Node::WorkTable(w)) => decode_work_table(&w),
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
                    "merge" | "sorted-hash" => {
                        let decode_ctx = PhysicalPlanDecodeContext::new(ctx, self);
                        let exprs = parse_physical_sort_exprs(
                            &r.ordering,
                            &decode_ctx,
                            &schema,
                            &DefaultPhysicalProtoConverter {},
                        )?;
                        let ordering = LexOrdering::new(exprs)
                            .ok_or_else(|| codec_err("merge reader with empty ordering"))?;
                        if r.mode == "merge" {
                            ReadMode::Merge {
                                map_tasks: r.map_tasks as usize,
                                ordering,
                            }
                        } else {
                            ReadMode::SortedHash {
                                exprs: r
                                    .hash_exprs
                                    .iter()
                                    .map(|e| parse_physical_expr(e, ctx, &schema, self))
                                    .collect::<DFResult<_>>()?,
                                map_tasks: r.map_tasks as usize,
                                ordering,
                            }
                        }
                    }
                    other => return Err(codec_err(format!("unknown read mode '{other}'"))),
                };
                let constants = r
                    .constant_exprs
                    .iter()
                    .zip(&r.constant_values)
                    .map(|(e, v)| {
                        let expr = parse_physical_expr(e, ctx, &schema, self)?;
                        let value = ScalarValue::try_from(v)
                            .map_err(|e| codec_err(format!("reader constant: {e}")))?;
                        Ok((expr, value))
                    })
                    .collect::<DFResult<Vec<_>>>()?;
                Ok(Arc::new(
                    ExchangeReaderExec::try_new(r.stage_id as usize, Arc::clone(&schema), mode)?
                        .with_constants(constants)?,
                ))
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

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DFResult<()> {
        if is_default_scalar(node) {
            buf.extend_from_slice(BUILTIN_MARK);
        }
        Ok(())
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DFResult<Arc<ScalarUDF>> {
        match buf {
            BUILTIN_MARK => default_scalar(name),
            _ => None,
        }
        .ok_or_else(|| codec_err(format!("no function '{name}'")))
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> DFResult<()> {
        if is_default_aggregate(node) {
            buf.extend_from_slice(BUILTIN_MARK);
        }
        Ok(())
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> DFResult<Arc<AggregateUDF>> {
        match buf {
            BUILTIN_MARK => default_aggregate(name),
            _ => None,
        }
        .ok_or_else(|| codec_err(format!("no aggregate function '{name}'")))
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> DFResult<()> {
        if is_default_window(node) {
            buf.extend_from_slice(BUILTIN_MARK);
        }
        Ok(())
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> DFResult<Arc<WindowUDF>> {
        match buf {
            BUILTIN_MARK => default_window(name),
            _ => None,
        }
        .ok_or_else(|| codec_err(format!("no window function '{name}'")))
    }

    fn try_decode_expr(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn PhysicalExpr>],
        _ctx: &PhysicalExprDecodeCtx<'_>,
    ) -> DFResult<Arc<dyn PhysicalExpr>> {
        let patch = ExprPatch::decode(buf).map_err(|e| codec_err(e.to_string()))?;
        apply_expr_patch(&patch, inputs)
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
            for (expr, value) in r.constants() {
                msg.constant_exprs
                    .push(serialize_physical_expr(expr, self)?);
                msg.constant_values.push(value.try_into().map_err(
                    |e: datafusion_proto::protobuf::ToProtoError| {
                        codec_err(format!("reader constant: {e}"))
                    },
                )?);
            }
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
                ReadMode::SortedHash {
                    exprs,
                    map_tasks,
                    ordering,
                } => {
                    msg.mode = "sorted-hash".into();
                    msg.hash_exprs = exprs
                        .iter()
                        .map(|e| serialize_physical_expr(e, self))
                        .collect::<DFResult<_>>()?;
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

/// The proto converter Squall encodes plans with: DataFusion's, except for
/// the operators datafusion-proto encodes lossily (window operators, see
/// `window_codec`), which become Squall extension nodes, and Squall's own
/// extension nodes, whose inputs it encodes itself so that they pass
/// through this converter too.
#[derive(Debug, Default)]
pub struct SquallConverter {
    /// While encoding a recursive query's terms: its name and output
    /// schema, which is the schema of its work table's rows.
    recursive_queries: RefCell<Vec<(String, SchemaRef)>>,
}

impl SquallConverter {
    /// The encodings of `plan`'s inputs, each through this converter.
    fn children_to_proto(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        codec: &dyn PhysicalExtensionCodec,
    ) -> DFResult<Vec<protobuf::PhysicalPlanNode>> {
        plan.children()
            .into_iter()
            .map(|c| self.execution_plan_to_proto(c, codec))
            .collect()
    }
}

impl PhysicalProtoConverterExtension for SquallConverter {
    #[recursive::recursive]
    fn proto_to_execution_plan(
        &self,
        proto: &protobuf::PhysicalPlanNode,
        ctx: &PhysicalPlanDecodeContext<'_>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let plan = proto.try_into_physical_plan_with_context(ctx, self)?;
        Ok(with_options_metadata_size_hint(&plan).unwrap_or(plan))
    }

    #[recursive::recursive]
    fn execution_plan_to_proto(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        codec: &dyn PhysicalExtensionCodec,
    ) -> DFResult<protobuf::PhysicalPlanNode> {
        let patch = if let Some(sets) = lossy_grouping_sets(plan) {
            Some(squall_node::Node::GroupingSets(sets))
        } else if let Some(formats) = csv_formats(plan) {
            Some(squall_node::Node::CsvFormats(formats))
        } else if let Some(metadata) = parquet_metadata(plan) {
            Some(squall_node::Node::ParquetMetadata(metadata))
        } else {
            scan_patch(plan).map(squall_node::Node::ScanPatch)
        };
        if let Some(patch) = patch {
            // DataFusion's encoding of the node, under a node that corrects it.
            let own = protobuf::PhysicalPlanNode::try_from_physical_plan_with_converter(
                Arc::clone(plan),
                codec,
                self,
            )?;
            return extension(patch, vec![own]);
        }
        let squall_node = if let Some(window) = encode_window_node(plan, codec, self)? {
            let mut buf = Vec::new();
            SquallPlanNode {
                node: Some(squall_node::Node::Window(window)),
            }
            .encode(&mut buf)
            .map_err(|e| codec_err(e.to_string()))?;
            Some(buf)
        } else if plan.is::<ExchangeReaderExec>()
            || plan.is::<ExchangeWriterExec>()
            || plan.is::<ResultWriterExec>()
        {
            let mut buf = Vec::new();
            codec.try_encode(Arc::clone(plan), &mut buf, self)?;
            Some(buf)
        } else if let Some(topk) = plan.downcast_ref::<PartitionedTopKExec>() {
            let node =
                squall_node::Node::PartitionedTopK(encode_partitioned_topk(topk, codec, self)?);
            let inputs = self.children_to_proto(plan, codec)?;
            return extension(node, inputs);
        } else if let Some(join) = plan.downcast_ref::<PiecewiseMergeJoinExec>() {
            let node = squall_node::Node::PiecewiseMergeJoin(encode_piecewise_merge_join(
                join, codec, self,
            )?);
            let inputs = self.children_to_proto(plan, codec)?;
            return extension(node, inputs);
        } else if let Some(recursive) = plan.downcast_ref::<RecursiveQueryExec>() {
            self.recursive_queries
                .borrow_mut()
                .push((recursive.name().to_string(), recursive.schema()));
            let node = squall_node::Node::Recursive(encode_recursive(recursive)?);
            let inputs = plan
                .children()
                .into_iter()
                .map(|c| self.execution_plan_to_proto(c, codec))
                .collect::<DFResult<Vec<_>>>();
            self.recursive_queries.borrow_mut().pop();
            return extension(node, inputs?);
        } else if let Some(work_table) = plan.downcast_ref::<WorkTableExec>() {
            let rows = self
                .recursive_queries
                .borrow()
                .iter()
                .rev()
                .find(|(name, _)| name == work_table.name())
                .map(|(_, schema)| Arc::clone(schema));
            let node = squall_node::Node::WorkTable(encode_work_table(work_table, rows)?);
            return extension(node, vec![]);
        } else {
            None
        };
        let Some(node) = squall_node else {
            return protobuf::PhysicalPlanNode::try_from_physical_plan_with_converter(
                Arc::clone(plan),
                codec,
                self,
            );
        };
        let inputs = plan
            .children()
            .into_iter()
            .map(|c| self.execution_plan_to_proto(c, codec))
            .collect::<DFResult<_>>()?;
        Ok(protobuf::PhysicalPlanNode {
            physical_plan_type: Some(PhysicalPlanType::Extension(
                protobuf::PhysicalExtensionNode { node, inputs },
            )),
        })
    }

    #[recursive::recursive]
    fn proto_to_physical_expr(
        &self,
        proto: &protobuf::PhysicalExprNode,
        input_schema: &Schema,
        ctx: &PhysicalPlanDecodeContext<'_>,
    ) -> DFResult<Arc<dyn PhysicalExpr>> {
        parse_physical_expr_with_converter(proto, input_schema, ctx, self)
    }

    #[recursive::recursive]
    fn physical_expr_to_proto(
        &self,
        expr: &Arc<dyn PhysicalExpr>,
        codec: &dyn PhysicalExtensionCodec,
    ) -> DFResult<protobuf::PhysicalExprNode> {
        let Some((patch, with_own_encoding)) = expr_patch(expr)? else {
            return serialize_physical_expr_with_converter(expr, codec, self);
        };
        // DataFusion's encoding of the expression itself (its children pass
        // through this converter again), under the patch that corrects it.
        let inputs = if with_own_encoding {
            vec![serialize_physical_expr_with_converter(expr, codec, self)?]
        } else {
            vec![]
        };
        let mut buf = Vec::new();
        patch
            .encode(&mut buf)
            .map_err(|e| codec_err(e.to_string()))?;
        Ok(protobuf::PhysicalExprNode {
            expr_id: None,
            expr_type: Some(protobuf::physical_expr_node::ExprType::Extension(
                protobuf::PhysicalExtensionExprNode { expr: buf, inputs },
            )),
        })
    }
}

/// True when `sink` can travel to a task: file sinks can, an in-memory
/// table's sink (which writes into the coordinator's memory) cannot.
pub fn can_encode_sink(sink: &DataSinkExec) -> bool {
    let placeholder: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(sink.input().schema()));
    Arc::new(sink.clone())
        .replace_children(
            vec![placeholder],
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
        .and_then(encode_plan)
        .is_ok()
}

/// A plan node for a Squall extension `node` over `inputs`.
fn extension(
    node: squall_node::Node,
    inputs: Vec<protobuf::PhysicalPlanNode>,
) -> DFResult<protobuf::PhysicalPlanNode> {
    let mut buf = Vec::new();
    SquallPlanNode { node: Some(node) }
        .encode(&mut buf)
        .map_err(|e| codec_err(e.to_string()))?;
    Ok(protobuf::PhysicalPlanNode {
        physical_plan_type: Some(PhysicalPlanType::Extension(
            protobuf::PhysicalExtensionNode { node: buf, inputs },
        )),
    })
}

/// Encodes a plan fragment (DataFusion operators plus Squall's) to bytes.
pub fn encode_plan(plan: Arc<dyn ExecutionPlan>) -> DFResult<Vec<u8>> {
    Ok(
        datafusion_proto::bytes::physical_plan_to_bytes_with_proto_converter(
            plan,
            &SquallCodec,
            &SquallConverter::default(),
        )?
        .to_vec(),
    )
}

/// Decodes a plan fragment encoded by [`encode_plan`].
pub fn decode_plan(bytes: &[u8], ctx: &TaskContext) -> DFResult<Arc<dyn ExecutionPlan>> {
    datafusion_proto::bytes::physical_plan_from_bytes_with_proto_converter(
        bytes,
        ctx,
        &SquallCodec,
        &SquallConverter::default(),
    )
}
