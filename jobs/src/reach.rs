//! Refusing queries whose workers could not reach their data.
//!
//! Workers on a cloud function see object storage only: a scratch directory,
//! a table or a `COPY` destination on the coordinator's disk (or in its
//! memory) would fail in every task — or, worse, "work" on an emulator that
//! shares the disk. The coordinator checks every location of a query against
//! the backend's [`WorkerReach`] before a task runs.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use squall_connectors::Location;
use squall_connectors::sink_staging::file_sink_config;
use squall_planner::StageGraph;

use crate::backend::{Backend, WorkerReach};
use crate::error::{JobError, Result};

/// The scratch root `scratch` (`None`: a temporary local directory) is
/// refused when the backend's workers cannot reach it.
pub fn check_scratch(backend: &dyn Backend, scratch: Option<&Location>) -> Result<()> {
    let reach = backend.reach();
    match scratch {
        None if reach == WorkerReach::ObjectStorageOnly => Err(JobError::Unreachable {
            backend: backend.name().to_string(),
            url: "a temporary local directory".into(),
            what: "the default scratch location".into(),
            fix: "pass --scratch s3://BUCKET/PREFIX/ (or set `scratch` in the config file)".into(),
        }),
        Some(scratch) if !reach.reaches(scratch.url().scheme()) => Err(JobError::Unreachable {
            backend: backend.name().to_string(),
            url: scratch.to_string(),
            what: "the scratch location".into(),
            fix: scratch_fix(reach),
        }),
        _ => Ok(()),
    }
}

/// Every table a stage scans and every destination it writes must be
/// reachable by the backend's workers.
pub fn check_stages(backend: &dyn Backend, graph: &StageGraph) -> Result<()> {
    let reach = backend.reach();
    let refuse = |url: String, what: String| JobError::Unreachable {
        backend: backend.name().to_string(),
        url,
        what,
        fix: data_fix(reach),
    };
    for stage in &graph.stages {
        for scan in &stage.scans {
            let scheme = scan.store_url.split("://").next().unwrap_or_default();
            if !reach.reaches(scheme) {
                let file = scan
                    .tasks
                    .iter()
                    .flatten()
                    .next()
                    .map(|split| format!("{}{}", scan.store_url, split.path))
                    .unwrap_or_else(|| scan.store_url.clone());
                return Err(refuse(file, format!("read by stage {}", stage.id)));
            }
        }
        let mut unreachable_sink = None;
        let _ = stage.plan.apply(|node| {
            if let Some(config) = file_sink_config(node) {
                let url = config
                    .table_paths
                    .first()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| config.object_store_url.to_string());
                if !reach.reaches(
                    config
                        .object_store_url
                        .as_str()
                        .split("://")
                        .next()
                        .unwrap_or_default(),
                ) {
                    unreachable_sink = Some(url);
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        if let Some(url) = unreachable_sink {
            return Err(refuse(url, format!("written by stage {}", stage.id)));
        }
    }
    Ok(())
}

fn scratch_fix(reach: WorkerReach) -> String {
    match reach {
        WorkerReach::ObjectStorageOnly => {
            "pass --scratch s3://BUCKET/PREFIX/ (or set `scratch` in the config file)".into()
        }
        _ => "pass --scratch with a local directory or an object-store URL".into(),
    }
}

fn data_fix(reach: WorkerReach) -> String {
    match reach {
        WorkerReach::ObjectStorageOnly => {
            "its workers see only object storage: copy the data to S3 (or another object store) \
             and name it by URL"
                .into()
        }
        _ => "use a local directory or an object-store URL".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reach_knows_its_stores() {
        use WorkerReach::*;
        assert!(ThisProcess.reaches("memory") && ThisProcess.reaches("file"));
        assert!(!ThisMachine.reaches("memory") && ThisMachine.reaches("file"));
        assert!(!ObjectStorageOnly.reaches("file") && !ObjectStorageOnly.reaches("memory"));
        assert!(ObjectStorageOnly.reaches("s3") && ObjectStorageOnly.reaches("az"));
    }
}
