//! Rebuilding a DataFusion [`SessionState`] (to give it other catalogs,
//! optimizer rules or a query planner) without changing what any function
//! name means.
//!
//! DataFusion 55 changes most parts of an existing state only through
//! [`SessionStateBuilder::new_from_existing`], whose `build` registers the
//! old state's functions again one by one, in hash-map order. A function
//! registers itself under its name and every alias, so where two functions
//! share a key (Spark's `date_trunc`, registered over the core one whose
//! alias `datetrunc` keeps pointing at it) the name then means whichever
//! came last: a different function from run to run. [`builder_from`] orders
//! the functions so that every name and alias resolves after the rebuild to
//! exactly the function it resolved to before. Every rebuild of a state in
//! Squall goes through it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::execution::{SessionState, SessionStateBuilder};

/// [`SessionStateBuilder::new_from_existing`], with the scalar,
/// higher-order, aggregate and window functions in an order whose
/// registration gives every name and alias the function it has in `state`.
pub fn builder_from(state: SessionState) -> SessionStateBuilder {
    let scalar = registration_order(state.scalar_functions(), |f| keys(f.name(), f.aliases()));
    let higher_order = registration_order(state.higher_order_functions(), |f| {
        keys(f.name(), f.aliases())
    });
    let aggregate =
        registration_order(state.aggregate_functions(), |f| keys(f.name(), f.aliases()));
    let window = registration_order(state.window_functions(), |f| keys(f.name(), f.aliases()));
    let mut builder = SessionStateBuilder::new_from_existing(state);
    *builder.scalar_functions() = Some(scalar);
    *builder.higher_order_functions() = Some(higher_order);
    *builder.aggregate_functions() = Some(aggregate);
    *builder.window_functions() = Some(window);
    builder
}

fn keys(name: &str, aliases: &[String]) -> Vec<String> {
    std::iter::once(name.to_string())
        .chain(aliases.iter().cloned())
        .collect()
}

fn address<T>(f: &Arc<T>) -> usize {
    Arc::as_ptr(f) as *const () as usize
}

/// The functions `registry` holds (name or alias → function), each once,
/// in an order in which registering them one after another (each under
/// `keys_of` it) rebuilds `registry` exactly.
///
/// Built from the back: a function may be registered before those already
/// placed when each of its keys maps, in `registry`, to itself or to one of
/// them. A registry no sequence of registrations can produce (after
/// deregistrations) leaves some functions unplaced; they go first, in
/// any order.
pub fn registration_order<T>(
    registry: &HashMap<String, Arc<T>>,
    keys_of: impl Fn(&T) -> Vec<String>,
) -> Vec<Arc<T>> {
    let mut seen = HashSet::new();
    let mut pending: Vec<Arc<T>> = registry
        .values()
        .filter(|f| seen.insert(address(f)))
        .cloned()
        .collect();
    // Sorted by name, so that the order is the same from run to run.
    pending.sort_by_cached_key(|f| keys_of(f));
    let mut placed = HashSet::new();
    let mut from_last = Vec::with_capacity(pending.len());
    loop {
        let before = pending.len();
        pending.retain(|f| {
            let own = address(f);
            let ready = keys_of(f).iter().all(|key| {
                registry.get(key).is_none_or(|winner| {
                    address(winner) == own || placed.contains(&address(winner))
                })
            });
            if ready {
                placed.insert(own);
                from_last.push(Arc::clone(f));
            }
            !ready
        });
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    from_last.reverse();
    pending.extend(from_last);
    pending
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function: its name, aliases and an identity of its own.
    struct Function {
        keys: Vec<String>,
    }

    fn function(keys: &[&str]) -> Arc<Function> {
        Arc::new(Function {
            keys: keys.iter().map(|k| k.to_string()).collect(),
        })
    }

    /// What DataFusion's `register_udf` does: aliases, then the name.
    fn register(registry: &mut HashMap<String, Arc<Function>>, f: &Arc<Function>) {
        for key in f.keys.iter().skip(1).chain(f.keys.first()) {
            registry.insert(key.clone(), Arc::clone(f));
        }
    }

    fn rebuilt(registry: &HashMap<String, Arc<Function>>) -> HashMap<String, Arc<Function>> {
        let mut again = HashMap::new();
        for f in registration_order(registry, |f| f.keys.clone()) {
            register(&mut again, &f);
        }
        again
    }

    fn same(a: &HashMap<String, Arc<Function>>, b: &HashMap<String, Arc<Function>>) -> bool {
        a.len() == b.len()
            && a.iter()
                .all(|(k, f)| b.get(k).is_some_and(|g| Arc::ptr_eq(f, g)))
    }

    #[test]
    fn an_override_of_a_name_keeps_the_overridden_alias() {
        // The core `date_trunc` (alias `datetrunc`), then Spark's over it.
        let core = function(&["date_trunc", "datetrunc"]);
        let spark = function(&["date_trunc"]);
        let mut registry = HashMap::new();
        register(&mut registry, &core);
        register(&mut registry, &spark);
        let order = registration_order(&registry, |f| f.keys.clone());
        assert_eq!(order.len(), 2);
        assert!(Arc::ptr_eq(&order[0], &core) && Arc::ptr_eq(&order[1], &spark));
        assert!(same(&rebuilt(&registry), &registry));
    }

    #[test]
    fn every_registration_sequence_is_rebuilt_exactly() {
        // Functions whose names and aliases overlap, registered in every
        // order of a few sequences (some registered twice).
        let pool = [
            function(&["a", "b"]),
            function(&["b", "c"]),
            function(&["c"]),
            function(&["a"]),
            function(&["d", "a", "c"]),
            function(&["e"]),
        ];
        let sequences: &[&[usize]] = &[
            &[0, 1, 2, 3, 4, 5],
            &[5, 4, 3, 2, 1, 0],
            &[4, 0, 2, 1, 3],
            &[1, 4, 0, 5, 2, 1],
            &[3, 0, 4, 2],
            &[2, 1, 0, 4, 3, 0],
        ];
        for sequence in sequences {
            let mut registry = HashMap::new();
            for &i in *sequence {
                register(&mut registry, &pool[i]);
            }
            assert!(
                same(&rebuilt(&registry), &registry),
                "sequence {sequence:?}"
            );
        }
    }
}
