//! Expressions on the wire, with what datafusion-proto 55 drops kept.
//!
//! datafusion-proto writes a `Float16` literal as a `Float32` one, and
//! rebuilds a function call's or a cast's result field from the argument
//! types, without the field metadata the planner gave it (Arrow extension
//! types such as `arrow.uuid`, or metadata a function like `with_metadata`
//! sets): a different type, and different results for functions that read
//! metadata. [`SquallConverter`](crate::codec::SquallConverter) sends such
//! expressions as Squall extension expressions: a `Float16` literal by its
//! bits, a call as DataFusion's encoding plus the exact result field, a cast
//! as DataFusion's encoding plus its target field and whether it is safe
//! (datafusion-proto rebuilds every cast as a plain, unsafe cast to a type).

use std::sync::Arc;

use datafusion::arrow::compute::CastOptions;
use datafusion::arrow::datatypes::{Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::common::metadata::FieldMetadata;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_expr::expressions::{CastExpr, Literal};
use datafusion::physical_plan::PhysicalExpr;
use datafusion_proto::protobuf;

/// A Squall extension expression.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExprPatch {
    #[prost(oneof = "expr_patch::Patch", tags = "1, 2, 3")]
    pub patch: Option<expr_patch::Patch>,
}

pub mod expr_patch {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Patch {
        /// A `Float16` literal (no inputs).
        #[prost(message, tag = "1")]
        Float16(super::Float16Literal),
        /// The function call that is the only input, with this result field.
        #[prost(message, tag = "2")]
        CallField(datafusion_proto::protobuf::Field),
        /// The cast that is the only input, with these properties.
        #[prost(message, tag = "3")]
        Cast(super::CastPatch),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Float16Literal {
    /// The value's bits; absent for NULL.
    #[prost(uint32, optional, tag = "1")]
    pub bits: Option<u32>,
    /// The literal's field (its metadata).
    #[prost(message, optional, tag = "2")]
    pub field: Option<protobuf::Field>,
}

/// What datafusion-proto does not keep of a cast.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CastPatch {
    /// The explicit target field (with its nullability and metadata), if any.
    #[prost(message, optional, tag = "1")]
    pub target_field: Option<protobuf::Field>,
    /// Whether an invalid value becomes NULL instead of an error.
    #[prost(bool, tag = "2")]
    pub safe: bool,
}

fn codec_err(msg: impl Into<String>) -> DataFusionError {
    DataFusionError::Internal(format!("Squall plan codec: {}", msg.into()))
}

fn field_to_proto(field: &Field) -> DFResult<protobuf::Field> {
    field
        .try_into()
        .map_err(|e: protobuf::ToProtoError| codec_err(e.to_string()))
}

fn field_from_proto(field: &protobuf::Field) -> DFResult<FieldRef> {
    let field: Field = field
        .try_into()
        .map_err(|e: protobuf::FromProtoError| codec_err(e.to_string()))?;
    Ok(Arc::new(field))
}

/// The patch `expr` needs, and whether DataFusion's own encoding of `expr`
/// goes with it as its input.
pub fn expr_patch(expr: &Arc<dyn PhysicalExpr>) -> DFResult<Option<(ExprPatch, bool)>> {
    use expr_patch::Patch;
    if let Some(lit) = expr.downcast_ref::<Literal>()
        && let ScalarValue::Float16(value) = lit.value()
    {
        let field = lit.return_field(&datafusion::arrow::datatypes::Schema::empty())?;
        let patch = Patch::Float16(Float16Literal {
            bits: value.map(|v| u32::from(v.to_bits())),
            field: Some(field_to_proto(&field)?),
        });
        return Ok(Some((ExprPatch { patch: Some(patch) }, false)));
    }
    if let Some(call) = expr.downcast_ref::<ScalarFunctionExpr>() {
        let field = call.return_field(&datafusion::arrow::datatypes::Schema::empty())?;
        if !field.metadata().is_empty() {
            let patch = Patch::CallField(field_to_proto(&field)?);
            return Ok(Some((ExprPatch { patch: Some(patch) }, true)));
        }
    }
    if let Some(cast) = expr.downcast_ref::<CastExpr>() {
        // What datafusion-proto's decoder builds: a plain cast to the type.
        let plain = CastExpr::new(Arc::clone(cast.expr()), cast.cast_type().clone(), None);
        if format!("{plain:?}") != format!("{cast:?}") {
            let explicit = format!("{cast:?}").contains("explicit_target: true");
            let patch = Patch::Cast(CastPatch {
                target_field: explicit
                    .then(|| field_to_proto(cast.target_field()))
                    .transpose()?,
                safe: cast.cast_options().safe,
            });
            return Ok(Some((ExprPatch { patch: Some(patch) }, true)));
        }
    }
    Ok(None)
}

/// Applies a decoded patch to its decoded `inputs`.
pub fn apply_expr_patch(
    patch: &ExprPatch,
    inputs: &[Arc<dyn PhysicalExpr>],
) -> DFResult<Arc<dyn PhysicalExpr>> {
    use expr_patch::Patch;
    let only_input = || match inputs {
        [one] => Ok(Arc::clone(one)),
        _ => Err(codec_err(format!(
            "a patch for {} expressions",
            inputs.len()
        ))),
    };
    match &patch.patch {
        Some(Patch::Float16(lit)) => {
            let value = ScalarValue::Float16(lit.bits.map(|b| half::f16::from_bits(b as u16)));
            let metadata = match &lit.field {
                Some(f) => {
                    let field = field_from_proto(f)?;
                    (!field.metadata().is_empty())
                        .then(|| FieldMetadata::from(field.metadata().clone()))
                }
                None => None,
            };
            Ok(Arc::new(Literal::new_with_metadata(value, metadata)))
        }
        Some(Patch::CallField(field)) => {
            let input = only_input()?;
            let call = input
                .downcast_ref::<ScalarFunctionExpr>()
                .ok_or_else(|| codec_err("a result field for something other than a call"))?;
            Ok(Arc::new(ScalarFunctionExpr::new(
                call.name(),
                Arc::new(call.fun().clone()),
                call.args().to_vec(),
                field_from_proto(field)?,
                Arc::new(call.config_options().clone()),
            )))
        }
        Some(Patch::Cast(patch)) => {
            let input = only_input()?;
            let cast = input
                .downcast_ref::<CastExpr>()
                .ok_or_else(|| codec_err("cast properties for something other than a cast"))?;
            let options = CastOptions {
                safe: patch.safe,
                ..cast.cast_options().clone()
            };
            let rebuilt = match &patch.target_field {
                Some(field) => CastExpr::new_with_target_field(
                    Arc::clone(cast.expr()),
                    field_from_proto(field)?,
                    Some(options),
                ),
                None => CastExpr::new(
                    Arc::clone(cast.expr()),
                    cast.cast_type().clone(),
                    Some(options),
                ),
            };
            Ok(Arc::new(rebuilt))
        }
        None => Err(codec_err("an empty expression patch")),
    }
}
