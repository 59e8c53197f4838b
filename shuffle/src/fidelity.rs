//! The fidelity guard: a fragment ships only if it means the same after the trip.
//!
//! Every plan fragment travels to its tasks as bytes (datafusion-proto plus
//! [`SquallCodec`](crate::SquallCodec)). A codec that silently drops a
//! property (a window function's direction, an aggregate's `FILTER`, `IGNORE
//! NULLS`, a grouping set, a limit) makes the task compute something else
//! than the plan it came from: a wrong answer with no error. So the
//! coordinator decodes every fragment again, in a context built like the
//! worker's (same settings, same functions), and compares the result with the
//! original, operator by operator, over their whole `Debug` text
//! ([`crate::debug_tree`]), which names every field of every operator and
//! expression. Any difference refuses the query with one line naming the
//! operator and what changed.

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};

use crate::codec::{decode_plan, encode_plan};
use crate::debug_tree::{canonical, first_difference};
use crate::error::{Result, ShuffleError};
use crate::scan_codec::describe_scan;
use crate::sink_codec::describe_sink;

/// Encodes `plan` and checks that decoding the bytes in `ctx` gives the same plan.
pub fn encode_checked(plan: &Arc<dyn ExecutionPlan>, ctx: &TaskContext) -> Result<Vec<u8>> {
    let bytes = encode_plan(Arc::clone(plan)).map_err(|e| unsupported_operator(plan, &e))?;
    let decoded = decode_plan(&bytes, ctx).map_err(|e| ShuffleError::Fidelity {
        operator: plan.name().to_string(),
        detail: format!(
            "its fragment does not decode: {}",
            first_line(&e.strip_backtrace())
        ),
    })?;
    if let Err(e) = check_same(plan, &decoded) {
        if std::env::var_os("SQUALL_FIDELITY_DEBUG").is_some() {
            eprintln!(
                "FIDELITY fragment original:\n{}\nFIDELITY fragment decoded:\n{}",
                datafusion::physical_plan::displayable(plan.as_ref()).indent(true),
                datafusion::physical_plan::displayable(decoded.as_ref()).indent(true)
            );
        }
        return Err(e);
    }
    Ok(bytes)
}

/// Checks that `decoded` is `original`, deepest operators first.
#[recursive::recursive]
pub fn check_same(
    original: &Arc<dyn ExecutionPlan>,
    decoded: &Arc<dyn ExecutionPlan>,
) -> Result<()> {
    let mismatch = |detail: String| ShuffleError::Fidelity {
        operator: original.name().to_string(),
        detail,
    };
    if original.name() != decoded.name() {
        if std::env::var_os("SQUALL_FIDELITY_DEBUG").is_some() {
            eprintln!(
                "FIDELITY structure original:\n{}\nFIDELITY structure decoded:\n{}",
                datafusion::physical_plan::displayable(original.as_ref()).indent(true),
                datafusion::physical_plan::displayable(decoded.as_ref()).indent(true)
            );
        }
        return Err(mismatch(format!("it comes back as {}", decoded.name())));
    }
    let (a_children, b_children) = (original.children(), decoded.children());
    if a_children.len() != b_children.len() {
        return Err(mismatch(format!(
            "it has {} inputs, but {} after decoding",
            a_children.len(),
            b_children.len()
        )));
    }
    for (a, b) in a_children.iter().zip(&b_children) {
        check_same(a, b)?;
    }
    if original.schema() != decoded.schema() {
        let (a, b) = first_difference(
            &canonical(&format!("{:?}", original.schema())),
            &canonical(&format!("{:?}", decoded.schema())),
        )
        .unwrap_or_default();
        return Err(mismatch(format!(
            "its output schema changes: `{a}` becomes `{b}`"
        )));
    }
    let (a, b) = (own_debug(original), own_debug(decoded));
    if std::env::var_os("SQUALL_FIDELITY_DEBUG").is_some() && a != b {
        eprintln!("FIDELITY original: {a}\nFIDELITY decoded:  {b}");
    }
    if let Some((a, b)) = first_difference(&a, &b) {
        return Err(mismatch(format!("`{a}` becomes `{b}`")));
    }
    Ok(())
}

/// The canonical `Debug` text of `node` alone: its inputs are replaced by
/// empty placeholders of the same schema, so the text holds the operator's
/// own fields and expressions.
fn own_debug(node: &Arc<dyn ExecutionPlan>) -> String {
    let placeholders: Vec<Arc<dyn ExecutionPlan>> = node
        .children()
        .iter()
        .map(|c| Arc::new(EmptyExec::new(c.schema())) as Arc<dyn ExecutionPlan>)
        .collect();
    let alone = if placeholders.is_empty() {
        Arc::clone(node)
    } else {
        Arc::clone(node)
            .replace_children(
                placeholders,
                ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
            )
            .unwrap_or_else(|_| Arc::clone(node))
    };
    let sink = describe_sink(node).unwrap_or_default();
    let scan = describe_scan(node).unwrap_or_default();
    canonical(&format!(
        "{alone:?} {sink} {scan} {}",
        called_functions(node)
    ))
}

/// The implementation of every scalar function `node` calls (its `Debug`
/// text names the implementing type): a call's own `Debug` text shows only
/// the function's name, and two functions may share a name.
fn called_functions(node: &Arc<dyn ExecutionPlan>) -> String {
    let mut out = Vec::new();
    let _ = node.apply_expressions(&mut |root| {
        root.apply(|e| {
            if let Some(call) = e.downcast_ref::<ScalarFunctionExpr>() {
                out.push(format!("{}={:?}", call.name(), call.fun()));
            }
            Ok(TreeNodeRecursion::Continue)
        })
    });
    out.join(",")
}

/// The error for a plan that datafusion-proto and Squall's codec cannot
/// encode, naming the deepest operator that does not encode.
#[recursive::recursive]
fn unsupported_operator(
    plan: &Arc<dyn ExecutionPlan>,
    error: &datafusion::error::DataFusionError,
) -> ShuffleError {
    for child in plan.children() {
        if encode_plan(Arc::clone(child)).is_err() {
            let e = encode_plan(Arc::clone(child)).expect_err("it failed just now");
            return unsupported_operator(child, &e);
        }
    }
    let message = error.strip_backtrace();
    let reason = message
        .split(" Plan: ")
        .next()
        .map(first_line)
        .unwrap_or_default();
    ShuffleError::Unsupported {
        operator: plan.name().to_string(),
        reason,
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_string()
}
