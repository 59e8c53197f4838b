//! [`FunctionLibrary`]: the functions a worker knows beyond DataFusion's built-ins.
//!
//! A plan fragment names its functions; the worker resolves each name in its
//! task context when it decodes the fragment. Every task context has
//! DataFusion's built-in functions; a library adds more (user-defined
//! functions, or a dialect's function set such as datafusion-spark). A
//! library is fixed when the worker is built or the backend is created: it is
//! code, not state, so tasks stay pure functions of their spec.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::prelude::SessionContext;

/// Scalar, aggregate and window functions to register in every task context.
#[derive(Debug, Default, Clone)]
pub struct FunctionLibrary {
    scalar: BTreeMap<String, Arc<ScalarUDF>>,
    aggregate: BTreeMap<String, Arc<AggregateUDF>>,
    window: BTreeMap<String, Arc<WindowUDF>>,
}

impl FunctionLibrary {
    /// DataFusion's built-ins only.
    pub fn builtin() -> Self {
        Self::default()
    }

    /// The functions `state` knows beyond DataFusion's built-ins (those
    /// registered on it, or built-ins it replaced): what an in-process backend
    /// gives its tasks so that they resolve every function their session does.
    pub fn from_state(state: &SessionState) -> Self {
        let defaults = SessionStateBuilder::new().with_default_features().build();
        Self {
            scalar: extras(state.scalar_functions(), defaults.scalar_functions()),
            aggregate: extras(state.aggregate_functions(), defaults.aggregate_functions()),
            window: extras(state.window_functions(), defaults.window_functions()),
        }
    }

    /// Names of the library's functions, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .scalar
            .keys()
            .chain(self.aggregate.keys())
            .chain(self.window.keys())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names
    }

    /// True when the library adds nothing to the built-ins.
    pub fn is_empty(&self) -> bool {
        self.scalar.is_empty() && self.aggregate.is_empty() && self.window.is_empty()
    }

    /// Registers every function of the library in `ctx`, replacing built-ins of the same name.
    /// Functions that read the configuration (a time zone) are first updated to `ctx`'s,
    /// as DataFusion does when it builds a session.
    pub fn register_into(&self, ctx: &SessionContext) {
        let config = ctx.state().config_options().clone();
        for f in self.scalar.values() {
            match f.inner().with_updated_config(&config) {
                Some(updated) => ctx.register_udf(updated),
                None => ctx.register_udf(f.as_ref().clone()),
            }
        }
        for f in self.aggregate.values() {
            ctx.register_udaf(f.as_ref().clone());
        }
        for f in self.window.values() {
            ctx.register_udwf(f.as_ref().clone());
        }
    }
}

/// The functions of `map` that are not the same function in `defaults`,
/// keyed by their name (a map holds a function once per alias). Same means
/// equal, not the same instance: a session builds its own instances of the
/// built-ins that read the configuration (`now`, `to_timestamp`).
fn extras<T: Named + PartialEq>(
    map: &HashMap<String, Arc<T>>,
    defaults: &HashMap<String, Arc<T>>,
) -> BTreeMap<String, Arc<T>> {
    map.iter()
        .filter(|(name, f)| !defaults.get(*name).is_some_and(|d| d == *f))
        .map(|(_, f)| (f.function_name().to_string(), Arc::clone(f)))
        .collect()
}

trait Named {
    fn function_name(&self) -> &str;
}

impl Named for ScalarUDF {
    fn function_name(&self) -> &str {
        self.name()
    }
}

impl Named for AggregateUDF {
    fn function_name(&self) -> &str {
        self.name()
    }
}

impl Named for WindowUDF {
    fn function_name(&self) -> &str {
        self.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_session_adds_nothing_to_the_built_ins() {
        let library = FunctionLibrary::from_state(&SessionContext::new().state());
        assert!(library.is_empty(), "{:?}", library.names());
    }

    #[test]
    fn a_registered_function_is_an_extra() {
        let ctx = SessionContext::new();
        let mut abs = (*datafusion::functions::math::abs()).clone();
        abs = abs.with_aliases(["absolutely"]);
        ctx.register_udf(abs);
        let library = FunctionLibrary::from_state(&ctx.state());
        assert_eq!(library.names(), ["abs"]);
    }
}
