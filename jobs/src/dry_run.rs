//! Planning a script without running it: `squall explain` and `--explain`.
//!
//! The last statement of a script may depend on earlier ones (a `CREATE
//! EXTERNAL TABLE`, a `SET`, a `CREATE TABLE ... AS`). Explaining it must not
//! run them: they would write files (`COPY`), change tables (`INSERT`), or
//! make the real run fail (`CREATE` twice). So the earlier statements are
//! applied to a copy of the session's catalog and settings, where a
//! `CREATE TABLE ... AS` creates an empty table of the right schema and
//! statements that read or write data are planned (so their errors show)
//! but never executed. The session itself is left as it was.

use std::sync::Arc;

use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::logical_expr::{
    CreateMemoryTable, DdlStatement, EmptyRelation, LogicalPlan, Statement as DfStatement,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement;

use crate::error::Result;

/// A context with the same settings, functions and runtime as `ctx` and a
/// copy of its catalog: the same tables, in catalogs and schemas of its own,
/// so that creating or dropping a table in the copy leaves `ctx` unchanged.
pub(crate) async fn planning_copy(ctx: &SessionContext) -> Result<SessionContext> {
    let state = ctx.state();
    let catalogs = Arc::new(MemoryCatalogProviderList::new());
    let original = state.catalog_list();
    for catalog_name in original.catalog_names() {
        let Some(catalog) = original.catalog(&catalog_name) else {
            continue;
        };
        let catalog_copy = Arc::new(MemoryCatalogProvider::new());
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            let schema_copy = Arc::new(MemorySchemaProvider::new());
            for table_name in schema.table_names() {
                if let Some(table) = schema.table(&table_name).await? {
                    schema_copy.register_table(table_name, table)?;
                }
            }
            catalog_copy.register_schema(&schema_name, schema_copy)?;
        }
        catalogs.register_catalog(catalog_name, catalog_copy);
    }
    let state = squall_connectors::state_rebuild::builder_from(state)
        .with_catalog_list(catalogs)
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// Applies `statement` to `ctx` (a [`planning_copy`]) as far as later
/// statements can see it, without reading or writing any data.
pub(crate) async fn apply_without_running(
    ctx: &SessionContext,
    statement: Statement,
) -> Result<()> {
    let state = ctx.state();
    let plan = state.statement_to_plan(statement).await?;
    match plan {
        LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
            // The table a CREATE TABLE ... AS would make, with no rows; its
            // schema is the optimized input's, as when it runs.
            let input = state.optimize(&create.input)?;
            let empty = LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema: Arc::clone(input.schema()),
            });
            let create = CreateMemoryTable {
                input: Arc::new(empty),
                ..create
            };
            ctx.execute_logical_plan(LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)))
                .await?
                .collect()
                .await?;
        }
        // Binding a prepared statement's parameters runs nothing, but
        // collecting the bound query would.
        LogicalPlan::Statement(DfStatement::Execute(_)) => {
            ctx.execute_logical_plan(plan).await?;
        }
        // Catalog changes and settings touch only the copy.
        LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) => {
            ctx.execute_logical_plan(plan).await?.collect().await?;
        }
        // Queries, COPY, INSERT, UPDATE, DELETE: planned, not run.
        plan => {
            state.create_physical_plan(&plan).await?;
        }
    }
    Ok(())
}
