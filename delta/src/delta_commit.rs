//! Committing a distributed write to a Delta table: the files the write's
//! tasks staged become the table's in one transaction-log commit.
//!
//! The sink's tasks write Parquet files below a staging folder beside the
//! table, as every Squall file sink does
//! ([`squall_connectors::sink_staging`]). [`commit_staged`] then moves the
//! winning attempts' files into the table's folder (still invisible: a
//! Delta reader sees only files the log names), reads each file's row
//! count from its footer, and commits one log entry: `Add` actions for the
//! new files and, for an overwrite, `Remove` actions for every file of the
//! snapshot it replaces. A table that does not exist yet is created by
//! that same commit (version 0). A crash before the commit leaves files no
//! log names, which every Delta reader ignores and `VACUUM` deletes; a
//! failed commit deletes the files it moved.
//!
//! Concurrency is Delta's optimistic kind: the commit file is written with
//! a create-only PUT, so two writers never both get one version. An append
//! is ordered after whatever committed meanwhile (appends do not
//! conflict); an overwrite is refused if anything committed after the
//! version the job read, since its result would otherwise silently mix
//! with the other writer's.

use std::collections::HashMap;

use datafusion::arrow::datatypes::SchemaRef;
#[allow(deprecated)]
use datafusion::parquet::arrow::async_reader::{AsyncFileReader, ParquetObjectReader};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, StructType};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use squall_connectors::sink_staging::{self, StagedSink};

use crate::delta_file_stats::footer_stats;
use crate::delta_location::DeltaLocation;
use crate::delta_open::{has_log, log_error, one_line, open_if_exists, table_handle};
use crate::delta_schema::{describe_columns, kernel_schema};
use crate::error::{DeltaError, Result};

/// What a write does with the table's current rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaWriteMode {
    /// The new files join the table's.
    Append,
    /// The new files replace the table's (the old ones stay in the log's
    /// history, for time travel, until vacuumed).
    Overwrite,
    /// Only into a table that does not exist yet.
    ErrorIfExists,
}

/// One write to one Delta table.
#[derive(Debug, Clone)]
pub struct DeltaWrite {
    /// The table's root folder.
    pub table: DeltaLocation,
    /// The columns written, partition columns included (after
    /// [`crate::delta_compatible_type`]'s casts).
    pub schema: SchemaRef,
    pub partition_by: Vec<String>,
    pub mode: DeltaWriteMode,
    /// The table's version when the job read it ([`read_version`]);
    /// `None`: it did not exist.
    pub read_version: Option<u64>,
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaWriteOutcome {
    /// The version the commit made.
    pub version: u64,
    pub files_added: usize,
    /// Files an overwrite removed from the table.
    pub files_removed: usize,
    /// Rows in the added files.
    pub rows: u64,
}

/// The table's newest version, `None` if `table` holds no Delta table:
/// what a write records before it runs, to detect other writers.
pub async fn read_version(table: &DeltaLocation) -> Result<Option<u64>> {
    Ok(open_if_exists(table).await?.and_then(|t| t.version()))
}

/// Checks, before anything is written, that `write` can commit to its
/// table as it is now (the mode, the columns, the partitioning); returns
/// the table's version (`None`: it does not exist), the one to put in
/// [`DeltaWrite::read_version`].
pub async fn check_target(write: &DeltaWrite) -> Result<Option<u64>> {
    let current = open_if_exists(&write.table).await?;
    let version = current.as_ref().and_then(|t| t.version());
    if let (DeltaWriteMode::ErrorIfExists, Some(v)) = (write.mode, version) {
        return Err(DeltaError::Mismatch {
            url: write.table.root.to_string(),
            reason: format!(
                "it exists (version {v}) and the mode is error_if_exists: set mode = \"overwrite\" or \"append\" to write there"
            ),
        });
    }
    let written = written_schema(write)?;
    if let Some(table) = &current {
        check_fits(write, table, &written)?;
    }
    Ok(version)
}

/// The Delta schema of what `write` writes.
fn written_schema(write: &DeltaWrite) -> Result<StructType> {
    kernel_schema(&write.schema).map_err(|reason| DeltaError::Mismatch {
        url: write.table.root.to_string(),
        reason: format!("the rows cannot be written to Delta: {reason}"),
    })
}

/// One staged data file.
struct StagedFile {
    /// Where the task wrote it.
    staged: Path,
    /// Its path below the table's root (`year=1995/x.parquet`).
    relative: String,
    size_bytes: u64,
}

/// Commits the files `staged` holds (one sink's winning deliveries) to
/// the table `write` names; see the module docs. The staging folder is
/// deleted whatever the outcome.
pub async fn commit_staged(write: &DeltaWrite, staged: &StagedSink) -> Result<DeltaWriteOutcome> {
    let outcome = commit_files(write, staged).await;
    let _ = sink_staging::discard(&staged.destination, &staged.query_id).await;
    outcome
}

async fn commit_files(write: &DeltaWrite, staged: &StagedSink) -> Result<DeltaWriteOutcome> {
    let location = &write.table;
    let url = location.root.to_string();
    let current = open_if_exists(location).await?;
    let current_version = current.as_ref().and_then(|t| t.version());
    check_writers(write, current_version)?;
    let written = written_schema(write)?;
    if let Some(table) = &current {
        check_fits(write, table, &written)?;
    }

    let store = location.root.build_store()?;
    let files = list_staged(&*store, staged).await?;
    let mut adds = Vec::with_capacity(files.len());
    let mut rows = 0u64;
    let root = location.root.path();
    let mut moved = Vec::with_capacity(files.len());
    let now_ms = chrono::Utc::now().timestamp_millis();
    // Before anything moves: values whose folder names the layers of
    // escaping (DataFusion's writer, object_store, the log's URIs) would
    // not give back as they are.
    for file in &files {
        check_partition_path(location, &file.relative, &write.partition_by)?;
    }
    for file in &files {
        let (file_rows, stats) = footer(&store, &file.staged, file.size_bytes, &url).await?;
        rows += file_rows;
        let target = child(&root, &file.relative);
        if let Err(e) = store.rename(&file.staged, &target).await {
            delete_all(&*store, &moved).await;
            return Err(squall_connectors::ConnectorError::ObjectStore {
                url: location.root.with_path(&target).to_string(),
                source: e,
            }
            .into());
        }
        moved.push(target);
        adds.push(Action::Add(Add {
            // The key as object_store spells it: what delta-rs resolves
            // (decoding it once) to the same object.
            path: file.relative.clone(),
            partition_values: partition_values(&file.relative, &write.partition_by),
            size: file.size_bytes as i64,
            modification_time: now_ms,
            data_change: true,
            stats: Some(stats),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        }));
    }
    let files_added = adds.len();
    match commit_with_retries(write, &written, current, adds).await {
        Ok((version, files_removed)) => Ok(DeltaWriteOutcome {
            version,
            files_added,
            files_removed,
            rows,
        }),
        Err(failure) => {
            // Files a commit that may have landed names must stay.
            if !failure.outcome_unknown {
                delete_all(&*store, &moved).await;
            }
            Err(failure.error)
        }
    }
}

/// Why a commit did not succeed, and whether it may have landed anyway.
struct CommitFailure {
    error: DeltaError,
    /// The last attempt's outcome could not be learned from the log.
    outcome_unknown: bool,
}

/// How many times a commit is tried when other writers take the version
/// it tried (each time after their commits).
const COMMIT_ATTEMPTS: usize = 8;

/// The commit-info key under which a commit carries its write's token.
const WRITE_TOKEN_KEY: &str = "squallWriteId";

/// Commits `adds` (with removes, to overwrite) after the table's newest
/// version, retrying when another writer took that version. A failed
/// attempt may still have landed (its create-only PUT succeeded but the
/// reply was lost, and a retried PUT was refused): every attempt carries
/// one token in its commit info, and before trying again the commits made
/// since are searched for it, so a write never lands twice.
async fn commit_with_retries(
    write: &DeltaWrite,
    written: &StructType,
    mut current: Option<DeltaTable>,
    adds: Vec<Action>,
) -> std::result::Result<(u64, usize), CommitFailure> {
    let location = &write.table;
    let definite = |error| CommitFailure {
        error,
        outcome_unknown: false,
    };
    let unknown = |error: DeltaError| CommitFailure {
        error: DeltaError::Log {
            url: location.root.to_string(),
            reason: format!(
                "the commit may or may not have landed ({error}); its files stay in the table's folder: look at the table's newest version before running the job again"
            ),
        },
        outcome_unknown: true,
    };
    let token = uuid_token();
    let mut last_error = None;
    for _ in 0..COMMIT_ATTEMPTS {
        let base = current.as_ref().and_then(|t| t.version());
        check_writers(write, base).map_err(definite)?;
        // Another writer's commit may have changed the columns or the
        // partitioning since the last attempt.
        if let Some(table) = &current {
            check_fits(write, table, written).map_err(definite)?;
        }
        let removed = removed_count(write, current.as_ref())
            .await
            .map_err(definite)?;
        let attempt = match &current {
            None => create(location, written, write, adds.clone(), &token).await,
            Some(table) => commit_to(location, table, write, adds.clone(), &token).await,
        };
        let error = match attempt {
            Ok((version, _)) => return Ok((version, removed)),
            Err(e) => e,
        };
        // Did it land after all, or did another writer take the version?
        // Until the log says, the outcome is unknown.
        let handle = table_handle(location).map_err(unknown)?;
        match landed(location, &handle, base, &token).await {
            Ok(Some(version)) => return Ok((version, removed)),
            Ok(None) => {}
            Err(e) => return Err(unknown(e)),
        }
        current = open_if_exists(location).await.map_err(definite)?;
        if current.as_ref().and_then(|t| t.version()) == base {
            // Nothing new: the commit failed for a reason of its own.
            return Err(definite(error));
        }
        last_error = Some(error);
    }
    Err(definite(DeltaError::Conflict {
        url: location.root.to_string(),
        reason: format!(
            "{COMMIT_ATTEMPTS} attempts lost the race for the next version{}",
            last_error
                .map(|e| format!(" (last: {e})"))
                .unwrap_or_default()
        ),
    }))
}

/// A token no other write carries.
fn uuid_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The version, after `base`, whose commit carries `token`, if any.
async fn landed(
    location: &DeltaLocation,
    table: &DeltaTable,
    base: Option<u64>,
    token: &str,
) -> Result<Option<u64>> {
    let log_store = table.log_store();
    let first = base.map_or(0, |b| b + 1);
    let latest = match log_store.get_latest_version(first).await {
        Ok(v) => v,
        // A table that does not exist has no commit of ours.
        Err(_) if !has_log(location).await? => return Ok(None),
        Err(e) => return Err(log_error(location, e)),
    };
    let needle = format!("\"{WRITE_TOKEN_KEY}\":\"{token}\"");
    for version in first..=latest {
        let entry = log_store
            .read_commit_entry(version)
            .await
            .map_err(|e| log_error(location, e))?;
        if let Some(bytes) = entry
            && String::from_utf8_lossy(&bytes).contains(&needle)
        {
            return Ok(Some(version));
        }
    }
    Ok(None)
}

/// Files an overwrite of `table` removes.
async fn removed_count(write: &DeltaWrite, table: Option<&DeltaTable>) -> Result<usize> {
    match (write.mode, table) {
        (DeltaWriteMode::Overwrite, Some(table)) => Ok(table
            .get_active_add_actions_by_predicate(None)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| log_error(&write.table, e))?
            .len()),
        _ => Ok(0),
    }
}

/// Commit properties of one attempt: no retry of delta-rs's own (the
/// loop above retries), and the write's token.
fn commit_properties(token: &str) -> CommitProperties {
    CommitProperties::default()
        .with_max_retries(0)
        .with_metadata([(
            WRITE_TOKEN_KEY.to_string(),
            serde_json::Value::String(token.to_string()),
        )])
}

/// Refuses a write that another writer's commit since the job read the
/// table would make wrong.
pub fn check_writers(write: &DeltaWrite, current: Option<u64>) -> Result<()> {
    let conflict = |reason: String| DeltaError::Conflict {
        url: write.table.root.to_string(),
        reason,
    };
    match (write.mode, write.read_version, current) {
        (DeltaWriteMode::ErrorIfExists, _, Some(v)) => Err(DeltaError::Mismatch {
            url: write.table.root.to_string(),
            reason: format!("it exists (version {v}) and the mode is error_if_exists"),
        }),
        (_, None, Some(v)) => Err(conflict(format!("it was created, now at version {v}"))),
        (DeltaWriteMode::Overwrite, Some(read), Some(now)) if now != read => Err(conflict(
            format!("the job read version {read}; it is at version {now} now"),
        )),
        (_, Some(read), None) => Err(conflict(format!(
            "the job read version {read}; now the table is gone"
        ))),
        _ => Ok(()),
    }
}

/// Refuses rows whose columns or partitioning are not the table's.
fn check_fits(write: &DeltaWrite, table: &DeltaTable, written: &StructType) -> Result<()> {
    let url = write.table.root.to_string();
    let snapshot = table.snapshot().map_err(|e| log_error(&write.table, e))?;
    let existing = snapshot.schema();
    let same_columns = existing.fields().len() == written.fields().len()
        && existing
            .fields()
            .zip(written.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if !same_columns {
        return Err(DeltaError::Mismatch {
            url,
            reason: format!(
                "the rows have columns ({}) but the table has ({}); write to a new table or overwrite it from a step with the table's columns",
                describe_columns(written),
                describe_columns(existing.as_ref())
            ),
        });
    }
    if let Some(column) = existing
        .fields()
        .zip(written.fields())
        .find(|(a, b)| !a.is_nullable() && b.is_nullable())
        .map(|(a, _)| a.name().clone())
    {
        return Err(DeltaError::Mismatch {
            url,
            reason: format!(
                "column '{column}' is NOT NULL in the table and the rows may hold nulls: COALESCE it in the step"
            ),
        });
    }
    let partitioned_by = snapshot.metadata().partition_columns();
    if partitioned_by != write.partition_by {
        return Err(DeltaError::Mismatch {
            url,
            reason: format!(
                "the sink partitions by [{}] but the table by [{}]",
                write.partition_by.join(", "),
                partitioned_by.join(", ")
            ),
        });
    }
    Ok(())
}

/// The files below each of the staged folders.
async fn list_staged(store: &dyn ObjectStore, staged: &StagedSink) -> Result<Vec<StagedFile>> {
    let mut files = Vec::new();
    for folder in &staged.staged {
        let folder = folder.as_prefix();
        let prefix = folder.path();
        let metas: Vec<_> = store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|source| squall_connectors::ConnectorError::ObjectStore {
                url: folder.to_string(),
                source,
            })?;
        for meta in metas {
            let relative = match meta.location.prefix_match(&prefix) {
                Some(parts) => parts
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/"),
                None => continue,
            };
            files.push(StagedFile {
                staged: meta.location,
                relative,
                size_bytes: meta.size,
            });
        }
    }
    Ok(files)
}

/// Rows in a Parquet file and its `stats` for the log, from its footer.
#[allow(deprecated)]
async fn footer(
    store: &std::sync::Arc<dyn ObjectStore>,
    path: &Path,
    size_bytes: u64,
    table_url: &str,
) -> Result<(u64, String)> {
    let mut reader = ParquetObjectReader::new(std::sync::Arc::clone(store), path.clone())
        .with_file_size(size_bytes);
    let metadata = reader
        .get_metadata(None)
        .await
        .map_err(|e| DeltaError::Log {
            url: table_url.to_string(),
            reason: format!(
                "cannot read the footer of staged file {path}: {}",
                one_line(&e.to_string())
            ),
        })?;
    let stats = footer_stats(&metadata).map_err(|reason| DeltaError::Log {
        url: table_url.to_string(),
        reason: format!("cannot read the statistics of staged file {path}: {reason}"),
    })?;
    Ok((metadata.file_metadata().num_rows().max(0) as u64, stats))
}

/// The partition values of a file at `relative` (`year=1995/month=3/x`,
/// an object key as object_store spells it), as Delta logs them: text,
/// `None` for a null. A folder name is decoded twice: object_store's
/// encoding of the key, then DataFusion's writer's escaping of the value.
fn partition_values(relative: &str, partition_by: &[String]) -> HashMap<String, Option<String>> {
    let mut values: HashMap<String, Option<String>> =
        partition_by.iter().map(|c| (c.clone(), None)).collect();
    for segment in relative.split('/') {
        if let Some((key, value)) = segment.split_once('=')
            && let Some(slot) = values.get_mut(key)
        {
            let decoded = percent_decode(&percent_decode(value));
            *slot = (decoded != "__HIVE_DEFAULT_PARTITION__").then_some(decoded);
        }
    }
    values
}

/// The characters a partition value of a Delta sink may not hold yet.
const UNSAFE_IN_PARTITION_VALUES: &[char] = &[
    '%', '/', '\\', ':', '#', '?', '*', '[', ']', '{', '}', '^', '|', '<', '>', '"', '\'', '`', '~',
];

/// Refuses a partition value with a character whose escaping in folder
/// names differs between writers and readers.
fn check_partition_path(
    location: &DeltaLocation,
    relative: &str,
    partition_by: &[String],
) -> Result<()> {
    for (column, value) in partition_values(relative, partition_by) {
        if let Some(value) = value
            && (value.contains(UNSAFE_IN_PARTITION_VALUES) || value.chars().any(char::is_control))
        {
            return Err(DeltaError::Mismatch {
                url: location.root.to_string(),
                reason: format!(
                    "partition column '{column}' has the value '{value}', whose characters ({}) Squall cannot write into a Delta table's folder names yet: replace them in the step",
                    UNSAFE_IN_PARTITION_VALUES.iter().collect::<String>()
                ),
            });
        }
    }
    Ok(())
}

fn percent_decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(high * 16 + low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The store path of `relative` (an object key below `root`, as listed:
/// already in object_store's encoding) below `root`.
fn child(root: &Path, relative: &str) -> Path {
    let joined = match root.as_ref().trim_end_matches('/') {
        "" => relative.to_string(),
        root => format!("{root}/{relative}"),
    };
    Path::parse(&joined).unwrap_or_else(|_| Path::from(joined.as_str()))
}

async fn delete_all(store: &dyn ObjectStore, paths: &[Path]) {
    for path in paths {
        let _ = store.delete(path).await;
    }
}

/// Creates the table with its first files (version 0).
async fn create(
    location: &DeltaLocation,
    schema: &StructType,
    write: &DeltaWrite,
    adds: Vec<Action>,
    token: &str,
) -> Result<(u64, usize)> {
    let log_store = table_handle(location)?.log_store();
    let table = CreateBuilder::new()
        .with_log_store(log_store)
        // Nullable, so that later writes of the same step may hold nulls.
        .with_columns(schema.fields().map(|f| {
            let mut field = f.clone();
            field.nullable = true;
            field
        }))
        .with_partition_columns(write.partition_by.clone())
        .with_save_mode(SaveMode::ErrorIfExists)
        .with_commit_properties(commit_properties(token))
        .with_actions(adds)
        .await
        .map_err(|e| commit_error(location, e))?;
    Ok((table.version().unwrap_or(0), 0))
}

/// Commits `adds` (and, to overwrite, removes) after `table`'s snapshot.
async fn commit_to(
    location: &DeltaLocation,
    table: &DeltaTable,
    write: &DeltaWrite,
    adds: Vec<Action>,
    token: &str,
) -> Result<(u64, usize)> {
    let snapshot = table.snapshot().map_err(|e| log_error(location, e))?;
    let mut actions = adds;
    let mut removed = 0;
    if write.mode == DeltaWriteMode::Overwrite {
        let current: Vec<_> = table
            .get_active_add_actions_by_predicate(None)
            .try_collect()
            .await
            .map_err(|e| log_error(location, e))?;
        removed = current.len();
        actions.extend(
            current
                .iter()
                .map(|f| Action::Remove(f.remove_action(true))),
        );
    }
    if actions.is_empty() {
        // An append of no rows changes nothing.
        return Ok((snapshot.version(), 0));
    }
    let operation = DeltaOperation::Write {
        mode: match write.mode {
            DeltaWriteMode::Overwrite => SaveMode::Overwrite,
            _ => SaveMode::Append,
        },
        partition_by: (!write.partition_by.is_empty()).then(|| write.partition_by.clone()),
        predicate: None,
    };
    let finalized = CommitBuilder::from(commit_properties(token))
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await
        .map_err(|e| commit_error(location, e))?;
    #[cfg(test)]
    if tests::lose_reply(location) {
        return Err(DeltaError::Log {
            url: location.root.to_string(),
            reason: "the reply to the commit's PUT was lost (injected)".into(),
        });
    }
    Ok((finalized.version(), removed))
}

fn commit_error(location: &DeltaLocation, e: DeltaTableError) -> DeltaError {
    match e {
        DeltaTableError::VersionAlreadyExists(v) => DeltaError::Conflict {
            url: location.root.to_string(),
            reason: format!("version {v} was taken"),
        },
        DeltaTableError::Transaction {
            source:
                source @ (TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_)),
        } => DeltaError::Conflict {
            url: location.root.to_string(),
            reason: one_line(&source.to_string()),
        },
        other => log_error(location, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;
    use squall_connectors::Location;
    use squall_connectors::sink_staging::SinkDestination;

    /// The table whose next commit's reply is lost.
    static LOSE_REPLY_OF: Mutex<Option<String>> = Mutex::new(None);

    pub(super) fn lose_reply(location: &DeltaLocation) -> bool {
        let mut slot = LOSE_REPLY_OF.lock().unwrap();
        if slot.as_deref() == Some(location.root.to_string().as_str()) {
            *slot = None;
            return true;
        }
        false
    }

    /// Stages one Parquet file of `ids` for `table`, as a sink's task would.
    fn stage(dir: &std::path::Path, table: &DeltaLocation, query: &str, ids: &[i64]) -> StagedSink {
        let folder = dir.join(format!("_squall_staging/t/{query}/s0-t0-a0/d0"));
        std::fs::create_dir_all(&folder).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(ids.to_vec()))],
        )
        .unwrap();
        let file = std::fs::File::create(folder.join(format!("{query}.parquet"))).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        StagedSink {
            destination: SinkDestination {
                dir: table.root.clone(),
                file_name: None,
                success_marker: false,
            },
            query_id: query.to_string(),
            staged: vec![Location::parse(&format!("{}/", folder.display())).unwrap()],
        }
    }

    fn append(table: &DeltaLocation, read_version: Option<u64>) -> DeltaWrite {
        DeltaWrite {
            table: table.clone(),
            schema: Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
            partition_by: vec![],
            mode: DeltaWriteMode::Append,
            read_version,
        }
    }

    #[tokio::test]
    async fn a_commit_whose_reply_was_lost_lands_once() {
        let dir = tempfile::tempdir().unwrap();
        let table = DeltaLocation::new(&format!("{}/t/", dir.path().display())).unwrap();
        let first = commit_staged(
            &append(&table, None),
            &stage(dir.path(), &table, "q1", &[1, 2]),
        )
        .await
        .unwrap();
        assert_eq!((first.version, first.files_added, first.rows), (0, 1, 2));
        // The log holds the file's statistics, from its footer.
        let log =
            std::fs::read_to_string(dir.path().join("t/_delta_log/00000000000000000000.json"))
                .unwrap();
        assert!(
            log.contains(r#"\"minValues\":{\"id\":1}"#)
                && log.contains(r#"\"maxValues\":{\"id\":2}"#),
            "{log}"
        );

        *LOSE_REPLY_OF.lock().unwrap() = Some(table.root.to_string());
        let second = commit_staged(
            &append(&table, Some(0)),
            &stage(dir.path(), &table, "q2", &[3]),
        )
        .await
        .unwrap();
        assert!(
            LOSE_REPLY_OF.lock().unwrap().is_none(),
            "the reply was lost"
        );
        // Found in the log, not committed again.
        assert_eq!(second.version, 1);
        assert_eq!(read_version(&table).await.unwrap(), Some(1));
        let log = dir.path().join("t/_delta_log");
        assert!(log.join("00000000000000000001.json").exists());
        assert!(!log.join("00000000000000000002.json").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_racing_for_one_version_both_land_one_after_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let table = DeltaLocation::new(&format!("{}/t/", dir.path().display())).unwrap();
        commit_staged(
            &append(&table, None),
            &stage(dir.path(), &table, "q1", &[1]),
        )
        .await
        .unwrap();
        // Both read version 0 and try for version 1: one gets it, the
        // other finds it taken and commits version 2 (appends do not conflict).
        let (write_a, staged_a) = (
            append(&table, Some(0)),
            stage(dir.path(), &table, "q2", &[2]),
        );
        let (write_b, staged_b) = (
            append(&table, Some(0)),
            stage(dir.path(), &table, "q3", &[3]),
        );
        let (a, b) = tokio::join!(
            commit_staged(&write_a, &staged_a),
            commit_staged(&write_b, &staged_b)
        );
        let mut versions = vec![a.unwrap().version, b.unwrap().version];
        versions.sort();
        assert_eq!(versions, vec![1, 2]);
        let snapshot = crate::delta_table::delta_table(
            &datafusion::execution::runtime_env::RuntimeEnv::default(),
            &table,
        )
        .await
        .unwrap();
        assert_eq!(snapshot.file_count(), 3);
        assert!(!dir.path().join("_squall_staging").exists());
    }

    #[test]
    fn staged_keys_join_the_root_as_they_are() {
        let root = Path::from("lake/t");
        assert_eq!(
            child(&root, "k=50%2525/x.parquet").as_ref(),
            "lake/t/k=50%2525/x.parquet"
        );
        assert_eq!(
            child(&Path::from(""), "k=1/x.parquet").as_ref(),
            "k=1/x.parquet"
        );
    }

    #[test]
    fn reads_partition_values_from_folder_names() {
        let cols = vec!["year".to_string(), "mode".to_string()];
        let values = partition_values("year=1995/mode=AIR%20REG/part-0.parquet", &cols);
        assert_eq!(values["year"].as_deref(), Some("1995"));
        assert_eq!(values["mode"].as_deref(), Some("AIR REG"));
        // `50%` escaped by DataFusion's writer (`50%25`), then by object_store.
        let percent = partition_values("year=1/mode=50%2525/x.parquet", &cols);
        assert_eq!(percent["mode"].as_deref(), Some("50%"));
        let nulls = partition_values("year=__HIVE_DEFAULT_PARTITION__/x.parquet", &cols);
        assert_eq!(nulls["year"], None);
        assert_eq!(nulls["mode"], None);
    }

    #[test]
    fn refuses_what_another_writer_invalidated() {
        let write = |mode, read_version| DeltaWrite {
            table: DeltaLocation::new("/tmp/t/").unwrap(),
            schema: std::sync::Arc::new(datafusion::arrow::datatypes::Schema::empty()),
            partition_by: vec![],
            mode,
            read_version,
        };
        assert!(check_writers(&write(DeltaWriteMode::Append, Some(3)), Some(5)).is_ok());
        assert!(check_writers(&write(DeltaWriteMode::Append, None), None).is_ok());
        let overwrite = check_writers(&write(DeltaWriteMode::Overwrite, Some(3)), Some(4));
        assert!(
            overwrite
                .unwrap_err()
                .to_string()
                .contains("read version 3; it is at version 4")
        );
        let created = check_writers(&write(DeltaWriteMode::Append, None), Some(0));
        assert!(created.unwrap_err().to_string().contains("another writer"));
        let exists = check_writers(&write(DeltaWriteMode::ErrorIfExists, Some(2)), Some(2));
        assert!(exists.unwrap_err().to_string().contains("error_if_exists"));
    }
}
