//! `squall explain`: the stage graph as text a person can read.

use std::fmt::Write;

use datafusion::physical_plan::displayable;

use crate::stage::{ExchangeKind, Stage, StageGraph};

/// Renders the stage graph: a summary line, then every stage in the order it
/// runs, with its tasks, inputs, output and the operators inside it.
pub fn render_stage_graph(graph: &StageGraph) -> String {
    render_stage_graph_annotated(graph, &|_| None)
}

/// The same, with a line `note(stage id)` under each stage's heading where
/// it gives one (`EXPLAIN ANALYZE`: what the stage did).
pub fn render_stage_graph_annotated(
    graph: &StageGraph,
    note: &dyn Fn(usize) -> Option<String>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Squall plan: {} stage{}, {} task{}{}",
        graph.stages.len(),
        plural(graph.stages.len()),
        graph.total_tasks(),
        plural(graph.total_tasks()),
        if graph.ordered {
            ", ordered result"
        } else {
            ""
        }
    );
    for stage in &graph.stages {
        out.push('\n');
        render_stage(&mut out, graph, stage, note(stage.id));
    }
    out
}

fn render_stage(out: &mut String, graph: &StageGraph, stage: &Stage, note: Option<String>) {
    let role = if stage.is_final { " (final)" } else { "" };
    let _ = writeln!(
        out,
        "Stage {}{role}: {} task{}",
        stage.id,
        stage.task_count,
        plural(stage.task_count)
    );
    if let Some(note) = note {
        let _ = writeln!(out, "  actual: {note}");
    }
    let mut reads = Vec::new();
    if !stage.scans.is_empty() {
        let splits: usize = stage
            .scans
            .iter()
            .flat_map(|s| &s.tasks)
            .map(Vec::len)
            .sum();
        reads.push(format!(
            "{} file split{} ({})",
            splits,
            plural(splits),
            human_bytes(stage.scan_bytes)
        ));
    }
    for input in &stage.inputs {
        let from = graph.stage(input.stage_id);
        let per_task = match input.kind {
            ExchangeKind::Combine { maps_per_task } => {
                format!(", {maps_per_task} map outputs per task")
            }
            _ => String::new(),
        };
        reads.push(format!(
            "stage {} by {} exchange ({} task{}{per_task})",
            input.stage_id,
            input.kind,
            from.task_count,
            plural(from.task_count)
        ));
    }
    if reads.is_empty() {
        reads.push("no inputs".to_string());
    }
    let _ = writeln!(out, "  reads:  {}", reads.join(", "));
    let writes = if stage.is_final {
        "query result as Arrow IPC parts".to_string()
    } else if stage.output_partitions > 1 {
        format!("{} hash partitions per task", stage.output_partitions)
    } else {
        "1 partition per task".to_string()
    };
    let _ = writeln!(out, "  writes: {writes}");
    if stage.est_output_bytes.is_some() || stage.est_output_rows.is_some() {
        let bytes = stage.est_output_bytes.map_or("?".to_string(), human_bytes);
        let rows = stage
            .est_output_rows
            .map_or("?".to_string(), |r| r.to_string());
        let _ = writeln!(out, "  estimated output: {bytes}, {rows} rows");
    }
    let tree = displayable(stage.plan.as_ref()).indent(false).to_string();
    for line in tree.lines() {
        let _ = writeln!(out, "    {line}");
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Bytes in binary units with one decimal (`1.5 MiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(128 * 1024 * 1024), "128.0 MiB");
    }
}
