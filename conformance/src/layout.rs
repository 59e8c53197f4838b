//! The working directory DataFusion's `.slt` files expect.
//!
//! The files read data by paths relative to `datafusion/sqllogictest/` in the
//! DataFusion repository: `test_files/...` and `data/...` (shipped in the
//! `datafusion-sqllogictest` crate), `../core/tests/data/...`,
//! `../../testing/data/...` (apache/arrow-testing) and
//! `../../parquet-testing/data/...` (apache/parquet-testing). The last three
//! are vendored under this crate's `data/` folder, only the files the suite
//! reads. [`SltLayout::create`] builds that tree in a temporary directory:
//! the crate's `test_files` copied (the tests write scratch files below it),
//! everything else linked.

use std::path::{Path, PathBuf};

use crate::error::{ConformanceError, Result};

/// A temporary copy of the layout; removed when dropped.
#[derive(Debug)]
pub struct SltLayout {
    _root: tempfile::TempDir,
    /// `…/datafusion/sqllogictest`: the directory the runner works in.
    pub work_dir: PathBuf,
}

impl SltLayout {
    /// Builds the layout from the `datafusion-sqllogictest` crate's sources
    /// (`crate_dir`) and the vendored data.
    pub fn create(crate_dir: &Path) -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("squall-slt-")
            .tempdir()
            .map_err(|e| io_err("temporary directory", e))?;
        let work_dir = root.path().join("datafusion/sqllogictest");
        std::fs::create_dir_all(&work_dir).map_err(|e| io_err(&work_dir, e))?;
        copy_dir(&crate_dir.join("test_files"), &work_dir.join("test_files"))?;
        symlink(&crate_dir.join("data"), &work_dir.join("data"))?;
        let vendored = vendored_data_dir();
        std::fs::create_dir_all(root.path().join("datafusion/core"))
            .map_err(|e| io_err(root.path(), e))?;
        symlink(
            &vendored.join("datafusion/core/tests"),
            &root.path().join("datafusion/core/tests"),
        )?;
        symlink(&vendored.join("testing"), &root.path().join("testing"))?;
        symlink(
            &vendored.join("parquet-testing"),
            &root.path().join("parquet-testing"),
        )?;
        Ok(Self {
            _root: root,
            work_dir,
        })
    }

    /// The `.slt` files below `test_files`, relative to it, sorted.
    pub fn test_files(&self) -> Result<Vec<PathBuf>> {
        let base = self.work_dir.join("test_files");
        let mut files = Vec::new();
        collect_slt(&base, &base, &mut files)?;
        files.sort();
        Ok(files)
    }
}

/// This crate's vendored data (`conformance/data`).
pub fn vendored_data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// The source directory of the `datafusion-sqllogictest` crate that Cargo
/// resolved for this workspace, from `cargo metadata`.
pub fn sqllogictest_crate_dir() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(&manifest)
        .output()
        .map_err(|e| io_err("cargo metadata", e))?;
    if !output.status.success() {
        return Err(ConformanceError::Setup(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| ConformanceError::Setup(format!("cargo metadata output: {e}")))?;
    metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "datafusion-sqllogictest")
        .and_then(|p| p["manifest_path"].as_str())
        .and_then(|m| Path::new(m).parent().map(Path::to_path_buf))
        .ok_or_else(|| {
            ConformanceError::Setup(
                "cargo metadata does not list the datafusion-sqllogictest crate".into(),
            )
        })
}

fn collect_slt(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let path = entry.map_err(|e| io_err(dir, e))?.path();
        if path.is_dir() {
            collect_slt(base, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path.strip_prefix(base).expect("below base").to_path_buf());
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| io_err(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io_err(from, e))? {
        let entry = entry.map_err(|e| io_err(from, e))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(|e| io_err(&target, e))?;
        }
    }
    Ok(())
}

fn symlink(target: &Path, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link).map_err(|e| io_err(link, e))
}

fn io_err(what: impl AsRef<Path>, e: std::io::Error) -> ConformanceError {
    ConformanceError::Setup(format!("{}: {e}", what.as_ref().display()))
}
