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
use datafusion::prelude::SessionContext;

use crate::store::Location;
use crate::table::{CsvOptions, listing_table};

/// The session's current state, while the session lives.
type StateSource = Box<dyn Fn() -> Option<SessionState> + Send + Sync>;

/// Resolves table names that are locations into listing tables.
#[derive(Default)]
pub struct UrlTables {
    state: OnceLock<StateSource>,
    /// Only locations below this one may be read (`None`: any).
    root: Option<Location>,
}

impl std::fmt::Debug for UrlTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlTables")
    }
}

/// `ctx` with file and URL tables enabled.
pub fn enable_url_tables(ctx: SessionContext) -> SessionContext {
    enable_url_tables_under(ctx, None)
}

/// `ctx` with file and URL tables enabled below `root` only (anywhere when
/// `None`); a location elsewhere is an error that names the root.
pub fn enable_url_tables_under(ctx: SessionContext, root: Option<Location>) -> SessionContext {
    let factory = Arc::new(UrlTables {
        state: OnceLock::new(),
        root,
    });
    let state = ctx.state();
    let catalogs = Arc::new(DynamicFileCatalog::new(
        Arc::clone(state.catalog_list()),
        Arc::clone(&factory) as Arc<dyn UrlTableFactory>,
    ));
    let ctx: SessionContext = crate::state_rebuild::builder_from(state)
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
        if let Some(root) = &self.root {
            // `..` could climb out of the root: a location using it is
            // refused rather than resolved.
            let inside = Location::parse(url).is_ok_and(|loc| {
                !loc.url().path().split('/').any(|segment| segment == "..")
                    && loc.url().scheme() == root.url().scheme()
                    && loc.url().host_str() == root.url().host_str()
                    && (loc.url().path().starts_with(root.url().path())
                        || format!("{}/", loc.url().path()) == root.url().path())
            });
            if !inside {
                return Err(datafusion::error::DataFusionError::Plan(format!(
                    "'{url}' is outside {root}: this session reads files by name only below it (declare other tables instead)"
                )));
            }
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

    #[tokio::test]
    async fn below_a_root_only_its_files_read_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("in");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::write(inside.join("a.csv"), "x\n1\n").unwrap();
        std::fs::write(dir.path().join("b.csv"), "x\n2\n").unwrap();
        let root = Location::parse(&inside.display().to_string())
            .unwrap()
            .as_prefix();
        let ctx = enable_url_tables_under(SessionContext::new(), Some(root));
        let text = table_text(&ctx, &format!("SELECT x FROM '{}/a.csv'", inside.display())).await;
        assert!(text.contains("| 1 |"), "{text}");
        for outside in [
            dir.path().join("b.csv").display().to_string(),
            format!("{}/../b.csv", inside.display()),
            format!("{}x/a.csv", inside.display()),
        ] {
            match ctx.sql(&format!("SELECT x FROM '{outside}'")).await {
                Err(err) => assert!(err.to_string().contains("is outside"), "{outside}: {err}"),
                Ok(_) => panic!("{outside} was read"),
            }
        }
    }
}
