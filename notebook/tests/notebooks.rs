//! The example notebooks run and render: cells in dependency order with
//! DataFusion's answers, charts with one mark per row, a failing cell shown
//! where it is with the cells that read it not run, parameters from
//! `--set`, and a cycle refused at its line.

use std::path::Path;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use squall_jobs::{Session, SessionOptions};
use squall_notebook::run::CellMeter;
use squall_notebook::{CellOutcome, Notebook, NotebookError, render_html, run_notebook};

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/notebooks")
        .join(name)
}

async fn tpch(dir: &Path) -> String {
    let root = dir.join("tpch");
    let location = squall_connectors::Location::parse(&root.display().to_string()).unwrap();
    squall_connectors::tpch::generate_tpch(0.01, &location, 2)
        .await
        .unwrap();
    root.display().to_string()
}

fn session(meter: &CellMeter) -> Session {
    Session::try_new(SessionOptions {
        progress: Some(meter.listener()),
        ..SessionOptions::default()
    })
    .unwrap()
}

fn done(outcome: &CellOutcome) -> &squall_notebook::run::CellResult {
    match outcome {
        CellOutcome::Done(result) => result,
        other => panic!("not done: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_revenue_notebook_gives_datafusion_s_answers_and_draws_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = tpch(dir.path()).await;
    let notebook = Notebook::load(&example("revenue.md"), &[format!("data={data}")]).unwrap();
    let meter = CellMeter::default();
    let run = run_notebook(&session(&meter), &notebook, Some(&meter))
        .await
        .unwrap();
    assert_eq!(run.failures(), 0);
    let by_year = done(&run.cells[1]);
    assert!(by_year.tasks > 0 && by_year.bytes_read > 0, "{by_year:?}");

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
        let expected = ctx
            .sql(&cells[i].sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            pretty_format_batches(&done(&run.cells[i]).batches)
                .unwrap()
                .to_string(),
            pretty_format_batches(&expected).unwrap().to_string(),
            "cell {}",
            cells[i].name.as_deref().unwrap_or("")
        );
    }
    let page = render_html::render(&notebook, &run);
    assert_eq!(page.matches(r#"data-state="done""#).count(), 4);
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
    let run = run_notebook(&session(&meter), &later, None).await.unwrap();
    assert_eq!(done(&run.cells[1]).rows, 3, "1996, 1997 and 1998");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_cell_shows_where_it_is_and_stops_only_its_readers() {
    let notebook = Notebook::load(&example("errors.md"), &[]).unwrap();
    let meter = CellMeter::default();
    let run = run_notebook(&session(&meter), &notebook, None)
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
    let meter = CellMeter::default();
    let later = "```sql\nSELECT * FROM b\n```\n\n```sql b\nSELECT 1 AS x\n```\n";
    let notebook = Notebook::parse("later.md", later, &[]).unwrap();
    let run = run_notebook(&session(&meter), &notebook, None)
        .await
        .unwrap();
    assert_eq!(done(&run.cells[0]).rows, 1);
    let cycle = "```sql a\nSELECT * FROM b\n```\n\n```sql b\nSELECT * FROM a\n```\n";
    let notebook = Notebook::parse("cycle.md", cycle, &[]).unwrap();
    match run_notebook(&session(&meter), &notebook, None).await {
        Err(NotebookError::Invalid { line, message, .. }) => {
            assert_eq!(line, 1);
            assert_eq!(message, "these cells read each other in a cycle: a, b");
        }
        other => panic!("{other:?}"),
    }
}
