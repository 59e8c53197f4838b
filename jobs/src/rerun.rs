//! Re-running the producer of lost exchange data.
//!
//! A reader that finds a winning exchange object missing, truncated or
//! corrupt (its CRC-32 does not match) reports which object it was
//! (`TaskReport::lost_input_url`). The coordinator then runs the task that
//! produced it again, as a new attempt with its own key, records that
//! attempt as the task's winner, and retries the reader with the new
//! object's ranges — not the whole query. Every later spec of any stage
//! reads the new winner. Re-runs are serialized per query and bounded by
//! [`MAX_PRODUCER_RERUNS`]; each is retried like a task (up to
//! `--task-attempts` tries). A producer that itself finds its input lost
//! while re-running has that input's producer run again first, within the
//! same bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use squall_planner::{Stage, StageGraph};
use squall_worker::TaskOutcome;

use crate::error::{JobError, Result};
use crate::progress::ProgressEvent;
use crate::scheduler::{
    QueryRun, attempt_outcome, attempt_spec, invoke_in_time, is_retriable, retry_backoff,
    stage_template,
};
use crate::specs::Winner;

/// Most producer tasks one query runs again.
pub const MAX_PRODUCER_RERUNS: u32 = 16;
/// Attempt numbers of re-runs start here, far above any task's own attempts.
const RERUN_ATTEMPT_BASE: u32 = 1 << 16;

/// The winners of every finished stage of a query, by stage and task.
#[derive(Debug, Default)]
pub struct WinnerBook {
    stages: Mutex<HashMap<usize, Arc<Vec<Winner>>>>,
    /// Stages that run with other tasks than planned (see
    /// [`crate::adaptive`]), by id: a re-run of one of their tasks must
    /// read what that task read.
    resized: Mutex<HashMap<usize, Stage>>,
    /// Held while a re-run runs, so that readers that lost the same object
    /// wait for one re-run instead of starting several.
    reruns: tokio::sync::Mutex<Reruns>,
}

/// Re-runs of one query so far.
#[derive(Debug, Default)]
struct Reruns {
    /// Lost objects written again.
    count: u32,
    /// Attempts spent on that (numbers the next one).
    attempts: u32,
}

impl WinnerBook {
    fn stages(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Arc<Vec<Winner>>>> {
        self.stages.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the winners of a finished stage, by task.
    pub fn record(&self, stage: usize, winners: Arc<Vec<Winner>>) {
        self.stages().insert(stage, winners);
    }

    /// Records that `stage` runs with other tasks than its plan says.
    pub fn record_stage_as_run(&self, stage: Stage) {
        self.resized
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stage.id, stage);
    }

    /// Stage `id` as it runs: resized, or as `graph` planned it.
    pub fn stage_as_run(&self, id: usize, graph: &StageGraph) -> Stage {
        self.resized
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
            .unwrap_or_else(|| graph.stages[id].clone())
    }

    /// Whether `stage` has finished.
    pub fn has(&self, stage: usize) -> bool {
        self.stages().contains_key(&stage)
    }

    /// The current winners of the stages `stage` reads.
    pub fn inputs_of(&self, stage: &Stage) -> HashMap<usize, Arc<Vec<Winner>>> {
        let stages = self.stages();
        stage
            .inputs
            .iter()
            .filter_map(|i| stages.get(&i.stage_id).map(|w| (i.stage_id, Arc::clone(w))))
            .collect()
    }

    /// The stage and task whose winning object is `url`.
    fn producer_of(&self, url: &str) -> Option<(usize, usize)> {
        self.stages().iter().find_map(|(stage, winners)| {
            winners
                .iter()
                .position(|w| w.url == url)
                .map(|task| (*stage, task))
        })
    }

    fn replace(&self, stage: usize, task: usize, winner: Winner) {
        let mut stages = self.stages();
        if let Some(winners) = stages.get_mut(&stage) {
            let mut updated = winners.as_ref().clone();
            updated[task] = winner;
            *winners = Arc::new(updated);
        }
    }
}

/// Runs the producer of the lost exchange object `lost_url` again and makes
/// its new output the winner; `reader` (stage, task) is who lost it. Returns
/// whether it ran: not when another reader's re-run already replaced that
/// object, or when no stage's winner is that object.
pub(crate) async fn rerun_producer(
    run: &QueryRun,
    lost_url: &str,
    reader: (usize, usize),
) -> Result<bool> {
    let mut reruns = run.winners.reruns.lock().await;
    rerun_holding(run, &mut reruns, lost_url, reader).await
}

/// [`rerun_producer`] with the query's re-runs held: a re-run whose own
/// input was lost re-runs that input's producer first, recursively, each
/// counted against [`MAX_PRODUCER_RERUNS`].
fn rerun_holding<'a>(
    run: &'a QueryRun,
    reruns: &'a mut Reruns,
    lost_url: &'a str,
    reader: (usize, usize),
) -> futures::future::BoxFuture<'a, Result<bool>> {
    Box::pin(async move {
        let Some((stage_id, task)) = run.winners.producer_of(lost_url) else {
            return Ok(false);
        };
        if reruns.count >= MAX_PRODUCER_RERUNS {
            return Err(JobError::LostInput {
                stage: reader.0,
                task: reader.1,
                url: lost_url.to_string(),
                message: format!(
                    "exchange data of stage {stage_id} task {task} was lost again after \
                 {MAX_PRODUCER_RERUNS} re-runs of lost producers: {lost_url}"
                ),
            });
        }
        reruns.count += 1;
        let stage = &run.winners.stage_as_run(stage_id, &run.graph);
        let template = stage_template(run, stage).await?;
        // Like any task: retried (each try a fresh attempt number) while the
        // failure is one another attempt may fix.
        let mut tries = 0;
        let report = loop {
            let attempt = RERUN_ATTEMPT_BASE + reruns.attempts;
            reruns.attempts += 1;
            tries += 1;
            run.emit(ProgressEvent::TaskRetried {
                stage: stage_id,
                task,
                attempt,
                cause: format!(
                    "stage {} task {} lost its output {lost_url}",
                    reader.0, reader.1
                ),
            });
            let spec = attempt_spec(run, stage, &template, task, attempt).await?;
            match attempt_outcome(run, stage, task, invoke_in_time(run, stage_id, spec).await) {
                Ok((_, report)) => break report,
                // The producer's own input was lost: its producer runs again
                // first (not counted as one of this task's tries when it ran).
                Err(JobError::LostInput { url, .. }) if tries < run.task_attempts => {
                    if rerun_holding(run, reruns, &url, (stage_id, task)).await? {
                        tries -= 1;
                    }
                }
                Err(e) if tries < run.task_attempts && is_retriable(&e) => {
                    tokio::time::sleep(retry_backoff(tries)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let TaskOutcome::Exchange { index } = report.outcome else {
            return Err(JobError::Internal(format!(
                "the re-run of stage {stage_id} task {task} wrote no exchange data"
            )));
        };
        run.winners.replace(
            stage_id,
            task,
            Winner {
                url: report.output_url,
                index,
            },
        );
        Ok(true)
    })
}
