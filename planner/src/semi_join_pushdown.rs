//! A logical rewrite: a semi join on the key of the inner join below it
//! filters that inner join's input rather than its output.
//!
//! `(A ⋈[a.k = b.k] B) ⋉[a.k = s.k] S` becomes `(A ⋉[a.k = s.k] S) ⋈[a.k = b.k] B`
//! (and the same with `B` when the semi join's keys are `B`'s), also through
//! a projection of plain columns between the two joins.
//!
//! Why: DataFusion plans `IN (subquery)` and `EXISTS` as a semi join above
//! the joins of the outer query. When the inner join below it is on the
//! same key, it multiplies rows (TPC-H Q18: every order with each of its
//! line items), and the semi join then probes every row of that product,
//! only to keep the few keys the subquery found. Filtering one side first
//! makes the join's input, its output and the exchange of its output small.
//!
//! Why the result is the same: a row of `A ⋈ B` carries its `A` row's key
//! columns unchanged, so it passes the semi join exactly when its `A` row
//! would; a semi join never duplicates rows; and the inner join pairs the
//! same `A` rows with the same `B` rows either way. Columns of `A` in the
//! semi join's filter are likewise the same before and after the inner
//! join; a filter or key that reads a column of `B` stops the rewrite.
//!
//! When: only a `LeftSemi` join (not anti, not null-aware) whose every key
//! is a key column of the inner join on one side. The rewrite is not
//! always cheaper (a semi join pushed below a selective inner join probes
//! more rows), so it stays away from joins on other keys: TPC-H Q21's
//! semi join sits on a join with `nation` and is left alone.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, JoinType, Result};
use datafusion::logical_expr::{Expr, Join, LogicalPlan, Projection};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// The rewrite (see the module docs), as a DataFusion optimizer rule.
#[derive(Debug, Default)]
pub struct SemiJoinBelowInnerJoin;

impl SemiJoinBelowInnerJoin {
    /// The rule's name in DataFusion's optimizer.
    pub const NAME: &'static str = "squall_semi_join_below_inner_join";
}

impl OptimizerRule for SemiJoinBelowInnerJoin {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        match pushed_down(&plan)? {
            Some(rewritten) => Ok(Transformed::yes(rewritten)),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// Which input of the inner join the semi join moves onto.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// `plan` with its semi join moved below the inner join under it, or
/// `None` when the rewrite does not apply.
fn pushed_down(plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    let LogicalPlan::Join(semi) = plan else {
        return Ok(None);
    };
    if semi.join_type != JoinType::LeftSemi || semi.null_aware {
        return Ok(None);
    }
    let (projection, inner) = match semi.left.as_ref() {
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            match p.input.as_ref() {
                LogicalPlan::Join(j) => (Some(p), j),
                _ => return Ok(None),
            }
        }
        LogicalPlan::Join(j) => (None, j),
        _ => return Ok(None),
    };
    if inner.join_type != JoinType::Inner || inner.null_aware {
        return Ok(None);
    }
    let Some(side) = side_of_keys(semi, inner) else {
        return Ok(None);
    };
    let moved_onto = match side {
        Side::Left => &inner.left,
        Side::Right => &inner.right,
    };
    // Every column of the semi join's filter is the subquery's or that side's.
    if let Some(filter) = &semi.filter {
        let reads_only_moved_side_or_subquery = filter
            .column_refs()
            .iter()
            .all(|c| semi.right.schema().has_column(c) || moved_onto.schema().has_column(c));
        if !reads_only_moved_side_or_subquery {
            return Ok(None);
        }
    }
    let filtered = Arc::new(LogicalPlan::Join(Join::try_new(
        Arc::clone(moved_onto),
        Arc::clone(&semi.right),
        semi.on.clone(),
        semi.filter.clone(),
        JoinType::LeftSemi,
        semi.join_constraint,
        semi.null_equality,
        false,
    )?));
    let (left, right) = match side {
        Side::Left => (filtered, Arc::clone(&inner.right)),
        Side::Right => (Arc::clone(&inner.left), filtered),
    };
    let joined = LogicalPlan::Join(Join::try_new(
        left,
        right,
        inner.on.clone(),
        inner.filter.clone(),
        JoinType::Inner,
        inner.join_constraint,
        inner.null_equality,
        false,
    )?);
    Ok(Some(match projection {
        Some(p) => LogicalPlan::Projection(Projection::try_new(p.expr.clone(), Arc::new(joined))?),
        None => joined,
    }))
}

/// The side of `inner` whose key columns include every key of `semi`'s
/// outer side, if there is one.
fn side_of_keys(semi: &Join, inner: &Join) -> Option<Side> {
    let key_columns = |pick: fn(&(Expr, Expr)) -> &Expr| -> HashSet<&Column> {
        inner
            .on
            .iter()
            .filter_map(|pair| match pick(pair) {
                Expr::Column(c) => Some(c),
                _ => None,
            })
            .collect()
    };
    let left_keys = key_columns(|(l, _)| l);
    let right_keys = key_columns(|(_, r)| r);
    let semi_keys: Vec<&Column> = semi
        .on
        .iter()
        .map(|(outer, _)| match outer {
            Expr::Column(c) => Some(c),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if semi_keys.is_empty() {
        return None;
    }
    if semi_keys.iter().all(|c| left_keys.contains(c)) {
        Some(Side::Left)
    } else if semi_keys.iter().all(|c| right_keys.contains(c)) {
        Some(Side::Right)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    use super::*;

    /// Two columns of nullable integers.
    fn batch(k: Vec<Option<i64>>, v: Vec<Option<i64>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(k)), Arc::new(Int64Array::from(v))],
        )
        .unwrap()
    }

    /// `a` and `b` share keys many times over, with nulls; `s` holds a
    /// few of them, a key no row has and a null.
    fn context(with_rule: bool) -> SessionContext {
        let ctx = SessionContext::new();
        let a = batch(
            vec![Some(1), Some(2), Some(2), Some(3), None, Some(4)],
            vec![Some(10), Some(20), Some(21), Some(30), Some(99), None],
        );
        let b = batch(
            vec![Some(1), Some(1), Some(2), Some(3), None, Some(4), Some(4)],
            vec![
                Some(1),
                Some(2),
                Some(3),
                Some(4),
                Some(5),
                Some(6),
                Some(7),
            ],
        );
        let s = batch(
            vec![Some(2), Some(4), Some(7), None, Some(2)],
            vec![Some(25), Some(1), Some(1), Some(1), Some(19)],
        );
        ctx.register_batch("a", a).unwrap();
        ctx.register_batch("b", b).unwrap();
        ctx.register_batch("s", s).unwrap();
        if with_rule {
            ctx.add_optimizer_rule(Arc::new(SemiJoinBelowInnerJoin));
        }
        ctx
    }

    async fn optimized_plan(ctx: &SessionContext, sql: &str) -> String {
        ctx.sql(sql)
            .await
            .unwrap()
            .into_optimized_plan()
            .unwrap()
            .display_indent()
            .to_string()
    }

    async fn sorted_rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = pretty_format_batches(&batches).unwrap().to_string();
        let mut rows: Vec<String> = text.lines().map(str::to_string).collect();
        rows.sort();
        rows
    }

    /// The line of `plan` that holds `needle`, and its indentation.
    fn depth_of(plan: &str, needle: &str) -> usize {
        let line = plan
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in\n{plan}"));
        line.len() - line.trim_start().len()
    }

    /// Pushed down where it applies, the same rows as DataFusion without
    /// the rule everywhere.
    #[tokio::test]
    async fn moves_below_a_join_on_its_key_and_keeps_the_rows() {
        let cases = [
            // On the join's key, left side: moves.
            (
                "SELECT a.k, a.v, b.v FROM a JOIN b ON a.k = b.k WHERE a.k IN (SELECT k FROM s)",
                true,
            ),
            // On the join's key, right side: moves.
            (
                "SELECT a.v, b.k, b.v FROM a JOIN b ON a.k = b.k WHERE b.k IN (SELECT k FROM s)",
                true,
            ),
            // EXISTS with a filter on the moved side's columns: moves.
            (
                "SELECT a.k, a.v, b.v FROM a JOIN b ON a.k = b.k \
              WHERE EXISTS (SELECT 1 FROM s WHERE s.k = a.k AND s.v > a.v)",
                true,
            ),
            // The filter reads the other side: stays.
            (
                "SELECT a.k, a.v, b.v FROM a JOIN b ON a.k = b.k \
              WHERE EXISTS (SELECT 1 FROM s WHERE s.k = a.k AND s.v > b.v)",
                false,
            ),
            // Not the join's key: stays.
            (
                "SELECT a.k, a.v, b.v FROM a JOIN b ON a.k = b.k WHERE a.v IN (SELECT v FROM s)",
                false,
            ),
            // NOT IN is an anti join: stays.
            (
                "SELECT a.k, a.v, b.v FROM a JOIN b ON a.k = b.k WHERE a.k NOT IN (SELECT k FROM s)",
                false,
            ),
        ];
        let with = context(true);
        let without = context(false);
        for (sql, moves) in cases {
            let plan = optimized_plan(&with, sql).await;
            let semi = plan
                .lines()
                .find(|l| l.contains("Semi Join") || l.contains("Anti Join"));
            let semi = semi.unwrap_or_else(|| panic!("no semi or anti join in\n{plan}"));
            let below_inner = depth_of(&plan, semi) > depth_of(&plan, "Inner Join");
            assert_eq!(below_inner, moves, "{sql}\n{plan}");
            assert_eq!(
                sorted_rows(&with, sql).await,
                sorted_rows(&without, sql).await,
                "{sql}\n{plan}"
            );
        }
    }
}
