//! `squall explain --cost`: a prediction as a table a person can read.

use std::fmt::Write;

use squall_planner::explain::human_bytes;

use super::fanout::{Candidate, Goal, seconds_text};
use super::params::ModelParams;
use super::predict::QueryPrediction;
use crate::cost::dollars;

/// The prediction per stage and in total, under a heading that says it is
/// one and what it assumed.
pub fn render_prediction(
    prediction: &QueryPrediction,
    params: &ModelParams,
    target_task_bytes: u64,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Predicted on AWS Lambda + S3 (a model's estimate, not a measurement; see docs/cost-model.md):"
    );
    let _ = writeln!(
        out,
        "functions of {} MB ({:.1} vCPUs), {} of input per task",
        params.function_memory_mb,
        params.vcpus(),
        human_bytes(target_task_bytes)
    );
    out.push('\n');
    let header = [
        "stage", "tasks", "reads", "writes", "GETs", "PUTs", "starts", "takes", "cost",
    ];
    let mut rows: Vec<[String; 9]> = vec![header.map(String::from)];
    for s in &prediction.stages {
        let guessed = if s.output_guessed { "~" } else { "" };
        rows.push([
            s.stage_id.to_string(),
            s.tasks.to_string(),
            human_bytes(s.input_bytes),
            format!("{}{guessed}", human_bytes(s.output_bytes)),
            s.get_requests.to_string(),
            s.put_requests.to_string(),
            seconds_text(s.start_seconds),
            seconds_text(s.seconds()),
            dollars(s.usd),
        ]);
    }
    rows.push([
        "total".into(),
        prediction.tasks().to_string(),
        String::new(),
        String::new(),
        prediction
            .stages
            .iter()
            .map(|s| s.get_requests)
            .sum::<u64>()
            .to_string(),
        prediction
            .stages
            .iter()
            .map(|s| s.put_requests)
            .sum::<u64>()
            .to_string(),
        String::new(),
        seconds_text(prediction.seconds),
        dollars(prediction.usd),
    ]);
    let widths: Vec<usize> = (0..9)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    if prediction.stages.iter().any(|s| s.output_guessed) {
        let _ = writeln!(
            out,
            "~ no statistics for the stage's output: taken to be as large as what it reads"
        );
    }
    let _ = writeln!(
        out,
        "The total includes downloading the result; it leaves out planning on the client."
    );
    out
}

/// The plans considered for `goal`, the chosen one marked.
pub fn render_choice(goal: Goal, candidates: &[Candidate], chosen: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Plans considered for {goal}:");
    for (i, c) in candidates.iter().enumerate() {
        let _ = writeln!(
            out,
            "{} {:>9} per task: {:>5} tasks, {:>8}, {}{}",
            if i == chosen { "*" } else { " " },
            human_bytes(c.target_task_bytes),
            c.prediction.tasks(),
            seconds_text(c.prediction.seconds),
            dollars(c.prediction.usd),
            stages_apart_text(c)
        );
    }
    out
}

/// ", stages sized apart: 1 at 8.0 MiB, 3 at 256.0 MiB per task" (empty
/// when none is).
pub fn stages_apart_text(candidate: &Candidate) -> String {
    if candidate.stage_target_task_bytes.is_empty() {
        return String::new();
    }
    let stages: Vec<String> = candidate
        .stage_target_task_bytes
        .iter()
        .map(|(id, bytes)| format!("{id} at {}", human_bytes(*bytes)))
        .collect();
    format!(", stages sized apart: {} per task", stages.join(", "))
}
