//! File scans inside plan fragments: finding them and binding a task's splits.
//!
//! A stage fragment carries its file scans with one empty file group; each
//! task's worker fills that group with the task's own splits. This keeps the
//! fragment identical for every task of a stage (it is encoded once) while
//! each task reads only its own bytes.

use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::ExecutionPlan;

use crate::splits::FileSplit;

/// The file scan configuration of a plan node, if it is a file scan.
pub fn file_scan_config(node: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    node.downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<FileScanConfig>()
}

/// How a scan's files can be cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitStrategy {
    /// At row-group boundaries from the footer.
    ParquetRowGroups,
    /// At byte offsets (uncompressed line-oriented text).
    ByteRanges,
    /// Not at all.
    WholeFiles,
}

/// The split strategy for a scan.
pub fn split_strategy(config: &FileScanConfig) -> SplitStrategy {
    if config.file_compression_type.is_compressed() {
        return SplitStrategy::WholeFiles;
    }
    match config.file_source().file_type() {
        "parquet" => SplitStrategy::ParquetRowGroups,
        "csv" | "json" if !newlines_in_values(config) => SplitStrategy::ByteRanges,
        _ => SplitStrategy::WholeFiles,
    }
}

/// True when quoted CSV values may hold line breaks (then byte ranges are unsafe).
#[allow(deprecated)]
fn newlines_in_values(config: &FileScanConfig) -> bool {
    config.newlines_in_values()
}

/// The files of a scan as whole-file (or already ranged) splits, with partition values.
pub fn scan_files(config: &FileScanConfig) -> Vec<FileSplit> {
    scan_groups(config).into_iter().flatten().collect()
}

/// The files of a scan, file group by file group, each in DataFusion's order.
pub fn scan_groups(config: &FileScanConfig) -> Vec<Vec<FileSplit>> {
    config
        .file_groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|pf| {
                    let size = pf.object_meta.size;
                    let (start, end) = match &pf.range {
                        Some(r) => (r.start.max(0) as u64, r.end.max(0) as u64),
                        None => (0, size),
                    };
                    FileSplit {
                        path: pf.object_meta.location.to_string(),
                        file_size_bytes: size,
                        start,
                        end,
                        partition_values: pf
                            .partition_values
                            .iter()
                            .map(|v| (!v.is_null()).then(|| partition_value_string(v)))
                            .collect(),
                        rows: None,
                    }
                })
                .collect()
        })
        .collect()
}

fn partition_value_string(v: &ScalarValue) -> String {
    match v {
        ScalarValue::Dictionary(_, inner) => partition_value_string(inner),
        other => other.to_string(),
    }
}

/// The same scan node reading exactly `splits`, as one file group.
pub fn bind_scan_splits(
    node: &Arc<dyn ExecutionPlan>,
    splits: &[FileSplit],
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let exec = node
        .downcast_ref::<DataSourceExec>()
        .ok_or_else(|| DataFusionError::Internal("not a DataSourceExec".into()))?;
    let config = file_scan_config(node)
        .ok_or_else(|| DataFusionError::Internal("not a file scan".into()))?;
    let partition_cols = config.table_partition_cols().clone();
    let files = splits
        .iter()
        .map(|s| {
            let mut pf = if s.is_whole_file() {
                PartitionedFile::new(s.path.clone(), s.file_size_bytes)
            } else {
                PartitionedFile::new_with_range(
                    s.path.clone(),
                    s.file_size_bytes,
                    s.start as i64,
                    s.end as i64,
                )
            };
            if !partition_cols.is_empty() {
                let values = partition_cols
                    .iter()
                    .enumerate()
                    .map(
                        |(i, field)| match s.partition_values.get(i).cloned().flatten() {
                            Some(v) => ScalarValue::try_from_string(v, field.data_type()),
                            None => ScalarValue::try_from(field.data_type()),
                        },
                    )
                    .collect::<DFResult<Vec<_>>>()?;
                pf = pf.with_partition_values(values);
            }
            Ok(pf)
        })
        .collect::<DFResult<Vec<_>>>()?;
    let new_config = FileScanConfigBuilder::from(config.clone())
        .with_file_groups(vec![FileGroup::new(files)])
        .build();
    let new_exec = exec.clone().with_data_source(Arc::new(new_config));
    Ok(Arc::new(new_exec))
}
