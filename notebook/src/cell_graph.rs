//! The order of a notebook's SQL cells: each runs after the named cells it
//! reads (a cell may read one further down the file); a cycle is an error
//! at a line of a cell in it.

use std::collections::BTreeMap;

use squall_jobs::Session;

use crate::error::{NotebookError, Result};
use crate::notebook_file::Notebook;

/// The SQL cells (indexes into `Notebook::sql_cells`) in an order where
/// every cell comes after the cells it reads, and what each reads.
#[derive(Debug, Clone)]
pub struct CellGraph {
    pub order: Vec<usize>,
    /// Per cell: the cells it reads.
    pub reads: Vec<Vec<usize>>,
}

impl CellGraph {
    /// The graph of `notebook`'s cells, their SQL parsed as `session` parses it.
    /// A cell whose SQL does not parse reads nothing here; running it says why.
    pub fn of(notebook: &Notebook, session: &Session) -> Result<Self> {
        let cells: Vec<_> = notebook.sql_cells().collect();
        let by_name: BTreeMap<String, usize> = cells
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.name.as_ref().map(|n| (n.to_ascii_lowercase(), i)))
            .collect();
        let reads: Vec<Vec<usize>> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let mut reads: Vec<usize> = tables_read(session, &cell.sql)
                    .into_iter()
                    .filter_map(|t| by_name.get(&t).copied())
                    .filter(|j| *j != i || cell.name.is_some())
                    .collect();
                reads.sort_unstable();
                reads.dedup();
                reads
            })
            .collect();
        // Kahn's algorithm, taking ready cells in file order.
        let mut waiting: Vec<usize> = reads.iter().map(Vec::len).collect();
        let mut order = Vec::with_capacity(cells.len());
        let mut done = vec![false; cells.len()];
        while order.len() < cells.len() {
            let Some(next) = (0..cells.len()).find(|i| !done[*i] && waiting[*i] == 0) else {
                let stuck = (0..cells.len()).find(|i| !done[*i]).expect("some left");
                let names: Vec<String> = (0..cells.len())
                    .filter(|i| !done[*i])
                    .filter_map(|i| cells[i].name.clone())
                    .collect();
                return Err(NotebookError::Invalid {
                    file: notebook.file.clone(),
                    line: cells[stuck].line,
                    message: format!(
                        "these cells read each other in a cycle: {}",
                        names.join(", ")
                    ),
                });
            };
            done[next] = true;
            order.push(next);
            for (i, r) in reads.iter().enumerate() {
                waiting[i] -= r.iter().filter(|j| **j == next).count();
            }
        }
        Ok(Self { order, reads })
    }
}

/// The tables (lower-cased) that `sql` reads; none if it does not parse.
fn tables_read(session: &Session, sql: &str) -> Vec<String> {
    let Ok(statements) = session.statements(sql) else {
        return Vec::new();
    };
    let state = session.context().state();
    statements
        .iter()
        .filter_map(|s| state.resolve_table_references(s).ok())
        .flatten()
        .map(|t| t.table().to_ascii_lowercase())
        .collect()
}
