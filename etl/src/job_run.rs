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
use crate::job_file::{SinkFormat, WriteMode};
use crate::job_plan::{
    JobPlan, copy_sql, define_view, delta_write, destination, merge_input, sink_input,
};

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
    /// The version a Delta sink's commit made.
    pub delta_version: Option<u64>,
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
        let written = write_all(session, plan, options, &run_id, &staged).await?;
        if let Some((place, state, _)) = &incremental {
            // The state last: what was consumed is recorded with what it made.
            staged.hand_over(place.stage(state, &run_id).await?);
        }
        Ok((written, incremental.map(|(_, _, reads)| reads)))
    }
    .await;
    let result = match outcome {
        Ok((written, reads)) => {
            let sink_count = plan.job.sinks.len();
            // The sinks' staged outputs, in order, then the incremental state.
            let mut plain: Vec<(Option<usize>, SinkCommit)> = Vec::new();
            let mut deltas = Vec::new();
            for (i, sink) in staged.list().into_iter().enumerate() {
                match written.delta_writes.get(i).cloned().flatten() {
                    Some(write) => deltas.push((i, write, sink)),
                    None => plain.push((
                        (i < sink_count).then_some(i),
                        SinkCommit {
                            sink,
                            replace_existing: plan
                                .job
                                .sinks
                                .get(i)
                                .is_some_and(|def| replaces(def.mode, options)),
                        },
                    )),
                }
            }
            let mut files = vec![0; sink_count];
            let mut replaced = written.replaced.clone();
            let mut delta_versions = vec![None; sink_count];
            // Delta tables first: each commits on its own, and a refused
            // commit (another writer) must stop the job before anything
            // else is published.
            let mut delta_failed = None;
            let mut committed_tables = Vec::new();
            for (i, write, sink) in &deltas {
                if delta_failed.is_some() {
                    let _ = sink_staging::discard(&sink.destination, &sink.query_id).await;
                    continue;
                }
                match squall_delta::commit_staged(write, sink).await {
                    Ok(outcome) => {
                        files[*i] = outcome.files_added;
                        replaced[*i] = outcome.files_removed;
                        delta_versions[*i] = Some(outcome.version);
                        committed_tables.push(write.table.root.to_string());
                    }
                    Err(source) => {
                        delta_failed = Some(EtlError::DeltaCommit {
                            source,
                            committed: committed_tables.clone(),
                        });
                    }
                }
            }
            let plain_commits: Vec<SinkCommit> = plain.iter().map(|(_, c)| c.clone()).collect();
            let committed = match delta_failed {
                Some(e) => {
                    job_commit::discard_all(plain_commits.iter().map(|c| &c.sink)).await;
                    Err(e)
                }
                None => job_commit::commit_together(&plain_commits, &run_id)
                    .await
                    .map_err(|source| EtlError::Commit { source }),
            };
            guard.0 = None;
            match committed {
                Ok(published) => Ok(JobOutcome {
                    sinks: {
                        for ((index, _), count) in plain.iter().zip(published) {
                            if let Some(i) = index {
                                files[*i] = count;
                            }
                        }
                        plan.job
                            .sinks
                            .iter()
                            .enumerate()
                            .map(|(i, def)| SinkOutcome {
                                url: def.url.clone(),
                                rows: written.rows[i],
                                files: files[i],
                                replaced: replaced[i],
                                delta_version: delta_versions[i],
                            })
                            .collect()
                    },
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
                Err(e) => Err(e),
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
    matches!(mode, WriteMode::Overwrite | WriteMode::Merge)
        || (options.full_refresh && mode == WriteMode::Append)
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

/// What [`write_all`] staged, per sink.
struct Written {
    rows: Vec<u64>,
    /// Destination files an overwrite will replace (plain sinks).
    replaced: Vec<usize>,
    /// The Delta commit each Delta sink will make.
    delta_writes: Vec<Option<squall_delta::DeltaWrite>>,
}

/// Computes the steps and writes every sink, staged; returns each sink's
/// rows and the destination files an overwrite will replace.
async fn write_all(
    session: &Session,
    plan: &JobPlan,
    options: &RunOptions,
    run_id: &str,
    staged: &StagedSinks,
) -> Result<Written> {
    // Steps again in order, now each in its final form: a view, or a table
    // of its rows computed once (whose rows and bytes are kept).
    let mut step_sizes: std::collections::HashMap<String, (u64, u64)> = Default::default();
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
        let counted = session
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
        let bytes = stored_bytes(&location)
            .await
            .map_err(|e| failed(e.into()))?;
        step_sizes.insert(step.name.clone(), (copied_rows(&counted), bytes));
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
    let mut delta_writes = Vec::with_capacity(plan.job.sinks.len());
    for (index, sink) in plan.job.sinks.iter().enumerate() {
        let failed = |source| EtlError::Sink {
            index,
            url: sink.url.clone(),
            source: Box::new(source),
        };
        let input = sink_input(session, sink).await.map_err(failed)?;
        let rows_per_file = sink.rows_per_file.or_else(|| {
            let target = sink.target_file_bytes?;
            let (rows, bytes) = step_sizes.get(&sink.step).copied()?;
            rows_for_bytes(target, rows, bytes)
        });
        if sink.format == SinkFormat::Delta {
            // The version read now is the one the commit must follow.
            let recorded = plan.delta_read_versions.get(&index).copied().flatten();
            let mut write = delta_write(session, sink, recorded).await.map_err(failed)?;
            let now = squall_delta::check_target(&write)
                .await
                .map_err(|e| failed(e.into()))?;
            if options.full_refresh && sink.mode == WriteMode::Append {
                write.mode = squall_delta::DeltaWriteMode::Overwrite;
            }
            // Refused now, not after the write, if another writer made the
            // commit impossible since the job started.
            squall_delta::check_writers(&write, now).map_err(|e| failed(e.into()))?;
            let input = match (sink.mode, write.read_version) {
                (WriteMode::Merge, Some(version)) => {
                    // The rows it merges into: the version the commit follows.
                    let target = merge_target_name(index);
                    let at = write
                        .table
                        .clone()
                        .at(Some(squall_delta::TimeTravel::Version(version)));
                    session
                        .register_delta_table(&target, &at)
                        .await
                        .map_err(failed)?;
                    merge_input(session, sink, &input, &target)
                        .await
                        .map_err(failed)?
                }
                _ => input,
            };
            replaced.push(0);
            delta_writes.push(Some(write));
            let written = with_rows_per_file(session, rows_per_file, async {
                session.write_staged(&copy_sql(sink, &input), staged).await
            })
            .await
            .map_err(failed)?;
            check_one_output(staged, index).map_err(failed)?;
            rows.push(written);
            continue;
        }
        delta_writes.push(None);
        let destination_files = sink_staging::visible_files(&destination(sink)?)
            .await
            .map_err(|source| EtlError::Commit { source })?;
        let input = if sink.mode == WriteMode::Merge && !destination_files.is_empty() {
            let target = merge_target_name(index);
            session
                .register_table_with(
                    &target,
                    &sink.url,
                    Some(squall_connectors::TableFormat::Parquet),
                    &Default::default(),
                )
                .await
                .map_err(failed)?;
            merge_input(session, sink, &input, &target)
                .await
                .map_err(failed)?
        } else {
            input
        };
        let existing = destination_files.len();
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
        let written = with_rows_per_file(session, rows_per_file, async {
            session.write_staged(&copy_sql(sink, &input), staged).await
        })
        .await
        .map_err(failed)?;
        check_one_output(staged, index).map_err(failed)?;
        rows.push(written);
    }
    Ok(Written {
        rows,
        replaced,
        delta_writes,
    })
}

/// The table a merge sink reads its destination's rows from.
fn merge_target_name(index: usize) -> String {
    format!("__squall_merge_target_{index}")
}

/// The rows in a `COPY`'s result (its one `count` value).
fn copied_rows(batches: &[datafusion::arrow::array::RecordBatch]) -> u64 {
    use datafusion::arrow::array::{Array, UInt64Array};
    batches
        .iter()
        .filter_map(|b| b.columns().first())
        .filter_map(|c| c.as_any().downcast_ref::<UInt64Array>())
        .filter(|c| !c.is_empty())
        .map(|c| c.value(0))
        .sum()
}

/// The bytes of the objects below `prefix`.
async fn stored_bytes(prefix: &Location) -> squall_connectors::Result<u64> {
    use futures::TryStreamExt;
    let store = prefix.build_store()?;
    store
        .list(Some(&prefix.path()))
        .try_fold(0u64, |sum, meta| async move { Ok(sum + meta.size) })
        .await
        .map_err(|source| squall_connectors::ConnectorError::ObjectStore {
            url: prefix.to_string(),
            source,
        })
}

/// Rows per file for files of about `target_bytes`, from a step whose
/// `rows` took `bytes` as Parquet.
/// `None` for a step of no rows (nothing to size).
fn rows_for_bytes(target_bytes: u64, rows: u64, bytes: u64) -> Option<u64> {
    if rows == 0 || bytes == 0 {
        return None;
    }
    let bytes_per_row = bytes as f64 / rows as f64;
    Some(((target_bytes as f64 / bytes_per_row).round() as u64).max(1))
}

/// Sink `index`'s write staged exactly one output.
fn check_one_output(staged: &StagedSinks, index: usize) -> squall_jobs::Result<()> {
    if staged.len() != index + 1 {
        return Err(squall_jobs::JobError::Internal(format!(
            "the sink's write staged {} outputs, not one",
            staged.len() - index
        )));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sizes_become_rows_per_file() {
        // 1,000 rows in 100 KiB: 128 MiB is about 1.3 million rows.
        assert_eq!(rows_for_bytes(128 << 20, 1_000, 100 << 10), Some(1_310_720));
        // Wide rows: never fewer than one row per file.
        assert_eq!(rows_for_bytes(1 << 20, 2, 10 << 20), Some(1));
        assert_eq!(rows_for_bytes(1 << 20, 0, 0), None);
    }
}
