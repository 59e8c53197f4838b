//! A `COPY` interrupted at 20 moments spread over its run, on any backend:
//! the client drops the query (Ctrl-C, a closed connection). It never
//! leaves part of its output visible, except when the interruption fell
//! inside the commit, which the next write to the same destination then
//! finishes; that next write succeeds.

use std::path::Path;
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use squall_jobs::Session;

use super::{csv_rows_below, tpch_data};

const SQL: &str = "SELECT o_orderkey, o_custkey FROM orders";

/// Files below `dir` whose names do not start with `_` (what readers see),
/// and whether `_SUCCESS` is there.
fn visible(dir: &Path) -> (Vec<String>, bool) {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with('_') {
            files.push(name);
        }
    }
    files.sort();
    (files, dir.join("_SUCCESS").exists())
}

async fn rows_below(dir: &Path) -> usize {
    csv_rows_below(dir).await.iter().map(|b| b.num_rows()).sum()
}

fn copy_to(dir: &Path) -> String {
    // Many small files, so that an interrupted commit could expose some.
    format!(
        "SET datafusion.execution.soft_max_rows_per_output_file = 10000; \
         COPY ({SQL}) TO '{}/' STORED AS CSV",
        dir.display()
    )
}

/// Runs the COPY to `dir` to the end.
async fn run_copy(session: &Session, dir: &Path) -> Result<(), squall_jobs::JobError> {
    if let squall_jobs::StatementResult::Rows(stream) = session.sql(&copy_to(dir)).await? {
        stream.collect().await?;
    }
    Ok(())
}

/// Interrupts a `COPY` on `session` (over [`tpch_data`]) at 20 moments and
/// checks what each interruption leaves.
pub async fn assert_interrupted_copies_leave_nothing_partial(session: &Session) {
    let data = tpch_data().await;
    let orders = {
        let ctx = SessionContext::new();
        let path = data.root.join("orders");
        ctx.register_parquet("orders", path.to_str().unwrap(), Default::default())
            .await
            .unwrap();
        ctx.sql(SQL).await.unwrap().count().await.unwrap()
    };
    // How long an uninterrupted COPY takes here: the interruptions spread over it.
    let whole = tempfile::tempdir().unwrap();
    let started = Instant::now();
    run_copy(session, whole.path()).await.unwrap();
    let duration = started.elapsed();
    assert_eq!(rows_below(whole.path()).await, orders);
    assert!(
        visible(whole.path()).0.len() > 2,
        "{:?}",
        visible(whole.path())
    );

    let (mut interrupted, mut completed) = (0, 0);
    for seed in 0..20u32 {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // Interruption points from the start to past the end of a run; the
        // last one lets the COPY finish even on a loaded machine.
        let at = match seed {
            19 => duration * 10,
            _ => duration.mul_f64((f64::from(seed) + 0.5) / 18.0),
        };
        let finished = tokio::time::timeout(at, run_copy(session, &out))
            .await
            .is_ok_and(|r| r.is_ok());
        // Let the dropped query's cleanup run.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (files, success) = visible(&out);
        // Staging is beside the destination.
        let staging = out.parent().unwrap().join("_squall_staging/out");
        let committing = std::fs::read_dir(&staging)
            .into_iter()
            .flatten()
            .flatten()
            .any(|q| q.path().join("_COMMIT").exists());
        if finished || success {
            assert!(success, "seed {seed}: a finished COPY wrote _SUCCESS");
            assert_eq!(rows_below(&out).await, orders, "seed {seed}");
        } else if !committing {
            assert_eq!(
                files,
                Vec::<String>::new(),
                "seed {seed}: partial output visible"
            );
        }
        let first_published = finished || success || committing;
        if first_published {
            completed += 1;
        } else {
            interrupted += 1;
        }
        // The next write to the same destination succeeds, and finishes an
        // interrupted commit first.
        run_copy(session, &out)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let expected = if first_published { 2 * orders } else { orders };
        assert_eq!(rows_below(&out).await, expected, "seed {seed}");
        // What is left of staging (if anything) is the interrupted query's
        // uncommitted files: a write its aborted task had in flight may
        // land after the cleanup. Invisible, and deleted by a later write
        // once stale; but no commit is left unfinished.
        let unfinished = std::fs::read_dir(&staging)
            .into_iter()
            .flatten()
            .flatten()
            .any(|q| q.path().join("_COMMIT").exists());
        assert!(!unfinished, "seed {seed}: a commit left unfinished");
    }
    eprintln!("{interrupted} interrupted before their commit, {completed} committed");
    assert!(
        interrupted >= 3 && completed >= 1,
        "the interruptions missed the run"
    );
}
