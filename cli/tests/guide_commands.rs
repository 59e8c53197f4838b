//! Every command of the user guide (docs/guide.md) works: each `sh` block
//! runs, in order, as a bash script with `set -euo pipefail` in one empty
//! folder, with this build's `squall` first on the PATH. Blocks marked
//! `text` (output, cloud commands) are not run here.

use std::path::Path;
use std::process::Command;

const GUIDE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/guide.md");

/// The `sh` blocks of a Markdown text, in order.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "a block of the guide is not closed");
    blocks
}

#[test]
fn every_command_of_the_guide_runs() {
    let guide = std::fs::read_to_string(GUIDE).unwrap();
    let blocks = shell_blocks(&guide);
    assert!(blocks.len() >= 8, "the guide shows {} blocks", blocks.len());
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_squall")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for block in &blocks {
        let out = Command::new("bash")
            .args(["-c", &format!("set -euo pipefail\n{block}")])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("HOME", dir.path())
            .env_remove("SQUALL_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this block of docs/guide.md failed:\n{block}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // What the blocks say they make is there.
    for made in [
        "tpch/lineitem",
        "urgent.parquet",
        "flags",
        "run.html",
        "run.json",
        "again.html",
        "revenue/year=1995",
        "lake/revenue/_delta_log/00000000000000000000.json",
    ] {
        assert!(
            dir.path().join(made).exists(),
            "the guide's commands made no {made}"
        );
    }
}
