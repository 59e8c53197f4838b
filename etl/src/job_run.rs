//! Running a checked job: steps read by several consumers computed once
//! into scratch, every sink written staged, then all published in one
//! commit ([`squall_connectors::job_commit`]).

use std::time::{Duration, Instant};

use squall_connectors::job_commit::{self, SinkCommit};
use squall_connectors::sink_staging;
use squall_connectors::{Location, TableFormat};
use squall_jobs::{Session, StagedSinks};

use crate::error::{EtlError, Result};
use crate::incremental::{self, JobState, StatePlace};
use crate::job_file::WriteMode;
use crate::job_plan::{JobPlan, copy_sql, define_view, destination};

/// The DataFusion setting that bounds the rows of one output file.
const ROWS_PER_FILE_SETTING: &str = "datafusion.execution.soft_max_rows_per_output_file";

/// What a job did.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub sinks: Vec<SinkOutcome>,
    /// The steps computed once into scratch, in order.
    pub materialized: Vec<String>,
    /// What each incremental source read.
    pub incremental: Vec<IncrementalRead>,
    pub elapsed: Duration,
}

/// What one sink wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkOutcome {
    pub url: String,
    pub rows: u64,
    pub files: usize,
    /// Files of the destination the overwrite replaced.
    pub replaced: usize,
}

/// How a run reads and writes.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Read incremental sources whole, as if no run had consumed anything,
    /// and replace what `append` sinks hold (a rebuild).
    pub full_refresh: bool,
}

/// What an incremental source read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementalRead {
    pub source: String,
    /// Objects read by this run: new or changed since the last success.
    pub objects_read: usize,
    /// Objects of the source now.
    pub objects_total: usize,
}

/// Runs `plan` (checked on `session`) to its end. Every sink becomes
/// visible at once when all are written, together with what incremental
/// sources consumed; a failure anywhere before leaves every destination
/// as it was.
pub async fn run_job(
    session: &Session,
    plan: &JobPlan,
    options: &RunOptions,
) -> Result<JobOutcome> {
    let started = Instant::now();
    // Named like a query's scratch folder, and leased like one: a job
    // killed hard leaves its computed steps for the next query's (or
    // `squall scratch clean`'s) lease check to delete.
    let run_id = format!("q-job{}", uuid::Uuid::new_v4().simple());
    let staged = StagedSinks::default();
    let scratch = session.scratch().join(&format!("{run_id}/"));
    let _renewal = match &scratch {
        Ok(prefix) => {
            let ttl = squall_jobs::lease::lease_ttl();
            squall_jobs::lease::write_lease(prefix, &run_id, ttl)
                .await
                .map_err(|source| EtlError::Scratch {
                    url: prefix.to_string(),
                    source: Box::new(source),
                })?;
            Some(AbortOnDrop(squall_jobs::lease::keep_renewed(
                prefix.clone(),
                run_id.clone(),
                ttl,
            )))
        }
        Err(_) => None,
    };
    // Dropped before its commit decided (the client interrupted): what was
    // staged and the steps' scratch are deleted in the background (a
    // decided commit is kept, for the next write to finish).
    let mut guard = DiscardOnDrop(Some((staged.clone(), scratch.as_ref().ok().cloned())));
    let outcome = async {
        let incremental = read_incremental(session, plan, options, &run_id).await?;
        let (rows, replaced) = write_all(session, plan, options, &run_id, &staged).await?;
        if let Some((place, state, _)) = &incremental {
            // The state last: what was consumed is recorded with what it made.
            staged.hand_over(place.stage(state, &run_id).await?);
        }
        Ok((rows, replaced, incremental.map(|(_, _, reads)| reads)))
    }
    .await;
    let result = match outcome {
        Ok((rows, replaced, reads)) => {
            let sink_count = plan.job.sinks.len();
            let commits: Vec<SinkCommit> = staged
                .list()
                .into_iter()
                .enumerate()
                .map(|(i, sink)| SinkCommit {
                    sink,
                    replace_existing: plan
                        .job
                        .sinks
                        .get(i)
                        .is_some_and(|def| replaces(def.mode, options)),
                })
                .collect();
            let committed = job_commit::commit_together(&commits, &run_id).await;
            guard.0 = None;
            match committed {
                Ok(files) => Ok(JobOutcome {
                    sinks: plan
                        .job
                        .sinks
                        .iter()
                        .zip(rows)
                        .zip(files.into_iter().take(sink_count))
                        .zip(replaced)
                        .map(|(((def, rows), files), replaced)| SinkOutcome {
                            url: def.url.clone(),
                            rows,
                            files,
                            replaced,
                        })
                        .collect(),
                    materialized: plan
                        .job
                        .steps
                        .iter()
                        .filter(|s| plan.materialized.contains(&s.name))
                        .map(|s| s.name.clone())
                        .collect(),
                    incremental: reads.unwrap_or_default(),
                    elapsed: started.elapsed(),
                }),
                Err(source) => Err(EtlError::Commit { source }),
            }
        }
        Err(e) => {
            guard.0 = None;
            job_commit::discard_all(&staged.take()).await;
            Err(e)
        }
    };
    if let Ok(scratch) = scratch {
        let _ = squall_connectors::store::delete_prefix(&scratch).await;
    }
    result
}

/// Whether a sink of `mode` replaces its destination's files.
fn replaces(mode: WriteMode, options: &RunOptions) -> bool {
    mode == WriteMode::Overwrite || (options.full_refresh && mode == WriteMode::Append)
}

/// Registers each incremental source as a table of the objects this run
/// reads; returns where the job's state lives, the state to commit, and
/// what each source read (`None`: the job has no incremental source).
async fn read_incremental(
    session: &Session,
    plan: &JobPlan,
    options: &RunOptions,
    run_id: &str,
) -> Result<Option<(StatePlace, JobState, Vec<IncrementalRead>)>> {
    let sources: Vec<_> = plan.job.sources.iter().filter(|s| s.incremental).collect();
    if sources.is_empty() {
        return Ok(None);
    }
    let place = StatePlace::of(&plan.job)?;
    let before = place.read(run_id).await?;
    let mut after = if options.full_refresh {
        JobState::default()
    } else {
        before.clone()
    };
    let mut reads = Vec::with_capacity(sources.len());
    for source in sources {
        let failed = |source_error: squall_connectors::ConnectorError| EtlError::Source {
            source_name: source.name.clone(),
            message: source_error.to_string(),
        };
        let now = incremental::source_objects(source).await?;
        let consumed = (!options.full_refresh)
            .then(|| before.sources.get(&source.name))
            .flatten();
        let read = incremental::new_or_changed(&now, consumed);
        if read.iter().any(|url| url.contains('=')) {
            return Err(EtlError::Source {
                source_name: source.name.clone(),
                message: "an incremental source cannot have key=value folders yet".into(),
            });
        }
        // The columns of the whole source, as checked.
        let schema = session
            .context()
            .table_provider(source.name.as_str())
            .await
            .map_err(|e| EtlError::Source {
                source_name: source.name.clone(),
                message: e.to_string(),
            })?
            .schema();
        let files = read
            .iter()
            .map(|url| Location::parse(url))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(failed)?;
        let format = source
            .format
            .or_else(|| {
                now.keys()
                    .find_map(|url| TableFormat::from_file_name(url.as_str()))
            })
            .unwrap_or(TableFormat::Parquet);
        let table = squall_connectors::table::table_of_files(
            &source.name,
            &files,
            format,
            &source.csv,
            schema,
        )
        .map_err(failed)?;
        let ctx = session.context();
        ctx.deregister_table(source.name.as_str())
            .and_then(|_| ctx.register_table(source.name.as_str(), table))
            .map_err(|e| EtlError::Source {
                source_name: source.name.clone(),
                message: e.to_string(),
            })?;
        let entry = after.sources.entry(source.name.clone()).or_default();
        // Objects gone from the source need no memory.
        entry.retain(|url, _| now.contains_key(url));
        for url in &read {
            entry.insert(url.clone(), now[url].clone());
        }
        reads.push(IncrementalRead {
            source: source.name.clone(),
            objects_read: read.len(),
            objects_total: now.len(),
        });
    }
    Ok(Some((place, after, reads)))
}

/// Stops a background task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Discards staged sinks and a scratch folder, in the background, if
/// dropped while armed.
struct DiscardOnDrop(Option<(StagedSinks, Option<squall_connectors::Location>)>);

impl Drop for DiscardOnDrop {
    fn drop(&mut self) {
        if let Some((staged, scratch)) = self.0.take() {
            squall_connectors::cleanup::spawn_cleanup(async move {
                job_commit::discard_all(&staged.take()).await;
                if let Some(scratch) = scratch {
                    let _ = squall_connectors::store::delete_prefix(&scratch).await;
                }
            });
        }
    }
}

/// Computes the steps and writes every sink, staged; returns each sink's
/// rows and the destination files an overwrite will replace.
async fn write_all(
    session: &Session,
    plan: &JobPlan,
    options: &RunOptions,
    run_id: &str,
    staged: &StagedSinks,
) -> Result<(Vec<u64>, Vec<usize>)> {
    // Steps again in order, now each in its final form: a view, or a table
    // of its rows computed once.
    for step in &plan.job.steps {
        let failed = |source| EtlError::Step {
            step: step.name.clone(),
            source: Box::new(source),
        };
        if !plan.materialized.contains(&step.name) {
            define_view(session, &step.name, &step.sql)
                .await
                .map_err(failed)?;
            continue;
        }
        let location = session
            .scratch()
            .join(&format!("{run_id}/steps/{}/", step.name))
            .map_err(|e| failed(e.into()))?;
        define_view(session, &step.name, &step.sql)
            .await
            .map_err(failed)?;
        session
            .query(&format!(
                "COPY (SELECT * FROM {}) TO '{}' STORED AS PARQUET",
                step.name,
                location.to_string().replace('\'', "''")
            ))
            .await
            .map_err(failed)?
            .collect()
            .await
            .map_err(failed)?;
        session
            .context()
            .deregister_table(step.name.as_str())
            .map_err(|e| failed(e.into()))?;
        session
            .register_table_with(
                &step.name,
                &location.to_string(),
                Some(squall_connectors::TableFormat::Parquet),
                &Default::default(),
            )
            .await
            .map_err(failed)?;
    }
    let mut rows = Vec::with_capacity(plan.job.sinks.len());
    let mut replaced = Vec::with_capacity(plan.job.sinks.len());
    for (index, sink) in plan.job.sinks.iter().enumerate() {
        let failed = |source| EtlError::Sink {
            index,
            url: sink.url.clone(),
            source: Box::new(source),
        };
        let existing = sink_staging::visible_files(&destination(sink)?)
            .await
            .map_err(|source| EtlError::Commit { source })?
            .len();
        if sink.mode == WriteMode::ErrorIfExists && existing > 0 {
            return Err(failed(squall_jobs::JobError::Plan(format!(
                "{} now holds {existing} files (mode is error_if_exists); another writer got there first",
                sink.url
            ))));
        }
        replaced.push(if replaces(sink.mode, options) {
            existing
        } else {
            0
        });
        let written = with_rows_per_file(session, sink.rows_per_file, async {
            session
                .write_staged(&copy_sql(sink, &sink.step), staged)
                .await
        })
        .await
        .map_err(failed)?;
        if staged.len() != index + 1 {
            return Err(failed(squall_jobs::JobError::Internal(format!(
                "the sink's write staged {} outputs, not one",
                staged.len() - index
            ))));
        }
        rows.push(written);
    }
    Ok((rows, replaced))
}

/// Runs `write` with the session's rows-per-file bound set to `rows`, if
/// given, and back to what it was afterwards.
async fn with_rows_per_file<T>(
    session: &Session,
    rows: Option<u64>,
    write: impl std::future::Future<Output = squall_jobs::Result<T>>,
) -> squall_jobs::Result<T> {
    let Some(rows) = rows else {
        return write.await;
    };
    let before = session
        .context()
        .state()
        .config_options()
        .execution
        .soft_max_rows_per_output_file;
    session
        .sql(&format!("SET {ROWS_PER_FILE_SETTING} = {rows}"))
        .await?;
    let result = write.await;
    session
        .sql(&format!("SET {ROWS_PER_FILE_SETTING} = {before}"))
        .await?;
    result
}
