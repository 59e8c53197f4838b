//! What the notebook tests share: the example notebooks, TPC-H data, a
//! cell's result, and the comparison of a cell with single-node DataFusion.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use squall_notebook::run::CellResult;
use squall_notebook::{CellOutcome, Notebook, NotebookRun};

/// An example notebook of `examples/notebooks/`.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/notebooks")
        .join(name)
}

/// TPC-H at scale 0.01, two parts per large table, below `dir`; its root.
pub async fn tpch(dir: &Path) -> String {
    let root = dir.join("tpch");
    let location = squall_connectors::Location::parse(&root.display().to_string()).unwrap();
    squall_connectors::tpch::generate_tpch(0.01, &location, 2)
        .await
        .unwrap();
    root.display().to_string()
}

/// The result of a cell that ran to its end.
pub fn done(outcome: &CellOutcome) -> &CellResult {
    match outcome {
        CellOutcome::Done(result) => result,
        other => panic!("not done: {other:?}"),
    }
}

/// Asserts that SQL cell `i` of `run` shows what `ctx` (single-node
/// DataFusion, with the views the cell reads) gives for the same SQL.
pub async fn assert_as_datafusion(
    ctx: &SessionContext,
    notebook: &Notebook,
    run: &NotebookRun,
    i: usize,
) {
    let cell = notebook.sql_cells().nth(i).unwrap();
    let expected = ctx.sql(&cell.sql).await.unwrap().collect().await.unwrap();
    assert_eq!(
        pretty_format_batches(&done(&run.cells[i]).batches)
            .unwrap()
            .to_string(),
        pretty_format_batches(&expected).unwrap().to_string(),
        "{}: cell {}",
        notebook.file,
        cell.name.as_deref().unwrap_or("")
    );
}
