//! Null partition values in hive-style folders: `k=__HIVE_DEFAULT_PARTITION__/`.
//!
//! Hive, Spark, Trino, DuckDB and delta-rs name the folder of a null
//! partition value `k=__HIVE_DEFAULT_PARTITION__` and read it back as null.
//! DataFusion has no such value: its listing reads the folder name as the
//! text `__HIVE_DEFAULT_PARTITION__`, and its writer names a null number's
//! folder `k=0` (a silent wrong answer). Squall follows the convention both
//! ways: the planner writes nulls under this name
//! (`squall_planner::null_partition_folders`), and [`with_null_partitions`]
//! wraps a listing table so that the folder reads as null.
//!
//! The wrapper keeps DataFusion's partition pruning: a filter on a partition
//! column reaches the listing relaxed to also keep the null folders
//! (`filter OR k = '__HIVE_DEFAULT_PARTITION__'`), and is applied again,
//! exactly, above the scan once the folder name has become null. Only text
//! partition columns are wrapped (the types Squall and DataFusion infer); a
//! column declared with another type fails to parse the folder name, loudly.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider, TableProviderFactory};
use datafusion::common::{Column, Constraints, DFSchema, ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::ListingTable;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::{CreateExternalTable, Expr, TableProviderFilterPushDown, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;

/// The folder name of a null partition value (Hive's convention).
pub const HIVE_NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// `table` reading `k=__HIVE_DEFAULT_PARTITION__/` folders as null when it
/// is a listing table with text partition columns; any other table as it is.
pub fn with_null_partitions(table: Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
    let Some(listing) = table.downcast_ref::<ListingTable>() else {
        return table;
    };
    let text_columns: HashSet<String> = listing
        .options()
        .table_partition_cols
        .iter()
        .filter(|(name, _)| {
            listing
                .schema()
                .field_with_name(name)
                .is_ok_and(|f| is_text(f.data_type()))
        })
        .map(|(name, _)| name.clone())
        .collect();
    if text_columns.is_empty() {
        return table;
    }
    let inner = table.schema();
    let schema = Arc::new(Schema::new_with_metadata(
        inner
            .fields()
            .iter()
            .map(|f| {
                if text_columns.contains(f.name()) {
                    Arc::new(Field::clone(f).with_nullable(true))
                } else {
                    Arc::clone(f)
                }
            })
            .collect::<Vec<_>>(),
        inner.metadata().clone(),
    ));
    Arc::new(NullPartitionsTable {
        inner: table,
        schema,
        text_columns,
    })
}

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_text(values),
        _ => false,
    }
}

/// A listing table whose null partition folders read as null (see the
/// module docs).
#[derive(Debug)]
pub struct NullPartitionsTable {
    inner: Arc<dyn TableProvider>,
    /// The inner schema with the wrapped partition columns nullable.
    schema: SchemaRef,
    /// The partition columns read through `NULLIF`.
    text_columns: HashSet<String>,
}

impl NullPartitionsTable {
    /// The listing table underneath.
    pub fn listing(&self) -> &ListingTable {
        self.inner
            .downcast_ref::<ListingTable>()
            .expect("only listing tables are wrapped")
    }

    fn partition_columns_of(&self, filter: &Expr) -> Vec<String> {
        let mut names: Vec<String> = filter
            .column_refs()
            .into_iter()
            .filter(|c| self.text_columns.contains(&c.name))
            .map(|c| c.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// `filter`, also true for rows of a null folder of any partition
    /// column it reads: what the listing may prune with.
    fn relaxed(&self, filter: &Expr) -> DFResult<Expr> {
        let mut relaxed = filter.clone();
        for name in self.partition_columns_of(filter) {
            let data_type = self.schema.field_with_name(&name)?.data_type();
            let null_folder =
                ScalarValue::Utf8(Some(HIVE_NULL_PARTITION.into())).cast_to(data_type)?;
            relaxed = relaxed.or(Expr::Column(Column::from_name(name)).eq(lit(null_folder)));
        }
        Ok(relaxed)
    }

    /// `plan` (a scan of the inner table) with its wrapped partition
    /// columns read through `NULLIF(k, '__HIVE_DEFAULT_PARTITION__')`.
    fn read_nulls(
        &self,
        state: &dyn Session,
        plan: Arc<dyn ExecutionPlan>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let schema = plan.schema();
        if !schema
            .fields()
            .iter()
            .any(|f| self.text_columns.contains(f.name()))
        {
            return Ok(plan);
        }
        let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
        let exprs = schema
            .fields()
            .iter()
            .map(|f| {
                let column = Expr::Column(Column::from_name(f.name()));
                let expr = if self.text_columns.contains(f.name()) {
                    let text = Expr::Cast(Cast::new(Box::new(column), DataType::Utf8));
                    let nulled =
                        datafusion::functions::expr_fn::nullif(text, lit(HIVE_NULL_PARTITION));
                    Expr::Cast(Cast::new(Box::new(nulled), f.data_type().clone()))
                } else {
                    column
                };
                Ok((
                    state.create_physical_expr(expr, &df_schema)?,
                    f.name().clone(),
                ))
            })
            .collect::<DFResult<Vec<_>>>()?;
        Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
    }
}

#[async_trait]
impl TableProvider for NullPartitionsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.inner.get_column_default(column)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let args = ScanArgs::default()
            .with_projection(projection.map(|p| p.as_slice()))
            .with_filters(Some(filters))
            .with_limit(limit);
        Ok(self.scan_with_args(state, args).await?.into_inner())
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> DFResult<ScanResult> {
        let relaxed = args
            .filters()
            .unwrap_or(&[])
            .iter()
            .map(|f| self.relaxed(f))
            .collect::<DFResult<Vec<_>>>()?;
        let inner_args = args.clone().with_filters(Some(&relaxed));
        let plan = self
            .inner
            .scan_with_args(state, inner_args)
            .await?
            .into_inner();
        Ok(self.read_nulls(state, plan)?.into())
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        let inner = self.inner.supports_filters_pushdown(filters)?;
        Ok(filters
            .iter()
            .zip(inner)
            .map(|(filter, pushdown)| {
                if self.partition_columns_of(filter).is_empty() {
                    pushdown
                } else {
                    // The listing sees the relaxed filter: applied again above.
                    match pushdown {
                        TableProviderFilterPushDown::Exact => TableProviderFilterPushDown::Inexact,
                        other => other,
                    }
                }
            })
            .collect())
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        self.inner.insert_into(state, input, insert_op).await
    }
}

/// A table factory (`CREATE EXTERNAL TABLE ... STORED AS PARQUET`) whose
/// listing tables read null partition folders as null.
#[derive(Debug)]
pub struct NullPartitionsFactory(pub Arc<dyn TableProviderFactory>);

#[async_trait]
impl TableProviderFactory for NullPartitionsFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> DFResult<Arc<dyn TableProvider>> {
        Ok(with_null_partitions(self.0.create(state, cmd).await?))
    }
}
