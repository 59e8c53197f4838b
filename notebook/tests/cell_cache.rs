//! The result cache: an unchanged notebook runs no task the second time and
//! shows the same rows; a changed cell runs again with the cells that read
//! it and no other; a changed parameter or data file runs what depends on
//! it; cells whose value can change between runs always run; the cache
//! keeps to its byte budget; a damaged entry is run again, not shown.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{done, example, tpch};
use squall_jobs::{ProgressEvent, Session, SessionOptions};
use squall_notebook::RunOptions;
use squall_notebook::cell_key::CellKey;
use squall_notebook::{CellCache, Notebook, NotebookRun, run_notebook};

/// Runs `notebook` on a new session (as a new `squall` process would),
/// with the cache at `cache_dir` holding at most `cache_bytes`; returns the
/// run and how many tasks ran.
async fn run(notebook: &Notebook, cache_dir: &Path, cache_bytes: u64) -> (NotebookRun, u64) {
    let tasks = Arc::new(AtomicU64::new(0));
    let counter = tasks.clone();
    let session = Session::try_new(SessionOptions {
        progress: Some(Arc::new(move |event| {
            if let ProgressEvent::TaskFinished { .. } = event {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })),
        ..SessionOptions::default()
    })
    .unwrap();
    let cache = CellCache::open(&session, &cache_dir.display().to_string(), cache_bytes).unwrap();
    let options = RunOptions {
        cache: Some(cache),
        ..RunOptions::default()
    };
    let run = run_notebook(&session, notebook, &options).await.unwrap();
    assert!(run.cache_warnings.is_empty(), "{:?}", run.cache_warnings);
    (run, tasks.load(Ordering::Relaxed))
}

/// Per cell: whether it came from the cache.
fn cached(run: &NotebookRun) -> Vec<bool> {
    run.cells.iter().map(|c| done(c).cached).collect()
}

fn rows(run: &NotebookRun) -> Vec<Vec<Vec<String>>> {
    run.cells
        .iter()
        .map(|c| done(c).first_rows(usize::MAX))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_changed_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = tpch(dir.path()).await;
    let cache = dir.path().join("cache");
    let text = std::fs::read_to_string(example("revenue.md")).unwrap();
    let parse = |text: &str, since: &str| {
        Notebook::parse(
            "revenue.md",
            text,
            &[format!("data={data}"), format!("since={since}")],
        )
        .unwrap()
    };
    // Cells: order_revenue, by_year, by_priority, the five largest lines
    // (the last three read order_revenue).
    let notebook = parse(&text, "1993");

    let (first, first_tasks) = run(&notebook, &cache, u64::MAX).await;
    assert_eq!(cached(&first), [false; 4]);
    assert!(first_tasks > 0);
    assert!(
        first.keys.iter().all(|k| k.key().is_some()),
        "{:?}",
        first.keys
    );

    let (again, again_tasks) = run(&notebook, &cache, u64::MAX).await;
    assert_eq!(cached(&again), [true; 4]);
    assert_eq!(again_tasks, 0, "an unchanged notebook runs no task");
    assert_eq!(
        rows(&again),
        rows(&first),
        "the cache shows what the run showed"
    );
    assert_eq!(done(&again.cells[1]).tasks, done(&first.cells[1]).tasks);

    // One cell changed: it alone runs (nothing reads by_year).
    let changed = text.replace("ORDER BY year\n", "ORDER BY year DESC\n");
    assert_ne!(changed, text);
    let (one, _) = run(&parse(&changed, "1993"), &cache, u64::MAX).await;
    assert_eq!(cached(&one), [true, false, true, true]);
    let mut years = rows(&first)[1].clone();
    years.reverse();
    assert_eq!(rows(&one)[1], years);

    // A parameter that order_revenue uses: it and its three readers run.
    let (param, _) = run(&parse(&text, "1995"), &cache, u64::MAX).await;
    assert_eq!(cached(&param), [false; 4]);
    assert!(rows(&param)[1].len() < rows(&first)[1].len());

    // A data file rewritten: everything reading orders runs again.
    let file = std::fs::read_dir(Path::new(&data).join("orders"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    let (touched, touched_tasks) = run(&notebook, &cache, u64::MAX).await;
    assert_eq!(cached(&touched), [false; 4]);
    assert!(touched_tasks > 0);
    assert_eq!(rows(&touched), rows(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cells_whose_value_can_change_always_run() {
    let dir = tempfile::tempdir().unwrap();
    let text = "```sql dice\nSELECT random() AS r\n```\n\n\
                ```sql\nSELECT r FROM dice\n```\n\n\
                ```sql\nSELECT now() AS at\n```\n\n\
                ```sql\nCREATE OR REPLACE VIEW v AS SELECT 1 AS one; SELECT * FROM v\n```\n\n\
                ```sql\nSELECT 6 * 7 AS answer\n```\n";
    let notebook = Notebook::parse("volatile.md", text, &[]).unwrap();
    let (first, _) = run(&notebook, dir.path(), u64::MAX).await;
    assert_eq!(cached(&first), [false; 5]);
    let (again, _) = run(&notebook, dir.path(), u64::MAX).await;
    assert_eq!(cached(&again), [false, false, false, false, true]);
    let why: Vec<String> = again
        .keys
        .iter()
        .map(|k| match k {
            CellKey::Uncached(why) => why.clone(),
            CellKey::Key(_) => String::new(),
        })
        .collect();
    assert!(why[0].contains("random()"), "{why:?}");
    // It reads a cell that always runs (whose plan, a view, it includes).
    assert!(
        why[1].contains("'dice'") || why[1].contains("random()"),
        "{why:?}"
    );
    assert!(why[2].contains("now()"), "{why:?}");
    assert!(why[3].contains("more than one statement"), "{why:?}");
    assert_ne!(rows(&again)[0], rows(&first)[0], "random() ran again");
}

fn entries(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_to_its_budget_and_runs_a_damaged_entry_again() {
    let dir = tempfile::tempdir().unwrap();
    let text = "```sql\nSELECT 1 AS one\n```\n\n```sql\nSELECT 'two' AS two\n```\n";
    let notebook = Notebook::parse("small.md", text, &[]).unwrap();

    // A budget of nothing: every entry goes after the run.
    let (first, _) = run(&notebook, dir.path(), 0).await;
    assert_eq!(cached(&first), [false, false]);
    assert_eq!(entries(dir.path()), Vec::<std::path::PathBuf>::new());
    let (second, _) = run(&notebook, dir.path(), 0).await;
    assert_eq!(cached(&second), [false, false]);

    // A budget of one entry: the older goes.
    let (_, _) = run(&notebook, dir.path(), u64::MAX).await;
    let kept = entries(dir.path());
    assert_eq!(kept.len(), 2);
    let one_entry = kept
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .max()
        .unwrap();
    let (third, _) = run(&notebook, dir.path(), one_entry).await;
    assert_eq!(cached(&third), [true, true]);
    let held: u64 = entries(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(held <= one_entry, "{held} bytes held, budget {one_entry}");

    // A damaged entry is a miss: the cell runs and its entry is rewritten.
    let (_, _) = run(&notebook, dir.path(), u64::MAX).await;
    for entry in entries(dir.path()) {
        std::fs::write(&entry, b"not parquet").unwrap();
    }
    let (damaged, _) = run(&notebook, dir.path(), u64::MAX).await;
    assert_eq!(cached(&damaged), [false, false]);
    assert_eq!(rows(&damaged), rows(&first));
    let (healed, _) = run(&notebook, dir.path(), u64::MAX).await;
    assert_eq!(cached(&healed), [true, true]);
}
