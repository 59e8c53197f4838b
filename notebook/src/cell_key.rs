//! A cell's cache key: a digest of everything its result is a function of,
//! or the reason it has none (and always runs).
//!
//! The key covers the cell's SQL (parameters substituted), the keys of the
//! cells it reads, and, for every other table it reads, the name, size,
//! ETag and modification time of each of the table's files. A cell gets no
//! key, and so is never served from the cache, when its result could change
//! with nothing of that changing: it is not one query (a statement with side
//! effects must run), it calls a function whose value changes between runs
//! (`random()`, `now()`), it reads a table that is not a listing of files,
//! or it reads a cell that has no key.

use datafusion::common::TableReference;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::listing::ListingTable;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use squall_connectors::null_partitions::NullPartitionsTable;
use squall_jobs::Session;

use crate::notebook_file::SqlCell;

/// Bumped when what a cached result holds, or how it is read, changes.
const KEY_VERSION: &str = "squall-notebook-cell-1";

/// Whether a cell's result may come from the cache, and under which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellKey {
    /// The hex SHA-256 digest of the cell's inputs.
    Key(String),
    /// Why the cell always runs (for the page).
    Uncached(String),
}

impl CellKey {
    pub fn key(&self) -> Option<&str> {
        match self {
            CellKey::Key(key) => Some(key),
            CellKey::Uncached(_) => None,
        }
    }
}

/// The key of `cell`. `read_cell_key` gives the key of a cell it reads, by
/// lower-cased name (`None`: not a cell of this notebook).
pub async fn cell_key(
    session: &Session,
    cell: &SqlCell,
    read_cell_key: impl Fn(&str) -> Option<CellKey>,
) -> CellKey {
    match digest(session, cell, read_cell_key).await {
        Ok(key) => CellKey::Key(key),
        Err(why) => CellKey::Uncached(why),
    }
}

async fn digest(
    session: &Session,
    cell: &SqlCell,
    read_cell_key: impl Fn(&str) -> Option<CellKey>,
) -> Result<String, String> {
    let statements = session
        .statements(&cell.sql)
        .map_err(|_| "its SQL does not parse".to_string())?;
    let [statement] = statements.as_slice() else {
        return Err("it holds more than one statement".into());
    };
    if !matches!(statement, DfStatement::Statement(s) if matches!(**s, SqlStatement::Query(_))) {
        return Err("it is not a query".into());
    }
    let state = session.context().state();
    let plan = state
        .statement_to_plan(statement.clone())
        .await
        .map_err(|_| "it does not plan".to_string())?;
    if let Some(function) = changing_function(&plan) {
        return Err(format!(
            "it calls {function}(), whose value can change between runs"
        ));
    }
    // Names as written (a file's path keeps its case); cells are matched
    // without case, as SQL matches names.
    let mut tables: Vec<TableReference> = state
        .resolve_table_references(statement)
        .map_err(|_| "its tables cannot be resolved".to_string())?;
    tables.sort_by_key(|t| t.to_string());
    tables.dedup();

    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(KEY_VERSION.as_bytes());
    field(env!("CARGO_PKG_VERSION").as_bytes());
    field(cell.sql.as_bytes());
    for table in &tables {
        field(table.to_string().as_bytes());
        match read_cell_key(&table.table().to_ascii_lowercase()) {
            Some(CellKey::Key(key)) => field(key.as_bytes()),
            Some(CellKey::Uncached(_)) => {
                return Err(format!(
                    "it reads cell '{}', which always runs",
                    table.table()
                ));
            }
            None => {
                for file in table_files(session, table).await? {
                    field(file.as_bytes());
                }
            }
        }
    }
    let digest = hasher.finalize();
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// The first function in `plan` whose value may differ between two runs
/// of the same query (volatile, or stable such as `now()`).
fn changing_function(plan: &LogicalPlan) -> Option<String> {
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.func.signature().volatility != Volatility::Immutable
                {
                    found = Some(f.name().to_string());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// One line per file of table `name` (location, size, ETag, modification
/// time), sorted; an error if the table is not a listing of files.
async fn table_files(session: &Session, name: &TableReference) -> Result<Vec<String>, String> {
    let not_files = || format!("it reads '{name}', which is not a table of files");
    let provider = session
        .context()
        .table_provider(name.clone())
        .await
        .map_err(|_| not_files())?;
    let listing = match provider.downcast_ref::<NullPartitionsTable>() {
        Some(wrapped) => wrapped.listing(),
        None => provider
            .downcast_ref::<ListingTable>()
            .ok_or_else(not_files)?,
    };
    let state = session.context().state();
    let extension = &listing.options().file_extension;
    let mut files = Vec::new();
    for url in listing.table_paths() {
        let unlisted = |e: datafusion::error::DataFusionError| {
            format!("the files of '{name}' cannot be listed: {e}")
        };
        let store = state.runtime_env().object_store(url).map_err(unlisted)?;
        let listed: Vec<_> = url
            .list_all_files(&state, store.as_ref(), extension)
            .await
            .map_err(unlisted)?
            .try_collect()
            .await
            .map_err(unlisted)?;
        files.extend(listed.into_iter().map(|meta| {
            format!(
                "{url} {} {} {} {}",
                meta.location,
                meta.size,
                meta.e_tag.unwrap_or_default(),
                meta.last_modified.timestamp_nanos_opt().unwrap_or_default()
            )
        }));
    }
    files.sort();
    Ok(files)
}
