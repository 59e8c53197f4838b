//! What each stage of a query reads, writes, computes and requests: the
//! model's input, estimated from the stage graph before a run.

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use squall_planner::{ExchangeKind, Stage, StageGraph};

use super::params::ModelParams;

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
    let mut profiles: Vec<StageProfile> = Vec::with_capacity(graph.stages.len());
    for stage in &graph.stages {
        let readers = stage.task_count.max(1) as u64;
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
            get_requests += match input.kind {
                // One ranged GET per map object and reading task.
                ExchangeKind::Hash | ExchangeKind::SortedHash | ExchangeKind::Broadcast => {
                    maps * readers
                }
                // Whole objects, each read by one task.
                ExchangeKind::Gather | ExchangeKind::Merge | ExchangeKind::Combine { .. } => maps,
            };
        }
        let (mut output_bytes, output_guessed) = match stage.est_output_bytes {
            Some(bytes) => (bytes, false),
            None => (input_bytes, true),
        };
        if let Some(bytes) = limited_output_bytes(stage) {
            output_bytes = output_bytes.min(bytes);
        }
        // One object per task: one PUT, or a multipart upload of parts.
        let object_mib = output_bytes as f64 / readers as f64 / MIB;
        let puts_per_task = if object_mib > params.multipart_part_mib {
            (object_mib / params.multipart_part_mib).ceil() as u64 + 2
        } else {
            1
        };
        let cpu_ms = input_bytes as f64 / MIB / params.cpu_mib_per_vcpu_second * 1000.0;
        profiles.push(StageProfile {
            stage_id: stage.id,
            tasks: stage.task_count,
            inputs: stage.inputs.iter().map(|i| i.stage_id).collect(),
            input_bytes,
            output_bytes,
            output_guessed,
            get_requests,
            put_requests: puts_per_task * readers,
            cpu_ms,
            is_final: stage.is_final,
        });
    }
    profiles
}

/// Bytes a value of a variable-width type is taken to have.
const VARIABLE_VALUE_BYTES: usize = 24;

/// The most a stage whose tasks stop after a number of rows (a `LIMIT`, a
/// top-k sort) can write: that many rows per task, at the width its schema
/// gives a row.
fn limited_output_bytes(stage: &Stage) -> Option<u64> {
    let below_writer = stage.plan.children().first().map(|c| Arc::clone(c))?;
    let rows = below_writer.fetch()?;
    let row_bytes = row_bytes(&below_writer.schema()) as u64;
    Some(rows as u64 * row_bytes * stage.task_count.max(1) as u64)
}

/// A row's bytes: fixed-width values at their width, others at a guess.
fn row_bytes(schema: &Schema) -> usize {
    schema
        .fields()
        .iter()
        .map(|f| {
            f.data_type()
                .primitive_width()
                .unwrap_or(VARIABLE_VALUE_BYTES)
        })
        .sum::<usize>()
        .max(1)
}
