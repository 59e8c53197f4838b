//! Cutting a physical plan into stages (see the crate docs for the rules).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::{ConfigOptions, OptimizerOptions};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::physical_planning_context::ScalarSubqueryResults;
use datafusion::physical_expr::scalar_subquery::ScalarSubqueryExpr;
use datafusion::physical_expr::{
    AcrossPartitions, Distribution, LexOrdering, OrderingRequirements, PhysicalExpr,
    PhysicalSortExpr,
};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::combine_partial_final_agg::CombinePartialFinalAggregate;
use datafusion::physical_optimizer::sanity_checker::check_plan_sanity;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::joins::{HashJoinExec, NestedLoopJoinExec, PartitionMode};
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::scalar_subquery::{ScalarSubqueryExec, ScalarSubqueryLink};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::{InterleaveExec, UnionExec, can_interleave};
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, Partitioning, replace_children_if_necessary,
};
use squall_connectors::scan_leaf::bind_scan_splits;
use squall_shuffle::{
    ExchangeReaderExec, ExchangeWriterExec, OutputPartitioning, ReadMode, ResultWriterExec,
};

use crate::combine;
use crate::config::PlannerConfig;
use crate::error::{PlannerError, Result};
use crate::estimates::output_estimate;
use crate::null_partition_folders::null_partition_folders;
use crate::portable::portable_plan;
use crate::scan::{ScanSplits, node_key, plan_scan_splits};
use crate::stage::{ExchangeKind, ScanLeaf, Stage, StageGraph, StageInput};

mod file_sink;

/// How the rows of a rewritten subtree are spread over the tasks of its stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dist {
    /// The complete result, computed by a stage of one task.
    Single,
    /// Split over the tasks of the stage (file splits or hash partitions).
    Multi,
    /// The complete result, present in every task (broadcast).
    Replicated,
}

#[derive(Debug, Clone)]
enum DraftOutput {
    Hash(Vec<Arc<dyn PhysicalExpr>>),
    Single,
    Result,
}

#[derive(Debug)]
struct Draft {
    root: Arc<dyn ExecutionPlan>,
    output: DraftOutput,
    inputs: Vec<StageInput>,
    task_count: usize,
    scans: Vec<ScanLeaf>,
    scan_bytes: u64,
    /// DataFusion's estimate of the stage's output (`None`: unknown).
    est_bytes: Option<u64>,
    est_rows: Option<u64>,
    /// What the stage reads: its splits' bytes plus what its input stages
    /// read (an upper bound of its output for most stages, not for joins
    /// that multiply rows).
    input_bytes: u64,
}

struct Cutter<'a> {
    config: &'a PlannerConfig,
    /// Splits of the original plan's scans.
    scans: HashMap<usize, ScanSplits>,
    /// Splits of the placeholder scans put into fragments.
    placeholders: HashMap<usize, ScanSplits>,
    drafts: Vec<Draft>,
    /// The scalar subqueries seen so far: their shared values and the
    /// readers of their stages.
    subqueries: Vec<(ScalarSubqueryResults, Vec<ScalarSubqueryLink>)>,
    /// The schema of the result when the rewrite computes it differently
    /// from the plan (the sum of a distributed sink's counts).
    result_schema: Option<datafusion::arrow::datatypes::SchemaRef>,
}

/// Cuts `plan` into a stage graph. Reads Parquet footers to size scan stages.
pub async fn cut_into_stages(
    plan: Arc<dyn ExecutionPlan>,
    env: &RuntimeEnv,
    config: &PlannerConfig,
    optimizer: &OptimizerOptions,
) -> Result<StageGraph> {
    let plan = null_partition_folders(portable_plan(plan)?)?;
    let scans = plan_scan_splits(&plan, env, config).await?;
    let mut cutter = Cutter {
        config,
        scans,
        placeholders: HashMap::new(),
        drafts: Vec::new(),
        subqueries: Vec::new(),
        result_schema: None,
    };
    let (root, dist) = cutter.rewrite(&plan)?;
    cutter.add_stage(root, dist, DraftOutput::Result, &plan)?;
    let ordered = plan.output_ordering().is_some();
    let schema = cutter
        .result_schema
        .clone()
        .unwrap_or_else(|| plan.schema());
    cutter.finish(schema, ordered, optimizer)
}

fn is_reader(node: &Arc<dyn ExecutionPlan>, f: impl Fn(&ReadMode) -> bool) -> bool {
    node.downcast_ref::<ExchangeReaderExec>()
        .is_some_and(|r| f(r.mode()))
}

fn contains(node: &Arc<dyn ExecutionPlan>, f: impl Fn(&Arc<dyn ExecutionPlan>) -> bool) -> bool {
    let mut found = false;
    let _ = node.apply(|n| {
        found = f(n);
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// A reader of the rows `node` writes in `stage`. The expressions `node`
/// holds at one literal value in every row (`2 AS k`, a column under
/// `WHERE c = 1`) keep it after any exchange: the reader says so, and the
/// orders DataFusion derived from them hold in the reading stage too.
fn reader(
    stage: usize,
    node: &Arc<dyn ExecutionPlan>,
    mode: ReadMode,
) -> Result<Arc<dyn ExecutionPlan>> {
    let constants = node
        .equivalence_properties()
        .constants()
        .into_iter()
        .filter_map(|c| match c.across_partitions {
            AcrossPartitions::Uniform(Some(value)) => Some((c.expr, value)),
            _ => None,
        })
        .collect();
    Ok(Arc::new(
        ExchangeReaderExec::try_new(stage, node.schema(), mode)?.with_constants(constants)?,
    ))
}

impl Cutter<'_> {
    #[recursive::recursive]
    fn rewrite(&mut self, node: &Arc<dyn ExecutionPlan>) -> Result<(Arc<dyn ExecutionPlan>, Dist)> {
        if node.is::<RecursiveQueryExec>() {
            // The recursive term reads the previous iteration's rows from a
            // work table in memory: the whole recursive query runs in one
            // task, once, and its rows are gathered.
            let whole = self.keep_in_one_task(node)?;
            let gathered = self.cut(
                &whole,
                Dist::Single,
                DraftOutput::Single,
                ReadMode::Gather,
                node,
            )?;
            return Ok((gathered, Dist::Single));
        }
        if let Some(sq) = node.downcast_ref::<ScalarSubqueryExec>() {
            return self.rewrite_scalar_subqueries(sq);
        }
        if file_sink::is_distributable_file_sink(node) {
            return self.rewrite_file_sink(node);
        }
        if let Some(rep) = node.downcast_ref::<RepartitionExec>() {
            let (child, dist) = self.rewrite(rep.input())?;
            return match rep.partitioning() {
                Partitioning::Hash(exprs, _) if already_hash_partitioned(&child, dist, exprs) => {
                    Ok((child, dist))
                }
                Partitioning::Hash(exprs, _) if node.output_ordering().is_some() => {
                    // The repartition keeps its input's order (it merges, or
                    // its input is one sorted partition): so must the exchange.
                    let ordering = node.output_ordering().cloned().expect("checked");
                    let exchanged =
                        self.sorted_hash(child, dist, exprs.clone(), ordering, rep.input())?;
                    Ok((exchanged, Dist::Multi))
                }
                Partitioning::Hash(exprs, _) => {
                    let output = DraftOutput::Hash(exprs.clone());
                    let mode = ReadMode::Hash(exprs.clone());
                    Ok((
                        self.cut(&child, dist, output, mode, rep.input())?,
                        Dist::Multi,
                    ))
                }
                // Round-robin and other repartitions only add parallelism inside
                // one machine; tasks are Squall's parallelism.
                _ => Ok((child, dist)),
            };
        }
        if let Some(coalesce) = node.downcast_ref::<CoalescePartitionsExec>() {
            let (child, dist) = self.rewrite(coalesce.input())?;
            if dist != Dist::Multi {
                return Ok((
                    replace_children_if_necessary(Arc::clone(node), vec![child])?,
                    Dist::Single,
                ));
            }
            let gathered = self.cut(
                &child,
                dist,
                DraftOutput::Single,
                ReadMode::Gather,
                coalesce.input(),
            )?;
            if coalesce.fetch().is_none() {
                return Ok((gathered, Dist::Single));
            }
            // Keep the coalesce for its fetch (LIMIT); it is a no-op on one partition.
            return Ok((
                replace_children_if_necessary(Arc::clone(node), vec![gathered])?,
                Dist::Single,
            ));
        }
        if let Some(spm) = node.downcast_ref::<SortPreservingMergeExec>() {
            let (child, dist) = self.rewrite(spm.input())?;
            if dist != Dist::Multi {
                return Ok((
                    replace_children_if_necessary(Arc::clone(node), vec![child])?,
                    Dist::Single,
                ));
            }
            // Each map task hands over one sorted stream.
            let map_root: Arc<dyn ExecutionPlan> =
                if child.output_partitioning().partition_count() > 1 {
                    Arc::new(
                        SortPreservingMergeExec::new(spm.expr().clone(), Arc::clone(&child))
                            .with_fetch(spm.fetch()),
                    )
                } else {
                    Arc::clone(&child)
                };
            let id = self.add_stage(map_root, dist, DraftOutput::Single, spm.input())?;
            let mode = ReadMode::Merge {
                map_tasks: self.drafts[id].task_count,
                ordering: spm.expr().clone(),
            };
            let merged = reader(id, &child, mode)?;
            return Ok((
                replace_children_if_necessary(Arc::clone(node), vec![merged])?,
                Dist::Single,
            ));
        }
        if node.children().is_empty() {
            if let Some(splits) = self.scans.get(&node_key(node)).cloned() {
                let placeholder = bind_scan_splits(node, &[])?;
                // A scan with a limit pushed into its one partition: one task
                // reads it, or every task would return that many rows.
                let single = splits.max_tasks() == Some(1);
                self.placeholders.insert(node_key(&placeholder), splits);
                return Ok((placeholder, if single { Dist::Single } else { Dist::Multi }));
            }
            return Ok((Arc::clone(node), Dist::Single));
        }
        self.rewrite_generic(node)
    }

    fn rewrite_generic(
        &mut self,
        node: &Arc<dyn ExecutionPlan>,
    ) -> Result<(Arc<dyn ExecutionPlan>, Dist)> {
        let originals: Vec<Arc<dyn ExecutionPlan>> = node.children().into_iter().cloned().collect();
        let mut kids = Vec::with_capacity(originals.len());
        for child in &originals {
            kids.push(self.rewrite(child)?);
        }
        if let Some(join) = node.downcast_ref::<HashJoinExec>()
            && build_side_depends_on_whole_probe(node)
            && !join.null_aware
            && kids.get(1).is_some_and(|(_, d)| *d == Dist::Multi)
        {
            return self.repartition_join(join, kids, &originals);
        }
        let reqs = node.input_distribution_requirements().into_per_child();
        let whole_probe = build_side_depends_on_whole_probe(node);
        // Children that each task must see whole: collect-left build sides
        // and the probe side of joins whose build-side output depends on
        // every probe row.
        let collected: Vec<bool> = (0..kids.len())
            .map(|i| {
                matches!(reqs.get(i), Some(Distribution::SinglePartition))
                    || (whole_probe && i == 1)
            })
            .collect();
        let multi_free = (0..kids.len()).any(|i| !collected[i] && kids[i].1 == Dist::Multi);

        for i in 0..kids.len() {
            let (child, dist) = kids[i].clone();
            if collected[i] {
                if multi_free {
                    let broadcast = if let Some(r) = child.downcast_ref::<ExchangeReaderExec>()
                        && matches!(r.mode(), ReadMode::Gather)
                    {
                        Arc::new(r.with_mode(ReadMode::Broadcast)?) as Arc<dyn ExecutionPlan>
                    } else if dist == Dist::Single
                        && !contains(&child, |n| {
                            n.is::<ExchangeReaderExec>()
                                || self.placeholders.contains_key(&node_key(n))
                        })
                    {
                        // Constants: every task computes the same.
                        child
                    } else {
                        self.cut(
                            &child,
                            dist,
                            DraftOutput::Single,
                            ReadMode::Broadcast,
                            &originals[i],
                        )?
                    };
                    kids[i] = (broadcast, Dist::Replicated);
                } else if dist == Dist::Multi {
                    let gathered = match kept_ordering(node, i, &child) {
                        // The operator needs its input in order: merge the
                        // tasks' sorted outputs instead of concatenating them.
                        Some(ordering) => self.merge(child, dist, ordering, &originals[i])?,
                        None => self.cut(
                            &child,
                            dist,
                            DraftOutput::Single,
                            ReadMode::Gather,
                            &originals[i],
                        )?,
                    };
                    kids[i] = (gathered, Dist::Single);
                }
            } else if let Some(Distribution::KeyPartitioned(exprs)) = reqs.get(i)
                && ((dist == Dist::Multi
                    && !contains(&child, |n| {
                        is_reader(n, |m| {
                            matches!(m, ReadMode::Hash(_) | ReadMode::SortedHash { .. })
                        })
                    }))
                    || (dist == Dist::Single && multi_free))
            {
                // Partitioned by keys, but not through an exchange (split data,
                // or one complete partition next to split siblings): add one,
                // keeping order where the operator needs its input in order.
                let exchanged = match kept_ordering(node, i, &child) {
                    Some(ordering) => {
                        self.sorted_hash(child, dist, exprs.clone(), ordering, &originals[i])?
                    }
                    None => self.cut(
                        &child,
                        dist,
                        DraftOutput::Hash(exprs.clone()),
                        ReadMode::Hash(exprs.clone()),
                        &originals[i],
                    )?,
                };
                kids[i] = (exchanged, Dist::Multi);
            }
        }

        let any_multi = (0..kids.len()).any(|i| !collected[i] && kids[i].1 == Dist::Multi);
        if any_multi {
            // A complete result next to split data (say UNION ALL of an aggregate
            // and a scan) must be produced once, not once per task: it becomes
            // its own stage, gathered by task 0 only.
            for i in 0..kids.len() {
                let (child, dist) = kids[i].clone();
                if !collected[i]
                    && dist == Dist::Single
                    && !is_reader(&child, |m| matches!(m, ReadMode::Gather))
                {
                    kids[i] = (
                        self.cut(
                            &child,
                            dist,
                            DraftOutput::Single,
                            ReadMode::Gather,
                            &originals[i],
                        )?,
                        Dist::Single,
                    );
                }
            }
        }
        let children = kids
            .iter()
            .enumerate()
            .map(|(i, (c, _))| sorted_as_required(node, i, Arc::clone(c)))
            .collect::<Result<Vec<_>>>()?;
        let new_node = if node.is::<InterleaveExec>() && !can_interleave(children.iter()) {
            // UNION ALL of inputs that were identically partitioned on one
            // machine and are exchanges now: the same rows as a union. An
            // operator above that needs a partitioning says so, and the
            // stage's sanity check holds it to that.
            UnionExec::try_new(children)?
        } else {
            replace_children_if_necessary(Arc::clone(node), children)?
        };
        Ok((new_node, if any_multi { Dist::Multi } else { Dist::Single }))
    }

    /// `node` unchanged but for its file scans, which become placeholders:
    /// the subtree runs inside one task, exchanges and all.
    fn keep_in_one_task(
        &mut self,
        node: &Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rewritten = Arc::clone(node).transform_up(|n| {
            if n.children().is_empty()
                && let Some(splits) = self.scans.get(&node_key(&n)).cloned()
            {
                let placeholder = bind_scan_splits(&n, &[])?;
                self.placeholders.insert(node_key(&placeholder), splits);
                return Ok(Transformed::yes(placeholder));
            }
            Ok(Transformed::no(n))
        })?;
        Ok(rewritten.data)
    }

    /// Each scalar subquery becomes a stage of its own whose rows every task
    /// that needs the value reads (a broadcast). The `ScalarSubqueryExec`
    /// stays where it was; stages below it that use the values get their own
    /// copy of it when they are cut (see [`Cutter::provide_subquery_values`]).
    fn rewrite_scalar_subqueries(
        &mut self,
        sq: &ScalarSubqueryExec,
    ) -> Result<(Arc<dyn ExecutionPlan>, Dist)> {
        let mut links = Vec::with_capacity(sq.subqueries().len());
        for link in sq.subqueries() {
            let (plan, dist) = self.rewrite(&link.plan)?;
            let reader = self.cut(
                &plan,
                dist,
                DraftOutput::Single,
                ReadMode::Broadcast,
                &link.plan,
            )?;
            links.push(ScalarSubqueryLink {
                plan: reader,
                index: link.index,
            });
        }
        self.subqueries.push((sq.results().clone(), links.clone()));
        let (input, dist) = self.rewrite(sq.input())?;
        let exec = ScalarSubqueryExec::new(input, links, sq.results().clone());
        Ok((Arc::new(exec), dist))
    }

    /// `root` topped by a `ScalarSubqueryExec` for every scalar subquery
    /// whose value the fragment uses but does not compute itself: its tasks
    /// read the values from the subqueries' stages.
    fn provide_subquery_values(
        &self,
        root: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut used: Vec<ScalarSubqueryResults> = Vec::new();
        let mut provided: Vec<ScalarSubqueryResults> = Vec::new();
        root.apply(|node| {
            if let Some(sq) = node.downcast_ref::<ScalarSubqueryExec>() {
                provided.push(sq.results().clone());
            }
            node.apply_expressions(&mut |expr| {
                expr.apply(|e| {
                    if let Some(s) = e.downcast_ref::<ScalarSubqueryExpr>()
                        && !used.contains(s.results())
                    {
                        used.push(s.results().clone());
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })?;
            Ok(TreeNodeRecursion::Continue)
        })?;
        let mut root = root;
        for results in used.into_iter().filter(|r| !provided.contains(r)) {
            let links = self
                .subqueries
                .iter()
                .find(|(r, _)| *r == results)
                .map(|(_, links)| links.clone())
                .ok_or_else(|| PlannerError::InvalidStage {
                    stage: self.drafts.len(),
                    reason: "a scalar subquery value whose subquery is not in the plan".into(),
                })?;
            root = Arc::new(ScalarSubqueryExec::new(root, links, results));
        }
        Ok(root)
    }

    /// Turns a collect-left join whose build-side output depends on the whole
    /// probe side (semi, anti, outer) into a partitioned join: both sides are
    /// hash-exchanged on the join keys, so each task sees all rows of its keys.
    fn repartition_join(
        &mut self,
        join: &HashJoinExec,
        kids: Vec<(Arc<dyn ExecutionPlan>, Dist)>,
        originals: &[Arc<dyn ExecutionPlan>],
    ) -> Result<(Arc<dyn ExecutionPlan>, Dist)> {
        let (left_keys, right_keys): (Vec<_>, Vec<_>) = join
            .on()
            .iter()
            .map(|(l, r)| (Arc::clone(l), Arc::clone(r)))
            .unzip();
        let mut kids = kids.into_iter();
        let (left, left_dist) = kids.next().expect("a join has two children");
        let (right, right_dist) = kids.next().expect("a join has two children");
        let left = self.hash_exchange(left, left_dist, left_keys, &originals[0])?;
        let right = self.hash_exchange(right, right_dist, right_keys, &originals[1])?;
        let partitioned = join
            .builder()
            .with_partition_mode(PartitionMode::Partitioned)
            .with_new_children(vec![left, right])?
            .recompute_properties()
            .build_exec()?;
        Ok((partitioned, Dist::Multi))
    }

    /// A hash-exchange reader of `child`'s rows on `keys`. A bare gather reader
    /// becomes a hash reader of the same stage instead of costing another hop;
    /// rows already spread by a hash of `keys` stay where they are.
    fn hash_exchange(
        &mut self,
        child: Arc<dyn ExecutionPlan>,
        dist: Dist,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        original: &Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if already_hash_partitioned(&child, dist, &keys) {
            return Ok(child);
        }
        if let Some(r) = child.downcast_ref::<ExchangeReaderExec>()
            && matches!(r.mode(), ReadMode::Gather)
        {
            let id = r.stage_id();
            self.drafts[id].output = DraftOutput::Hash(keys.clone());
            return reader(id, &child, ReadMode::Hash(keys));
        }
        self.cut(
            &child,
            dist,
            DraftOutput::Hash(keys.clone()),
            ReadMode::Hash(keys),
            original,
        )
    }

    /// `child` as one stream per map task, each in `ordering`: the map side
    /// merges its partitions when it has several.
    fn sorted_map_root(
        child: &Arc<dyn ExecutionPlan>,
        ordering: &LexOrdering,
    ) -> Arc<dyn ExecutionPlan> {
        if child.output_partitioning().partition_count() > 1 {
            Arc::new(SortPreservingMergeExec::new(
                ordering.clone(),
                Arc::clone(child),
            ))
        } else {
            Arc::clone(child)
        }
    }

    /// A hash exchange of `child` on `exprs` that keeps `ordering`: every map
    /// task's part of a partition stays a sorted stream, merged on read.
    fn sorted_hash(
        &mut self,
        child: Arc<dyn ExecutionPlan>,
        dist: Dist,
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        ordering: LexOrdering,
        original: &Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let output = DraftOutput::Hash(exprs.clone());
        self.merged_read(
            child,
            dist,
            output,
            ordering,
            original,
            |map_tasks, ordering| ReadMode::SortedHash {
                exprs,
                map_tasks,
                ordering,
            },
        )
    }

    /// A gather of `child` that keeps `ordering`: one task merges the map
    /// tasks' sorted outputs.
    fn merge(
        &mut self,
        child: Arc<dyn ExecutionPlan>,
        dist: Dist,
        ordering: LexOrdering,
        original: &Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.merged_read(
            child,
            dist,
            DraftOutput::Single,
            ordering,
            original,
            |map_tasks, ordering| ReadMode::Merge {
                map_tasks,
                ordering,
            },
        )
    }

    /// `child` as a stage whose tasks each write one stream sorted by
    /// `ordering`, read back by `mode` (given the stage's task count) and
    /// merged in order.
    fn merged_read(
        &mut self,
        child: Arc<dyn ExecutionPlan>,
        dist: Dist,
        output: DraftOutput,
        ordering: LexOrdering,
        original: &Arc<dyn ExecutionPlan>,
        mode: impl FnOnce(usize, LexOrdering) -> ReadMode,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let map_root = Self::sorted_map_root(&child, &ordering);
        let id = self.add_stage(map_root, dist, output, original)?;
        let mode = mode(self.drafts[id].task_count, ordering.clone());
        let sorted_parts = reader(id, &child, mode)?;
        Ok(Arc::new(SortPreservingMergeExec::new(
            ordering,
            sorted_parts,
        )))
    }

    /// Makes `child` a stage of its own; returns a reader of it.
    fn cut(
        &mut self,
        child: &Arc<dyn ExecutionPlan>,
        dist: Dist,
        output: DraftOutput,
        mode: ReadMode,
        original: &Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let id = self.add_stage(Arc::clone(child), dist, output, original)?;
        reader(id, child, mode)
    }

    /// Records a stage whose fragment is `root`; returns its id.
    fn add_stage(
        &mut self,
        root: Arc<dyn ExecutionPlan>,
        dist: Dist,
        output: DraftOutput,
        original: &Arc<dyn ExecutionPlan>,
    ) -> Result<usize> {
        let root = self.provide_subquery_values(root)?;
        let id = self.drafts.len();
        let mut inputs = Vec::new();
        let mut scan_splits = Vec::new();
        root.apply(|n| {
            if let Some(r) = n.downcast_ref::<ExchangeReaderExec>() {
                let kind = match r.mode() {
                    ReadMode::Hash(_) => ExchangeKind::Hash,
                    ReadMode::Gather => ExchangeKind::Gather,
                    ReadMode::Broadcast => ExchangeKind::Broadcast,
                    ReadMode::Merge { .. } => ExchangeKind::Merge,
                    ReadMode::SortedHash { .. } => ExchangeKind::SortedHash,
                };
                inputs.push(StageInput {
                    stage_id: r.stage_id(),
                    kind,
                });
            }
            if n.children().is_empty()
                && let Some(s) = self.placeholders.get(&node_key(n))
            {
                scan_splits.push(s.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let scan_bytes: u64 = scan_splits.iter().map(ScanSplits::total_bytes).sum();
        let split_count: usize = scan_splits.iter().map(|s| s.splits.len()).sum();
        let hash_input_bytes: Option<u64> = inputs
            .iter()
            .filter(|i| matches!(i.kind, ExchangeKind::Hash | ExchangeKind::SortedHash))
            .map(|i| self.sizing_bytes(i.stage_id))
            .reduce(|a, b| a + b);
        let by_size = match (dist, hash_input_bytes) {
            (Dist::Single | Dist::Replicated, _) => 1,
            (Dist::Multi, Some(bytes)) => self.config.tasks_for_stage_bytes(Some(id), bytes),
            (Dist::Multi, None) => self
                .config
                .tasks_for_stage_bytes(Some(id), scan_bytes)
                .min(split_count.max(1)),
        };
        // Scans that keep DataFusion's file groups (an order or a limit per
        // group) need a task per group, and one with a limit no more.
        let task_count = match dist {
            Dist::Multi => {
                let at_least = scan_splits
                    .iter()
                    .map(ScanSplits::min_tasks)
                    .max()
                    .unwrap_or(1);
                let at_most = scan_splits.iter().filter_map(ScanSplits::max_tasks).min();
                match at_most {
                    Some(at_most) if hash_input_bytes.is_none() => at_least.min(at_most).max(1),
                    _ => by_size.max(at_least),
                }
            }
            _ => 1,
        };
        let scans = scan_splits
            .into_iter()
            .enumerate()
            .map(|(ordinal, s)| ScanLeaf {
                ordinal,
                store_url: s.store_url.clone(),
                tasks: s.assign(task_count),
            })
            .collect();
        let (est_bytes, est_rows) = output_estimate(original.as_ref());
        let input_bytes: u64 = scan_bytes
            + inputs
                .iter()
                .map(|i| self.sizing_bytes(i.stage_id))
                .sum::<u64>();
        self.drafts.push(Draft {
            root,
            output,
            inputs,
            task_count,
            scans,
            scan_bytes,
            est_bytes,
            est_rows,
            input_bytes,
        });
        Ok(id)
    }

    /// The bytes that size the stages reading stage `id` through a hash
    /// exchange: what stage `id` reads (its splits, and what its own inputs
    /// read), not DataFusion's estimate of its output. Those estimates
    /// guess: a filter DataFusion cannot judge keeps 20% of its rows (TPC-H
    /// Q13's `NOT LIKE` keeps 98%: sized from the estimate, its join ran in
    /// one task, 2.2× slower at scale 10), and an aggregate is taken to
    /// keep every row (Q1's four groups would get 84 tasks at scale 10).
    /// EXPLAIN and the cost model show the estimates; adaptive stages size
    /// from measured bytes.
    fn sizing_bytes(&self, id: usize) -> u64 {
        self.drafts[id].input_bytes
    }

    fn finish(
        self,
        schema: datafusion::arrow::datatypes::SchemaRef,
        ordered: bool,
        optimizer: &OptimizerOptions,
    ) -> Result<StageGraph> {
        // A hash exchange has as many partitions as its reading stage has tasks.
        let mut consumer_tasks = vec![1usize; self.drafts.len()];
        let mut read_by_hash = vec![false; self.drafts.len()];
        for d in &self.drafts {
            for input in &d.inputs {
                consumer_tasks[input.stage_id] = d.task_count;
                read_by_hash[input.stage_id] = input.kind == ExchangeKind::Hash;
            }
        }
        // Exchanges between very many map and reading tasks get a combining
        // stage right after their map stage; later stages move up by one.
        let combined: Vec<Option<usize>> = self
            .drafts
            .iter()
            .enumerate()
            .map(|(id, d)| match d.output {
                DraftOutput::Hash(_) if read_by_hash[id] => combine::maps_per_combiner(
                    d.task_count,
                    consumer_tasks[id],
                    self.config.combine_exchange_above,
                ),
                _ => None,
            })
            .collect();
        let mut new_id = Vec::with_capacity(self.drafts.len());
        let mut next = 0;
        for c in &combined {
            new_id.push(next);
            next += 1 + usize::from(c.is_some());
        }
        // Readers of a combined stage read its combiners.
        let read_id = |old: usize| new_id[old] + usize::from(combined[old].is_some());
        let any_combined = combined.iter().any(Option::is_some);
        let last = next - 1;
        let mut stages = Vec::with_capacity(next);
        for (old_id, d) in self.drafts.into_iter().enumerate() {
            let id = new_id[old_id];
            let shown_bytes = d.shown_bytes();
            let root = if any_combined {
                combine::renumber_readers(d.root, &read_id)?
            } else {
                d.root
            };
            let inputs = d
                .inputs
                .iter()
                .map(|i| StageInput {
                    stage_id: read_id(i.stage_id),
                    kind: i.kind,
                })
                .collect();
            // A partial aggregate left right below its final one, in one
            // task, because the exchange between them was left out
            // ([`already_hash_partitioned`]): one aggregate does both.
            let root =
                CombinePartialFinalAggregate::new().optimize(root, &ConfigOptions::default())?;
            check_fragment(id, &root, optimizer)?;
            let map_schema = root.schema();
            let (plan, output_partitions): (Arc<dyn ExecutionPlan>, usize) = match &d.output {
                DraftOutput::Hash(exprs) => {
                    let n = consumer_tasks[old_id];
                    let w = ExchangeWriterExec::try_new(
                        root,
                        id,
                        OutputPartitioning::Hash(exprs.clone(), n),
                    )?;
                    (Arc::new(w), n)
                }
                DraftOutput::Single => (
                    Arc::new(ExchangeWriterExec::try_new(
                        root,
                        id,
                        OutputPartitioning::Single,
                    )?),
                    1,
                ),
                DraftOutput::Result => (Arc::new(ResultWriterExec::new(root, id)), 1),
            };
            stages.push(Stage {
                id,
                plan,
                inputs,
                task_count: d.task_count,
                output_partitions,
                scans: d.scans,
                scan_bytes: d.scan_bytes,
                est_output_bytes: shown_bytes,
                est_output_rows: d.est_rows,
                is_final: id == last,
                partition_ranges: Vec::new(),
            });
            if let (Some(group), DraftOutput::Hash(exprs)) = (combined[old_id], &d.output) {
                let combiner = combine::combining_stage(
                    id + 1,
                    id,
                    d.task_count,
                    map_schema,
                    exprs.clone(),
                    consumer_tasks[old_id],
                    group,
                    (shown_bytes, d.est_rows),
                )?;
                check_fragment(id + 1, &combiner.plan, optimizer)?;
                stages.push(combiner);
            }
        }
        Ok(StageGraph {
            stages,
            schema,
            ordered,
        })
    }
}

impl Draft {
    /// The estimated output shown in EXPLAIN: DataFusion's, else what the
    /// stage reads.
    fn shown_bytes(&self) -> Option<u64> {
        self.est_bytes
            .or((self.input_bytes > 0).then_some(self.input_bytes))
    }
}

/// `child`, sorted in its task if cutting lost an order `node` needs from
/// its input `i` (for example constants, which are sorted on every column
/// on one machine but not after an exchange).
fn sorted_as_required(
    node: &Arc<dyn ExecutionPlan>,
    i: usize,
    child: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let Some(Some(OrderingRequirements::Hard(alternatives))) =
        node.required_input_ordering().get(i).cloned()
    else {
        return Ok(child);
    };
    // The first alternative, as DataFusion's sanity check and sort
    // enforcement read a requirement.
    let Some(first) = alternatives.first() else {
        return Ok(child);
    };
    if child
        .equivalence_properties()
        .ordering_satisfy_requirement(first.iter().cloned())?
    {
        return Ok(child);
    }
    let ordering = LexOrdering::new(
        first
            .iter()
            .map(|r| PhysicalSortExpr::new(Arc::clone(&r.expr), r.options.unwrap_or_default())),
    );
    Ok(match ordering {
        Some(ordering) => Arc::new(SortExec::new(ordering, child).with_preserve_partitioning(true)),
        None => child,
    })
}

/// The ordering child `i` of `node` must keep when an exchange is put under
/// `node`: the child's own ordering, if `node` requires its input in order.
fn kept_ordering(
    node: &Arc<dyn ExecutionPlan>,
    i: usize,
    child: &Arc<dyn ExecutionPlan>,
) -> Option<LexOrdering> {
    node.required_input_ordering().get(i)?.as_ref()?;
    child.output_ordering().cloned()
}

/// True when `child`'s rows are already spread over the tasks of its stage
/// exactly as a hash exchange on `exprs` would spread them, so that the
/// exchange would move no row and can be left out.
///
/// That holds when each task of `child`'s stage has one partition that
/// DataFusion knows to be hash-partitioned (from the stage's hash readers,
/// through joins, aggregates and projections that keep it) on expressions
/// equal to `exprs` one by one, in order, or equal to them in every row
/// (the two keys of an inner join). In order, because the reader of the
/// other side of a partitioned join is hashed on its keys in their order:
/// a hash of `(a)` or of `(b, a)` spreads rows differently from one of
/// `(a, b)`. Every hash exchange hashes with the same function, and all the
/// hash readers of one stage read as many partitions as it has tasks, so
/// the rows of one key are in one task either way. (DataFusion's own
/// `Partitioning::satisfaction` cannot decide this: every single partition
/// satisfies it, and each task holds one.)
fn already_hash_partitioned(
    child: &Arc<dyn ExecutionPlan>,
    dist: Dist,
    exprs: &[Arc<dyn PhysicalExpr>],
) -> bool {
    if dist != Dist::Multi {
        return false;
    }
    let Partitioning::Hash(have, 1) = child.output_partitioning() else {
        return false;
    };
    if have.is_empty() || have.len() != exprs.len() {
        return false;
    }
    let eq = child.equivalence_properties();
    let group = eq.eq_group();
    have.iter().zip(exprs).all(|(have, want)| {
        group
            .normalize_expr(Arc::clone(have))
            .eq(&group.normalize_expr(Arc::clone(want)))
    })
}

/// True for a collect-left join that emits build-side rows according to
/// matches over *all* probe rows (left outer, semi, anti, mark, full). In one
/// process DataFusion shares a bitmap of matched build rows between
/// partitions; tasks cannot, so such a join must see its whole probe side in
/// one task.
fn build_side_depends_on_whole_probe(node: &Arc<dyn ExecutionPlan>) -> bool {
    let join_type = if let Some(j) = node.downcast_ref::<HashJoinExec>() {
        if *j.partition_mode() != PartitionMode::CollectLeft {
            return false;
        }
        *j.join_type()
    } else if let Some(j) = node.downcast_ref::<NestedLoopJoinExec>() {
        *j.join_type()
    } else {
        return false;
    };
    matches!(
        join_type,
        JoinType::Left
            | JoinType::LeftAnti
            | JoinType::LeftSemi
            | JoinType::LeftMark
            | JoinType::Full
    )
}

/// Runs DataFusion's sanity checker on every operator of a fragment, as each
/// task will see it (one partition per scan and per hash or gather reader).
fn check_fragment(
    stage: usize,
    root: &Arc<dyn ExecutionPlan>,
    optimizer: &OptimizerOptions,
) -> Result<()> {
    root.apply(|node| {
        check_plan_sanity(node, optimizer)?;
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(|e| PlannerError::InvalidStage {
        stage,
        reason: e.to_string(),
    })?;
    Ok(())
}
