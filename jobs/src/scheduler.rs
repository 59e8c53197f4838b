//! The scheduler: runs a stage graph on a backend.
//!
//! A stage starts when all of its inputs are complete; independent stages run
//! at the same time. Every running task holds a permit of one query-wide
//! semaphore sized by the backend's concurrency (`--workers`) and one of its
//! stage's semaphore (`--stage-workers`); a launcher invocation holds one pair
//! per task it keeps in flight and is told that number. Each stage keeps at
//! most that many task futures alive, so queues are bounded whatever the task
//! count.
//!
//! A failed attempt is tried again, with a fresh attempt number and so a
//! fresh exchange object, after a bounded backoff, up to `task_attempts`
//! attempts — unless no retry can fix it (the query's own SQL, type or cast
//! error, a missing input, denied access). Only the attempt that reports
//! success is a winner; nothing another attempt wrote is read. A task whose
//! attempts are spent fails the query, naming stage, task, attempts and first
//! cause; when several fail, the lowest task's failure is reported (tasks
//! below the first failure seen are waited for), and the other tasks are
//! cancelled. Retries run inside the task's permits.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use object_store::{ObjectStoreExt, PutPayload};
use squall_connectors::Location;
use squall_connectors::sink_staging::{self, SinkDestination, has_unstaged_sink};
use squall_planner::explain::human_bytes;
use squall_planner::{Stage, StageGraph};
use squall_shuffle::keys;
use squall_worker::{FragmentRef, OutOfDisk, RemoteError, TaskLimits, TaskOutcome, TaskReport};
use tokio::sync::{Semaphore, mpsc};

use crate::adaptive::AdaptivePolicy;
use crate::backend::Backend;
use crate::error::{JobError, Result};
use crate::group_speculation::{self, GroupBackups, LaunchedTask, backups_object};
use crate::invocations::Invocations;
use crate::lease;
use crate::progress::{AttemptOutcome, ProgressEvent, ProgressListener};
use crate::rerun::{WinnerBook, rerun_producer};
use crate::specs::{
    MAX_INLINE_FRAGMENT_BYTES, StageTemplate, Winner, stage_object_stores, task_spec,
};
use crate::speculation::{QueryPace, SpeculationPolicy, StageClock, first_success};

/// A finished part of the result: one Arrow IPC stream object.
#[derive(Debug, Clone)]
pub struct ResultPart {
    pub task: usize,
    pub url: String,
    pub rows: u64,
    /// Size of the object.
    pub bytes: u64,
}

/// Everything needed to run one query.
#[derive(Clone)]
pub struct QueryRun {
    pub query_id: String,
    pub graph: Arc<StageGraph>,
    /// Each stage's encoded fragment, checked by the fidelity guard; by stage id.
    pub fragments: Arc<Vec<Vec<u8>>>,
    /// Scratch root of the session; the query writes below `{scratch}/{query_id}/`.
    pub scratch: Location,
    pub backend: Arc<dyn Backend>,
    pub limits: TaskLimits,
    /// Most tasks of one stage running at once; `None`: the backend's concurrency.
    pub stage_workers: Option<usize>,
    pub progress: Option<ProgressListener>,
    /// DataFusion settings every task applies (the session's, where they differ from the defaults).
    pub settings: BTreeMap<String, String>,
    /// Attempts of one task before its failure fails the query (at least 1).
    pub task_attempts: u32,
    /// Longest one attempt may run before it is abandoned (cancelled where
    /// the backend can) and counted as failed; `None`: derived from the
    /// attempt's input ([`QueryRun::task_timeout_for`]).
    pub task_timeout: Option<std::time::Duration>,
    /// When stragglers get backup attempts; `None`: never.
    pub speculation: Option<SpeculationPolicy>,
    /// How tasks send their object-store requests (retries, hedging).
    pub requests: squall_connectors::RequestPolicy,
    /// The winners of finished stages, shared by every stage of the query
    /// (a re-run producer's new winner replaces the lost one).
    pub winners: Arc<WinnerBook>,
    /// How long the query's finished tasks took per byte of input, which
    /// small stages' stragglers are measured against.
    pub pace: Arc<QueryPace>,
    /// Largest result the query may return, in bytes of result parts.
    pub max_result_bytes: Option<u64>,
    /// The query's invocations, counted while they run where the backend
    /// cannot cancel them.
    pub invocations: Arc<Invocations>,
    /// How stages fed by hash exchanges are resized from the exact bytes
    /// their inputs wrote; `None`: they keep the planner's task counts.
    pub adaptive: Option<AdaptivePolicy>,
    /// Tasks report their operators' own metrics (`EXPLAIN ANALYZE`, run
    /// reports), in [`ProgressEvent::TaskFinished`].
    pub operator_metrics: bool,
    /// Where the query hands over its file sinks' staged files instead of
    /// publishing them; `None`: it publishes them itself.
    pub staged_sinks: Option<crate::StagedSinks>,
    /// File sinks whose stages succeeded, published when the whole query
    /// has (a later stage, such as the sum of the writers' counts, may
    /// still fail).
    pub pending_commits: crate::StagedSinks,
}

impl std::fmt::Debug for QueryRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryRun")
            .field("query_id", &self.query_id)
            .field("stages", &self.graph.stages.len())
            .field("backend", &self.backend.name())
            .finish()
    }
}

impl QueryRun {
    pub(crate) fn emit(&self, event: ProgressEvent) {
        if let Some(p) = &self.progress {
            p(event);
        }
    }

    /// The prefix holding everything this query wrote.
    pub fn query_prefix(&self) -> Location {
        self.scratch
            .join(&format!("{}/", self.query_id))
            .expect("a query id is one safe segment")
    }
}

/// Runs every stage; sends the final stage's parts on `parts` in task order,
/// each as soon as it and all parts before it are complete.
pub async fn run_query(run: QueryRun, parts: mpsc::Sender<ResultPart>) -> Result<()> {
    // The lease says this query is alive; queries whose clients died are
    // found by their expired leases and their scratch deleted, in the background.
    // (The `QueryStream` renews it until the client has read the result.)
    let ttl = lease::lease_ttl();
    lease::write_lease(&run.query_prefix(), &run.query_id, ttl).await?;
    squall_connectors::cleanup::spawn_cleanup({
        let (scratch, own) = (run.scratch.clone(), run.query_id.clone());
        async move {
            if let Err(e) = lease::clean_abandoned_now_and_then(&scratch, Some(&own), ttl).await {
                log::warn!("cleaning abandoned scratch under {scratch}: {e}");
            }
        }
    });
    let graph = Arc::clone(&run.graph);
    run.emit(ProgressEvent::QueryPlanned {
        stages: graph.stages.len(),
        tasks: graph.total_tasks(),
        graph: Arc::clone(&graph),
    });
    let permits = Arc::new(Semaphore::new(run.backend.max_concurrency().max(1)));
    let mut started = vec![false; graph.stages.len()];
    let mut running = FuturesUnordered::new();
    loop {
        for stage in &graph.stages {
            if !started[stage.id] && stage.inputs.iter().all(|i| run.winners.has(i.stage_id)) {
                started[stage.id] = true;
                let fut = run_stage(
                    run.clone(),
                    stage.clone(),
                    Arc::clone(&permits),
                    stage.is_final.then(|| parts.clone()),
                );
                running.push(async move { (stage.id, fut.await) });
            }
        }
        let Some((stage_id, result)) = running.next().await else {
            break;
        };
        run.winners.record(stage_id, Arc::new(result?));
        run.emit(ProgressEvent::StageFinished { stage: stage_id });
    }
    // Every stage succeeded: the files of each file sink become visible,
    // in one commit per destination; no loser's ever do.
    for sink in run.pending_commits.take() {
        sink_staging::commit(&sink.destination, &sink.query_id, &sink.staged)
            .await
            .map_err(|e| JobError::Sink {
                stage: graph.stages.len().saturating_sub(1),
                message: e.to_string(),
            })?;
    }
    Ok(())
}

async fn run_stage(
    run: QueryRun,
    stage: Stage,
    permits: Arc<Semaphore>,
    parts: Option<mpsc::Sender<ResultPart>>,
) -> Result<Vec<Winner>> {
    // A sink that does not write files (none travels to tasks today) could
    // not be staged: a second attempt would add to the first's output.
    let run = if has_unstaged_sink(&stage.plan) {
        QueryRun {
            task_attempts: 1,
            speculation: None,
            ..run
        }
    } else {
        run
    };
    let query_workers = run.backend.max_concurrency().max(1);
    let concurrency = run
        .stage_workers
        .unwrap_or(query_workers)
        .clamp(1, query_workers);
    let stage = adapted(&run, stage, concurrency);
    run.emit(ProgressEvent::StageStarted {
        stage: stage.id,
        tasks: stage.task_count,
        // The graph keeps every stage as planned.
        planned_tasks: run.graph.stages[stage.id].task_count,
    });
    let template = Arc::new(stage_template(&run, &stage).await?);
    if let Some(sink) = &template.sink {
        // Commits of earlier queries to the same destination that a crash
        // interrupted are finished first; their dead staging is deleted.
        sink_staging::recover(sink, &run.query_id)
            .await
            .map_err(|e| sink_error(&stage, e))?;
    }
    let stage = Arc::new(stage);
    let stage_permits = Arc::new(Semaphore::new(concurrency));
    let clock = Arc::new(StageClock::new(stage.task_count, Arc::clone(&run.pace)));
    let groups = launch_groups(stage.task_count, run.backend.launcher_threshold());
    let mut done = futures::stream::iter(groups)
        .map(|group| {
            let (run, stage, template, permits, stage_permits, clock) = (
                run.clone(),
                Arc::clone(&stage),
                Arc::clone(&template),
                Arc::clone(&permits),
                Arc::clone(&stage_permits),
                Arc::clone(&clock),
            );
            async move {
                // A launcher keeps at most `in_flight` of its tasks running; one
                // permit of each semaphore per running task. Stage permits first,
                // so that a waiting stage holds none of the query's.
                let in_flight = group.len().min(concurrency);
                let permits_needed = u32::try_from(in_flight).unwrap_or(u32::MAX);
                let group_stage_permits = Arc::clone(&stage_permits)
                    .acquire_many_owned(permits_needed)
                    .await
                    .expect("semaphore never closes");
                let group_query_permits = Arc::clone(&permits)
                    .acquire_many_owned(permits_needed)
                    .await
                    .expect("semaphore never closes");
                let attempt = 0;
                let mut specs = Vec::with_capacity(group.len());
                for &task in &group {
                    match attempt_spec(&run, &stage, &template, task, attempt).await {
                        Ok(spec) => specs.push(spec),
                        Err(e) => return vec![Err(e)],
                    }
                }
                if group.len() > 1
                    && let Err(e) = fit_group_payload(&run, stage.id, &group, &mut specs).await
                {
                    return vec![Err(e)];
                }
                let mut outcomes = Vec::with_capacity(group.len());
                if group.len() == 1 {
                    let backup = Backup {
                        run: &run,
                        stage: &stage,
                        template: &template,
                        task: group[0],
                        clock: &clock,
                        permits: (&stage_permits, &permits),
                    };
                    let spec = specs.pop().expect("one spec");
                    let (result, used) = backup.invoke(spec, attempt).await;
                    let first = attempt_outcome(&run, &stage, group[0], result);
                    outcomes.push(retry_until_done(&backup, first, used).await);
                    return outcomes;
                }
                let backups = match &run.speculation {
                    Some(policy) => {
                        match group_backups(&run, &stage, &template, &group, policy).await {
                            Ok(backups) => Some(backups),
                            Err(e) => return vec![Err(e)],
                        }
                    }
                    None => None,
                };
                // A launcher runs its tasks `in_flight` at a time: its
                // limit is one task's for each round.
                let rounds = group.len().div_ceil(in_flight.max(1)) as u32;
                let largest_input = specs.iter().map(|s| s.input_bytes).max().unwrap_or(0);
                let specs = specs.into_iter().map(|s| s.bytes).collect();
                let running = RunningAttempts::start(&run, stage.id, in_flight);
                let group_began = std::time::Instant::now();
                let launched =
                    run.invocations
                        .invoke_group(&run.backend, specs, in_flight, backups);
                let launched = match run.task_timeout_for(largest_input) {
                    Some(limit) => {
                        let limit = limit
                            .checked_mul(rounds)
                            .unwrap_or(std::time::Duration::MAX);
                        tokio::time::timeout(limit, launched)
                            .await
                            .unwrap_or_else(|_| {
                                run.invocations.note_abandoned();
                                Err(timed_out(limit))
                            })
                    }
                    None => launched.await,
                };
                let results = match launched {
                    Ok(results) if results.len() == group.len() => results,
                    Ok(results) => {
                        let message = format!(
                            "launcher returned {} reports for {} tasks",
                            results.len(),
                            group.len()
                        );
                        group
                            .iter()
                            .map(|_| LaunchedTask::alone(Err(message.clone())))
                            .collect()
                    }
                    Err(message) => group
                        .iter()
                        .map(|_| LaunchedTask::alone(Err(message.clone())))
                        .collect(),
                };
                // The group ended: its retries run one at a time, each with a
                // permit of its own, and the rest are free for their backups.
                drop(running);
                drop((group_stage_permits, group_query_permits));
                let group_ended = std::time::Instant::now();
                let mut firsts = Vec::with_capacity(group.len());
                for (&task, launched) in group.iter().zip(results) {
                    emit_group_attempts(
                        &run,
                        stage.id,
                        task,
                        &launched,
                        (group_began, group_ended),
                    );
                    let mut attempts_used = 1;
                    if launched.backup.launched {
                        attempts_used = 2;
                        run.invocations.note_abandoned();
                        run.emit(ProgressEvent::TaskSpeculated {
                            stage: stage.id,
                            task,
                        });
                        if launched.backup.won {
                            run.emit(ProgressEvent::SpeculationWon {
                                stage: stage.id,
                                task,
                            });
                        }
                    }
                    let first = attempt_outcome(&run, &stage, task, launched.result);
                    if let Ok((_, report)) = &first {
                        // Timed by the worker (a launcher's tasks are not
                        // timed one by one here).
                        let busy_ms = report.decode_ms + report.execute_ms;
                        clock.record(
                            std::time::Duration::from_millis(busy_ms),
                            report.input_bytes,
                        );
                    }
                    firsts.push((task, first, attempts_used));
                }
                // Every finished task is on the clock before a retry is
                // measured against it.
                for (task, first, attempts_used) in firsts {
                    if first.is_ok() {
                        outcomes.push(first);
                        continue;
                    }
                    let _stage_permit = Arc::clone(&stage_permits)
                        .acquire_owned()
                        .await
                        .expect("semaphore never closes");
                    let _query_permit = Arc::clone(&permits)
                        .acquire_owned()
                        .await
                        .expect("semaphore never closes");
                    let backup = Backup {
                        run: &run,
                        stage: &stage,
                        template: &template,
                        task,
                        clock: &clock,
                        permits: (&stage_permits, &permits),
                    };
                    outcomes.push(retry_until_done(&backup, first, attempts_used).await);
                }
                outcomes
            }
        })
        .buffer_unordered(concurrency)
        .flat_map(futures::stream::iter);

    let mut winners: Vec<Option<Winner>> = vec![None; stage.task_count];
    let mut pending_parts = BTreeMap::new();
    let mut next_part = 0usize;
    // Bytes of the result parts written so far, against `max_result_bytes`.
    let mut result_bytes = 0u64;
    // When tasks fail, the query fails with the failure of the lowest task
    // (for a scan: the first failing rows in file order, as on one
    // machine), the same every run: tasks below the first failure seen
    // are waited for; no further parts go out.
    let mut reported = vec![false; stage.task_count];
    let mut failure: Option<(usize, JobError)> = None;
    // The staging folder of each task's winning attempt, for a file sink.
    let mut staged_folders: Vec<Option<Location>> = vec![None; stage.task_count];
    loop {
        if let Some((failed, _)) = &failure
            && reported[..*failed].iter().all(|r| *r)
        {
            break;
        }
        let Some(item) = done.next().await else {
            break;
        };
        let (task, report) = match item {
            Ok(done) => done,
            Err(e) => {
                let task = e.task().unwrap_or(usize::MAX);
                if let Some(t) = reported.get_mut(task) {
                    *t = true;
                }
                if failure.as_ref().is_none_or(|(f, _)| task < *f) {
                    failure = Some((task, e));
                }
                continue;
            }
        };
        reported[task] = true;
        let (index, rows, part_bytes) = match report.outcome {
            TaskOutcome::Failed { message, error } => {
                if failure.as_ref().is_none_or(|(f, _)| task < *f) {
                    failure = Some((
                        task,
                        JobError::TaskFailed {
                            stage: stage.id,
                            task,
                            message,
                            error: error.map(|e| Arc::new(e.to_datafusion())),
                        },
                    ));
                }
                continue;
            }
            _ if failure.is_some() => continue,
            TaskOutcome::Exchange { index } => {
                let rows = index.rows();
                (index, rows, 0)
            }
            TaskOutcome::Result { rows, bytes } => (Default::default(), rows, bytes),
        };
        if template.sink.is_some() {
            // Only the winners' folders are ever published, all at once
            // when the stage has succeeded.
            let staged = report
                .staged_url
                .as_deref()
                .ok_or_else(|| JobError::TaskFailed {
                    stage: stage.id,
                    task,
                    message: "the task wrote files but reported no staging folder".into(),
                    error: None,
                })?;
            staged_folders[task] =
                Some(Location::parse(staged).map_err(|e| sink_error(&stage, e))?);
        }
        if report.requests.hedged > 0 {
            // A losing hedged PUT may land after the scratch is deleted.
            run.invocations.note_abandoned();
        }
        run.emit(ProgressEvent::TaskFinished {
            stage: stage.id,
            task,
            input_bytes: report.input_bytes,
            input_rows: report.input_rows,
            output_rows: report.output_rows,
            output_bytes: report.output_bytes,
            busy_ms: report.decode_ms + report.execute_ms,
            requests: report.requests.clone(),
            spilled_bytes: report.spilled_bytes,
            peak_memory_bytes: report.peak_memory_bytes,
            operator_metrics: report.operator_metrics,
        });
        if let Some(parts) = &parts {
            result_bytes += part_bytes;
            if let Some(limit) = run.max_result_bytes.filter(|limit| result_bytes > *limit) {
                return Err(JobError::ResultTooLarge {
                    limit: human_bytes(limit),
                });
            }
            pending_parts.insert(
                task,
                ResultPart {
                    task,
                    url: report.output_url.clone(),
                    rows,
                    bytes: part_bytes,
                },
            );
            // Parts go out in task order, so that a query returns its rows in
            // the same order every time (file order for plain scans, sort
            // order for ORDER BY), as DuckDB keeps insertion order.
            while let Some(part) = pending_parts.remove(&next_part) {
                next_part += 1;
                if parts.send(part).await.is_err() {
                    // The client stopped reading; nothing more to do.
                    return Ok(vec![]);
                }
            }
        }
        winners[task] = Some(Winner {
            url: report.output_url,
            index,
        });
    }
    if let Some((_, e)) = failure {
        return Err(e);
    }
    if let Some(sink) = &template.sink {
        // Every task's files become visible in one commit; no loser's ever do.
        let staged: Vec<Location> = staged_folders.into_iter().flatten().collect();
        let staged = sink_staging::StagedSink {
            destination: sink.clone(),
            query_id: run.query_id.clone(),
            staged,
        };
        match &run.staged_sinks {
            Some(handed_over) => handed_over.hand_over(staged),
            // Published once every stage has succeeded (`run_query`).
            None => run.pending_commits.hand_over(staged),
        }
    }
    Ok(winners.into_iter().flatten().collect())
}

/// `stage` with as many tasks as the exact sizes of its finished inputs
/// call for when the query sizes stages adaptively (see [`crate::adaptive`]),
/// recorded as the stage that runs (a re-run of one of its tasks reads the
/// same partitions); otherwise as planned.
fn adapted(run: &QueryRun, stage: Stage, workers: usize) -> Stage {
    let Some(policy) = &run.adaptive else {
        return stage;
    };
    let inputs = run.winners.inputs_of(&stage);
    if let Some(tasks) = crate::adaptive::combiner_tasks(&stage, &inputs) {
        // Task `i` reads map group `i`: fewer map objects, fewer groups.
        let resized = Stage {
            task_count: tasks,
            ..stage
        };
        run.winners.record_stage_as_run(resized.clone());
        return resized;
    }
    match crate::adaptive::coalesce(&stage, &inputs, policy, workers) {
        Some(ranges) => {
            let coalesced = stage.coalesced(ranges);
            log::debug!(
                "stage {}: {} tasks instead of the {} planned, from its inputs' sizes",
                coalesced.id,
                coalesced.task_count,
                run.graph.stages[coalesced.id].task_count
            );
            run.winners.record_stage_as_run(coalesced.clone());
            coalesced
        }
        None => stage,
    }
}

/// The signed spec of one attempt of `task`, stored (signed) under the
/// query's scratch when the backend cannot carry it, with a signed reference
/// sent instead. Signed right before the attempt is invoked, so that it
/// expires a fixed time after (see [`squall_worker::signing`]).
pub(crate) async fn attempt_spec(
    run: &QueryRun,
    stage: &Stage,
    template: &StageTemplate,
    task: usize,
    attempt: u32,
) -> Result<SignedSpec> {
    // The current winners: a producer re-run since the stage started has
    // replaced a lost object (see `crate::rerun`).
    let inputs = run.winners.inputs_of(stage);
    let key = run.backend.task_key();
    let spec = task_spec(stage, template, &inputs, task, attempt);
    let input_bytes = spec.input_bytes();
    let signed = key.sign(&spec.to_bytes());
    let (bytes, by_reference) = match run.backend.max_payload_bytes() {
        Some(limit) if signed.len() > limit => {
            let reference = store_spec(run, stage.id, task, attempt, signed).await?;
            (key.sign(&reference), true)
        }
        _ => (signed, false),
    };
    Ok(SignedSpec {
        bytes,
        input_bytes,
        by_reference,
        task,
        attempt,
    })
}

/// Share of the backend's payload limit the specs of one launcher group may
/// take, as they travel inside the launch request; the request's own
/// fields and envelope take the rest.
const GROUP_PAYLOAD_SHARE: f64 = 0.95;

/// Bytes a signed spec takes inside a signed launch request: the request
/// is signed as one JSON string, which escapes every quote and backslash of
/// the specs once more.
fn bytes_in_launch_request(spec: &[u8]) -> usize {
    spec.len() + spec.iter().filter(|b| matches!(b, b'"' | b'\\')).count()
}

/// Makes the specs of a launcher group fit one launcher payload: while
/// together they would take more than [`GROUP_PAYLOAD_SHARE`] of the
/// backend's limit inside the launch request, the largest spec still
/// carried inline is stored under the query's scratch prefix and replaced
/// by a signed reference (as a spec too large on its own is), so that the
/// group still travels as one invocation. A group of so many specs that
/// even their references do not fit is invoked spec by spec by the backend.
async fn fit_group_payload(
    run: &QueryRun,
    stage: usize,
    group: &[usize],
    specs: &mut [SignedSpec],
) -> Result<()> {
    let Some(limit) = run.backend.max_payload_bytes() else {
        return Ok(());
    };
    let budget = (limit as f64 * GROUP_PAYLOAD_SHARE) as usize;
    let mut total: usize = specs
        .iter()
        .map(|s| bytes_in_launch_request(&s.bytes))
        .sum();
    if total <= budget {
        return Ok(());
    }
    let mut by_size: Vec<usize> = (0..specs.len())
        .filter(|&i| !specs[i].by_reference)
        .collect();
    by_size.sort_by_key(|&i| std::cmp::Reverse(specs[i].bytes.len()));
    let key = run.backend.task_key();
    for i in by_size {
        if total <= budget {
            break;
        }
        let inline = std::mem::take(&mut specs[i].bytes);
        total -= bytes_in_launch_request(&inline);
        // First attempts only travel in groups (retries go one by one).
        let reference = store_spec(run, stage, group[i], 0, inline).await?;
        specs[i].bytes = key.sign(&reference);
        specs[i].by_reference = true;
        total += bytes_in_launch_request(&specs[i].bytes);
    }
    Ok(())
}

/// The backup specs (attempt 1) of a launcher group, stored as one object
/// under the query's scratch prefix, for the launcher to back up the group's
/// stragglers with (see [`crate::group_speculation`]).
async fn group_backups(
    run: &QueryRun,
    stage: &Stage,
    template: &StageTemplate,
    group: &[usize],
    policy: &SpeculationPolicy,
) -> Result<GroupBackups> {
    let mut backup_specs = Vec::with_capacity(group.len());
    for &task in group {
        backup_specs.push(attempt_spec(run, stage, template, task, 1).await?.bytes);
    }
    let object = backups_object(&backup_specs);
    let key = keys::group_backups_key(&run.query_id, stage.id, group[0]);
    let location = put_scratch(run, &key, object.clone()).await?;
    Ok(group_speculation::group_backups(
        run.backend.task_key(),
        &location.to_string(),
        &object,
        policy.clone(),
    ))
}

/// What the backend is handed for one attempt, and how much input that
/// attempt reads (which its default timeout grows with).
pub(crate) struct SignedSpec {
    pub bytes: Vec<u8>,
    pub input_bytes: u64,
    /// The spec is stored under the query's scratch and `bytes` is a
    /// signed reference to it.
    pub by_reference: bool,
    /// Which task and attempt it is.
    pub task: usize,
    pub attempt: u32,
}

/// The task timeout when `--task-timeout` is not given, on backends that do
/// not end invocations themselves (local, process): 10 minutes plus one
/// second per MiB of the attempt's input. A backstop for attempts that hang
/// where speculation cannot help (a single-task stage). On Lambda the
/// function's own timeout is that backstop.
pub const DEFAULT_TASK_TIMEOUT_BASE: std::time::Duration = std::time::Duration::from_secs(600);

/// Input per second of default timeout beyond its base.
const DEFAULT_TASK_TIMEOUT_BYTES_PER_SECOND: u64 = 1024 * 1024;

/// The task timeout of an attempt reading `input_bytes` when none is given.
pub fn default_task_timeout(input_bytes: u64) -> std::time::Duration {
    DEFAULT_TASK_TIMEOUT_BASE
        + std::time::Duration::from_secs(input_bytes / DEFAULT_TASK_TIMEOUT_BYTES_PER_SECOND)
}

impl QueryRun {
    /// How long an attempt reading `input_bytes` may run before it is
    /// abandoned; `None`: until the backend ends it.
    pub fn task_timeout_for(&self, input_bytes: u64) -> Option<std::time::Duration> {
        match self.task_timeout {
            Some(limit) => Some(limit),
            None if self.backend.ends_hung_tasks() => None,
            None => Some(default_task_timeout(input_bytes)),
        }
    }
}

/// An attempt of a task alone in its invocation (a first attempt, or a
/// retry), with a backup attempt if it turns out a straggler (see
/// [`crate::speculation`]).
struct Backup<'a> {
    run: &'a QueryRun,
    stage: &'a Stage,
    template: &'a StageTemplate,
    task: usize,
    clock: &'a StageClock,
    /// The stage's and the query's semaphores: a backup holds one of each.
    permits: (&'a Arc<Semaphore>, &'a Arc<Semaphore>),
}

impl Backup<'_> {
    /// Runs attempt `attempt` from `spec`, and attempt `attempt + 1` beside
    /// it if it straggles; the first to report wins. Returns that result and
    /// the attempts used.
    async fn invoke(
        &self,
        spec: SignedSpec,
        attempt: u32,
    ) -> (std::result::Result<Vec<u8>, String>, u32) {
        let started = std::time::Instant::now();
        let input_bytes = spec.input_bytes;
        let first = invoke_in_time(self.run, self.stage.id, spec);
        tokio::pin!(first);
        let Some(policy) = &self.run.speculation else {
            let result = first.await;
            self.finished(&result, started, input_bytes);
            return (result, 1);
        };
        let check_every = (policy.floor / 4).clamp(
            std::time::Duration::from_millis(50),
            std::time::Duration::from_secs(1),
        );
        let backup_permits = loop {
            tokio::select! {
                result = &mut first => {
                    self.finished(&result, started, input_bytes);
                    return (result, 1);
                }
                _ = tokio::time::sleep(check_every) => {
                    let straggles = self
                        .clock
                        .straggler_after(policy, input_bytes)
                        .is_some_and(|limit| started.elapsed() > limit);
                    if straggles
                        && let Ok(stage_permit) = Arc::clone(self.permits.0).try_acquire_owned()
                        && let Ok(query_permit) = Arc::clone(self.permits.1).try_acquire_owned()
                    {
                        break (stage_permit, query_permit);
                    }
                }
            }
        };
        self.run.emit(ProgressEvent::TaskSpeculated {
            stage: self.stage.id,
            task: self.task,
        });
        // One of the two attempts will be dropped while it runs.
        self.run.invocations.note_abandoned();
        let backup = async {
            let _permits = backup_permits;
            match attempt_spec(self.run, self.stage, self.template, self.task, attempt + 1).await {
                Ok(spec) => invoke_in_time(self.run, self.stage.id, spec).await,
                Err(e) => Err(e.to_string()),
            }
        };
        let (result, backup_won) = first_success(first, backup).await;
        if backup_won && result.is_ok() {
            self.run.emit(ProgressEvent::SpeculationWon {
                stage: self.stage.id,
                task: self.task,
            });
        }
        self.finished(&result, started, input_bytes);
        (result, 2)
    }

    fn finished(
        &self,
        result: &std::result::Result<Vec<u8>, String>,
        started: std::time::Instant,
        input_bytes: u64,
    ) {
        if result.is_ok() {
            self.clock.record(started.elapsed(), input_bytes);
        }
    }
}

/// One invocation, abandoned when it runs past its task timeout (dropping
/// it cancels the task on the local and process backends).
/// Counts attempts as running while it lives: [`ProgressEvent::AttemptsStarted`]
/// when made, [`ProgressEvent::AttemptsEnded`] when dropped (however the
/// attempts ended, cancellation included).
pub(crate) struct RunningAttempts<'a> {
    run: &'a QueryRun,
    stage: usize,
    attempts: usize,
}

impl<'a> RunningAttempts<'a> {
    pub(crate) fn start(run: &'a QueryRun, stage: usize, attempts: usize) -> Self {
        run.emit(ProgressEvent::AttemptsStarted { stage, attempts });
        Self {
            run,
            stage,
            attempts,
        }
    }
}

impl Drop for RunningAttempts<'_> {
    fn drop(&mut self) {
        self.run.emit(ProgressEvent::AttemptsEnded {
            stage: self.stage,
            attempts: self.attempts,
        });
    }
}

/// Runs one attempt of a task of `stage` within the task timeout.
pub(crate) async fn invoke_in_time(
    run: &QueryRun,
    stage: usize,
    spec: SignedSpec,
) -> std::result::Result<Vec<u8>, String> {
    let _running = RunningAttempts::start(run, stage, 1);
    let timer = AttemptTimer::start(run, stage, spec.task, spec.attempt);
    let result = match run.task_timeout_for(spec.input_bytes) {
        Some(limit) => {
            tokio::time::timeout(limit, run.invocations.invoke(&run.backend, spec.bytes))
                .await
                .unwrap_or_else(|_| {
                    run.invocations.note_abandoned();
                    Err(timed_out(limit))
                })
        }
        None => run.invocations.invoke(&run.backend, spec.bytes).await,
    };
    timer.ended(&result);
    result
}

/// Times one attempt for [`ProgressEvent::AttemptTimed`]: from when it is
/// made to [`AttemptTimer::ended`], or to its drop (the attempt was
/// abandoned).
struct AttemptTimer<'a> {
    run: &'a QueryRun,
    stage: usize,
    task: usize,
    attempt: u32,
    started: std::time::Instant,
    ended: bool,
}

impl<'a> AttemptTimer<'a> {
    fn start(run: &'a QueryRun, stage: usize, task: usize, attempt: u32) -> Self {
        Self {
            run,
            stage,
            task,
            attempt,
            started: std::time::Instant::now(),
            ended: false,
        }
    }

    fn ended(mut self, result: &std::result::Result<Vec<u8>, String>) {
        self.ended = true;
        if self.run.progress.is_some() {
            self.emit(attempt_end(result));
        }
    }

    fn emit(&self, outcome: AttemptOutcome) {
        let span = (self.started, std::time::Instant::now());
        emit_attempt(self.run, self.stage, self.task, self.attempt, span, outcome);
    }
}

impl Drop for AttemptTimer<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.emit(AttemptOutcome::Abandoned);
        }
    }
}

fn emit_attempt(
    run: &QueryRun,
    stage: usize,
    task: usize,
    attempt: u32,
    (started, ended): (std::time::Instant, std::time::Instant),
    outcome: AttemptOutcome,
) {
    run.emit(ProgressEvent::AttemptTimed {
        stage,
        task,
        attempt,
        started,
        ended,
        outcome,
    });
}

/// How an attempt that returned `result` ended: a report that says the task
/// failed is a failure.
fn attempt_end(result: &std::result::Result<Vec<u8>, String>) -> AttemptOutcome {
    match result {
        Err(cause) => AttemptOutcome::Failed {
            cause: cause.clone(),
        },
        Ok(bytes) => match TaskReport::from_bytes(bytes) {
            Ok(report) => match report.outcome {
                TaskOutcome::Failed { message, .. } => AttemptOutcome::Failed { cause: message },
                _ => AttemptOutcome::Succeeded,
            },
            Err(e) => AttemptOutcome::Failed {
                cause: format!("its report does not decode: {e}"),
            },
        },
    }
}

/// Emits the attempts of `task` that ran in a launcher group begun at
/// `began`: the first attempt, and its backup if one ran (the attempt that
/// did not win was abandoned). Spans the launcher did not measure are taken
/// as the whole group's.
fn emit_group_attempts(
    run: &QueryRun,
    stage: usize,
    task: usize,
    launched: &LaunchedTask,
    (began, ended): (std::time::Instant, std::time::Instant),
) {
    if run.progress.is_none() {
        return;
    }
    let attempts = if launched.backup.launched { 2 } else { 1 };
    let winner = u32::from(launched.backup.won);
    for attempt in 0..attempts {
        let (started, finished) = match launched.spans.get(attempt as usize) {
            Some(span) => (
                began + std::time::Duration::from_millis(span.started_ms),
                (began + std::time::Duration::from_millis(span.ended_ms)).min(ended),
            ),
            None => (began, ended),
        };
        let outcome = match attempt_end(&launched.result) {
            AttemptOutcome::Succeeded if attempt != winner => AttemptOutcome::Abandoned,
            outcome => outcome,
        };
        emit_attempt(
            run,
            stage,
            task,
            attempt,
            (started.min(finished), finished),
            outcome,
        );
    }
}

fn timed_out(limit: std::time::Duration) -> String {
    format!(
        "the task ran longer than the task timeout of {:.1} s and was abandoned",
        limit.as_secs_f64()
    )
}

/// What one attempt of `task` came to: its report, or why there is none.
/// A report that says the task failed is an error too.
pub(crate) fn attempt_outcome(
    run: &QueryRun,
    stage: &Stage,
    task: usize,
    result: std::result::Result<Vec<u8>, String>,
) -> Result<(usize, TaskReport)> {
    let bytes = result.map_err(|message| JobError::Backend {
        backend: run.backend.name().to_string(),
        stage: stage.id,
        task,
        message,
    })?;
    let report = TaskReport::from_bytes(&bytes).map_err(|e| JobError::TaskFailed {
        stage: stage.id,
        task,
        message: format!("its report does not decode: {e}"),
        error: None,
    })?;
    if let (Some(url), TaskOutcome::Failed { message, .. }) =
        (&report.lost_input_url, &report.outcome)
    {
        return Err(JobError::LostInput {
            stage: stage.id,
            task,
            url: url.clone(),
            message: message.clone(),
        });
    }
    if let TaskOutcome::Failed { message, error } = &report.outcome {
        let message = explain_exhaustion(&report, error.as_ref(), message.clone());
        return Err(JobError::TaskFailed {
            stage: stage.id,
            task,
            message,
            error: error.as_ref().map(|e| Arc::new(e.to_datafusion())),
        });
    }
    Ok((task, report))
}

/// Out of memory or disk: the same limits would fail again, so the message
/// says which to change.
fn explain_exhaustion(report: &TaskReport, error: Option<&RemoteError>, message: String) -> String {
    match (
        error.and_then(RemoteError::out_of_disk),
        error.map(RemoteError::innermost),
    ) {
        (Some(OutOfDisk::SpillLimit), _) => format!(
            "ran out of spill disk (limit {}): raise --spill-bytes or --task-memory ({message})",
            human_bytes(report.spill_limit_bytes)
        ),
        (Some(OutOfDisk::DiskFull), _) => format!(
            "ran out of local disk while spilling: free space in the temporary directory (TMPDIR) or lower --spill-bytes ({message})"
        ),
        (None, Some(RemoteError::ResourcesExhausted(_))) => format!(
            "ran out of memory (limit {}): raise --task-memory or lower --target-task-bytes ({message})",
            human_bytes(report.memory_limit_bytes)
        ),
        _ => message,
    }
}

/// Whether another attempt may succeed where `error` failed: yes for a task
/// the backend could not run (a crash, a killed process, a Lambda function
/// error or timeout, a lost or undecodable report) and for faults of the
/// moment ([`RemoteError::is_retriable`](squall_worker::RemoteError::is_retriable));
/// no when the query itself is at fault.
pub(crate) fn is_retriable(error: &JobError) -> bool {
    match error {
        JobError::Backend { .. } | JobError::LostInput { .. } => true,
        JobError::TaskFailed { error: None, .. } => true,
        JobError::TaskFailed { error: Some(e), .. } => {
            squall_worker::RemoteError::from_datafusion(e).is_retriable()
        }
        _ => false,
    }
}

/// Waits before attempt `attempt` (1 for the first retry): 100 ms, doubled
/// per attempt, at most 5 s.
pub(crate) fn retry_backoff(attempt: u32) -> std::time::Duration {
    const FIRST_MS: u64 = 100;
    const MAX_MS: u64 = 5_000;
    let ms = FIRST_MS.saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
    std::time::Duration::from_millis(ms.min(MAX_MS))
}

/// `first`, or, while it is a failure another attempt may fix and attempts
/// remain, the outcome of the next attempt of `task`, each with a fresh
/// attempt number (its own exchange object; the coordinator reads only the
/// attempt that reports success). The final failure names the number of
/// attempts and the first cause.
async fn retry_until_done(
    backup: &Backup<'_>,
    first: Result<(usize, TaskReport)>,
    attempts_used: u32,
) -> Result<(usize, TaskReport)> {
    let (run, stage, template, task) = (backup.run, backup.stage, backup.template, backup.task);
    let Err(first_error) = first else {
        return first;
    };
    let first_cause = cause(&first_error);
    let mut last = first_cause.clone();
    let mut attempt = attempts_used.max(1);
    let mut error = first_error;
    while attempt < run.task_attempts && is_retriable(&error) {
        run.emit(ProgressEvent::TaskRetried {
            stage: stage.id,
            task,
            attempt,
            cause: last.clone(),
        });
        // Lost exchange data is written again by its producer, and the
        // retry's spec names the new object; otherwise the retry waits a little.
        let rerun = match &error {
            JobError::LostInput { url, .. } => rerun_producer(run, url, (stage.id, task)).await?,
            _ => false,
        };
        if !rerun {
            tokio::time::sleep(retry_backoff(attempt)).await;
        }
        // A retry that straggles gets a backup too.
        let outcome = match attempt_spec(run, stage, template, task, attempt).await {
            Ok(spec) => {
                let (result, used) = backup.invoke(spec, attempt).await;
                attempt += used;
                attempt_outcome(run, stage, task, result)
            }
            Err(e) => {
                attempt += 1;
                Err(e)
            }
        };
        match outcome {
            Ok(done) => return Ok(done),
            Err(e) => {
                last = cause(&e);
                error = e;
            }
        }
    }
    if attempt == 1 {
        return Err(error);
    }
    Err(match error {
        JobError::TaskFailed {
            stage,
            task,
            message,
            error,
        } => JobError::TaskFailed {
            stage,
            task,
            message: format!("{message} (after {attempt} attempts; first: {first_cause})"),
            error,
        },
        JobError::LostInput {
            stage,
            task,
            url,
            message,
        } => JobError::LostInput {
            stage,
            task,
            url,
            message: format!("{message} (after {attempt} attempts; first: {first_cause})"),
        },
        JobError::Backend {
            backend,
            stage,
            task,
            message,
        } => JobError::Backend {
            backend,
            stage,
            task,
            message: format!("{message} (after {attempt} attempts; first: {first_cause})"),
        },
        other => other,
    })
}

/// What went wrong in one attempt, without the stage and task it names.
fn cause(error: &JobError) -> String {
    match error {
        JobError::TaskFailed { message, .. }
        | JobError::LostInput { message, .. }
        | JobError::Backend { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// A failure to stage, commit or recover a stage's file output.
fn sink_error(stage: &Stage, error: squall_connectors::ConnectorError) -> JobError {
    JobError::Sink {
        stage: stage.id,
        message: error.to_string(),
    }
}

/// Tasks per invocation: one each, or, when the backend fans out through
/// launchers and the stage has more tasks than its threshold, at most
/// `threshold` groups that each launcher invokes in turn.
fn launch_groups(tasks: usize, threshold: Option<usize>) -> Vec<Vec<usize>> {
    match threshold {
        Some(t) if t > 0 && tasks > t => {
            let mut groups = vec![Vec::new(); t];
            for task in 0..tasks {
                groups[task % t].push(task);
            }
            groups
        }
        _ => (0..tasks).map(|t| vec![t]).collect(),
    }
}

pub(crate) async fn stage_template(run: &QueryRun, stage: &Stage) -> Result<StageTemplate> {
    let bytes = run.fragments[stage.id].clone();
    let fragment = if bytes.len() > MAX_INLINE_FRAGMENT_BYTES {
        let location =
            put_scratch(run, &keys::fragment_key(&run.query_id, stage.id), bytes).await?;
        FragmentRef::Stored {
            url: location.to_string(),
        }
    } else {
        FragmentRef::Inline { bytes }
    };
    Ok(StageTemplate {
        query_id: run.query_id.clone(),
        stage_id: stage.id,
        fragment,
        object_stores: stage_object_stores(stage, &run.scratch),
        limits: run.limits.clone(),
        scratch: run.scratch.clone(),
        is_final: stage.is_final,
        settings: run.settings.clone(),
        requests: run.requests.clone(),
        operator_metrics: run.operator_metrics,
        sink: SinkDestination::find(&stage.plan).map_err(|e| sink_error(stage, e))?,
    })
}

/// Writes `bytes` at `key` below the scratch root; returns where.
async fn put_scratch(run: &QueryRun, key: &str, bytes: Vec<u8>) -> Result<Location> {
    let location = run.scratch.join(key)?;
    put_object(&location, bytes).await?;
    Ok(location)
}

/// Writes `bytes` as the object at `location` (one PUT).
pub(crate) async fn put_object(location: &Location, bytes: Vec<u8>) -> Result<()> {
    location
        .build_store()?
        .put(&location.path(), PutPayload::from(Bytes::from(bytes)))
        .await
        .map_err(|e| JobError::Storage {
            url: location.to_string(),
            message: e.to_string(),
        })?;
    Ok(())
}

/// Stores a signed spec too large for the backend under the query's scratch
/// prefix and returns the small payload the worker resolves:
/// `{"spec_url": ..., "sha256": ...}`.
async fn store_spec(
    run: &QueryRun,
    stage: usize,
    task: usize,
    attempt: u32,
    spec: Vec<u8>,
) -> Result<Vec<u8>> {
    let sha256 = squall_worker::signing::sha256_hex(&spec);
    let location = put_scratch(
        run,
        &keys::spec_key(&run.query_id, stage, task, attempt),
        spec,
    )
    .await?;
    Ok(serde_json::to_vec(&serde_json::json!({
        "spec_url": location.to_string(),
        "sha256": sha256,
    }))
    .expect("JSON"))
}

/// Deletes everything a query wrote below the scratch root, and what it
/// staged but did not publish at its sinks' destinations.
pub async fn delete_query_scratch(run: &QueryRun) -> Result<()> {
    for stage in &run.graph.stages {
        if let Ok(Some(sink)) = SinkDestination::find(&stage.plan)
            && !run
                .staged_sinks
                .as_ref()
                .is_some_and(|s| s.holds(&sink, &run.query_id))
        {
            sink_staging::discard(&sink, &run.query_id)
                .await
                .map_err(|e| sink_error(stage, e))?;
        }
    }
    squall_connectors::store::delete_prefix(&run.query_prefix()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{default_task_timeout, launch_groups};

    #[test]
    fn the_default_task_timeout_grows_with_the_input() {
        assert_eq!(default_task_timeout(0), Duration::from_secs(600));
        assert_eq!(
            default_task_timeout(128 * 1024 * 1024),
            Duration::from_secs(600 + 128)
        );
    }

    #[test]
    fn groups_cover_every_task_once_and_respect_the_threshold() {
        assert_eq!(launch_groups(3, Some(32)), vec![vec![0], vec![1], vec![2]]);
        let groups = launch_groups(100, Some(8));
        assert_eq!(groups.len(), 8);
        let mut all: Vec<usize> = groups.into_iter().flatten().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(launch_groups(5, None).len(), 5);
    }
}
