//! Crash-safe file sinks (`COPY ... TO`, `INSERT INTO` a file table): tasks
//! write under a staging prefix beside the destination, and only the
//! coordinator publishes files, those of the attempt it chose, after it
//! chose it.
//!
//! For a destination directory `P/D/`, staging is beside it, in
//! `S = P/_squall_staging/D/`, so that no reader of `D` ever lists a staged
//! file (DuckDB's globs read folders starting with `_`); for the folder `F`
//! of a single-file destination `F/out.csv` (and a directory at a store's
//! root), it is `S = F/_squall_staging/`:
//!
//! ```text
//! S/<query>/s<stage>-t<task>-a<attempt>/<delivery>/...  one delivery's files
//! S/<query>/_COMMIT                                     commit manifest
//! P/D/_SUCCESS                                          written last (unpartitioned directories)
//! ```
//!
//! A task attempt writes its files below a folder of its own, named afresh
//! by each delivery of its spec ([`stage_file_sink`]), and reports that
//! folder. Running one spec twice therefore writes two folders, and only
//! the reported one of the winning report is ever published. The commit
//! ([`commit`]) writes a manifest of the files to publish, moves each to its
//! final name, writes `_SUCCESS` (into a directory without partition
//! folders) and deletes the query's staging folder. A
//! crash before the manifest leaves only staging files, which readers skip
//! (names starting with `_` are hidden from Hive-style readers: DataFusion's
//! listing tables, Spark, Trino) and [`recover`] deletes once stale; a crash
//! after it is finished by the next write to the same destination
//! ([`recover`]), since every move is idempotent. A failed or cancelled
//! query deletes its staging folder ([`discard`]) and leaves the destination
//! as it was.

use std::sync::Arc;
use std::time::Duration;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::file_format::csv::CsvSink;
use datafusion::datasource::file_format::json::JsonSink;
use datafusion::datasource::file_format::parquet::ParquetSink;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::datasource::physical_plan::{FileOutputMode, FileSink, FileSinkConfig};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{ConnectorError, Result};
use crate::store::{Location, delete_prefix};

/// The folder below a destination where tasks write before the commit.
pub const STAGING_DIR: &str = "_squall_staging";
/// Written into a destination directory after all its files are published.
pub const SUCCESS_MARKER: &str = "_SUCCESS";
/// Written into a query's staging folder before it publishes anything.
const COMMIT_MANIFEST: &str = "_COMMIT";
/// Staging folders without a manifest whose newest object is older than
/// this belong to a query that died; [`recover`] deletes them. (A running
/// query's folder is younger: its sink tasks write it while they run, and
/// the commit follows their stage.)
pub const STALE_STAGING_AGE: Duration = Duration::from_secs(3600);

/// Where a file sink's output becomes visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkDestination {
    /// The destination directory (the folder of a single-file destination).
    pub dir: Location,
    /// The file name of a single-file destination (`COPY ... TO 'out.csv'`).
    pub file_name: Option<String>,
    /// Whether the commit ends with `_SUCCESS` in `dir`: for directories
    /// without partition folders. (DataFusion infers a table's partitions
    /// from every file below it, and a marker beside `key=value` folders
    /// reads to it as a file of no partition: "Found mixed partition values".)
    pub success_marker: bool,
}

/// The commit manifest: what to move where.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Manifest {
    /// The staged folders whose files are published: one per task of the
    /// writing stage (its winning attempt's delivery).
    folders: Vec<StagedFolder>,
    /// Files of the destination deleted before the moves (an overwrite),
    /// relative to its folder.
    #[serde(default)]
    replaced: Vec<String>,
    /// The object whose existence decides a commit that is one of several
    /// made together (the sinks of one ETL job, [`crate::job_commit`]):
    /// until it exists, the commit is not decided. `None`: decided by the
    /// manifest itself.
    #[serde(default)]
    decided_by: Option<String>,
}

/// One staged folder and the files below it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StagedFolder {
    /// The folder (a URL).
    staged: String,
    /// Paths of the files relative to `staged`.
    files: Vec<String>,
}

impl SinkDestination {
    /// The destination of a file sink's configuration.
    pub fn of(config: &FileSinkConfig) -> Result<Self> {
        let table_path =
            config
                .table_paths
                .first()
                .ok_or_else(|| ConnectorError::InvalidLocation {
                    location: config.original_url.clone(),
                    reason: "the sink names no output path".into(),
                })?;
        let location = Location::parse(table_path.as_str())?;
        // DataFusion writes partitioned output as a folder whatever its name.
        if config.table_partition_cols.is_empty()
            && config.file_output_mode.single_file_output(table_path)
        {
            let path = location.path();
            let file_name = path
                .filename()
                .ok_or_else(|| ConnectorError::InvalidLocation {
                    location: location.to_string(),
                    reason: "a single-file output needs a file name".into(),
                })?
                .to_string();
            let parent: Path = path.parts().take(path.parts().count() - 1).collect();
            Ok(Self {
                dir: location.with_path(&parent).as_prefix(),
                file_name: Some(file_name),
                success_marker: false,
            })
        } else {
            Ok(Self {
                dir: location.as_prefix(),
                file_name: None,
                success_marker: config.table_partition_cols.is_empty(),
            })
        }
    }

    /// The destination of the one file sink in `plan`, if it has one.
    pub fn find(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Self>> {
        let mut config = None;
        plan.apply(|node| {
            config = file_sink_config(node).cloned();
            Ok(if config.is_some() {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })?;
        config.as_ref().map(Self::of).transpose()
    }

    /// Where every query writing here stages (see the module docs):
    /// beside a directory, inside the folder of a single file.
    pub fn staging_root(&self) -> Result<Location> {
        self.beside(STAGING_DIR)
    }

    /// `P/<folder>/D/` for a directory destination `P/D/`: a place of the
    /// destination's own that no reader of it lists; `D/<folder>/` for the
    /// folder of a single-file destination or a directory at a store's root.
    pub fn beside(&self, folder: &str) -> Result<Location> {
        let path = self.dir.path();
        let parts: Vec<_> = path.parts().collect();
        if self.file_name.is_none()
            && let Some((name, parent)) = parts.split_last()
        {
            let parent: Path = parent.iter().cloned().collect();
            return self
                .dir
                .with_path(&parent)
                .as_prefix()
                .join(&format!("{folder}/{}/", name.as_ref()));
        }
        self.dir.join(&format!("{folder}/"))
    }

    /// Everything one query stages here.
    pub fn query_staging(&self, query_id: &str) -> Result<Location> {
        self.staging_root()?.join(&format!("{query_id}/"))
    }

    /// Removes the staging folders of a local disk once empty (object
    /// stores have no folders).
    pub(crate) fn remove_empty_staging_folders(&self) -> Result<()> {
        let root = self.staging_root()?;
        if let Some(dir) = root.local_path() {
            let _ = std::fs::remove_dir(&dir);
            if let Some(parent) = dir.parent()
                && parent.file_name().is_some_and(|n| n == STAGING_DIR)
            {
                let _ = std::fs::remove_dir(parent);
            }
        }
        Ok(())
    }

    /// The folder of one task attempt; each delivery writes a subfolder.
    pub fn attempt_staging(
        &self,
        query_id: &str,
        stage: usize,
        task: usize,
        attempt: u32,
    ) -> Result<Location> {
        self.query_staging(query_id)?
            .join(&format!("s{stage}-t{task}-a{attempt}/"))
    }
}

/// The configuration of `plan` if it is a `DataSinkExec` writing Parquet,
/// CSV or JSON files.
pub fn file_sink_config(plan: &Arc<dyn ExecutionPlan>) -> Option<&FileSinkConfig> {
    let sink = plan.downcast_ref::<DataSinkExec>()?.sink();
    if let Some(s) = sink.downcast_ref::<ParquetSink>() {
        Some(s.config())
    } else if let Some(s) = sink.downcast_ref::<CsvSink>() {
        Some(s.config())
    } else {
        sink.downcast_ref::<JsonSink>().map(|s| s.config())
    }
}

/// True when `plan` holds a sink that is not a file sink (it cannot be staged).
pub fn has_unstaged_sink(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        found = node.is::<DataSinkExec>() && file_sink_config(node).is_none();
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// The worker's side: `plan` (a file sink) writing into `staged` (a folder)
/// instead of its destination, with the same file names and layout
/// (a single file keeps its name; partition folders stay).
pub fn stage_file_sink(
    plan: &Arc<dyn ExecutionPlan>,
    staged: &Location,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let exec = plan
        .downcast_ref::<DataSinkExec>()
        .ok_or_else(|| DataFusionError::Internal(format!("staging a {}", plan.name())))?;
    let config = file_sink_config(plan)
        .ok_or_else(|| DataFusionError::Internal("staging a sink that writes no files".into()))?;
    let destination =
        SinkDestination::of(config).map_err(|e| DataFusionError::External(Box::new(e)))?;
    let staged = staged.as_prefix();
    let (path, mode) = match &destination.file_name {
        Some(name) => (
            staged
                .join(name)
                .map_err(|e| DataFusionError::External(Box::new(e)))?,
            FileOutputMode::SingleFile,
        ),
        None => (staged, FileOutputMode::Directory),
    };
    let table_path = ListingTableUrl::parse(path.to_string())?;
    let config = FileSinkConfig {
        original_url: path.to_string(),
        table_paths: vec![table_path],
        file_output_mode: mode,
        ..config.clone()
    };
    let sink = exec.sink();
    let staged_sink: Arc<dyn datafusion::datasource::sink::DataSink> =
        if let Some(s) = sink.downcast_ref::<ParquetSink>() {
            Arc::new(ParquetSink::new(config, s.parquet_options().clone()))
        } else if let Some(s) = sink.downcast_ref::<CsvSink>() {
            Arc::new(CsvSink::new(config, s.writer_options().clone()))
        } else if let Some(s) = sink.downcast_ref::<JsonSink>() {
            Arc::new(JsonSink::new(config, s.writer_options().clone()))
        } else {
            return Err(DataFusionError::Internal(
                "staging a sink that writes no files".into(),
            ));
        };
    Ok(Arc::new(DataSinkExec::new(
        Arc::clone(exec.input()),
        staged_sink,
        exec.sort_order().clone(),
    )))
}

/// What one query staged for one destination: the winning deliveries'
/// folders, one per task of its writing stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedSink {
    pub destination: SinkDestination,
    pub query_id: String,
    pub staged: Vec<Location>,
}

/// How a commit treats what is already at its destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOptions {
    /// Delete the destination's visible files as the new ones are
    /// published (an overwrite); otherwise the new files join them.
    pub replace_existing: bool,
    /// See [`Manifest::decided_by`].
    pub decided_by: Option<Location>,
}

/// Publishes the files below each of `staged` (the winning deliveries'
/// folders, one per task) at `destination` in one commit: one manifest,
/// then the moves, then `_SUCCESS` (if it takes one); finally deletes the
/// query's staging folder. Returns how many files it published.
pub async fn commit(
    destination: &SinkDestination,
    query_id: &str,
    staged: &[Location],
) -> Result<usize> {
    let sink = StagedSink {
        destination: destination.clone(),
        query_id: query_id.to_string(),
        staged: staged.to_vec(),
    };
    let prepared = prepare(&sink, &CommitOptions::default()).await?;
    finish(&sink, &prepared).await
}

/// A commit whose manifest is written and whose files are not yet moved.
#[derive(Debug)]
pub struct PreparedCommit {
    manifest: Manifest,
}

impl PreparedCommit {
    /// Files the commit publishes.
    pub fn file_count(&self) -> usize {
        self.manifest.folders.iter().map(|f| f.files.len()).sum()
    }
}

/// The first half of a commit: lists the staged files (and, to replace,
/// the destination's visible files) and writes the manifest. From here a
/// crash is finished by [`recover`] once the commit is decided.
pub async fn prepare(sink: &StagedSink, options: &CommitOptions) -> Result<PreparedCommit> {
    let destination = &sink.destination;
    let store = destination.dir.build_store()?;
    let mut folders = Vec::with_capacity(sink.staged.len());
    for folder in &sink.staged {
        let folder = folder.as_prefix();
        let folder_path = folder.path();
        let files: Vec<String> = store
            .list(Some(&folder_path))
            .map_ok(|meta| relative(&meta.location, &folder_path))
            .try_collect()
            .await
            .map_err(|source| store_error(&folder, source))?;
        folders.push(StagedFolder {
            staged: folder.to_string(),
            files,
        });
    }
    let replaced = if options.replace_existing {
        visible_files(destination).await?
    } else {
        Vec::new()
    };
    let manifest = Manifest {
        folders,
        replaced,
        decided_by: options.decided_by.as_ref().map(ToString::to_string),
    };
    let manifest_at = destination
        .query_staging(&sink.query_id)?
        .join(COMMIT_MANIFEST)?;
    let bytes = serde_json::to_vec(&manifest).expect("a manifest is JSON");
    store
        .put(&manifest_at.path(), PutPayload::from(bytes))
        .await
        .map_err(|source| store_error(&manifest_at, source))?;
    Ok(PreparedCommit { manifest })
}

/// The second half of a decided commit: the deletes and moves, the
/// success marker, and the staging folder deleted. Returns the files
/// published.
pub async fn finish(sink: &StagedSink, prepared: &PreparedCommit) -> Result<usize> {
    let store = sink.destination.dir.build_store()?;
    publish(&store, &sink.destination, &prepared.manifest).await?;
    delete_staging(&sink.destination, &sink.query_id).await?;
    Ok(prepared.file_count())
}

/// The destination's files that readers see: everything below its folder
/// but staging (a single-file destination: that file, if it exists),
/// relative to the folder.
pub async fn visible_files(destination: &SinkDestination) -> Result<Vec<String>> {
    let store = destination.dir.build_store()?;
    let dir = destination.dir.path();
    let files: Vec<String> = store
        .list(Some(&dir))
        .map_ok(|meta| relative(&meta.location, &dir))
        .try_collect()
        .await
        .or_else(|e| match e {
            object_store::Error::NotFound { .. } => Ok(Vec::new()),
            source => Err(store_error(&destination.dir, source)),
        })?;
    Ok(files
        .into_iter()
        // Squall's own folders (staging, job state) are never the table's.
        .filter(|f| !f.split('/').any(|part| part.starts_with("_squall_")))
        .filter(|f| match &destination.file_name {
            Some(name) => f == name,
            None => true,
        })
        .collect())
}

/// Moves the manifest's files into place (those already moved are skipped)
/// and writes the success marker.
async fn publish(
    store: &Arc<dyn ObjectStore>,
    destination: &SinkDestination,
    manifest: &Manifest,
) -> Result<()> {
    let dir = destination.dir.path();
    for file in &manifest.replaced {
        let old = child_path(&dir, file)?;
        match store.delete(&old).await {
            // Deleted by an earlier, interrupted commit.
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => return Err(store_error(&destination.dir.with_path(&old), source)),
        }
    }
    for folder in &manifest.folders {
        let staged = Location::parse(&folder.staged)?.as_prefix().path();
        for file in &folder.files {
            let from = child_path(&staged, file)?;
            let to = match &destination.file_name {
                Some(name) => dir.clone().join(name.as_str()),
                None => child_path(&dir, file)?,
            };
            match store.rename(&from, &to).await {
                Ok(()) => {}
                // Moved by an earlier, interrupted commit.
                Err(object_store::Error::NotFound { .. }) if store.head(&to).await.is_ok() => {}
                Err(source) => return Err(store_error(&destination.dir.with_path(&to), source)),
            }
        }
    }
    if destination.success_marker {
        let marker = destination.dir.join(SUCCESS_MARKER)?;
        store
            .put(&marker.path(), PutPayload::default())
            .await
            .map_err(|source| store_error(&marker, source))?;
    }
    Ok(())
}

/// Deletes what `query_id` staged at `destination` and did not publish
/// (nothing if it staged nothing). A commit whose manifest is written and
/// decided stays for [`recover`] to finish.
pub async fn discard(destination: &SinkDestination, query_id: &str) -> Result<()> {
    let store = destination.dir.build_store()?;
    let manifest_at = destination.query_staging(query_id)?.join(COMMIT_MANIFEST)?;
    match read_manifest(&store, &manifest_at).await? {
        Some(manifest) if is_decided(&manifest).await? => Ok(()),
        _ => delete_staging(destination, query_id).await,
    }
}

/// The manifest at `at`, if one was written.
async fn read_manifest(store: &Arc<dyn ObjectStore>, at: &Location) -> Result<Option<Manifest>> {
    match store.get(&at.path()).await {
        Ok(found) => {
            let bytes = found
                .bytes()
                .await
                .map_err(|source| store_error(at, source))?;
            let manifest = serde_json::from_slice(&bytes).map_err(|e| ConnectorError::File {
                url: at.to_string(),
                reason: format!("unreadable commit manifest: {e}"),
            })?;
            Ok(Some(manifest))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(store_error(at, source)),
    }
}

/// Whether `manifest`'s commit is decided: by itself, or by the existence
/// of the object it names.
async fn is_decided(manifest: &Manifest) -> Result<bool> {
    let Some(decision) = &manifest.decided_by else {
        return Ok(true);
    };
    let decision = Location::parse(decision)?;
    match decision.build_store()?.head(&decision.path()).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(source) => Err(store_error(&decision, source)),
    }
}

/// Deletes everything `query_id` staged at `destination`.
async fn delete_staging(destination: &SinkDestination, query_id: &str) -> Result<()> {
    delete_prefix(&destination.query_staging(query_id)?).await?;
    destination.remove_empty_staging_folders()
}

/// What [`recover`] found at a destination.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Commits interrupted after their manifest, now finished.
    pub finished: usize,
    /// Stale staging folders of queries that died before committing, now deleted.
    pub discarded: usize,
}

/// Finishes the interrupted commits of other queries at `destination` and
/// deletes their stale, uncommitted staging folders. Run before a query
/// writes to a destination.
pub async fn recover(destination: &SinkDestination, own_query_id: &str) -> Result<Recovery> {
    let store = destination.dir.build_store()?;
    let root = destination.staging_root()?;
    let listing = match store.list_with_delimiter(Some(&root.path())).await {
        Ok(listing) => listing,
        Err(object_store::Error::NotFound { .. }) => return Ok(Recovery::default()),
        Err(source) => return Err(store_error(&root, source)),
    };
    let mut recovery = Recovery::default();
    for prefix in listing.common_prefixes {
        let Some(query_id) = prefix.filename().map(str::to_string) else {
            continue;
        };
        if query_id == own_query_id {
            continue;
        }
        let manifest_at = destination
            .query_staging(&query_id)?
            .join(COMMIT_MANIFEST)?;
        let manifest = read_manifest(&store, &manifest_at).await?;
        let decided = match &manifest {
            Some(manifest) => is_decided(manifest).await?,
            None => false,
        };
        match manifest {
            Some(manifest) if decided => {
                publish(&store, destination, &manifest).await?;
                delete_staging(destination, &query_id).await?;
                recovery.finished += 1;
            }
            _ => {
                // Not committed, or committed together with other sinks
                // whose decision never came.
                let staging = destination.query_staging(&query_id)?;
                let newest_ms = store
                    .list(Some(&staging.path()))
                    .map_ok(|meta| meta.last_modified.timestamp_millis())
                    .try_fold(None, |newest: Option<i64>, t| async move {
                        Ok(Some(newest.map_or(t, |n| n.max(t))))
                    })
                    .await
                    .map_err(|source| store_error(&staging, source))?;
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let stale = newest_ms.is_none_or(|t| {
                    now_ms.saturating_sub(t) > STALE_STAGING_AGE.as_millis() as i64
                });
                if stale {
                    delete_staging(destination, &query_id).await?;
                    recovery.discarded += 1;
                }
            }
        }
    }
    Ok(recovery)
}

/// `base/relative`, `relative` being object-store path parts joined by `/`.
fn child_path(base: &Path, relative: &str) -> Result<Path> {
    let joined = if base.as_ref().is_empty() {
        relative.to_string()
    } else {
        format!("{}/{relative}", base.as_ref())
    };
    Path::parse(&joined).map_err(|e| ConnectorError::InvalidLocation {
        location: joined.clone(),
        reason: e.to_string(),
    })
}

/// `path` relative to `prefix`, as object-store path parts joined by `/`.
fn relative(path: &Path, prefix: &Path) -> String {
    match path.prefix_match(prefix) {
        Some(parts) => parts
            .map(|part| part.as_ref().to_string())
            .collect::<Vec<_>>()
            .join("/"),
        None => path.as_ref().to_string(),
    }
}

fn store_error(location: &Location, source: object_store::Error) -> ConnectorError {
    ConnectorError::ObjectStore {
        url: location.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination folder `out` in a temporary directory (staging goes
    /// beside it, still inside the temporary directory).
    struct Out {
        _tmp: tempfile::TempDir,
        path: std::path::PathBuf,
    }

    impl Out {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("out");
            std::fs::create_dir_all(&path).unwrap();
            Self { _tmp: tmp, path }
        }

        fn path(&self) -> &std::path::Path {
            &self.path
        }
    }

    fn write(path: &std::path::Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn visible_files(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    fn destination(dir: &std::path::Path) -> SinkDestination {
        SinkDestination {
            dir: Location::parse(&dir.display().to_string())
                .unwrap()
                .as_prefix(),
            file_name: None,
            success_marker: true,
        }
    }

    #[tokio::test]
    async fn a_commit_publishes_the_staged_files_then_success() {
        let root = Out::new();
        let dest = destination(root.path());
        let staged = dest
            .attempt_staging("q1", 0, 0, 1)
            .unwrap()
            .join("delivery/")
            .unwrap();
        let staged_dir = staged.local_path().unwrap();
        write(&staged_dir.join("a.csv"), "x\n1\n");
        write(&staged_dir.join("k=2/b.csv"), "x\n2\n");
        // Another delivery of the same attempt, never reported.
        write(
            &dest
                .attempt_staging("q1", 0, 0, 1)
                .unwrap()
                .join("other/a.csv")
                .unwrap()
                .local_path()
                .unwrap(),
            "x\n9\n",
        );
        assert_eq!(
            commit(&dest, "q1", std::slice::from_ref(&staged))
                .await
                .unwrap(),
            2
        );
        assert_eq!(visible_files(root.path()), vec!["_SUCCESS", "a.csv", "k=2"]);
        assert_eq!(
            std::fs::read_to_string(root.path().join("k=2/b.csv")).unwrap(),
            "x\n2\n"
        );
    }

    #[tokio::test]
    async fn one_commit_publishes_every_task_s_folder() {
        let root = Out::new();
        let dest = destination(root.path());
        let mut staged = Vec::new();
        for task in 0..3 {
            let folder = dest
                .attempt_staging("q1", 2, task, 0)
                .unwrap()
                .join("d/")
                .unwrap();
            let dir = folder.local_path().unwrap();
            write(&dir.join(format!("k={task}/part-{task}.csv")), "x\n1\n");
            write(&dir.join(format!("t{task}.csv")), "x\n1\n");
            staged.push(folder);
        }
        assert_eq!(commit(&dest, "q1", &staged).await.unwrap(), 6);
        assert_eq!(
            visible_files(root.path()),
            vec![
                "_SUCCESS", "k=0", "k=1", "k=2", "t0.csv", "t1.csv", "t2.csv"
            ]
        );
        assert!(root.path().join("k=2/part-2.csv").exists());
        assert!(!root.path().join(STAGING_DIR).exists());
        assert!(!root.path().parent().unwrap().join(STAGING_DIR).exists());
    }

    #[tokio::test]
    async fn a_single_file_keeps_its_name_and_gets_no_marker() {
        let root = Out::new();
        let dest = SinkDestination {
            file_name: Some("out.csv".into()),
            success_marker: false,
            ..destination(root.path())
        };
        let staged = dest
            .attempt_staging("q1", 0, 0, 0)
            .unwrap()
            .join("d/")
            .unwrap();
        write(&staged.local_path().unwrap().join("out.csv"), "x\n1\n");
        commit(&dest, "q1", std::slice::from_ref(&staged))
            .await
            .unwrap();
        assert_eq!(visible_files(root.path()), vec!["out.csv"]);
    }

    #[tokio::test]
    async fn recovery_finishes_a_commit_that_crashed_after_its_manifest() {
        let root = Out::new();
        let dest = destination(root.path());
        let staged = dest
            .attempt_staging("dead", 1, 0, 0)
            .unwrap()
            .join("d/")
            .unwrap();
        let staged_dir = staged.local_path().unwrap();
        write(&staged_dir.join("b.csv"), "x\n2\n");
        // The crash came after the manifest and the first of two moves.
        write(&root.path().join("a.csv"), "x\n1\n");
        let manifest = Manifest {
            folders: vec![StagedFolder {
                staged: staged.to_string(),
                files: vec!["a.csv".into(), "b.csv".into()],
            }],
            replaced: Vec::new(),
            decided_by: None,
        };
        write(
            &dest
                .query_staging("dead")
                .unwrap()
                .join(COMMIT_MANIFEST)
                .unwrap()
                .local_path()
                .unwrap(),
            &serde_json::to_string(&manifest).unwrap(),
        );
        // A failed query's cleanup does not roll back a decided commit.
        discard(&dest, "dead").await.unwrap();
        let recovery = recover(&dest, "next").await.unwrap();
        assert_eq!(
            recovery,
            Recovery {
                finished: 1,
                discarded: 0
            }
        );
        assert_eq!(
            visible_files(root.path()),
            vec!["_SUCCESS", "a.csv", "b.csv"]
        );
        // Finishing twice changes nothing.
        assert_eq!(recover(&dest, "next").await.unwrap(), Recovery::default());
    }

    #[tokio::test]
    async fn recovery_deletes_stale_uncommitted_staging_and_keeps_fresh() {
        let root = Out::new();
        let dest = destination(root.path());
        let stale = dest
            .attempt_staging("dead", 0, 0, 0)
            .unwrap()
            .join("d/x.csv")
            .unwrap();
        let fresh = dest
            .attempt_staging("running", 0, 0, 0)
            .unwrap()
            .join("d/x.csv")
            .unwrap();
        write(&stale.local_path().unwrap(), "x\n1\n");
        write(&fresh.local_path().unwrap(), "x\n1\n");
        let long_ago = std::time::SystemTime::now() - STALE_STAGING_AGE * 2;
        std::fs::File::options()
            .write(true)
            .open(stale.local_path().unwrap())
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let recovery = recover(&dest, "mine").await.unwrap();
        assert_eq!(
            recovery,
            Recovery {
                finished: 0,
                discarded: 1
            }
        );
        assert!(!stale.local_path().unwrap().exists());
        assert!(fresh.local_path().unwrap().exists());
        // Staging is beside the destination, never in it.
        assert!(
            fresh.to_string().contains("/_squall_staging/out/running/"),
            "{fresh}"
        );
        assert_eq!(visible_files(root.path()), Vec::<String>::new());
    }

    #[test]
    fn destinations_of_directories_and_single_files() {
        let dir = Out::new();
        let single =
            Location::parse(&dir.path().join("out.parquet").display().to_string()).unwrap();
        let config = |url: &str| FileSinkConfig {
            original_url: url.into(),
            object_store_url: datafusion::execution::object_store::ObjectStoreUrl::local_filesystem(
            ),
            file_group: Default::default(),
            table_paths: vec![ListingTableUrl::parse(url).unwrap()],
            output_schema: Arc::new(datafusion::arrow::datatypes::Schema::empty()),
            table_partition_cols: vec![],
            insert_op: datafusion::logical_expr::dml::InsertOp::Append,
            keep_partition_by_columns: false,
            file_extension: "parquet".into(),
            file_output_mode: FileOutputMode::Automatic,
        };
        let d = SinkDestination::of(&config(&single.to_string())).unwrap();
        assert_eq!(d.file_name.as_deref(), Some("out.parquet"));
        assert_eq!(d.dir.local_path().unwrap(), dir.path());
        let folder = Location::parse(&dir.path().join("out/").display().to_string()).unwrap();
        let d = SinkDestination::of(&config(&folder.to_string())).unwrap();
        assert_eq!(d.file_name, None);
        assert!(d.dir.to_string().ends_with("/out/"), "{}", d.dir);
        assert!(
            d.attempt_staging("q", 1, 2, 3)
                .unwrap()
                .to_string()
                .ends_with("/_squall_staging/out/q/s1-t2-a3/")
        );
    }
}
