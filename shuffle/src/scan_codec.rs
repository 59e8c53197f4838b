//! File scans on the wire, with what datafusion-proto 55 drops kept.
//!
//! datafusion-proto writes no compression for a file scan: a scan of
//! gzip-compressed CSV or JSON files comes back reading them as plain text,
//! which fails at best and, for a one-column CSV file, reads the compressed
//! bytes as rows. Nor does it write a CSV scan's line terminator, or that
//! a scan under an `ORDER BY ... LIMIT` must read its files in order. Squall
//! sends such a scan under a small node that names what was lost and sets it
//! again after DataFusion decodes the scan.
//!
//! It drops a Parquet scan's metadata size hint (how many bytes of a file's
//! tail to fetch for its footer, one request instead of two), which
//! DataFusion's Parquet format takes from the table's options: decoding sets
//! it from the decoded options again ([`with_options_metadata_size_hint`]).
//!
//! [`describe_scan`] gives the fidelity guard what a scan's `Debug` text
//! leaves out (compression, the file source with its options and
//! predicate, batch size, order preservation).

use std::str::FromStr;
use std::sync::Arc;

use datafusion::common::parsers::CompressionTypeVariant;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::physical_plan::{
    CsvSource, FileScanConfig, FileScanConfigBuilder, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::ExecutionPlan;

/// What datafusion-proto loses of the file scan below this node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScanPatchNode {
    /// `CompressionTypeVariant`'s name ("GZIP", "BZIP2", "XZ", "ZSTD"); absent: uncompressed.
    #[prost(string, optional, tag = "1")]
    pub compression: Option<String>,
    /// The byte that ends a CSV record; absent: CRLF or LF.
    #[prost(uint32, optional, tag = "2")]
    pub csv_terminator: Option<u32>,
    /// The scan must read its files in the order given (`FileScanConfig::preserve_order`).
    #[prost(bool, tag = "3")]
    pub preserve_order: bool,
}

fn file_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<(&DataSourceExec, &FileScanConfig)> {
    let exec = plan.downcast_ref::<DataSourceExec>()?;
    let config = exec.data_source().downcast_ref::<FileScanConfig>()?;
    Some((exec, config))
}

/// What `plan` needs restored after decoding, if it is a file scan that
/// datafusion-proto does not encode whole.
pub fn scan_patch(plan: &Arc<dyn ExecutionPlan>) -> Option<ScanPatchNode> {
    let (_, config) = file_scan(plan)?;
    let compression = config
        .file_compression_type
        .is_compressed()
        .then(|| config.file_compression_type.get_variant().to_string());
    let csv_terminator = config
        .file_source()
        .downcast_ref::<CsvSource>()
        .and_then(CsvSource::terminator)
        .map(u32::from);
    let preserve_order = config.preserve_order;
    (compression.is_some() || csv_terminator.is_some() || preserve_order).then_some(ScanPatchNode {
        compression,
        csv_terminator,
        preserve_order,
    })
}

/// The decoded file scan `input`, with what `node` says was lost.
pub fn restore_scan(
    node: &ScanPatchNode,
    input: &Arc<dyn ExecutionPlan>,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let lost = |what: &str| {
        DataFusionError::Internal(format!("Squall plan codec: {what} for a {}", input.name()))
    };
    let (exec, config) = file_scan(input).ok_or_else(|| lost("a file scan patch"))?;
    let mut builder = FileScanConfigBuilder::from(config.clone())
        .with_preserve_order(config.preserve_order || node.preserve_order);
    if let Some(variant) = &node.compression {
        let variant = CompressionTypeVariant::from_str(variant)?;
        builder = builder.with_file_compression_type(FileCompressionType::from(variant));
    }
    if let Some(terminator) = node.csv_terminator {
        let csv = config
            .file_source()
            .downcast_ref::<CsvSource>()
            .ok_or_else(|| lost("a CSV terminator"))?;
        let terminator = u8::try_from(terminator).map_err(|_| lost("a CSV terminator"))?;
        builder = builder.with_source(Arc::new(csv.with_terminator(Some(terminator))));
    }
    Ok(Arc::new(
        exec.clone().with_data_source(Arc::new(builder.build())),
    ))
}

/// The decoded scan `plan` with the metadata size hint of its own Parquet
/// options, as DataFusion's Parquet format sets it; `None` for other plans.
pub fn with_options_metadata_size_hint(
    plan: &Arc<dyn ExecutionPlan>,
) -> Option<Arc<dyn ExecutionPlan>> {
    let (exec, config) = file_scan(plan)?;
    let parquet = config.file_source().downcast_ref::<ParquetSource>()?;
    let hint = parquet.table_parquet_options().global.metadata_size_hint?;
    let source = Arc::new(parquet.clone().with_metadata_size_hint(hint));
    let config = FileScanConfigBuilder::from(config.clone())
        .with_source(source)
        .build();
    Some(Arc::new(exec.clone().with_data_source(Arc::new(config))))
}

/// What a file scan reads and how, beyond its `Debug` text, for the fidelity guard.
pub fn describe_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    let (_, c) = file_scan(plan)?;
    let source = c.file_source();
    // A CSV scan by what its reader uses (other CSV options only matter
    // for schema inference, when planning); a Parquet scan by its options'
    // `Debug` text; the others (JSON, Arrow, Avro) by their type and what
    // they filter and project.
    let options = if let Some(csv) = source.downcast_ref::<CsvSource>() {
        format!(
            "CsvReader{{has_header:{},delimiter:{},quote:{},terminator:{:?},escape:{:?},\
             comment:{:?},truncate_rows:{},newlines_in_values:{}}}",
            csv.has_header(),
            csv.delimiter(),
            csv.quote(),
            csv.terminator(),
            csv.escape(),
            csv.comment(),
            csv.truncate_rows(),
            csv.newlines_in_values()
        )
    } else if let Some(parquet) = source.downcast_ref::<ParquetSource>() {
        format!("{parquet:?}")
    } else {
        String::new()
    };
    Some(format!(
        "file_compression_type={:?} preserve_order={} batch_size={:?} \
         expr_adapter_factory={} output_partitioning={:?} file_type={} \
         filter={:?} projection={:?} source_options: {options}",
        c.file_compression_type,
        c.preserve_order,
        c.batch_size,
        c.expr_adapter_factory.is_some(),
        c.output_partitioning,
        source.file_type(),
        source.filter(),
        source.projection(),
    ))
}
