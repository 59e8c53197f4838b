//! A Delta snapshot as a DataFusion table: its active files, scanned as
//! Parquet with their partition values.
//!
//! The scan is an ordinary `DataSourceExec` over a `ParquetSource`, the
//! same node a Parquet listing table plans, so the planner cuts it into
//! splits and workers read it without knowing it came from Delta. Files
//! whose partition values fail the query's filters are left out here
//! (Delta stores partition values in the log, not only in paths), and so
//! are files whose logged statistics rule out every row
//! ([`crate::delta_file_stats`]); the filters also reach the Parquet
//! reader, which skips row groups by their footers' statistics.
//!
//! Refused, because reading the files alone would return wrong rows:
//! tables with column mapping (physical column names differ from the
//! logical ones) and files with deletion vectors (rows deleted without
//! rewriting the file).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, DFSchema, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::DataFusionError;
use datafusion::error::Result as DFResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use deltalake::kernel::LogicalFileView;
use futures::TryStreamExt;
use object_store::path::{Path, PathPart};
use squall_connectors::Location;

use crate::delta_file_stats::{LoggedFileStatistics, LoggedStats};
use crate::delta_location::DeltaLocation;
use crate::delta_open::{log_error, open_snapshot};
use crate::delta_schema::arrow_schema;
use crate::error::{DeltaError, Result};

/// One active data file of the snapshot.
#[derive(Debug, Clone)]
struct DeltaFile {
    /// The object's path in the table's store.
    path: Path,
    size_bytes: u64,
    /// Typed, in the table's partition-column order.
    partition_values: Vec<ScalarValue>,
    /// From the file's statistics in the log, when it has them.
    rows: Option<u64>,
    /// The file's logged statistics, for skipping it.
    stats: Option<LoggedStats>,
}

/// A Delta table as of one version: what [`delta_table`] opens.
#[derive(Debug)]
pub struct DeltaSnapshotTable {
    location: DeltaLocation,
    version: u64,
    /// The columns in the table's own order.
    table_schema: SchemaRef,
    /// The columns stored in the files (all but the partition columns).
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    /// For each table column, its index in the scan's columns (the file
    /// columns, then the partition columns).
    scan_index_of_column: Vec<usize>,
    files: Vec<DeltaFile>,
    store_url: ObjectStoreUrl,
}

/// Opens the snapshot `location` names and lists its active files; the
/// table's store is registered with `runtime` for the coordinator's own
/// reads.
pub async fn delta_table(
    runtime: &RuntimeEnv,
    location: &DeltaLocation,
) -> Result<DeltaSnapshotTable> {
    squall_connectors::store::register_object_store(runtime, &location.root)?;
    let table = open_snapshot(location).await?;
    let snapshot = table.snapshot().map_err(|e| log_error(location, e))?;
    let unsupported = |reason: String| DeltaError::Unsupported {
        url: location.root.to_string(),
        reason,
    };
    let metadata = snapshot.metadata();
    if let Some(mode) = metadata.configuration().get("delta.columnMapping.mode")
        && !mode.eq_ignore_ascii_case("none")
    {
        return Err(unsupported(format!(
            "it uses column mapping (mode '{mode}'), which Squall cannot read yet"
        )));
    }
    let table_schema = arrow_schema(snapshot.schema().as_ref()).map_err(|reason| {
        unsupported(format!(
            "its columns have a type Squall cannot read: {reason}"
        ))
    })?;
    let partition_names = metadata.partition_columns().to_vec();
    let partition_fields: Vec<FieldRef> = partition_names
        .iter()
        .map(|name| {
            table_schema
                .field_with_name(name)
                .map(|f| Arc::new(f.clone()))
                .map_err(|_| unsupported(format!("partition column '{name}' is not a column")))
        })
        .collect::<Result<_>>()?;
    let file_fields: Vec<Field> = table_schema
        .fields()
        .iter()
        .filter(|f| !partition_names.contains(f.name()))
        .map(|f| f.as_ref().clone())
        .collect();
    let file_schema = Arc::new(Schema::new(file_fields));
    let scan_index_of_column = table_schema
        .fields()
        .iter()
        .map(
            |f| match partition_names.iter().position(|p| p == f.name()) {
                Some(p) => file_schema.fields().len() + p,
                None => file_schema.index_of(f.name()).expect("a file column"),
            },
        )
        .collect();

    let views: Vec<_> = table
        .get_active_add_actions_by_predicate(None)
        .try_collect()
        .await
        .map_err(|e| log_error(location, e))?;
    let root_path = location.root.path();
    let mut files = Vec::with_capacity(views.len());
    for view in views {
        if view.deletion_vector_descriptor().is_some() {
            return Err(unsupported(format!(
                "file {} has a deletion vector (rows deleted in place), which Squall cannot apply yet",
                view.path()
            )));
        }
        let path = file_path(&location.root, &root_path, &view)?;
        let raw_values = view.partition_values_map();
        let partition_values = partition_fields
            .iter()
            .map(
                |field| match raw_values.get(field.name()).cloned().flatten() {
                    // Delta writers log a null partition value as null or "".
                    Some(text) if !text.is_empty() => {
                        ScalarValue::try_from_string(text, field.data_type())
                    }
                    _ => ScalarValue::try_from(field.data_type()),
                },
            )
            .collect::<DFResult<Vec<_>>>()
            .map_err(|e| {
                unsupported(format!(
                    "file {} has a partition value that does not read as its column's type: {e}",
                    view.path()
                ))
            })?;
        let stats = view.stats().and_then(|json| LoggedStats::parse(&json));
        files.push(DeltaFile {
            path,
            size_bytes: view.size().max(0) as u64,
            partition_values,
            rows: view
                .num_records()
                .map(|n| n as u64)
                .or_else(|| stats.as_ref().and_then(|s| s.rows)),
            stats,
        });
    }
    Ok(DeltaSnapshotTable {
        location: location.clone(),
        version: snapshot.version(),
        table_schema: Arc::new(table_schema),
        file_schema,
        partition_fields,
        scan_index_of_column,
        files,
        store_url: location.root.store_url(),
    })
}

/// The store path of a data file the log names (relative to the table's
/// root, as writers put it, or an absolute URL in the same store).
fn file_path(root: &Location, root_path: &Path, view: &LogicalFileView) -> Result<Path> {
    let logged = view.path();
    if logged.contains("://") {
        let url = Location::parse(&logged)?;
        if url.store_url() != root.store_url() {
            return Err(DeltaError::Unsupported {
                url: root.to_string(),
                reason: format!("data file {logged} is in another store than the table"),
            });
        }
        return Ok(url.path());
    }
    // The key below the root as delta-rs resolves it (the log's path
    // decoded once, in object_store's encoding), so that Squall reads the
    // files every delta-rs reader reads.
    Ok(Path::from_iter(
        root_path
            .parts()
            .chain(view.object_store_path().parts())
            .map(|part| part.as_ref().to_string())
            .map(PathPart::from),
    ))
}

impl DeltaSnapshotTable {
    /// The version this snapshot is.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The table's active data files.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Where the table is.
    pub fn location(&self) -> &DeltaLocation {
        &self.location
    }

    /// For each file, whether its partition values pass every one of
    /// `filters` (filters on partition columns only). A filter that is
    /// null for a file's values (`region <> 'west'` for a null region)
    /// does not pass, as in a WHERE clause.
    fn files_matching(&self, state: &dyn Session, filters: &[Expr]) -> DFResult<Vec<bool>> {
        let Some(filter) = conjunction(filters.iter().cloned()) else {
            return Ok(vec![true; self.files.len()]);
        };
        if self.files.is_empty() {
            return Ok(Vec::new());
        }
        let schema = Arc::new(Schema::new(self.partition_fields.clone()));
        let columns = (0..self.partition_fields.len())
            .map(|i| {
                ScalarValue::iter_to_array(self.files.iter().map(|f| f.partition_values[i].clone()))
            })
            .collect::<DFResult<Vec<_>>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
        let df_schema = DFSchema::try_from(schema)?;
        let predicate = state.create_physical_expr(filter, &df_schema)?;
        let result = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
        let passed = result.as_boolean_opt().ok_or_else(|| {
            DataFusionError::Internal("a partition filter is not a boolean".into())
        })?;
        Ok((0..passed.len())
            .map(|i| passed.is_valid(i) && passed.value(i))
            .collect())
    }

    /// For each file, whether its logged statistics allow a row that
    /// passes `filters` (those on data columns only); all true when they
    /// say nothing.
    fn files_by_statistics(&self, state: &dyn Session, filters: &[Expr]) -> Vec<bool> {
        let all = vec![true; self.files.len()];
        let columns: Vec<&str> = self
            .file_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let on_data = filters
            .iter()
            .filter(|f| expr_applicable_for_cols(&columns, f))
            .cloned();
        let Some(filter) = conjunction(on_data) else {
            return all;
        };
        let Ok(df_schema) = DFSchema::try_from(Arc::clone(&self.file_schema)) else {
            return all;
        };
        let Ok(expr) = state.create_physical_expr(filter, &df_schema) else {
            return all;
        };
        // `None`: the filter says nothing about the files' bounds.
        let Some(predicate) = PruningPredicateBuilder::new()
            .with_file_schema(Arc::clone(&self.file_schema))
            .build(expr)
        else {
            return all;
        };
        let statistics = LoggedFileStatistics {
            files: self.files.iter().map(|f| f.stats.as_ref()).collect(),
            schema: Arc::clone(&self.file_schema),
        };
        predicate.prune(&statistics).unwrap_or(all)
    }

    fn partition_names(&self) -> Vec<&str> {
        self.partition_fields
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    }
}

#[async_trait]
impl TableProvider for DeltaSnapshotTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.table_schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        let partitions = self.partition_names();
        Ok(filters
            .iter()
            .map(|f| {
                if !partitions.is_empty() && expr_applicable_for_cols(&partitions, f) {
                    // Decided per file from its partition values.
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let partitions = self.partition_names();
        let partition_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| !partitions.is_empty() && expr_applicable_for_cols(&partitions, f))
            .cloned()
            .collect();
        let mut keep = self.files_matching(state, &partition_filters)?;
        for (keep, may_match) in keep
            .iter_mut()
            .zip(self.files_by_statistics(state, filters))
        {
            *keep &= may_match;
        }
        let mut files = Vec::with_capacity(self.files.len());
        let mut rows = Some(0u64);
        let mut bytes = 0u64;
        for (file, _) in self.files.iter().zip(&keep).filter(|(_, keep)| **keep) {
            rows = rows.zip(file.rows).map(|(a, b)| a + b);
            bytes += file.size_bytes;
            files.push(
                PartitionedFile::new(file.path.to_string(), file.size_bytes)
                    .with_partition_values(file.partition_values.clone()),
            );
        }
        let column_indices: Vec<usize> = match projection {
            Some(p) => p.iter().map(|i| self.scan_index_of_column[*i]).collect(),
            None => self.scan_index_of_column.clone(),
        };
        if files.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.table_schema.project(p)?),
                None => Arc::clone(&self.table_schema),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        let group_count = state.config().target_partitions().clamp(1, files.len());
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); group_count];
        for (i, file) in files.into_iter().enumerate() {
            groups[i % group_count].push(file);
        }
        let scan_columns = self.file_schema.fields().len() + self.partition_fields.len();
        let statistics = Statistics {
            num_rows: rows.map_or(Precision::Absent, |r| Precision::Exact(r as usize)),
            total_byte_size: Precision::Inexact(bytes as usize),
            column_statistics: vec![ColumnStatistics::new_unknown(); scan_columns],
        };
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let source = format.file_source(
            TableSchema::builder(Arc::clone(&self.file_schema))
                .with_table_partition_cols(self.partition_fields.clone())
                .build(),
        );
        let config = FileScanConfigBuilder::new(self.store_url.clone(), source)
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_statistics(statistics)
            .with_projection_indices(Some(column_indices))?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}
