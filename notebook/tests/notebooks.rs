//! The example notebooks run and render: cells in dependency order with
//! DataFusion's answers, charts with one mark per row, a failing cell shown
//! where it is with the cells that read it not run, parameters from
//! `--set`, and a cycle refused at its line.

mod common;

use std::sync::{Arc, Mutex};

use common::{assert_as_datafusion, done, example, tpch};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use squall_jobs::{Session, SessionOptions};
use squall_notebook::{CellEvent, RunOptions};
use squall_notebook::{CellOutcome, Notebook, NotebookError, render_html, run_notebook};

fn session() -> Session {
    Session::try_new(SessionOptions::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revenue_notebook_gives_datafusion_s_answers_and_draws_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = tpch(dir.path()).await;
    let notebook = Notebook::load(&example("revenue.md"), &[format!("data={data}")]).unwrap();
    let run = run_notebook(&session(), &notebook, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.failures(), 0);
    let by_year = done(&run.cells[1]);
    assert!(
        by_year.tasks > 0 && by_year.bytes_read > 0 && by_year.cost_usd > 0.0,
        "{by_year:?}"
    );

    // Single-node DataFusion, the same SQL.
    let ctx = SessionContext::new();
    for t in ["orders", "lineitem"] {
        ctx.register_parquet(t, format!("{data}/{t}/"), ParquetReadOptions::default())
            .await
            .unwrap();
    }
    let cells: Vec<_> = notebook.sql_cells().collect();
    ctx.sql(&format!("CREATE VIEW order_revenue AS {}", cells[0].sql))
        .await
        .unwrap();
    for i in [1, 2] {
        assert_as_datafusion(&ctx, &notebook, &run, i).await;
    }
    let page = render_html::render(&notebook, &run);
    assert_eq!(page.matches(r#"data-state="done""#).count(), 4);
    assert_eq!(page.matches(r#"<span class="cost""#).count(), 4);
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 2);
    // One point per year, one bar per year and priority.
    let marks = (done(&run.cells[1]).rows + done(&run.cells[2]).rows) as usize;
    assert_eq!(page.matches(r#"class="mark""#).count(), marks);
    assert!(page.contains("<h2>By year</h2>"), "prose is rendered");
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "nothing fetched"
    );

    // A parameter set from outside: fewer years.
    let later = Notebook::load(
        &example("revenue.md"),
        &[format!("data={data}"), "since=1996".into()],
    )
    .unwrap();
    let run = run_notebook(&session(), &later, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(done(&run.cells[1]).rows, 3, "1996, 1997 and 1998");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_cell_shows_where_it_is_and_stops_only_its_readers() {
    let notebook = Notebook::load(&example("errors.md"), &[]).unwrap();
    let run = run_notebook(&session(), &notebook, &RunOptions::default())
        .await
        .unwrap();
    assert!(matches!(run.cells[0], CellOutcome::Done(_)));
    assert!(matches!(&run.cells[1], CellOutcome::Failed(m) if m.contains("No field named agee")));
    assert!(matches!(&run.cells[2], CellOutcome::Skipped(m) if m.contains("'adults'")));
    assert_eq!(done(&run.cells[3]).rows, 1);
    assert_eq!(run.failures(), 2);
    let page = render_html::render(&notebook, &run);
    assert!(page.contains("error: Schema error: No field named agee"));
    assert!(page.contains("not drawn: cell 'adults' did not run to its end"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cells_read_cells_further_down_but_not_in_a_cycle() {
    let later = "```sql\nSELECT * FROM b\n```\n\n```sql b\nSELECT 1 AS x\n```\n";
    let notebook = Notebook::parse("later.md", later, &[]).unwrap();
    let run = run_notebook(&session(), &notebook, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(done(&run.cells[0]).rows, 1);
    let cycle = "```sql a\nSELECT * FROM b\n```\n\n```sql b\nSELECT * FROM a\n```\n";
    let notebook = Notebook::parse("cycle.md", cycle, &[]).unwrap();
    match run_notebook(&session(), &notebook, &RunOptions::default()).await {
        Err(NotebookError::Invalid { line, message, .. }) => {
            assert_eq!(line, 1);
            assert_eq!(message, "these cells read each other in a cycle: a, b");
        }
        other => panic!("{other:?}"),
    }
}

/// `--format md`: the notebook written back byte for byte with each SQL
/// cell's result under it (DataFusion's rows, an error where a cell
/// failed), and written back again from its own output with only the
/// results replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_output_embeds_results_and_is_written_back_the_same() {
    use squall_notebook::render_markdown::{RESULT_BEGIN, RESULT_END, render};

    let dir = tempfile::tempdir().unwrap();
    let data = tpch(dir.path()).await;
    let source = "+++\ntitle = \"Nations\"\n[tables]\nnation = \"{{ data }}/nation/\"\n[params]\ndata = \"x\"\n+++\n# Nations\n\n\
        ```sql regions\nSELECT n_regionkey AS region, count(*) AS nations, min(n_name) AS first FROM nation GROUP BY 1 ORDER BY 1\n```\n\n\
        Prose | with a pipe.\n\n```sql\nSELECT * FROM regions WHERE nations > 100\n```\n\n```sql broken\nSELECT nope FROM nation\n```\n";
    let sets = [format!("data={data}")];
    let run_md = |text: String| {
        let sets = sets.clone();
        async move {
            let notebook = Notebook::parse("n.md", &text, &sets).unwrap();
            assert_eq!(notebook.sql_cells().count(), 3, "results read as cells");
            let run = run_notebook(&session(), &notebook, &RunOptions::default())
                .await
                .unwrap();
            render(&notebook, &run)
        }
    };
    let first = run_md(source.to_string()).await;

    // Without its results, the output is the notebook as it was.
    let mut stripped = String::new();
    let mut in_result = false;
    for line in first.lines() {
        if line.starts_with(RESULT_BEGIN) {
            in_result = true;
            // The blank line written before a result.
            assert!(stripped.ends_with("\n\n"), "{first}");
            stripped.pop();
        }
        if !in_result {
            stripped.push_str(line);
            stripped.push('\n');
        }
        if line == RESULT_END {
            in_result = false;
        }
    }
    assert_eq!(stripped, source, "{first}");

    // The first cell's rows are DataFusion's, as a Markdown table.
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "nation",
        format!("{data}/nation/"),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    let expected = ctx
        .sql("SELECT n_regionkey AS region, count(*) AS nations, min(n_name) AS first FROM nation GROUP BY 1 ORDER BY 1")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut rows = String::from("| region | nations | first |\n|---:|---:|---|\n");
    for batch in &expected {
        let text = pretty_format_batches(std::slice::from_ref(batch))
            .unwrap()
            .to_string();
        for line in text.lines().filter(|l| l.starts_with("| ")).skip(1) {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            rows.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
    }
    let total: usize = expected.iter().map(|b| b.num_rows()).sum();
    assert!(
        first.contains(&format!("{RESULT_BEGIN}: {total} rows · ")),
        "{first}"
    );
    assert!(first.contains(&rows), "expected\n{rows}\nin\n{first}");
    // No rows: the header alone; the failing cell: its error.
    assert!(
        first.contains(&format!("{RESULT_BEGIN}: 0 rows · ")),
        "{first}"
    );
    assert!(first.contains("> **Error:** "), "{first}");
    assert!(first.contains("nope"), "{first}");

    // Run from its own output: the same file, but for the times.
    let second = run_md(first.clone()).await;
    let without_times = |text: &str| {
        text.lines()
            .map(|l| match l.find(" s · ") {
                Some(end) if l.starts_with(RESULT_BEGIN) => {
                    let start = l[..end].rfind(" · ").unwrap();
                    format!("{}{}", &l[..start], &l[end..])
                }
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_times(&second), without_times(&first));
}

/// The order cells start and end in, as a listener hears it.
fn listen() -> (squall_notebook::run::CellListener, Arc<Mutex<Vec<String>>>) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = heard.clone();
    let listener: squall_notebook::run::CellListener = Arc::new(move |event| {
        let line = match event {
            CellEvent::Started { cell } => format!("start {cell}"),
            CellEvent::Ended { cell, .. } => format!("end {cell}"),
            CellEvent::Progress { .. } => return,
        };
        log.lock().unwrap().push(line);
    });
    (listener, heard)
}

fn position(heard: &[String], line: &str) -> usize {
    heard
        .iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("no '{line}' in {heard:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_cells_run_at_once_and_each_counts_its_own_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let data = tpch(dir.path()).await;
    let text = format!(
        "+++\n[tables]\norders = \"{data}/orders/\"\nlineitem = \"{data}/lineitem/\"\n+++\n\n\
         ```sql statuses\nSELECT o_orderstatus, count(*) AS n FROM orders GROUP BY o_orderstatus\n```\n\n\
         ```sql\nSELECT l_returnflag, sum(l_quantity) AS q FROM lineitem GROUP BY l_returnflag\n```\n\n\
         ```sql\nSELECT sum(n) AS orders FROM statuses\n```\n"
    );
    let notebook = Notebook::parse("three.md", &text, &[]).unwrap();
    let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = total.clone();
    let session = Session::try_new(SessionOptions {
        progress: Some(Arc::new(move |event| {
            if let squall_jobs::ProgressEvent::TaskFinished { .. } = event {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })),
        ..SessionOptions::default()
    })
    .unwrap();

    let (listener, heard) = listen();
    let options = RunOptions {
        listener: Some(listener),
        ..RunOptions::default()
    };
    let run = run_notebook(&session, &notebook, &options).await.unwrap();
    assert_eq!(run.failures(), 0);
    let heard = heard.lock().unwrap().clone();
    assert!(
        position(&heard, "start 1") < position(&heard, "end 0"),
        "the two independent cells overlap: {heard:?}"
    );
    assert!(
        position(&heard, "end 0") < position(&heard, "start 2"),
        "a cell starts after the cell it reads: {heard:?}"
    );
    let tasks: Vec<u64> = run.cells.iter().map(|c| done(c).tasks).collect();
    assert!(tasks.iter().all(|t| *t > 0), "{tasks:?}");
    assert_eq!(
        tasks.iter().sum::<u64>(),
        total.load(std::sync::atomic::Ordering::Relaxed),
        "every task is counted once, in the cell that ran it"
    );

    // One at a time when told so.
    let (listener, heard) = listen();
    let options = RunOptions {
        listener: Some(listener),
        concurrent_cells: 1,
        ..RunOptions::default()
    };
    run_notebook(&session, &notebook, &options).await.unwrap();
    let heard = heard.lock().unwrap().clone();
    assert_eq!(
        heard,
        ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parameterized_notebook_answers_for_the_parameters_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let data = tpch(dir.path()).await;
    let ctx = SessionContext::new();
    ctx.register_parquet(
        "lineitem",
        format!("{data}/lineitem/"),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    for (mode, year) in [("AIR", "1995"), ("RAIL", "1997")] {
        let notebook = Notebook::load(
            &example("shipping.md"),
            &[
                format!("data={data}"),
                format!("ship_mode={mode}"),
                format!("year={year}"),
            ],
        )
        .unwrap();
        let run = run_notebook(&session(), &notebook, &RunOptions::default())
            .await
            .unwrap();
        assert_eq!(run.failures(), 0, "{:?}", run.cells);
        // Single-node DataFusion on the same SQL, parameters substituted.
        let cells: Vec<_> = notebook.sql_cells().collect();
        ctx.sql(&format!(
            "CREATE OR REPLACE VIEW shipped AS {}",
            cells[0].sql
        ))
        .await
        .unwrap();
        for i in [1, 2] {
            assert_as_datafusion(&ctx, &notebook, &run, i).await;
        }
        assert!(done(&run.cells[1]).rows == 12, "every month has lines");
        let page = render_html::render(&notebook, &run);
        assert!(page.contains(&format!("Late deliveries: {mode}, {year}")));
        let marks: Vec<u64> = page
            .split("<svg class=\"chart\"")
            .skip(1)
            .map(|svg| {
                svg.split("</svg>")
                    .next()
                    .unwrap()
                    .matches(r#"class="mark""#)
                    .count() as u64
            })
            .collect();
        // A point per month, bins of days late, a point per late line.
        assert_eq!(marks.len(), 3);
        assert_eq!(marks[0], 12);
        assert!(marks[1] >= 2, "{marks:?}");
        assert_eq!(marks[2], done(&run.cells[2]).rows);
    }
}
