//! File sinks on the wire, with what datafusion-proto 55 drops kept.
//!
//! datafusion-proto writes a CSV sink's unset date, time and timestamp
//! formats (and NULL text) as empty strings and reads them back as set to
//! the empty string:
//! every date and timestamp is then written as an empty value (`COPY (...)
//! TO 'x.csv'` loses its timestamps). Squall sends a `DataSinkExec` with a
//! `CsvSink` under a small node that says which formats are set, and
//! rebuilds the sink's writer options after DataFusion decodes it. It drops
//! a Parquet sink's file metadata (`OPTIONS ('format.metadata::key' ...)`)
//! too, which a node above the sink carries the same way.
//!
//! [`describe_sink`] gives the fidelity guard a sink's configuration, which
//! DataFusion's `Debug` output leaves out.

use std::sync::Arc;

use datafusion::arrow::csv::WriterBuilder;
use datafusion::common::file_options::csv_writer::CsvWriterOptions;
use datafusion::datasource::file_format::csv::CsvSink;
use datafusion::datasource::file_format::json::JsonSink;
use datafusion::datasource::file_format::parquet::ParquetSink;
use datafusion::datasource::physical_plan::FileSink;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::ExecutionPlan;

/// The CSV formats of the sink below this node; absent: unset.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CsvFormatsNode {
    #[prost(string, optional, tag = "1")]
    pub date: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub datetime: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub time: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub timestamp: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub timestamp_tz: Option<String>,
    /// The text written for NULL.
    #[prost(string, optional, tag = "6")]
    pub null: Option<String>,
}

fn csv_sink(plan: &Arc<dyn ExecutionPlan>) -> Option<&CsvSink> {
    plan.downcast_ref::<DataSinkExec>()?
        .sink()
        .downcast_ref::<CsvSink>()
}

/// The formats of `plan` if it writes CSV.
pub fn csv_formats(plan: &Arc<dyn ExecutionPlan>) -> Option<CsvFormatsNode> {
    let w = &csv_sink(plan)?.writer_options().writer_options;
    Some(CsvFormatsNode {
        date: w.date_format().map(str::to_string),
        datetime: w.datetime_format().map(str::to_string),
        time: w.time_format().map(str::to_string),
        timestamp: w.timestamp_format().map(str::to_string),
        timestamp_tz: w.timestamp_tz_format().map(str::to_string),
        null: debug_field(w, "null_value: Some(\""),
    })
}

/// A string option the builder has no getter for (`null_value`), from its
/// `Debug` text: `field` ends with the opening quote.
fn debug_field(w: &WriterBuilder, field: &str) -> Option<String> {
    let debug = format!("{w:?}");
    let (_, rest) = debug.split_once(field)?;
    let mut value = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.extend(chars.next()),
            '"' => return Some(value),
            c => value.push(c),
        }
    }
    None
}

/// The decoded CSV sink `input`, its formats set exactly as in `node`.
pub fn restore_csv_formats(
    node: &CsvFormatsNode,
    input: &Arc<dyn ExecutionPlan>,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let (exec, sink) = input
        .downcast_ref::<DataSinkExec>()
        .zip(csv_sink(input))
        .ok_or_else(|| {
            DataFusionError::Internal(format!(
                "Squall plan codec: CSV formats for a {}",
                input.name()
            ))
        })?;
    let decoded = sink.writer_options();
    let w = &decoded.writer_options;
    let mut builder = WriterBuilder::new()
        .with_header(w.header())
        .with_delimiter(w.delimiter())
        .with_quote(w.quote())
        .with_escape(w.escape())
        .with_double_quote(w.double_quote())
        .with_ignore_leading_whitespace(w.ignore_leading_whitespace())
        .with_ignore_trailing_whitespace(w.ignore_trailing_whitespace())
        .with_quote_style(w.quote_style())
        .with_line_terminator(w.line_terminator().clone());
    let formats = [
        (
            &node.date,
            WriterBuilder::with_date_format as fn(_, String) -> _,
        ),
        (&node.datetime, WriterBuilder::with_datetime_format),
        (&node.time, WriterBuilder::with_time_format),
        (&node.timestamp, WriterBuilder::with_timestamp_format),
        (&node.timestamp_tz, WriterBuilder::with_timestamp_tz_format),
        (&node.null, WriterBuilder::with_null),
    ];
    for (format, set) in formats {
        if let Some(f) = format {
            builder = set(builder, f.clone());
        }
    }
    let mut options = CsvWriterOptions::new(builder, decoded.compression);
    options.compression_level = decoded.compression_level;
    let sink = CsvSink::new(sink.config().clone(), options);
    Ok(Arc::new(DataSinkExec::new(
        Arc::clone(exec.input()),
        Arc::new(sink),
        exec.sort_order().clone(),
    )))
}

/// One entry of a Parquet file's key-value metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetadataEntry {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// The key-value metadata the Parquet sink below this node writes into every file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ParquetMetadataNode {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<MetadataEntry>,
}

fn parquet_sink(plan: &Arc<dyn ExecutionPlan>) -> Option<&ParquetSink> {
    plan.downcast_ref::<DataSinkExec>()?
        .sink()
        .downcast_ref::<ParquetSink>()
}

/// The file metadata of `plan` if it writes Parquet files with some.
pub fn parquet_metadata(plan: &Arc<dyn ExecutionPlan>) -> Option<ParquetMetadataNode> {
    let metadata = &parquet_sink(plan)?.parquet_options().key_value_metadata;
    if metadata.is_empty() {
        return None;
    }
    let mut entries: Vec<MetadataEntry> = metadata
        .iter()
        .map(|(key, value)| MetadataEntry {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    Some(ParquetMetadataNode { entries })
}

/// The decoded Parquet sink `input`, writing `node`'s file metadata.
pub fn restore_parquet_metadata(
    node: &ParquetMetadataNode,
    input: &Arc<dyn ExecutionPlan>,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let (exec, sink) = input
        .downcast_ref::<DataSinkExec>()
        .zip(parquet_sink(input))
        .ok_or_else(|| {
            DataFusionError::Internal(format!(
                "Squall plan codec: Parquet metadata for a {}",
                input.name()
            ))
        })?;
    let mut options = sink.parquet_options().clone();
    options.key_value_metadata = node
        .entries
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect();
    let sink = ParquetSink::new(sink.config().clone(), options);
    Ok(Arc::new(DataSinkExec::new(
        Arc::clone(exec.input()),
        Arc::new(sink),
        exec.sort_order().clone(),
    )))
}

/// The configuration of the sink `plan` writes to, for the fidelity guard.
pub fn describe_sink(plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    let sink = plan.downcast_ref::<DataSinkExec>()?.sink();
    if let Some(s) = sink.downcast_ref::<CsvSink>() {
        return Some(format!("{:?} {:?}", s.config(), s.writer_options()));
    }
    if let Some(s) = sink.downcast_ref::<JsonSink>() {
        return Some(format!("{:?} {:?}", s.config(), s.writer_options()));
    }
    if let Some(s) = sink.downcast_ref::<ParquetSink>() {
        return Some(format!("{:?} {:?}", s.config(), s.parquet_options()));
    }
    None
}
