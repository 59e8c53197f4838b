//! What each stage of a query reads, writes, computes and requests: the
//! model's input, estimated from the stage graph before a run
//! ([`profiles_from_plan`]), or measured by a run ([`profile_from_measures`])
//! and scaled to more data ([`scaled_profiles`]).

use std::sync::Arc;

use squall_planner::{ExchangeKind, PlannerConfig, Stage, StageGraph};

use super::params::ModelParams;
use crate::analyze::StageMeasures;

const MIB: f64 = 1024.0 * 1024.0;

/// The work of one stage, summed over its tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct StageProfile {
    pub stage_id: usize,
    pub tasks: usize,
    /// The stages whose output it reads: it starts when they have finished.
    pub inputs: Vec<usize>,
    /// Bytes read from files and exchanges.
    pub input_bytes: u64,
    /// Bytes written to exchange objects or result parts.
    pub output_bytes: u64,
    /// Whether `output_bytes` is a guess: the planner had no statistics,
    /// and the stage is taken to write as much as it reads.
    pub output_guessed: bool,
    pub get_requests: u64,
    pub put_requests: u64,
    /// vCPU-milliseconds its tasks compute, summed.
    pub cpu_ms: f64,
    pub is_final: bool,
}

/// The profiles of `graph`'s stages, in its order, estimated from split
/// sizes, the planner's output estimates and the exchange patterns.
pub fn profiles_from_plan(graph: &StageGraph, params: &ModelParams) -> Vec<StageProfile> {
    let tasks: Vec<usize> = graph.stages.iter().map(|s| s.task_count).collect();
    profiles_with_tasks(graph, &tasks, params)
}

/// The same with `tasks[i]` tasks for stage `graph.stages[i]`: what the
/// plan would be with its stages spread differently (exchange requests
/// follow the new counts; the work and bytes stay).
pub fn profiles_with_tasks(
    graph: &StageGraph,
    tasks: &[usize],
    params: &ModelParams,
) -> Vec<StageProfile> {
    let mut profiles: Vec<StageProfile> = Vec::with_capacity(graph.stages.len());
    for (stage, &task_count) in graph.stages.iter().zip(tasks) {
        let readers = task_count.max(1) as u64;
        let mut input_bytes = stage.scan_bytes;
        let mut get_requests = 0u64;
        for split in stage.scans.iter().flat_map(|s| &s.tasks).flatten() {
            let mib = split.end.saturating_sub(split.start) as f64 / MIB;
            // A footer, then the column chunks in GETs of about a few MiB.
            get_requests += 1 + (mib / params.scan_mib_per_get).ceil() as u64;
        }
        for input in &stage.inputs {
            let from = profiles
                .iter()
                .find(|p| p.stage_id == input.stage_id)
                .expect("inputs come before the stages that read them");
            let maps = from.tasks.max(1) as u64;
            input_bytes += match input.kind {
                ExchangeKind::Broadcast => from.output_bytes * readers,
                _ => from.output_bytes,
            };
            get_requests += exchange_gets(input.kind, maps, readers);
        }
        let (mut output_bytes, output_guessed) = match stage.est_output_bytes {
            Some(bytes) => (bytes, false),
            None => (input_bytes, true),
        };
        if let Some(bytes) = limited_output_bytes(stage, task_count) {
            output_bytes = output_bytes.min(bytes);
        }
        let cpu_ms = input_bytes as f64 / MIB / params.cpu_mib_per_vcpu_second * 1000.0;
        profiles.push(StageProfile {
            stage_id: stage.id,
            tasks: task_count,
            inputs: stage.inputs.iter().map(|i| i.stage_id).collect(),
            input_bytes,
            output_bytes,
            output_guessed,
            get_requests,
            put_requests: puts(output_bytes, task_count, params),
            cpu_ms,
            is_final: stage.is_final,
        });
    }
    profiles
}

/// GETs of one exchange input: `maps` map objects read by `readers` tasks.
fn exchange_gets(kind: ExchangeKind, maps: u64, readers: u64) -> u64 {
    match kind {
        // One ranged GET per map object and reading task.
        ExchangeKind::Hash | ExchangeKind::SortedHash | ExchangeKind::Broadcast => maps * readers,
        // Whole objects, each read by one task.
        ExchangeKind::Gather | ExchangeKind::Merge | ExchangeKind::Combine { .. } => maps,
    }
}

/// PUTs of `tasks` tasks writing `output_bytes` together: one object each,
/// in one PUT, or a multipart upload (a request per part, plus two).
fn puts(output_bytes: u64, tasks: usize, params: &ModelParams) -> u64 {
    let tasks = tasks.max(1) as u64;
    let object_mib = output_bytes as f64 / tasks as f64 / MIB;
    let per_task = if object_mib > params.multipart_part_mib {
        (object_mib / params.multipart_part_mib).ceil() as u64 + 2
    } else {
        1
    };
    per_task * tasks
}

/// The profile of `stage` as it ran: what its tasks measured (their busy
/// time taken as vCPU time: a local task runs on about one core).
pub fn profile_from_measures(stage: &Stage, measures: &StageMeasures) -> StageProfile {
    let r = &measures.requests;
    StageProfile {
        stage_id: stage.id,
        tasks: measures.tasks.max(1),
        inputs: stage.inputs.iter().map(|i| i.stage_id).collect(),
        input_bytes: measures.input_bytes,
        output_bytes: measures.output_bytes,
        output_guessed: false,
        get_requests: r.get + r.head,
        put_requests: r.put + r.multipart_put + r.copy + r.list,
        cpu_ms: measures.busy_ms as f64,
        is_final: stage.is_final,
    }
}

/// `measured` (one profile per stage of `graph`, in its order) as it would
/// be on `factor` times the data, planned with `planner`: bytes, compute
/// and scan requests grow by the factor; a stage that reads files or a hash
/// exchange gets one task per `target_task_bytes` of input (at most
/// `max_tasks_per_stage`), others keep theirs (a gather or merge is one
/// task at any scale); exchange GETs and PUTs follow the new task counts,
/// and a hash exchange that has grown past `combine_exchange_above` gets
/// the combining stage the planner would put in (see
/// [`squall_planner::combine`]), as a profile of its own.
pub fn scaled_profiles(
    graph: &StageGraph,
    measured: &[StageProfile],
    factor: f64,
    planner: &PlannerConfig,
    params: &ModelParams,
) -> Vec<StageProfile> {
    let tasks_of = |profiles: &[StageProfile], id: usize| {
        profiles
            .iter()
            .find(|p| p.stage_id == id)
            .map_or(1, |p| p.tasks.max(1)) as u64
    };
    let mut next_id = graph.stages.iter().map(|s| s.id + 1).max().unwrap_or(0);
    let mut scaled: Vec<StageProfile> = Vec::with_capacity(measured.len());
    for (stage, m) in graph.stages.iter().zip(measured) {
        let input_bytes = (m.input_bytes as f64 * factor) as u64;
        let output_bytes = (m.output_bytes as f64 * factor) as u64;
        let sized_by_input = !stage.scans.is_empty()
            || stage.inputs.iter().any(|i| {
                matches!(
                    i.kind,
                    ExchangeKind::Hash | ExchangeKind::SortedHash | ExchangeKind::Combine { .. }
                )
            });
        let tasks = if sized_by_input {
            (input_bytes.div_ceil(planner.target_task_bytes.max(1)) as usize)
                .clamp(1, planner.max_tasks_per_stage.max(1))
        } else {
            m.tasks
        };
        let measured_exchange_gets: u64 = stage
            .inputs
            .iter()
            .map(|i| {
                exchange_gets(
                    i.kind,
                    tasks_of(measured, i.stage_id),
                    m.tasks.max(1) as u64,
                )
            })
            .sum();
        let scan_gets = m.get_requests.saturating_sub(measured_exchange_gets);
        let mut get_requests = (scan_gets as f64 * factor).ceil() as u64;
        let mut inputs = Vec::with_capacity(stage.inputs.len());
        for input in &stage.inputs {
            let maps = tasks_of(&scaled, input.stage_id);
            let combine = match input.kind {
                ExchangeKind::Hash => squall_planner::combine::maps_per_combiner(
                    maps as usize,
                    tasks,
                    planner.combine_exchange_above,
                ),
                _ => None,
            };
            let Some(group) = combine else {
                get_requests += exchange_gets(input.kind, maps, tasks as u64);
                inputs.push(input.stage_id);
                continue;
            };
            let from = scaled
                .iter()
                .find(|p| p.stage_id == input.stage_id)
                .expect("inputs come before the stages that read them");
            let bytes = from.output_bytes;
            let combiners = maps.div_ceil(group as u64) as usize;
            let combiner = StageProfile {
                stage_id: next_id,
                tasks: combiners,
                inputs: vec![input.stage_id],
                input_bytes: bytes,
                output_bytes: bytes,
                output_guessed: false,
                // Whole map objects, in GETs of at most 8 MiB.
                get_requests: maps.max((bytes as f64 / (8.0 * MIB)).ceil() as u64),
                put_requests: puts(bytes, combiners, params),
                cpu_ms: bytes as f64 / MIB / params.cpu_mib_per_vcpu_second * 1000.0,
                is_final: false,
            };
            get_requests += exchange_gets(input.kind, combiners as u64, tasks as u64);
            inputs.push(next_id);
            next_id += 1;
            scaled.push(combiner);
        }
        scaled.push(StageProfile {
            tasks,
            inputs,
            input_bytes,
            output_bytes,
            get_requests,
            put_requests: puts(output_bytes, tasks, params),
            cpu_ms: m.cpu_ms * factor,
            ..m.clone()
        });
    }
    scaled
}

/// The most a stage whose `tasks` stop after a number of rows (a `LIMIT`, a
/// top-k sort) can write: that many rows per task, at the width its schema
/// gives a row.
fn limited_output_bytes(stage: &Stage, tasks: usize) -> Option<u64> {
    let below_writer = stage.plan.children().first().map(|c| Arc::clone(c))?;
    let rows = below_writer.fetch()?;
    let row_bytes = squall_planner::estimates::row_width_bytes(&below_writer.schema());
    Some(rows as u64 * row_bytes * tasks.max(1) as u64)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::empty::EmptyExec;
    use squall_connectors::FileSplit;
    use squall_planner::{ScanLeaf, StageInput};

    use super::*;

    const MIB_BYTES: u64 = 1 << 20;

    fn stage(id: usize, tasks: usize, inputs: &[(usize, ExchangeKind)], scan: bool) -> Stage {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        Stage {
            id,
            plan: Arc::new(EmptyExec::new(schema)),
            inputs: inputs
                .iter()
                .map(|(stage_id, kind)| StageInput {
                    stage_id: *stage_id,
                    kind: *kind,
                })
                .collect(),
            task_count: tasks,
            output_partitions: 1,
            scans: if scan {
                vec![ScanLeaf {
                    ordinal: 0,
                    store_url: "file:///".into(),
                    tasks: vec![vec![FileSplit::whole_file("t.parquet", 64 * MIB_BYTES)]; tasks],
                }]
            } else {
                vec![]
            },
            scan_bytes: if scan {
                64 * MIB_BYTES * tasks as u64
            } else {
                0
            },
            est_output_bytes: None,
            est_output_rows: None,
            is_final: id == 2,
            partition_ranges: vec![],
        }
    }

    fn measured(stage: &Stage, input_bytes: u64, output_bytes: u64, gets: u64) -> StageProfile {
        StageProfile {
            stage_id: stage.id,
            tasks: stage.task_count,
            inputs: stage.inputs.iter().map(|i| i.stage_id).collect(),
            input_bytes,
            output_bytes,
            output_guessed: false,
            get_requests: gets,
            put_requests: stage.task_count as u64,
            cpu_ms: 1000.0,
            is_final: stage.is_final,
        }
    }

    /// A scan of 2 tasks, a hash-fed aggregation of 2, a gather of 1,
    /// measured, then at 1,000 times the data in tasks of 128 MiB.
    #[test]
    fn scaling_grows_bytes_and_refits_tasks_and_exchange_requests() {
        let graph = StageGraph {
            stages: vec![
                stage(0, 2, &[], true),
                stage(1, 2, &[(0, ExchangeKind::Hash)], false),
                stage(2, 1, &[(1, ExchangeKind::Gather)], false),
            ],
            schema: Arc::new(Schema::empty()),
            ordered: false,
        };
        let profiles = vec![
            // 40 GETs of the scan.
            measured(&graph.stages[0], 128 * MIB_BYTES, 64 * MIB_BYTES, 40),
            // 2 x 2 ranged GETs of the exchange.
            measured(&graph.stages[1], 64 * MIB_BYTES, MIB_BYTES, 4),
            measured(&graph.stages[2], MIB_BYTES, 1024, 2),
        ];
        let params = ModelParams::default();
        let planner = |target_task_bytes, max_tasks_per_stage| PlannerConfig {
            target_task_bytes,
            max_tasks_per_stage,
            combine_exchange_above: u64::MAX,
            ..PlannerConfig::default()
        };
        let scaled = scaled_profiles(
            &graph,
            &profiles,
            1000.0,
            &planner(128 * MIB_BYTES, 10_000),
            &params,
        );
        assert_eq!(scaled[0].tasks, 1000);
        assert_eq!(scaled[0].input_bytes, 128_000 * MIB_BYTES);
        assert_eq!(scaled[0].get_requests, 40_000);
        assert_eq!(scaled[0].cpu_ms, 1_000_000.0);
        assert_eq!(scaled[1].tasks, 500);
        assert_eq!(scaled[1].get_requests, 1000 * 500);
        // A gather stays one task, reading each of the 500 map objects once.
        assert_eq!(scaled[2].tasks, 1);
        assert_eq!(scaled[2].get_requests, 500);
        // 64 GiB in 1,000 objects of 64 MiB: multipart uploads of 7 parts + 2.
        assert_eq!(scaled[0].put_requests, 1000 * 9);
        // The task cap holds.
        let capped = scaled_profiles(
            &graph,
            &profiles,
            1000.0,
            &planner(MIB_BYTES, 3000),
            &params,
        );
        assert_eq!(capped[0].tasks, 3000);

        // Past 512 x 512 pairs, the planner's combining stage: ⌈√1000⌉ = 32
        // map objects per combiner, 32 combiners, read by each of 500 readers.
        let combined = scaled_profiles(
            &graph,
            &profiles,
            1000.0,
            &PlannerConfig {
                max_tasks_per_stage: 10_000,
                ..PlannerConfig::default()
            },
            &params,
        );
        assert_eq!(combined.len(), 4);
        let combiner = &combined[1];
        assert_eq!((combiner.stage_id, combiner.tasks), (3, 32));
        assert_eq!(combiner.inputs, vec![0]);
        assert_eq!(combined[2].inputs, vec![3]);
        assert_eq!(combined[2].get_requests, 32 * 500);
        let prediction = super::super::predict::predict(&combined, &params);
        let unscaled = super::super::predict::predict(&scaled, &params);
        assert!(
            prediction
                .stages
                .iter()
                .map(|s| s.get_requests)
                .sum::<u64>()
                < unscaled.stages.iter().map(|s| s.get_requests).sum::<u64>() / 5
        );
    }

    #[test]
    fn a_plan_profile_counts_scan_and_exchange_requests() {
        let graph = StageGraph {
            stages: vec![
                stage(0, 2, &[], true),
                stage(1, 3, &[(0, ExchangeKind::Hash)], false),
                stage(2, 1, &[(1, ExchangeKind::Gather)], false),
            ],
            schema: Arc::new(Schema::empty()),
            ordered: false,
        };
        let params = ModelParams::default();
        let profiles = profiles_from_plan(&graph, &params);
        // Per 64 MiB split: a footer and 16 GETs of 4 MiB.
        assert_eq!(profiles[0].get_requests, 2 * 17);
        assert_eq!(profiles[0].input_bytes, 128 * MIB_BYTES);
        // No statistics: each stage writes what it reads.
        assert!(profiles[0].output_guessed);
        assert_eq!(profiles[1].input_bytes, 128 * MIB_BYTES);
        assert_eq!(profiles[1].get_requests, 2 * 3);
        assert_eq!(profiles[2].get_requests, 3);
        assert_eq!(profiles[1].inputs, vec![0]);
    }
}
