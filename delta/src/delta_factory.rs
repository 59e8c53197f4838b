//! `CREATE EXTERNAL TABLE name STORED AS DELTA LOCATION 'url'
//! [OPTIONS ('version' '3' | 'timestamp' '2026-12-01T10:00:00Z')]`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::CreateExternalTable;

use crate::delta_location::{DeltaLocation, TimeTravel};
use crate::delta_table::delta_table;

/// The `STORED AS` name this factory is registered under.
pub const DELTA_FORMAT_NAME: &str = "DELTA";

/// Makes Delta tables for `CREATE EXTERNAL TABLE ... STORED AS DELTA`.
#[derive(Debug, Default)]
pub struct DeltaTableFactory;

impl DeltaTableFactory {
    /// The `STORED AS` name to register it under.
    pub const FORMAT: &'static str = DELTA_FORMAT_NAME;
}

#[async_trait]
impl TableProviderFactory for DeltaTableFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> DFResult<Arc<dyn TableProvider>> {
        let refuse =
            |reason: String| DataFusionError::Plan(format!("table '{}': {reason}", cmd.name));
        if !cmd.schema.fields().is_empty() {
            return Err(refuse(
                "a Delta table's columns come from its log: declare none".into(),
            ));
        }
        if !cmd.table_partition_cols.is_empty() {
            return Err(refuse(
                "a Delta table's partition columns come from its log: leave out PARTITIONED BY"
                    .into(),
            ));
        }
        let mut time_travel = None;
        for (key, value) in &cmd.options {
            let key = key.trim_start_matches("format.").to_ascii_lowercase();
            let parsed = match key.as_str() {
                "version" => TimeTravel::parse_version(value),
                "timestamp" => TimeTravel::parse_timestamp(value),
                other => {
                    return Err(refuse(format!(
                        "unknown Delta option '{other}' (expected 'version' or 'timestamp')"
                    )));
                }
            };
            if time_travel.is_some() {
                return Err(refuse("give 'version' or 'timestamp', not both".into()));
            }
            time_travel = Some(parsed.map_err(refuse)?);
        }
        let [location] = cmd.locations.as_slice() else {
            return Err(refuse(
                "a Delta table has one LOCATION: its root folder".into(),
            ));
        };
        let location = DeltaLocation::new(location)
            .map_err(|e| refuse(e.to_string()))?
            .at(time_travel);
        let table = delta_table(state.runtime_env(), &location)
            .await
            .map_err(|e| refuse(e.to_string()))?;
        Ok(Arc::new(table))
    }
}
