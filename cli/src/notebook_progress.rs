//! Live progress of `squall notebook run` on stderr, shown only when stderr
//! is a terminal: one line per running cell (its name or line, tasks done
//! of those planned so far, elapsed time), gone when the cell ends.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use squall::jobs::ProgressEvent;
use squall_notebook::run::{CellEvent, CellListener};

/// How often spinners and elapsed times move.
const TICK: Duration = Duration::from_millis(120);

/// The display of a notebook's running cells.
#[derive(Debug, Clone)]
pub struct CellProgress {
    display: Arc<Mutex<Display>>,
}

#[derive(Debug)]
struct Display {
    multi: MultiProgress,
    /// Per running cell: its line, its label, tasks planned and done.
    cells: BTreeMap<usize, (ProgressBar, String, u64, u64)>,
    /// Label of each SQL cell, by index.
    labels: Vec<String>,
    finished: bool,
}

impl CellProgress {
    /// A display for cells labelled `labels` (by index), or `None` when
    /// stderr is not a terminal.
    pub fn start(labels: Vec<String>) -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let progress = Self::with_target(labels, ProgressDrawTarget::hidden());
        // A notebook quicker than a statement's threshold draws nothing.
        let display = Arc::clone(&progress.display);
        std::thread::spawn(move || {
            std::thread::sleep(crate::progress::SHOW_AFTER);
            let display = display.lock().unwrap_or_else(|e| e.into_inner());
            if !display.finished {
                display.multi.set_draw_target(ProgressDrawTarget::stderr());
            }
        });
        Some(progress)
    }

    fn with_target(labels: Vec<String>, target: ProgressDrawTarget) -> Self {
        Self {
            display: Arc::new(Mutex::new(Display {
                multi: MultiProgress::with_draw_target(target),
                cells: BTreeMap::new(),
                labels,
                finished: false,
            })),
        }
    }

    /// The lines as they would be drawn now (for tests).
    #[cfg(test)]
    fn lines(&self) -> Vec<String> {
        let display = self.display.lock().unwrap();
        display
            .cells
            .values()
            .map(|(bar, ..)| bar.message())
            .collect()
    }

    pub fn listener(&self) -> CellListener {
        let display = Arc::clone(&self.display);
        Arc::new(move |event| {
            let mut display = display.lock().unwrap_or_else(|e| e.into_inner());
            display.apply(event);
        })
    }

    /// Clears whatever lines are left.
    pub fn finish(&self) {
        let mut display = self.display.lock().unwrap_or_else(|e| e.into_inner());
        display.finished = true;
        for (_, (bar, ..)) in std::mem::take(&mut display.cells) {
            bar.finish_and_clear();
        }
        let _ = display.multi.clear();
    }
}

impl Display {
    fn apply(&mut self, event: CellEvent) {
        match event {
            CellEvent::Started { cell } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(TICK);
                let label = self.labels.get(cell).cloned().unwrap_or_default();
                bar.set_message(format!("{label}: planning"));
                self.cells.insert(cell, (bar, label, 0, 0));
            }
            CellEvent::Progress { cell, event } => {
                let Some((bar, label, planned, done)) = self.cells.get_mut(&cell) else {
                    return;
                };
                match event {
                    ProgressEvent::QueryPlanned { tasks, .. } => *planned += tasks as u64,
                    ProgressEvent::StageStarted {
                        tasks,
                        planned_tasks,
                        ..
                    } => *planned = planned.saturating_sub(planned_tasks as u64) + tasks as u64,
                    ProgressEvent::TaskFinished { .. } => *done += 1,
                    _ => return,
                }
                bar.set_message(format!("{label}: {done}/{planned} tasks"));
            }
            CellEvent::Ended { cell, .. } => {
                if let Some((bar, ..)) = self.cells.remove(&cell) {
                    bar.finish_and_clear();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_notebook::CellOutcome;

    #[test]
    fn a_line_per_running_cell_with_its_tasks() {
        let progress = CellProgress::with_target(
            vec!["cell by_year".into(), "cell at line 9".into()],
            ProgressDrawTarget::hidden(),
        );
        let listener = progress.listener();
        listener(CellEvent::Started { cell: 0 });
        listener(CellEvent::Started { cell: 1 });
        assert_eq!(
            progress.lines(),
            ["cell by_year: planning", "cell at line 9: planning"]
        );
        let progress_of = |event| CellEvent::Progress { cell: 0, event };
        listener(progress_of(ProgressEvent::QueryPlanned {
            stages: 2,
            tasks: 6,
            graph: crate::stats::tests::empty_graph(),
        }));
        // A stage sized from its inputs runs 1 task of the 4 planned.
        listener(progress_of(ProgressEvent::StageStarted {
            stage: 0,
            tasks: 1,
            planned_tasks: 4,
        }));
        listener(progress_of(crate::progress::tests::finished(0)));
        assert_eq!(progress.lines()[0], "cell by_year: 1/3 tasks");
        listener(CellEvent::Ended {
            cell: 0,
            outcome: CellOutcome::Failed("x".into()),
        });
        assert_eq!(progress.lines(), ["cell at line 9: planning"]);
        progress.finish();
        assert!(progress.lines().is_empty());
    }
}
