//! Live progress on stderr while a statement runs, shown only when stderr is
//! a terminal: a spinner with the elapsed time while planning, then a header
//! line (stages and tasks done) and one line per running stage: its tasks
//! done of its total, attempts running, rows and bytes written so far,
//! retries and backups.
//!
//! It stays readable however large the query: at most [`MAX_STAGE_LINES`]
//! stage lines, the other running stages summed on one more line, and
//! counters rather than a line per task.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use squall::jobs::{ProgressEvent, ProgressListener};
use squall_planner::explain::human_bytes;

/// Most stages drawn with a line of their own.
pub const MAX_STAGE_LINES: usize = 6;

/// How often the spinner and elapsed time move.
const TICK: Duration = Duration::from_millis(120);

/// A statement quicker than this draws nothing.
pub const SHOW_AFTER: Duration = Duration::from_millis(500);

/// The progress display of one statement; cleared by [`LiveProgress::finish`]
/// or when dropped.
#[derive(Debug, Clone)]
pub struct LiveProgress {
    display: Arc<Mutex<Display>>,
}

#[derive(Debug)]
struct Display {
    multi: MultiProgress,
    header: ProgressBar,
    /// Running stages, by id.
    stages: BTreeMap<usize, StageLine>,
    /// The line summing running stages without a line of their own.
    overflow: Option<ProgressBar>,
    planned_stages: usize,
    finished_stages: usize,
    planned_tasks: usize,
    finished_tasks: usize,
    finished: bool,
}

#[derive(Debug, Default)]
struct StageLine {
    bar: Option<ProgressBar>,
    tasks: usize,
    done: usize,
    /// Attempts out with workers now (backups and retries included).
    running: usize,
    rows: u64,
    bytes: u64,
    retries: usize,
    backups: usize,
}

impl StageLine {
    fn message(&self) -> String {
        let mut text = format!(
            "{} running · {} rows · {}",
            self.running,
            human_count(self.rows),
            human_bytes(self.bytes)
        );
        if self.retries > 0 {
            text.push_str(&format!(" · {} retried", self.retries));
        }
        if self.backups > 0 {
            text.push_str(&format!(
                " · {} backup{}",
                self.backups,
                if self.backups == 1 { "" } else { "s" }
            ));
        }
        text
    }
}

impl LiveProgress {
    /// A display that starts spinning now, or `None` when stderr is not a terminal.
    pub fn start() -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let progress = Self::with_target(ProgressDrawTarget::hidden());
        let display = Arc::clone(&progress.display);
        std::thread::spawn(move || {
            std::thread::sleep(SHOW_AFTER);
            let display = display.lock().unwrap_or_else(|e| e.into_inner());
            if !display.finished {
                display.multi.set_draw_target(ProgressDrawTarget::stderr());
            }
        });
        Some(progress)
    }

    fn with_target(target: ProgressDrawTarget) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let header = multi.add(ProgressBar::new_spinner());
        header.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        header.set_message("planning");
        header.enable_steady_tick(TICK);
        Self {
            display: Arc::new(Mutex::new(Display {
                multi,
                header,
                stages: BTreeMap::new(),
                overflow: None,
                planned_stages: 0,
                finished_stages: 0,
                planned_tasks: 0,
                finished_tasks: 0,
                finished: false,
            })),
        }
    }

    /// The listener to hand the statement's query.
    pub fn listener(&self) -> ProgressListener {
        let display = Arc::clone(&self.display);
        Arc::new(move |event| {
            let mut display = display.lock().unwrap_or_else(|e| e.into_inner());
            if !display.finished {
                display.apply(event);
            }
        })
    }

    /// What clears `live` (if any) once called: for the first byte of a
    /// result written to stdout.
    pub fn clearing(live: Option<LiveProgress>) -> Box<dyn FnOnce() + Send> {
        Box::new(move || {
            if let Some(live) = live {
                live.finish();
            }
        })
    }

    /// Clears the display (the statement ended, failed or was cancelled).
    pub fn finish(&self) {
        let mut display = self.display.lock().unwrap_or_else(|e| e.into_inner());
        display.clear();
    }

    /// The lines as they would be drawn now (for tests).
    #[cfg(test)]
    fn lines(&self) -> Vec<String> {
        let display = self.display.lock().unwrap();
        let mut lines = vec![display.header.message()];
        for (id, stage) in &display.stages {
            if stage.bar.is_some() {
                lines.push(format!(
                    "stage {id}: {}/{} tasks · {}",
                    stage.done,
                    stage.tasks,
                    stage.message()
                ));
            }
        }
        if let Some(overflow) = &display.overflow {
            lines.push(overflow.message());
        }
        lines
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.clear();
    }
}

impl Display {
    fn clear(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        for stage in self.stages.values() {
            if let Some(bar) = &stage.bar {
                bar.finish_and_clear();
            }
        }
        if let Some(bar) = &self.overflow {
            bar.finish_and_clear();
        }
        self.header.finish_and_clear();
        let _ = self.multi.clear();
    }

    fn apply(&mut self, event: ProgressEvent) {
        match event {
            ProgressEvent::QueryPlanned { stages, tasks, .. } => {
                self.planned_stages += stages;
                self.planned_tasks += tasks;
            }
            ProgressEvent::StageStarted {
                stage,
                tasks,
                planned_tasks,
            } => {
                // A stage sized from its inputs runs fewer tasks than planned.
                self.planned_tasks = self.planned_tasks.saturating_sub(planned_tasks) + tasks;
                self.stages.insert(
                    stage,
                    StageLine {
                        tasks,
                        ..StageLine::default()
                    },
                );
                self.show_stage(stage);
            }
            ProgressEvent::TaskFinished {
                stage,
                output_rows,
                output_bytes,
                ..
            } => {
                self.finished_tasks += 1;
                if let Some(line) = self.stages.get_mut(&stage) {
                    line.done += 1;
                    line.rows += output_rows;
                    line.bytes += output_bytes;
                    self.redraw_stage(stage);
                }
            }
            ProgressEvent::TaskRetried { stage, .. } => {
                if let Some(line) = self.stages.get_mut(&stage) {
                    line.retries += 1;
                    self.redraw_stage(stage);
                }
            }
            ProgressEvent::TaskSpeculated { stage, .. } => {
                if let Some(line) = self.stages.get_mut(&stage) {
                    line.backups += 1;
                    self.redraw_stage(stage);
                }
            }
            ProgressEvent::SpeculationWon { .. } | ProgressEvent::AttemptTimed { .. } => {}
            ProgressEvent::AttemptsStarted { stage, attempts } => {
                if let Some(line) = self.stages.get_mut(&stage) {
                    line.running += attempts;
                    self.redraw_stage(stage);
                }
            }
            ProgressEvent::AttemptsEnded { stage, attempts } => {
                if let Some(line) = self.stages.get_mut(&stage) {
                    line.running = line.running.saturating_sub(attempts);
                    self.redraw_stage(stage);
                }
            }
            ProgressEvent::StageFinished { stage } => {
                self.finished_stages += 1;
                if let Some(line) = self.stages.remove(&stage)
                    && let Some(bar) = line.bar
                {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                    // A running stage without a line of its own takes this one.
                    if let Some(next) = self
                        .stages
                        .iter()
                        .find(|(_, l)| l.bar.is_none())
                        .map(|(id, _)| *id)
                    {
                        self.show_stage(next);
                    }
                }
                self.redraw_overflow();
            }
        }
        self.header.set_message(format!(
            "stage {} of {} · {} of {} tasks",
            (self.finished_stages + 1).min(self.planned_stages.max(1)),
            self.planned_stages.max(1),
            self.finished_tasks,
            self.planned_tasks
        ));
    }

    /// Gives `stage` a line if one is free, else counts it on the overflow line.
    fn show_stage(&mut self, stage: usize) {
        let drawn = self.stages.values().filter(|l| l.bar.is_some()).count();
        if drawn < MAX_STAGE_LINES {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "  stage {stage:<3} [{{bar:24}}] {{pos}}/{{len}} tasks · {{msg}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            let bar = match &self.overflow {
                Some(overflow) => self.multi.insert_before(overflow, bar),
                None => self.multi.add(bar),
            };
            if let Some(line) = self.stages.get_mut(&stage) {
                line.bar = Some(bar);
            }
            self.redraw_stage(stage);
        }
        self.redraw_overflow();
    }

    fn redraw_stage(&mut self, stage: usize) {
        let Some(line) = self.stages.get(&stage) else {
            return;
        };
        match &line.bar {
            Some(bar) => {
                bar.set_length(line.tasks as u64);
                bar.set_position(line.done as u64);
                bar.set_message(line.message());
            }
            None => self.redraw_overflow(),
        }
    }

    fn redraw_overflow(&mut self) {
        let hidden: Vec<&StageLine> = self.stages.values().filter(|l| l.bar.is_none()).collect();
        if hidden.is_empty() {
            if let Some(bar) = self.overflow.take() {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
            return;
        }
        let done: usize = hidden.iter().map(|l| l.done).sum();
        let tasks: usize = hidden.iter().map(|l| l.tasks).sum();
        let running: usize = hidden.iter().map(|l| l.running).sum();
        let message = format!(
            "  and {} more running stage{}: {done}/{tasks} tasks, {running} running",
            hidden.len(),
            if hidden.len() == 1 { "" } else { "s" }
        );
        let overflow = self.overflow.get_or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        overflow.set_message(message);
    }
}

/// 1234567 as "1.2M".
fn human_count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A task of `stage` finished (shared with the notebook's progress tests).
    pub(crate) fn finished(stage: usize) -> ProgressEvent {
        ProgressEvent::TaskFinished {
            stage,
            task: 0,
            input_bytes: 0,
            input_rows: 10,
            output_rows: 1500,
            output_bytes: 2048,
            busy_ms: 1,
            requests: Default::default(),
            spilled_bytes: 0,
            peak_memory_bytes: 0,
            operator_metrics: Vec::new(),
        }
    }

    #[test]
    fn many_stages_keep_a_bounded_number_of_lines() {
        let progress = LiveProgress::with_target(ProgressDrawTarget::hidden());
        let listener = progress.listener();
        listener(ProgressEvent::QueryPlanned {
            stages: 10,
            tasks: 1000,
            graph: crate::stats::tests::empty_graph(),
        });
        for stage in 0..10 {
            listener(ProgressEvent::StageStarted {
                stage,
                tasks: 100,
                planned_tasks: 100,
            });
        }
        listener(ProgressEvent::AttemptsStarted {
            stage: 0,
            attempts: 3,
        });
        listener(ProgressEvent::AttemptsStarted {
            stage: 9,
            attempts: 2,
        });
        listener(finished(0));
        listener(ProgressEvent::AttemptsEnded {
            stage: 0,
            attempts: 1,
        });
        listener(finished(9));
        listener(ProgressEvent::TaskRetried {
            stage: 0,
            task: 1,
            attempt: 1,
            cause: "crashed".into(),
        });
        let lines = progress.lines();
        assert_eq!(lines.len(), 1 + MAX_STAGE_LINES + 1, "{lines:#?}");
        assert_eq!(lines[0], "stage 1 of 10 · 2 of 1000 tasks");
        assert_eq!(
            lines[1],
            "stage 0: 1/100 tasks · 2 running · 1.5k rows · 2.0 KiB · 1 retried"
        );
        assert_eq!(
            lines[7],
            "  and 4 more running stages: 1/400 tasks, 2 running"
        );
        // A finished stage's line goes to a stage that had none.
        listener(ProgressEvent::StageFinished { stage: 0 });
        let lines = progress.lines();
        assert_eq!(lines.len(), 1 + MAX_STAGE_LINES + 1, "{lines:#?}");
        assert!(
            lines.iter().any(|l| l.starts_with("stage 6:")),
            "{lines:#?}"
        );
        assert_eq!(
            lines[7],
            "  and 3 more running stages: 1/300 tasks, 2 running"
        );
        assert_eq!(lines[0], "stage 2 of 10 · 2 of 1000 tasks");
        progress.finish();
        // Events after the end change nothing and draw nothing.
        listener(finished(9));
        assert_eq!(progress.lines()[0], "stage 2 of 10 · 2 of 1000 tasks");
    }

    #[test]
    fn counts_read_as_people_write_them() {
        assert_eq!(human_count(999), "999");
        assert_eq!(human_count(1_500), "1.5k");
        assert_eq!(human_count(6_001_215), "6.0M");
    }
}
