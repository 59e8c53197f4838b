//! Telling DataFusion's own functions from others of the same name.
//!
//! datafusion-proto names a function and the worker looks the name up in its
//! task context. A session may register a function under a built-in's name
//! (datafusion-spark's `date_trunc`, a user's `concat`) while a plan still
//! calls the built-in itself (the optimizer rewrites calls into built-ins):
//! a lookup by name would then run the other function. Squall marks calls
//! of DataFusion's own functions in the fragment, and the worker takes those
//! from DataFusion's defaults, never from its registry.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use datafusion::execution::SessionStateDefaults;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};

/// The payload that marks a call of a DataFusion default function.
pub const BUILTIN_MARK: &[u8] = b"squall:datafusion-default";

fn by_name<T>(functions: Vec<Arc<T>>, name: impl Fn(&T) -> &str) -> HashMap<String, Arc<T>> {
    functions
        .into_iter()
        .map(|f| (name(&f).to_string(), f))
        .collect()
}

fn scalar_defaults() -> &'static HashMap<String, Arc<ScalarUDF>> {
    static DEFAULTS: OnceLock<HashMap<String, Arc<ScalarUDF>>> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        by_name(
            SessionStateDefaults::default_scalar_functions(),
            ScalarUDF::name,
        )
    })
}

fn aggregate_defaults() -> &'static HashMap<String, Arc<AggregateUDF>> {
    static DEFAULTS: OnceLock<HashMap<String, Arc<AggregateUDF>>> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        by_name(
            SessionStateDefaults::default_aggregate_functions(),
            AggregateUDF::name,
        )
    })
}

fn window_defaults() -> &'static HashMap<String, Arc<WindowUDF>> {
    static DEFAULTS: OnceLock<HashMap<String, Arc<WindowUDF>>> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        by_name(
            SessionStateDefaults::default_window_functions(),
            WindowUDF::name,
        )
    })
}

/// True when `f` is DataFusion's own function of its name.
pub fn is_default_scalar(f: &ScalarUDF) -> bool {
    scalar_defaults()
        .get(f.name())
        .is_some_and(|d| Arc::ptr_eq(d.inner(), f.inner()))
}

/// True when `f` is DataFusion's own aggregate function of its name.
pub fn is_default_aggregate(f: &AggregateUDF) -> bool {
    aggregate_defaults()
        .get(f.name())
        .is_some_and(|d| Arc::ptr_eq(d.inner(), f.inner()))
}

/// True when `f` is DataFusion's own window function of its name.
pub fn is_default_window(f: &WindowUDF) -> bool {
    window_defaults()
        .get(f.name())
        .is_some_and(|d| Arc::ptr_eq(d.inner(), f.inner()))
}

pub fn default_scalar(name: &str) -> Option<Arc<ScalarUDF>> {
    scalar_defaults().get(name).cloned()
}

pub fn default_aggregate(name: &str) -> Option<Arc<AggregateUDF>> {
    aggregate_defaults().get(name).cloned()
}

pub fn default_window(name: &str) -> Option<Arc<WindowUDF>> {
    window_defaults().get(name).cloned()
}
