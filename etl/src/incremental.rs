//! Incremental sources: a source marked `incremental = true` is read, in
//! each run, only for the objects that earlier successful runs did not
//! consume (new ones, or ones whose ETag, or else size and modification
//! time, changed).
//!
//! What runs consumed is recorded in one small state object per job,
//! beside the job's first sink (`P/_squall_state/D/<job>.json` for a first
//! sink `P/D/`), never on the client machine. The run writes its new state
//! staged, and the state is published in the job's joint commit, after the
//! sinks: a run that fails, or is killed before its commit decides,
//! consumes nothing; one killed after it is finished (state included) by
//! the next run, which recovers the state's destination first.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use squall_connectors::sink_staging::{SinkDestination, StagedSink};
use squall_connectors::{ConnectorError, Location, TableFormat};

use crate::error::{EtlError, Result};
use crate::job_file::{JobFile, SourceDef};
use crate::job_plan::destination;

/// The folder, beside a job's first sink, holding its state.
pub const STATE_DIR: &str = "_squall_state";

/// What successful runs of one job consumed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobState {
    /// Per incremental source: the objects consumed, by URL.
    pub sources: BTreeMap<String, BTreeMap<String, ObjectVersion>>,
}

/// Which version of an object a run read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectVersion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    pub size_bytes: u64,
    pub last_modified_ms: i64,
}

impl ObjectVersion {
    /// Whether `self` is still the object read as `consumed`: the same
    /// ETag when both have one, else the same size and modification time.
    fn is_unchanged_since(&self, consumed: &ObjectVersion) -> bool {
        match (&self.e_tag, &consumed.e_tag) {
            (Some(a), Some(b)) => a == b,
            _ => {
                self.size_bytes == consumed.size_bytes
                    && self.last_modified_ms == consumed.last_modified_ms
            }
        }
    }
}

/// Where a job's state lives, as a destination of its own (published by
/// the joint commit like a sink's files), and the state file's name.
#[derive(Debug, Clone)]
pub struct StatePlace {
    pub destination: SinkDestination,
    pub file_name: String,
}

impl StatePlace {
    /// The state of `job`, beside its first sink.
    pub fn of(job: &JobFile) -> Result<Self> {
        let first = job.sinks.first().ok_or_else(|| EtlError::Invalid {
            file: job.file.clone(),
            problems: Vec::new(),
        })?;
        let dir = destination(first)?
            .beside(STATE_DIR)
            .map_err(|source| EtlError::Commit { source })?;
        let stem = job.name.clone().unwrap_or_else(|| {
            std::path::Path::new(&job.file)
                .file_stem()
                .map_or("job".to_string(), |s| s.to_string_lossy().to_string())
        });
        Ok(Self {
            destination: SinkDestination {
                dir,
                file_name: None,
                success_marker: false,
            },
            file_name: format!("{stem}.json"),
        })
    }

    /// The state file's location.
    pub fn location(&self) -> Result<Location> {
        self.destination
            .dir
            .join(&self.file_name)
            .map_err(|source| EtlError::Commit { source })
    }

    /// The state as published (empty if no run committed yet), after
    /// finishing a commit of it that a crash interrupted.
    pub async fn read(&self, run_id: &str) -> Result<JobState> {
        let commit = |source| EtlError::Commit { source };
        squall_connectors::sink_staging::recover(&self.destination, run_id)
            .await
            .map_err(commit)?;
        let at = self.location()?;
        let store = at.build_store().map_err(commit)?;
        match store.get(&at.path()).await {
            Ok(found) => {
                let bytes = found.bytes().await.map_err(|source| {
                    commit(ConnectorError::ObjectStore {
                        url: at.to_string(),
                        source,
                    })
                })?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    commit(ConnectorError::File {
                        url: at.to_string(),
                        reason: format!("unreadable job state: {e}"),
                    })
                })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(JobState::default()),
            Err(source) => Err(commit(ConnectorError::ObjectStore {
                url: at.to_string(),
                source,
            })),
        }
    }

    /// Writes `state` staged for run `run_id`, ready for the joint commit.
    pub async fn stage(&self, state: &JobState, run_id: &str) -> Result<StagedSink> {
        let commit = |source| EtlError::Commit { source };
        let folder = self
            .destination
            .query_staging(run_id)
            .and_then(|q| q.join("state/"))
            .map_err(commit)?;
        let at = folder.join(&self.file_name).map_err(commit)?;
        let bytes = serde_json::to_vec_pretty(state).expect("a state is JSON");
        at.build_store()
            .map_err(commit)?
            .put(&at.path(), PutPayload::from(bytes))
            .await
            .map_err(|source| {
                commit(ConnectorError::ObjectStore {
                    url: at.to_string(),
                    source,
                })
            })?;
        Ok(StagedSink {
            destination: self.destination.clone(),
            query_id: run_id.to_string(),
            staged: vec![folder],
        })
    }
}

/// The objects of an incremental source now: the files of its format below
/// its folder (names starting with `_` or `.` left out, as readers do).
pub async fn source_objects(source: &SourceDef) -> Result<BTreeMap<String, ObjectVersion>> {
    let commit = |source| EtlError::Commit { source };
    let folder = Location::parse(&source.url).map_err(commit)?.as_prefix();
    let store = folder.build_store().map_err(commit)?;
    let prefix = folder.path();
    let objects: Vec<object_store::ObjectMeta> =
        store.list(Some(&prefix)).try_collect().await.map_err(|e| {
            commit(ConnectorError::ObjectStore {
                url: folder.to_string(),
                source: e,
            })
        })?;
    let mut out = BTreeMap::new();
    for meta in objects {
        let Some(relative) = meta.location.prefix_match(&prefix) else {
            continue;
        };
        let parts: Vec<String> = relative.map(|p| p.as_ref().to_string()).collect();
        if parts
            .iter()
            .any(|p| p.starts_with('_') || p.starts_with('.'))
        {
            continue;
        }
        let name = parts.last().cloned().unwrap_or_default();
        let format = TableFormat::from_file_name(&name);
        if format.is_none() || (source.format.is_some() && format != source.format) {
            continue;
        }
        let url = folder.with_path(&meta.location).to_string();
        out.insert(
            url,
            ObjectVersion {
                e_tag: meta.e_tag.clone(),
                size_bytes: meta.size,
                last_modified_ms: meta.last_modified.timestamp_millis(),
            },
        );
    }
    Ok(out)
}

/// The objects of `now` that `consumed` does not hold as they are.
pub fn new_or_changed(
    now: &BTreeMap<String, ObjectVersion>,
    consumed: Option<&BTreeMap<String, ObjectVersion>>,
) -> Vec<String> {
    now.iter()
        .filter(|(url, version)| {
            consumed
                .and_then(|c| c.get(*url))
                .is_none_or(|before| !version.is_unchanged_since(before))
        })
        .map(|(url, _)| url.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(e_tag: Option<&str>, size_bytes: u64, last_modified_ms: i64) -> ObjectVersion {
        ObjectVersion {
            e_tag: e_tag.map(str::to_string),
            size_bytes,
            last_modified_ms,
        }
    }

    #[test]
    fn new_and_changed_objects_are_read_and_unchanged_ones_are_not() {
        let consumed = BTreeMap::from([
            ("a".to_string(), v(Some("1"), 10, 100)),
            ("b".to_string(), v(Some("2"), 10, 100)),
            ("c".to_string(), v(None, 10, 100)),
        ]);
        let now = BTreeMap::from([
            // Same ETag: unchanged, even if touched.
            ("a".to_string(), v(Some("1"), 10, 200)),
            // New ETag: changed.
            ("b".to_string(), v(Some("3"), 10, 100)),
            // No ETag: size and time decide.
            ("c".to_string(), v(None, 11, 100)),
            ("d".to_string(), v(Some("4"), 1, 1)),
        ]);
        assert_eq!(new_or_changed(&now, Some(&consumed)), vec!["b", "c", "d"]);
        assert_eq!(new_or_changed(&now, None).len(), 4);
    }
}
