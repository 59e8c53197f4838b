//! Input splits: the unit of input a scan task reads.
//!
//! A split is a byte range of one file. Parquet files are cut only at row-group
//! boundaries read from their footers, so a split holds whole row groups;
//! DataFusion's Parquet reader keeps exactly the row groups whose first page
//! starts inside the range, so contiguous ranges that cover the file read every
//! row group exactly once. CSV and NDJSON files are cut at byte offsets; their
//! readers skip to the next line break, which DataFusion already handles.
//! Compressed text files cannot be cut and are read whole.

use std::sync::Arc;

#[allow(deprecated)]
use datafusion::parquet::arrow::async_reader::{AsyncFileReader, ParquetObjectReader};
use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::error::{ConnectorError, Result};

/// One byte range of one file, read by exactly one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSplit {
    /// Object path inside the table's store.
    pub path: String,
    /// Size of the whole file.
    pub file_size_bytes: u64,
    /// First byte of the range.
    pub start: u64,
    /// One past the last byte of the range.
    pub end: u64,
    /// Hive partition values of the file, in the table's partition-column order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_values: Vec<Option<String>>,
    /// Rows in the range, when a footer told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

impl FileSplit {
    /// A split covering a whole file.
    pub fn whole_file(path: impl Into<String>, file_size_bytes: u64) -> Self {
        Self {
            path: path.into(),
            file_size_bytes,
            start: 0,
            end: file_size_bytes,
            partition_values: vec![],
            rows: None,
        }
    }

    /// Bytes in the range.
    pub fn len_bytes(&self) -> u64 {
        self.end - self.start
    }

    /// True when the split is the whole file (readers then skip range handling).
    pub fn is_whole_file(&self) -> bool {
        self.start == 0 && self.end == self.file_size_bytes
    }
}

/// Cuts a Parquet file into splits of whole row groups, about `target_bytes` each.
pub async fn parquet_splits(
    store: Arc<dyn ObjectStore>,
    path: &Path,
    file_size_bytes: u64,
    target_bytes: u64,
    url_for_errors: &str,
) -> Result<Vec<FileSplit>> {
    // The reader DataFusion 55 itself uses for footers; its replacement is not in parquet 59 yet.
    #[allow(deprecated)]
    let mut reader = ParquetObjectReader::new(store, path.clone()).with_file_size(file_size_bytes);
    let metadata = reader
        .get_metadata(None)
        .await
        .map_err(|e| ConnectorError::File {
            url: url_for_errors.to_string(),
            reason: format!("not a valid Parquet file: {e}"),
        })?;
    let mut starts_rows = Vec::with_capacity(metadata.num_row_groups());
    for rg in metadata.row_groups() {
        if rg.num_columns() == 0 {
            continue;
        }
        let col = rg.column(0);
        let start = col
            .dictionary_page_offset()
            .unwrap_or_else(|| col.data_page_offset());
        starts_rows.push((
            start.max(0) as u64,
            rg.compressed_size().max(0) as u64,
            rg.num_rows().max(0) as u64,
        ));
    }
    Ok(group_row_groups(
        path.as_ref(),
        file_size_bytes,
        &starts_rows,
        target_bytes,
    ))
}

/// Groups row groups `(start offset, compressed bytes, rows)` into contiguous
/// ranges covering `[0, file_size)`, each closed once it holds `target_bytes`.
fn group_row_groups(
    path: &str,
    file_size_bytes: u64,
    row_groups: &[(u64, u64, u64)],
    target_bytes: u64,
) -> Vec<FileSplit> {
    if row_groups.is_empty() {
        return vec![FileSplit {
            rows: Some(0),
            ..FileSplit::whole_file(path, file_size_bytes)
        }];
    }
    let target_bytes = target_bytes.max(1);
    let mut splits = Vec::new();
    let mut range_start = 0u64;
    let mut acc_bytes = 0u64;
    let mut acc_rows = 0u64;
    for (i, (_, bytes, rows)) in row_groups.iter().enumerate() {
        acc_bytes += bytes;
        acc_rows += rows;
        let is_last = i + 1 == row_groups.len();
        if acc_bytes >= target_bytes || is_last {
            let end = if is_last {
                file_size_bytes
            } else {
                row_groups[i + 1].0
            };
            splits.push(FileSplit {
                path: path.to_string(),
                file_size_bytes,
                start: range_start,
                end,
                partition_values: vec![],
                rows: Some(acc_rows),
            });
            range_start = end;
            acc_bytes = 0;
            acc_rows = 0;
        }
    }
    splits
}

/// Cuts a line-oriented text file (CSV, NDJSON) into byte ranges of `target_bytes`.
pub fn byte_range_splits(path: &str, file_size_bytes: u64, target_bytes: u64) -> Vec<FileSplit> {
    let target_bytes = target_bytes.max(1);
    if file_size_bytes <= target_bytes {
        return vec![FileSplit::whole_file(path, file_size_bytes)];
    }
    let mut splits = Vec::new();
    let mut start = 0;
    while start < file_size_bytes {
        let end = (start + target_bytes).min(file_size_bytes);
        splits.push(FileSplit {
            path: path.to_string(),
            file_size_bytes,
            start,
            end,
            partition_values: vec![],
            rows: None,
        });
        start = end;
    }
    splits
}

/// Spreads splits over `task_count` tasks in file order: task 0 reads the
/// first run of splits, task 1 the next, and so on, each run about
/// `1/task_count` of the bytes. So tasks in task order read the files in
/// order, and a query without ORDER BY returns rows in file order, the same
/// every time (as DuckDB keeps insertion order).
pub fn assign_splits(mut splits: Vec<FileSplit>, task_count: usize) -> Vec<Vec<FileSplit>> {
    splits.sort_by(|a, b| a.path.cmp(&b.path).then_with(|| a.start.cmp(&b.start)));
    assign_runs(&splits, task_count)
}

/// Cuts `splits`, in the order given, into `task_count` contiguous runs of
/// about equal bytes (later tasks are never left empty while a run could
/// give them a split).
pub fn assign_runs(splits: &[FileSplit], task_count: usize) -> Vec<Vec<FileSplit>> {
    let task_count = task_count.max(1);
    let mut tasks: Vec<Vec<FileSplit>> = vec![Vec::new(); task_count];
    let total: u128 = splits
        .iter()
        .map(|s| u128::from(s.len_bytes().max(1)))
        .sum();
    let count = splits.len();
    let mut before = 0u128;
    let mut task = 0usize;
    for (i, split) in splits.iter().enumerate() {
        let len = u128::from(split.len_bytes().max(1));
        // The task whose share of the bytes holds this split's middle…
        let by_bytes = ((before + len / 2) * task_count as u128 / total.max(1)) as usize;
        // …but never so far behind that later tasks would be left empty.
        let left = count - i;
        let at_least = task_count.saturating_sub(left);
        task = task.max(by_bytes).max(at_least).min(task_count - 1);
        before += len;
        tasks[task].push(split.clone());
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_group_ranges_cover_the_file_contiguously() {
        let rgs = [(4, 100, 10), (104, 100, 10), (204, 100, 10), (304, 50, 5)];
        let splits = group_row_groups("f", 400, &rgs, 150);
        let ranges: Vec<_> = splits.iter().map(|s| (s.start, s.end, s.rows)).collect();
        assert_eq!(ranges, vec![(0, 204, Some(20)), (204, 400, Some(15))]);
    }

    #[test]
    fn one_split_per_row_group_when_target_is_small() {
        let rgs = [(4, 100, 10), (104, 100, 10)];
        let splits = group_row_groups("f", 250, &rgs, 1);
        assert_eq!(splits.len(), 2);
        assert_eq!(splits[0].end, splits[1].start);
        assert_eq!(splits[1].end, 250);
    }

    #[test]
    fn byte_ranges_cover_the_file() {
        let splits = byte_range_splits("f.csv", 1000, 300);
        assert_eq!(splits.len(), 4);
        assert_eq!(splits.iter().map(FileSplit::len_bytes).sum::<u64>(), 1000);
        assert!(splits.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn assignment_balances_and_keeps_every_split() {
        let splits: Vec<_> = (0..10)
            .map(|i| FileSplit::whole_file(format!("f{i}"), 100 + i))
            .collect();
        let tasks = assign_splits(splits, 3);
        assert_eq!(tasks.len(), 3);
        assert_eq!(tasks.iter().map(Vec::len).sum::<usize>(), 10);
        // Task order is file order.
        let order: Vec<&str> = tasks.iter().flatten().map(|s| s.path.as_str()).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted);
        assert!(tasks.iter().all(|t| !t.is_empty()), "{tasks:?}");
        let loads: Vec<u64> = tasks
            .iter()
            .map(|t| t.iter().map(FileSplit::len_bytes).sum())
            .collect();
        // Contiguous runs: no task above its share by more than one split.
        let total: u64 = loads.iter().sum();
        assert!(loads.iter().all(|l| *l <= total / 3 + 109), "{loads:?}");
    }
}
