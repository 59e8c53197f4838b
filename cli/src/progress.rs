//! A progress bar on stderr, shown only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use squall_jobs::{ProgressEvent, ProgressListener};

/// A listener drawing tasks done over tasks planned, or `None` off a terminal.
pub fn listener() -> Option<ProgressListener> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} tasks ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    Some(Arc::new(move |event| match event {
        ProgressEvent::QueryPlanned { stages, tasks } => {
            bar.set_length(tasks as u64);
            bar.set_position(0);
            bar.set_message(format!("{stages} stages"));
        }
        ProgressEvent::StageStarted {
            stage,
            tasks,
            planned_tasks,
        } => {
            // A stage sized from its inputs runs fewer tasks than planned.
            let fewer = planned_tasks.saturating_sub(tasks) as u64;
            if fewer > 0 {
                bar.set_length(bar.length().unwrap_or(0).saturating_sub(fewer));
            }
            bar.set_message(format!("stage {stage}"));
        }
        ProgressEvent::TaskFinished { .. } => bar.inc(1),
        ProgressEvent::TaskSpeculated { stage, task } => bar.set_message(format!(
            "stage {stage}: backup attempt for slow task {task}"
        )),
        ProgressEvent::SpeculationWon { .. } => {}
        ProgressEvent::TaskRetried {
            stage,
            task,
            attempt,
            ..
        } => bar.set_message(format!(
            "stage {stage}: retrying task {task} (attempt {})",
            attempt + 1
        )),
        ProgressEvent::StageFinished { .. } => {
            if bar.position() >= bar.length().unwrap_or(0) {
                bar.finish_and_clear();
            }
        }
    }))
}
