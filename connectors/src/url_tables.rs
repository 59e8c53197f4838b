//! File and URL tables: `SELECT * FROM 'data/x.parquet'` or
//! `FROM 's3://bucket/logs/*.csv.gz'` reads the location as a table without
//! registering it first, as datafusion-cli and DuckDB allow.
//!
//! The location is read exactly as `--table NAME=LOCATION` would read it
//! ([`crate::table::listing_table`]: format and compression from the names,
//! partitions from `key=value/` folders). A name that is not a location —
//! no URL scheme, no glob, and no such local file or directory — is left
//! unresolved, so a misspelt table still fails as "table not found".

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use datafusion::catalog::{DynamicFileCatalog, TableProvider, UrlTableFactory};
use datafusion::execution::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;

use crate::table::{CsvOptions, listing_table};

/// The session's current state, while the session lives.
type StateSource = Box<dyn Fn() -> Option<SessionState> + Send + Sync>;

/// Resolves table names that are locations into listing tables.
#[derive(Default)]
pub struct UrlTables {
    state: OnceLock<StateSource>,
}

impl std::fmt::Debug for UrlTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlTables")
    }
}

/// `ctx` with file and URL tables enabled.
pub fn enable_url_tables(ctx: SessionContext) -> SessionContext {
    let factory = Arc::new(UrlTables::default());
    let state = ctx.state();
    let catalogs = Arc::new(DynamicFileCatalog::new(
        Arc::clone(state.catalog_list()),
        Arc::clone(&factory) as Arc<dyn UrlTableFactory>,
    ));
    let ctx: SessionContext = SessionStateBuilder::new_from_existing(state)
        .with_catalog_list(catalogs)
        .build()
        .into();
    let weak = ctx.state_weak_ref();
    let _ = factory
        .state
        .set(Box::new(move || weak.upgrade().map(|s| s.read().clone())));
    ctx
}

/// Whether `name` is meant as a location rather than a table name: a URL,
/// a glob, a path, or a file name with a known extension (which then must
/// exist: `FROM 'typo.parquet'` says "no such file").
pub fn looks_like_location(name: &str) -> bool {
    name.contains("://")
        || name.contains(['*', '?', '/'])
        || crate::table::TableFormat::from_file_name(name).is_some()
        || std::path::Path::new(name).exists()
}

#[async_trait]
impl UrlTableFactory for UrlTables {
    async fn try_new(
        &self,
        url: &str,
    ) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        if !looks_like_location(url) {
            return Ok(None);
        }
        let Some(state) = self.state.get().and_then(|source| source()) else {
            return Ok(None);
        };
        listing_table(&state, url, url, None, &CsvOptions::default())
            .await
            .map(Some)
            .map_err(|e| datafusion::error::DataFusionError::Plan(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sql`'s result as DataFusion prints it.
    async fn table_text(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn a_file_name_reads_as_a_table_and_a_misspelt_name_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scores.csv");
        std::fs::write(&path, "team,points\nred,3\nblue,5\n").unwrap();
        let ctx = enable_url_tables(SessionContext::new());
        let text = table_text(
            &ctx,
            &format!("SELECT sum(points) AS s FROM '{}'", path.display()),
        )
        .await;
        assert!(text.contains("| 8 |"), "{text}");
        let err = ctx.sql("SELECT * FROM scorez").await.unwrap_err();
        assert!(err.to_string().contains("scorez"), "{err}");
        let missing = dir.path().join("gone.parquet");
        let err = ctx
            .sql(&format!("SELECT * FROM '{}'", missing.display()))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("no such file or directory"),
            "{err}"
        );
        assert!(looks_like_location("s3://lake/x/*.parquet"));
        assert!(!looks_like_location("orders"));
        // A glob of files.
        std::fs::write(dir.path().join("more.csv"), "team,points\ngreen,1\n").unwrap();
        let sql = format!("SELECT count(*) AS n FROM '{}/*.csv'", dir.path().display());
        let text = table_text(&ctx, &sql).await;
        assert!(text.contains("| 3 |"), "{text}");
    }
}
