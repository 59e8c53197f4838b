//! Committing several file sinks as one decision: the sinks of an ETL job
//! become visible all together or not at all, after a crash too.
//!
//! Each sink is staged as any file sink is ([`crate::sink_staging`]). The
//! commit then:
//!
//! 1. writes every sink's manifest, each naming the same **decision**
//!    object (`decided_by`); a manifest whose decision does not exist is
//!    not a commit, and [`sink_staging::recover`] treats its staging as
//!    uncommitted (deleted once stale);
//! 2. writes the decision: one PUT, the moment the job commits;
//! 3. publishes each sink (deletes, moves, `_SUCCESS`) and deletes its
//!    staging; a crash here is finished by the next write to each
//!    destination, since every manifest is now decided;
//! 4. deletes the decision.
//!
//! A failure before step 2 discards every sink's staging: nothing changed.
//! The decision lives in the first sink's staging folder as a file
//! (`<staging>/<run>.decided`), which recovery, listing folders, never
//! mistakes for a query's staging. A crash between steps 3 and 4 leaves
//! that one empty object behind.

use object_store::{ObjectStoreExt, PutPayload};

use crate::error::{ConnectorError, Result};
use crate::sink_staging::{self, CommitOptions, StagedSink};
use crate::store::Location;

/// One sink of a joint commit.
#[derive(Debug, Clone)]
pub struct SinkCommit {
    pub sink: StagedSink,
    /// Replace the destination's visible files (an overwrite).
    pub replace_existing: bool,
}

/// The decision object of the joint commit `run_id` whose first sink is `first`.
pub fn decision_location(first: &StagedSink, run_id: &str) -> Result<Location> {
    first
        .destination
        .staging_root()?
        .join(&format!("{run_id}.decided"))
}

/// Publishes `sinks` all together (see the module docs). On an error
/// before the decision, every sink's staging is discarded and the
/// destinations are as they were; after it, the error says so, and the
/// next write to a destination finishes its part. Returns the files
/// published per sink, in order.
pub async fn commit_together(sinks: &[SinkCommit], run_id: &str) -> Result<Vec<usize>> {
    let Some(first) = sinks.first() else {
        return Ok(Vec::new());
    };
    let decision = decision_location(&first.sink, run_id)?;
    let mut prepared = Vec::with_capacity(sinks.len());
    let mut undecided = None;
    for commit in sinks {
        let options = CommitOptions {
            replace_existing: commit.replace_existing,
            decided_by: Some(decision.clone()),
        };
        match sink_staging::prepare(&commit.sink, &options).await {
            Ok(p) => prepared.push(p),
            Err(e) => {
                undecided = Some(e);
                break;
            }
        }
    }
    if undecided.is_none()
        && let Err(source) = decision
            .build_store()?
            .put(&decision.path(), PutPayload::default())
            .await
    {
        undecided = Some(ConnectorError::ObjectStore {
            url: decision.to_string(),
            source,
        });
    }
    if let Some(e) = undecided {
        discard_all(sinks.iter().map(|c| &c.sink)).await;
        return Err(e);
    }
    // Decided: every sink is published, even when another one fails; the
    // next write to a failed one's destination finishes it.
    let mut files = Vec::with_capacity(sinks.len());
    let mut failed = Vec::new();
    for (commit, prepared) in sinks.iter().zip(&prepared) {
        match sink_staging::finish(&commit.sink, prepared).await {
            Ok(published) => files.push(published),
            Err(e) => {
                files.push(0);
                failed.push(format!("{} ({e})", commit.sink.destination.dir));
            }
        }
    }
    if !failed.is_empty() {
        return Err(ConnectorError::File {
            url: decision.to_string(),
            reason: format!(
                "the job committed, but publishing stopped at {}; the next write to each of them finishes it",
                failed.join(", ")
            ),
        });
    }
    // Every manifest that named the decision is gone with its staging.
    let _ = decision.build_store()?.delete(&decision.path()).await;
    // On a local disk the staging folder that held it goes too.
    first.sink.destination.remove_empty_staging_folders()?;
    Ok(files)
}

/// Deletes every sink's staging (none of them is decided).
pub async fn discard_all<'a>(sinks: impl IntoIterator<Item = &'a StagedSink>) {
    for sink in sinks {
        let _ = sink_staging::discard(&sink.destination, &sink.query_id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink_staging::{SinkDestination, recover};

    fn write(path: &std::path::Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn files(dir: &std::path::Path) -> Vec<String> {
        fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.path().is_dir() {
                    walk(root, &entry.path(), out);
                } else {
                    let path = entry.path();
                    out.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    /// A sink at `dir` with one staged folder holding `names`.
    fn staged_sink(dir: &std::path::Path, query_id: &str, names: &[&str]) -> StagedSink {
        let destination = SinkDestination {
            dir: Location::parse(&dir.display().to_string())
                .unwrap()
                .as_prefix(),
            file_name: None,
            success_marker: true,
        };
        let folder = destination
            .attempt_staging(query_id, 1, 0, 0)
            .unwrap()
            .join("d/")
            .unwrap();
        for name in names {
            write(&folder.local_path().unwrap().join(name), name);
        }
        StagedSink {
            destination,
            query_id: query_id.into(),
            staged: vec![folder],
        }
    }

    fn age(path: &std::path::Path) {
        let old = std::time::SystemTime::now() - 2 * sink_staging::STALE_STAGING_AGE;
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            if entry.path().is_dir() {
                age(&entry.path());
            } else {
                let file = std::fs::File::options()
                    .write(true)
                    .open(entry.path())
                    .unwrap();
                file.set_modified(old).unwrap();
            }
        }
    }

    #[tokio::test]
    async fn sinks_committed_together_are_all_published_and_overwrites_replace() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        write(&a.join("old.csv"), "old");
        write(&b.join("kept.csv"), "kept");
        let sinks = vec![
            SinkCommit {
                sink: staged_sink(&a, "q1", &["new.csv"]),
                replace_existing: true,
            },
            SinkCommit {
                sink: staged_sink(&b, "q2", &["more.csv"]),
                replace_existing: false,
            },
        ];
        assert_eq!(commit_together(&sinks, "run1").await.unwrap(), vec![1, 1]);
        assert_eq!(files(&a), vec!["_SUCCESS", "new.csv"]);
        assert_eq!(files(&b), vec!["_SUCCESS", "kept.csv", "more.csv"]);
        assert!(!root.path().join(sink_staging::STAGING_DIR).exists());
    }

    #[tokio::test]
    async fn manifests_without_their_decision_are_never_published() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        write(&b.join("old.csv"), "old");
        let sinks = [
            staged_sink(&a, "q1", &["new.csv"]),
            staged_sink(&b, "q2", &["new.csv"]),
        ];
        let decision = decision_location(&sinks[0], "run1").unwrap();
        // The job crashed after both manifests, before its decision.
        for (sink, replace) in sinks.iter().zip([false, true]) {
            let options = CommitOptions {
                replace_existing: replace,
                decided_by: Some(decision.clone()),
            };
            sink_staging::prepare(sink, &options).await.unwrap();
        }
        // While fresh, the staging of what may be a running job stays.
        recover(&sinks[1].destination, "next").await.unwrap();
        let staging = root.path().join(sink_staging::STAGING_DIR);
        assert!(staging.join("b/q2/_COMMIT").exists());
        assert_eq!(files(&b), vec!["old.csv"]);
        // Once stale it goes; nothing was published, nothing replaced.
        age(&root.path().join(sink_staging::STAGING_DIR));
        for sink in &sinks {
            let recovery = recover(&sink.destination, "next").await.unwrap();
            assert_eq!((recovery.finished, recovery.discarded), (0, 1));
        }
        assert_eq!(files(&a), Vec::<String>::new());
        assert_eq!(files(&b), vec!["old.csv"]);
    }

    #[tokio::test]
    async fn a_decided_commit_cut_short_is_finished_at_every_sink() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        write(&b.join("old.csv"), "old");
        let sinks = [
            staged_sink(&a, "q1", &["new.csv"]),
            staged_sink(&b, "q2", &["new.csv"]),
        ];
        let decision = decision_location(&sinks[0], "run1").unwrap();
        let mut prepared = Vec::new();
        for (sink, replace) in sinks.iter().zip([false, true]) {
            let options = CommitOptions {
                replace_existing: replace,
                decided_by: Some(decision.clone()),
            };
            prepared.push(sink_staging::prepare(sink, &options).await.unwrap());
        }
        write(&decision.local_path().unwrap(), "");
        // The crash came after the first sink was published.
        sink_staging::finish(&sinks[0], &prepared[0]).await.unwrap();
        // A failed job's cleanup keeps a decided commit.
        sink_staging::discard(&sinks[1].destination, "q2")
            .await
            .unwrap();
        // Aged or not, the next write finishes it.
        age(&root.path().join(sink_staging::STAGING_DIR));
        let recovery = recover(&sinks[1].destination, "next").await.unwrap();
        assert_eq!((recovery.finished, recovery.discarded), (1, 0));
        assert_eq!(files(&b), vec!["_SUCCESS", "new.csv"]);
        assert_eq!(files(&a), vec!["_SUCCESS", "new.csv"]);
        assert!(root.path().join("_squall_staging/a/run1.decided").exists());
    }
}
