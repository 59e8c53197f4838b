//! Window operators on the wire, with what datafusion-proto 55 drops kept.
//!
//! datafusion-proto encodes a window expression by its function, arguments,
//! partitioning, ordering and frame, and loses three properties that change
//! results: the direction of a window function DataFusion evaluates in
//! reverse (to share one sort between `ORDER BY x ASC` and `ORDER BY x DESC`
//! windows), `IGNORE NULLS` of window functions (`lag`, `first_value`, ...),
//! and the `FILTER (WHERE ...)` of aggregate window functions. Squall
//! encodes `BoundedWindowAggExec` and `WindowAggExec` itself: each window
//! expression as DataFusion's message plus the filter, with `IGNORE NULLS`
//! set, and a reversed expression as its unreversed form plus a flag the
//! decoder applies the same reversal with. The encoder picks the form whose
//! reconstruction equals the original (see [`encode_window_expr`]); the
//! fidelity guard checks the whole fragment afterwards anyway.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{WindowFrame, WindowFunctionDefinition};
use datafusion::physical_expr::window::{SlidingAggregateWindowExpr, WindowExpr};
use datafusion::physical_plan::windows::{
    BoundedWindowAggExec, PlainAggregateWindowExpr, StandardWindowExpr, WindowAggExec,
    WindowUDFExpr, create_window_expr, schema_add_window_field,
};
use datafusion::physical_plan::{ExecutionPlan, InputOrderMode, PhysicalExpr};
use datafusion_proto::physical_plan::from_proto::{
    parse_physical_expr_with_converter, parse_physical_exprs, parse_physical_sort_exprs,
};
use datafusion_proto::physical_plan::to_proto::{
    serialize_physical_expr_with_converter, serialize_physical_window_expr,
};
use datafusion_proto::physical_plan::{
    PhysicalExtensionCodec, PhysicalPlanDecodeContext, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf;

use crate::debug_tree::canonical;

/// `BoundedWindowAggExec` or `WindowAggExec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WindowNode {
    /// True for `BoundedWindowAggExec`.
    #[prost(bool, tag = "1")]
    pub bounded: bool,
    #[prost(message, repeated, tag = "2")]
    pub exprs: Vec<WindowExprNode>,
    /// "linear", "sorted" or "partial" (with `partially_sorted`).
    #[prost(string, tag = "3")]
    pub input_order_mode: String,
    #[prost(uint64, repeated, tag = "4")]
    pub partially_sorted: Vec<u64>,
    #[prost(bool, tag = "5")]
    pub can_repartition: bool,
}

/// One window expression.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WindowExprNode {
    /// DataFusion's encoding, `ignore_nulls` set right.
    #[prost(message, optional, tag = "1")]
    pub base: Option<protobuf::PhysicalWindowExprNode>,
    /// `base` is the unreversed expression: reverse it after decoding.
    #[prost(bool, tag = "2")]
    pub reversed: bool,
    /// `FILTER (WHERE ...)` of an aggregate window function.
    #[prost(message, optional, tag = "3")]
    pub filter: Option<protobuf::PhysicalExprNode>,
}

/// Encodes `plan` if it is a window operator.
pub fn encode_window_node(
    plan: &Arc<dyn ExecutionPlan>,
    codec: &dyn PhysicalExtensionCodec,
    converter: &dyn PhysicalProtoConverterExtension,
) -> DFResult<Option<WindowNode>> {
    let (bounded, exprs, mode, partition_keys, input) =
        if let Some(w) = plan.downcast_ref::<BoundedWindowAggExec>() {
            (
                true,
                w.window_expr(),
                Some(&w.input_order_mode),
                w.partition_keys(),
                w.input(),
            )
        } else if let Some(w) = plan.downcast_ref::<WindowAggExec>() {
            (false, w.window_expr(), None, w.partition_keys(), w.input())
        } else {
            return Ok(None);
        };
    let schema = input.schema();
    let exprs = exprs
        .iter()
        .map(|e| encode_window_expr(e, &schema, codec, converter))
        .collect::<DFResult<_>>()?;
    let (input_order_mode, partially_sorted) = match mode {
        None | Some(InputOrderMode::Linear) => ("linear", vec![]),
        Some(InputOrderMode::Sorted) => ("sorted", vec![]),
        Some(InputOrderMode::PartiallySorted(cols)) => {
            ("partial", cols.iter().map(|c| *c as u64).collect())
        }
    };
    Ok(Some(WindowNode {
        bounded,
        exprs,
        input_order_mode: input_order_mode.to_string(),
        partially_sorted,
        can_repartition: !partition_keys.is_empty(),
    }))
}

/// Decodes a [`WindowNode`] over its decoded `input`.
pub fn decode_window_node(
    node: &WindowNode,
    input: Arc<dyn ExecutionPlan>,
    ctx: &PhysicalPlanDecodeContext<'_>,
    converter: &dyn PhysicalProtoConverterExtension,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let schema = input.schema();
    let exprs = node
        .exprs
        .iter()
        .map(|e| decode_window_expr(e, &schema, ctx, converter))
        .collect::<DFResult<Vec<_>>>()?;
    if !node.bounded {
        return Ok(Arc::new(WindowAggExec::try_new(
            exprs,
            input,
            node.can_repartition,
        )?));
    }
    let mode = match node.input_order_mode.as_str() {
        "linear" => InputOrderMode::Linear,
        "sorted" => InputOrderMode::Sorted,
        "partial" => InputOrderMode::PartiallySorted(
            node.partially_sorted.iter().map(|c| *c as usize).collect(),
        ),
        other => {
            return Err(DataFusionError::Internal(format!(
                "Squall plan codec: unknown window input order mode '{other}'"
            )));
        }
    };
    Ok(Arc::new(BoundedWindowAggExec::try_new(
        exprs,
        input,
        mode,
        node.can_repartition,
    )?))
}

/// The parts a window expression is rebuilt from.
struct Parts {
    fun: WindowFunctionDefinition,
    args: Vec<Arc<dyn PhysicalExpr>>,
    ignore_nulls: bool,
    distinct: bool,
    filter: Option<Arc<dyn PhysicalExpr>>,
}

fn parts(expr: &Arc<dyn WindowExpr>) -> Option<Parts> {
    let any = expr.as_any();
    // DataFusion 55 keeps an aggregate window function's FILTER behind a
    // trait it does not export, so Squall cannot read it: such an
    // expression rebuilds without its filter, no form matches, and the
    // fidelity guard refuses the query.
    let aggregate = |agg: &datafusion::physical_expr::aggregate::AggregateFunctionExpr| Parts {
        fun: WindowFunctionDefinition::AggregateUDF(Arc::new(agg.fun().clone())),
        args: agg.expressions(),
        ignore_nulls: agg.ignore_nulls(),
        distinct: agg.is_distinct(),
        filter: None,
    };
    if let Some(w) = any.downcast_ref::<PlainAggregateWindowExpr>() {
        return Some(aggregate(w.get_aggregate_expr()));
    }
    if let Some(w) = any.downcast_ref::<SlidingAggregateWindowExpr>() {
        return Some(aggregate(w.get_aggregate_expr()));
    }
    let standard = any.downcast_ref::<StandardWindowExpr>()?;
    let udwf = standard
        .get_standard_func_expr()
        .as_any()
        .downcast_ref::<WindowUDFExpr>()?;
    Some(Parts {
        fun: WindowFunctionDefinition::WindowUDF(Arc::clone(udwf.fun())),
        args: udwf.args().to_vec(),
        ignore_nulls: false,
        distinct: false,
        filter: None,
    })
}

/// What decoding `parts` of `expr` with `ignore_nulls` builds.
fn rebuild(
    expr: &Arc<dyn WindowExpr>,
    parts: &Parts,
    ignore_nulls: bool,
    schema: &SchemaRef,
) -> Option<Arc<dyn WindowExpr>> {
    let name = expr.name().to_string();
    let extended = schema_add_window_field(&parts.args, schema, &parts.fun, &name).ok()?;
    create_window_expr(
        &parts.fun,
        name,
        &parts.args,
        expr.partition_by(),
        expr.order_by(),
        Arc::clone(expr.get_window_frame()),
        extended,
        ignore_nulls,
        parts.distinct,
        parts.filter.clone(),
    )
    .ok()
}

/// Encodes one window expression in the form whose decoding rebuilds it
/// exactly: as it is, or (when DataFusion reversed it) unreversed plus the
/// `reversed` flag; with whichever `IGNORE NULLS` setting reproduces it.
pub fn encode_window_expr(
    expr: &Arc<dyn WindowExpr>,
    schema: &SchemaRef,
    codec: &dyn PhysicalExtensionCodec,
    converter: &dyn PhysicalProtoConverterExtension,
) -> DFResult<WindowExprNode> {
    let target = canonical(&format!("{expr:?}"));
    let reversed = expr.get_reverse_expr();
    let mut forms: Vec<(&Arc<dyn WindowExpr>, bool)> = vec![(expr, false)];
    if let Some(r) = &reversed {
        forms.push((r, true));
    }
    for (form, is_reversed) in &forms {
        let Some(parts) = parts(form) else { break };
        for ignore_nulls in [parts.ignore_nulls, !parts.ignore_nulls] {
            let rebuilt = rebuild(form, &parts, ignore_nulls, schema);
            let rebuilt = if *is_reversed {
                rebuilt.and_then(|r| r.get_reverse_expr())
            } else {
                rebuilt
            };
            if rebuilt.is_some_and(|r| canonical(&format!("{r:?}")) == target) {
                return window_expr_node(
                    form,
                    &parts,
                    ignore_nulls,
                    *is_reversed,
                    codec,
                    converter,
                );
            }
        }
    }
    // No form reproduces it: encode it as DataFusion does and let the
    // fidelity guard name what changes.
    let base = serialize_physical_window_expr(expr, codec, converter)?;
    Ok(WindowExprNode {
        base: Some(base),
        reversed: false,
        filter: None,
    })
}

fn window_expr_node(
    expr: &Arc<dyn WindowExpr>,
    parts: &Parts,
    ignore_nulls: bool,
    reversed: bool,
    codec: &dyn PhysicalExtensionCodec,
    converter: &dyn PhysicalProtoConverterExtension,
) -> DFResult<WindowExprNode> {
    let mut base = serialize_physical_window_expr(expr, codec, converter)?;
    base.ignore_nulls = ignore_nulls;
    let filter = parts
        .filter
        .as_ref()
        .map(|f| serialize_physical_expr_with_converter(f, codec, converter))
        .transpose()?;
    Ok(WindowExprNode {
        base: Some(base),
        reversed,
        filter,
    })
}

/// Decodes one window expression (the inverse of [`encode_window_expr`]).
pub fn decode_window_expr(
    node: &WindowExprNode,
    schema: &SchemaRef,
    ctx: &PhysicalPlanDecodeContext<'_>,
    converter: &dyn PhysicalProtoConverterExtension,
) -> DFResult<Arc<dyn WindowExpr>> {
    let codec_err = |m: &str| DataFusionError::Internal(format!("Squall plan codec: {m}"));
    let base = node
        .base
        .as_ref()
        .ok_or_else(|| codec_err("window expression without its body"))?;
    let args = parse_physical_exprs(&base.args, ctx, schema, converter)?;
    let partition_by = parse_physical_exprs(&base.partition_by, ctx, schema, converter)?;
    let order_by = parse_physical_sort_exprs(&base.order_by, ctx, schema, converter)?;
    let frame = base
        .window_frame
        .as_ref()
        .map(|f| WindowFrame::try_from(f.clone()))
        .transpose()
        .map_err(|e| codec_err(&e.to_string()))?
        .ok_or_else(|| codec_err("window expression without a frame"))?;
    use protobuf::physical_window_expr_node::WindowFunction;
    let fun = match &base.window_function {
        Some(WindowFunction::UserDefinedAggrFunction(name)) => {
            WindowFunctionDefinition::AggregateUDF(match &base.fun_definition {
                Some(buf) => ctx.codec().try_decode_udaf(name, buf)?,
                None => ctx.task_ctx().udaf(name)?,
            })
        }
        Some(WindowFunction::UserDefinedWindowFunction(name)) => {
            WindowFunctionDefinition::WindowUDF(match &base.fun_definition {
                Some(buf) => ctx.codec().try_decode_udwf(name, buf)?,
                None => ctx.task_ctx().udwf(name)?,
            })
        }
        None => return Err(codec_err("window expression without a function")),
    };
    let filter = node
        .filter
        .as_ref()
        .map(|f| parse_physical_expr_with_converter(f, schema, ctx, converter))
        .transpose()?;
    let extended = schema_add_window_field(&args, schema, &fun, &base.name)?;
    let expr = create_window_expr(
        &fun,
        base.name.clone(),
        &args,
        &partition_by,
        &order_by,
        Arc::new(frame),
        extended,
        base.ignore_nulls,
        base.distinct,
        filter,
    )?;
    if node.reversed {
        return expr
            .get_reverse_expr()
            .ok_or_else(|| codec_err("a reversed window expression that cannot be reversed"));
    }
    Ok(expr)
}
