//! Incremental sources: runs with files added between them make the table
//! one full run makes, each reading only what is new; a failed run consumes
//! nothing (state and table stay as after the last success); a full
//! refresh rebuilds.

use std::path::{Path, PathBuf};

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use squall_etl::{JobFile, JobOutcome, JobPlan, RunOptions, run_job};
use squall_jobs::{Session, SessionOptions};

struct Lake {
    _dir: tempfile::TempDir,
    drops: PathBuf,
    root: PathBuf,
}

impl Lake {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let drops = dir.path().join("drops");
        std::fs::create_dir_all(&drops).unwrap();
        Self {
            root: dir.path().to_path_buf(),
            drops,
            _dir: dir,
        }
    }

    fn drop_file(&self, name: &str, rows: &[(i64, &str)]) {
        let mut text = "id,amount\n".to_string();
        for (id, amount) in rows {
            text.push_str(&format!("{id},{amount}\n"));
        }
        std::fs::write(self.drops.join(name), text).unwrap();
    }

    fn job(&self, out: &str) -> String {
        format!(
            r#"name = "payments"

[sources.payments]
url = "{drops}/"
format = "csv"
schema = "id BIGINT, amount VARCHAR"
incremental = true

[[steps]]
name = "cleaned"
sql = "SELECT id, CAST(amount AS INT) * 2 AS doubled FROM payments"

[[sinks]]
step = "cleaned"
url = "{out}"
mode = "append"
"#,
            drops = self.drops.display(),
            out = self.root.join(out).display()
        )
    }

    async fn run(&self, out: &str, options: RunOptions) -> squall_etl::Result<JobOutcome> {
        let session = Session::try_new(SessionOptions::default()).unwrap();
        let job = JobFile::parse("payments.toml", &self.job(out), &[])?;
        let plan = JobPlan::check(&session, job).await?;
        run_job(&session, &plan, &options).await
    }

    /// The rows of a sink's folder, as single-node DataFusion reads them, sorted.
    async fn rows(&self, out: &str) -> Vec<String> {
        let ctx = SessionContext::new();
        let dir = self.root.join(out);
        if !dir.exists() {
            return Vec::new();
        }
        ctx.register_parquet(
            "t",
            format!("{}/", dir.display()),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
        let batches = ctx
            .sql("SELECT id, doubled FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut rows = Vec::new();
        for b in &batches {
            let options = FormatOptions::default();
            let cols: Vec<_> = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect();
            for r in 0..b.num_rows() {
                rows.push(
                    cols.iter()
                        .map(|c| c.value(r).to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
        }
        rows.sort();
        rows
    }

    fn state(&self, out: &str) -> Option<String> {
        std::fs::read_to_string(
            self.root
                .join("_squall_state")
                .join(out)
                .join("payments.json"),
        )
        .ok()
    }
}

fn read_counts(outcome: &JobOutcome) -> (usize, usize) {
    let read = &outcome.incremental[0];
    (read.objects_read, read.objects_total)
}

fn visible(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_incremental_runs_make_the_table_one_full_run_makes() {
    let lake = Lake::new();
    lake.drop_file("day1.csv", &[(1, "10"), (2, "20")]);
    let first = lake.run("out", RunOptions::default()).await.unwrap();
    assert_eq!(read_counts(&first), (1, 1));
    assert_eq!(first.sinks[0].rows, 2);
    lake.drop_file("day2.csv", &[(3, "30")]);
    let second = lake.run("out", RunOptions::default()).await.unwrap();
    assert_eq!(read_counts(&second), (1, 2));
    assert_eq!(second.sinks[0].rows, 1, "day 1 is not read again");
    lake.drop_file("day3.csv", &[(4, "40"), (5, "50")]);
    let third = lake.run("out", RunOptions::default()).await.unwrap();
    assert_eq!(read_counts(&third), (1, 3));
    // Nothing new: nothing read, nothing added.
    let idle = lake.run("out", RunOptions::default()).await.unwrap();
    assert_eq!(read_counts(&idle), (0, 3));
    assert_eq!(idle.sinks[0].rows, 0);

    // One run over every file, into another table.
    let full = lake.run("full", RunOptions::default()).await.unwrap();
    assert_eq!(read_counts(&full), (3, 3));
    let expected = lake.rows("full").await;
    assert_eq!(expected, vec!["1,20", "2,40", "3,60", "4,80", "5,100"]);
    assert_eq!(lake.rows("out").await, expected);

    // A full refresh rebuilds: every file read, the appended table replaced.
    let rebuilt = lake
        .run("out", RunOptions { full_refresh: true })
        .await
        .unwrap();
    assert_eq!(read_counts(&rebuilt), (3, 3));
    assert_eq!(lake.rows("out").await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_consumes_nothing_and_the_next_one_reads_what_it_did_not() {
    let lake = Lake::new();
    lake.drop_file("day1.csv", &[(1, "10"), (2, "20")]);
    lake.run("out", RunOptions::default()).await.unwrap();
    let state = lake.state("out").expect("a state after a success");
    let files = visible(&lake.root.join("out"));

    // Day 2 holds a value the step cannot cast: the run fails.
    lake.drop_file("day2.csv", &[(3, "30"), (4, "forty")]);
    let err = lake.run("out", RunOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("Cast error"), "{err}");
    assert_eq!(lake.state("out").as_deref(), Some(state.as_str()));
    assert_eq!(visible(&lake.root.join("out")), files);
    assert_eq!(lake.rows("out").await, vec!["1,20", "2,40"]);

    // Day 2 fixed: the next run reads it, and only it.
    lake.drop_file("day2.csv", &[(3, "30"), (4, "40")]);
    let fixed = lake.run("out", RunOptions::default()).await.unwrap();
    assert_eq!(read_counts(&fixed), (1, 2));
    assert_eq!(lake.rows("out").await, vec!["1,20", "2,40", "3,60", "4,80"]);
    assert_ne!(lake.state("out").as_deref(), Some(state.as_str()));
}
