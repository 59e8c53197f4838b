//! Table sources: a name, a location and a file format, registered with DataFusion.
//!
//! Squall registers ordinary DataFusion listing tables. The planner later reads
//! the file list back out of the scan in the physical plan and cuts it into
//! splits, so anything DataFusion can list (a file, a directory, a glob, a
//! hive-partitioned prefix) can be distributed.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::GetExt;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SessionState;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use crate::error::{ConnectorError, Result};
use crate::store::{Location, register_object_store};

/// How many objects are looked at to guess the format of a prefix.
const FORMAT_PROBE_OBJECTS: usize = 1000;

/// The file formats Squall reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Parquet,
    Csv,
    /// CSV with tabs between the values (`.tsv`).
    Tsv,
    Json,
}

/// How CSV and TSV files are read: whether their first line is a header
/// (else columns are `column_1`, `column_2`, ...), the byte between values
/// (default: ',' for CSV, a tab for TSV) and the quote byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvOptions {
    pub header: bool,
    pub delimiter: Option<u8>,
    pub quote: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            header: true,
            delimiter: None,
            quote: b'"',
        }
    }
}

impl TableFormat {
    /// The usual file extension, with its dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Parquet => ".parquet",
            Self::Csv => ".csv",
            Self::Tsv => ".tsv",
            Self::Json => ".json",
        }
    }

    /// The format named by a file name's extension, if any.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let lower = lower
            .trim_end_matches(".gz")
            .trim_end_matches(".zst")
            .trim_end_matches(".bz2")
            .trim_end_matches(".xz");
        if lower.ends_with(".parquet") || lower.ends_with(".parq") {
            Some(Self::Parquet)
        } else if lower.ends_with(".csv") {
            Some(Self::Csv)
        } else if lower.ends_with(".tsv") {
            Some(Self::Tsv)
        } else if lower.ends_with(".json")
            || lower.ends_with(".ndjson")
            || lower.ends_with(".jsonl")
        {
            Some(Self::Json)
        } else {
            None
        }
    }

    /// How files of this format compressed as `compression` are read.
    fn file_format(
        self,
        compression: FileCompressionType,
        options: &CsvOptions,
    ) -> Arc<dyn FileFormat> {
        let csv = |delimiter: u8| {
            CsvFormat::default()
                .with_has_header(options.header)
                .with_delimiter(options.delimiter.unwrap_or(delimiter))
                .with_quote(options.quote)
                .with_file_compression_type(compression)
        };
        match self {
            Self::Parquet => Arc::new(ParquetFormat::default()),
            Self::Csv => Arc::new(csv(b',')),
            Self::Tsv => Arc::new(csv(b'\t')),
            Self::Json => Arc::new(JsonFormat::default().with_file_compression_type(compression)),
        }
    }
}

/// The compression a file name says its file has (`x.csv.gz`: gzip).
/// Parquet compresses inside the file, so a Parquet file is never
/// compressed as a whole.
pub fn compression_of(name: &str) -> FileCompressionType {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".gz") {
        FileCompressionType::GZIP
    } else if lower.ends_with(".bz2") {
        FileCompressionType::BZIP2
    } else if lower.ends_with(".xz") {
        FileCompressionType::XZ
    } else if lower.ends_with(".zst") {
        FileCompressionType::ZSTD
    } else {
        FileCompressionType::UNCOMPRESSED
    }
}

impl FromStr for TableFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" => Ok(Self::Parquet),
            "csv" => Ok(Self::Csv),
            "tsv" => Ok(Self::Tsv),
            "json" | "ndjson" | "jsonl" => Ok(Self::Json),
            other => Err(format!(
                "unknown table format '{other}' (expected parquet, csv, tsv or json)"
            )),
        }
    }
}

/// Registers `location` as table `name` in `ctx`, with its format from the
/// extension, the files under it, or `format` when given.
pub async fn register_table(
    ctx: &SessionContext,
    name: &str,
    location: &str,
    format: Option<TableFormat>,
) -> Result<()> {
    register_table_with(ctx, name, location, format, &CsvOptions::default()).await
}

/// [`register_table`], with CSV and TSV files read as `csv` says.
pub async fn register_table_with(
    ctx: &SessionContext,
    name: &str,
    location: &str,
    format: Option<TableFormat>,
    csv: &CsvOptions,
) -> Result<()> {
    let table = listing_table(&ctx.state(), name, location, format, csv).await?;
    ctx.register_table(name, table)
        .map_err(|e| ConnectorError::Table {
            table: name.to_string(),
            reason: e.to_string(),
        })?;
    Ok(())
}

/// The listing table of `location` (what [`register_table`] registers),
/// called `name` in errors.
pub async fn listing_table(
    state: &SessionState,
    name: &str,
    location: &str,
    format: Option<TableFormat>,
    csv: &CsvOptions,
) -> Result<Arc<dyn TableProvider>> {
    listing_table_with_schema(state, name, location, format, csv, None).await
}

/// [`listing_table`] with the files' columns given instead of inferred
/// (CSV drops whose files disagree on types, say, read as text).
pub async fn listing_table_with_schema(
    state: &SessionState,
    name: &str,
    location: &str,
    format: Option<TableFormat>,
    csv: &CsvOptions,
    file_schema: Option<datafusion::arrow::datatypes::SchemaRef>,
) -> Result<Arc<dyn TableProvider>> {
    let table_err = |reason: String| ConnectorError::Table {
        table: name.to_string(),
        reason,
    };
    let mut loc = Location::parse(location).map_err(|e| table_err(e.to_string()))?;
    if let Some(path) = loc.local_path() {
        if !path.exists() && !location.contains(['*', '?', '[']) {
            return Err(table_err(format!(
                "no such file or directory: {}",
                path.display()
            )));
        }
    } else if !loc.is_prefix() && TableFormat::from_file_name(loc.url().path()).is_none() {
        // An object-store key without an extension is taken to be a prefix.
        loc = loc.as_prefix();
    }
    register_object_store(state.runtime_env(), &loc).map_err(|e| table_err(e.to_string()))?;
    let table_url = listing_url(&loc).map_err(&table_err)?;

    let (format, compression) = detect_format(state, &loc, &table_url, format)
        .await
        .map_err(&table_err)?;
    let extension = if loc.is_prefix() || table_url.get_glob().is_some() {
        format!("{}{}", format.extension(), compression.get_ext())
    } else {
        // A single named file is read whatever its extension.
        String::new()
    };
    let mut options =
        ListingOptions::new(format.file_format(compression, csv)).with_file_extension(extension);
    let partition_cols = options
        .infer_partitions(state, &table_url)
        .await
        .map_err(|e| table_err(one_line(&e.to_string())))?;
    if !partition_cols.is_empty() {
        options = options.with_table_partition_cols(
            partition_cols
                .into_iter()
                .map(|c| (c, DataType::Utf8))
                .collect(),
        );
    }
    let schema = match file_schema {
        Some(schema) => schema,
        None => options
            .infer_schema(state, &table_url)
            .await
            .map_err(|e| table_err(describe_read_error(&loc, format, &e.to_string())))?,
    };
    // DataFusion skips 0-byte files when it infers a schema, so a table of
    // nothing but empty files would read as no columns and no rows.
    if schema.fields().is_empty() {
        return Err(table_err(format!(
            "{loc} holds only empty (0-byte) files: no {} to read columns from",
            match format {
                TableFormat::Parquet => "Parquet footer",
                TableFormat::Csv | TableFormat::Tsv => "CSV header",
                TableFormat::Json => "JSON record",
            }
        )));
    }
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(|e| table_err(e.to_string()))?;
    Ok(crate::null_partitions::with_null_partitions(Arc::new(
        table,
    )))
}

/// A table of exactly `files` (objects of one store, all of `format` and
/// compressed alike), with the files' columns `schema`: an incremental
/// read of some objects of a source. No files: an empty table.
pub fn table_of_files(
    name: &str,
    files: &[Location],
    format: TableFormat,
    csv: &CsvOptions,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<Arc<dyn TableProvider>> {
    let table_err = |reason: String| ConnectorError::Table {
        table: name.to_string(),
        reason,
    };
    let Some(first) = files.first() else {
        let empty = datafusion::datasource::MemTable::try_new(schema, vec![vec![]])
            .map_err(|e| table_err(e.to_string()))?;
        return Ok(Arc::new(empty));
    };
    let compression = match format {
        TableFormat::Parquet => FileCompressionType::UNCOMPRESSED,
        _ => compression_of(first.url().path()),
    };
    let urls = files
        .iter()
        .map(|f| {
            let path = f.url().path();
            let same = match format {
                TableFormat::Parquet => true,
                _ => compression_of(path) == compression,
            };
            if !same {
                return Err(table_err(format!(
                    "{f} is compressed unlike {first}: one table reads files compressed alike"
                )));
            }
            ListingTableUrl::parse(f.to_string()).map_err(|e| table_err(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let options = ListingOptions::new(format.file_format(compression, csv))
        .with_file_extension(String::new());
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(|e| table_err(e.to_string()))?;
    Ok(Arc::new(table))
}

/// The listing URL of `loc`, with the glob of its last segments (`*`, `[...]`,
/// and `?` in local paths) as the filter of a listing of the folder above.
fn listing_url(loc: &Location) -> std::result::Result<ListingTableUrl, String> {
    if let Some(path) = loc.local_path() {
        // DataFusion splits the globs of local paths itself.
        return ListingTableUrl::parse(path.display().to_string()).map_err(|e| e.to_string());
    }
    let url = loc.url();
    let path = url.path();
    let Some(first_glob) = path.find(['*', '[']) else {
        return ListingTableUrl::parse(url.as_str()).map_err(|e| e.to_string());
    };
    let folder_end = path[..first_glob].rfind('/').unwrap_or(0);
    let pattern = glob::Pattern::new(&path[folder_end + 1..])
        .map_err(|e| format!("bad glob in {loc}: {e}"))?;
    let mut folder = url.clone();
    folder.set_path(&path[..=folder_end]);
    ListingTableUrl::try_new(folder, Some(pattern)).map_err(|e| e.to_string())
}

/// Picks the format (unless `given`) and the compression of whole files
/// from the location's name, or from the most common kind of the objects
/// under a prefix.
async fn detect_format(
    state: &SessionState,
    loc: &Location,
    table_url: &ListingTableUrl,
    given: Option<TableFormat>,
) -> std::result::Result<(TableFormat, FileCompressionType), String> {
    let compressed = |format: TableFormat, name: &str| match format {
        TableFormat::Parquet => FileCompressionType::UNCOMPRESSED,
        _ => compression_of(name),
    };
    let name = loc.url().path();
    if !loc.is_prefix()
        && table_url.get_glob().is_none()
        && let Some(format) = given.or_else(|| TableFormat::from_file_name(name))
    {
        return Ok((format, compressed(format, name)));
    }
    let store = state
        .runtime_env()
        .object_store(table_url)
        .map_err(|e| e.to_string())?;
    let objects: Vec<_> = store
        .list(Some(table_url.prefix()))
        .take(FORMAT_PROBE_OBJECTS)
        .try_collect()
        .await
        .map_err(|e| format!("cannot list {loc}: {}", one_line(&e.to_string())))?;
    // The most common (format, compression) of the files, in the format
    // given if one is.
    let mut counts: Vec<((TableFormat, FileCompressionType), usize)> = Vec::new();
    for obj in &objects {
        let name = obj.location.as_ref();
        let Some(format) = TableFormat::from_file_name(name) else {
            continue;
        };
        if given.is_some_and(|g| g != format) {
            continue;
        }
        let kind = (format, compressed(format, name));
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind, 1)),
        }
    }
    match counts.iter().max_by_key(|(_, n)| *n) {
        Some((kind, _)) => Ok(*kind),
        None if given.is_some() => Ok((given.expect("checked"), FileCompressionType::UNCOMPRESSED)),
        None if objects.is_empty() => Err(format!("no files found at {loc}")),
        None => Err(format!(
            "cannot tell the file format of {loc}: no .parquet, .csv, .tsv or .json files; pass --table-format"
        )),
    }
}

/// Turns DataFusion's schema-inference errors into a message that names the file format.
fn describe_read_error(loc: &Location, format: TableFormat, error: &str) -> String {
    let error = one_line(error);
    if format == TableFormat::Parquet
        && (error.contains("Parquet error") || error.contains("magic") || error.contains("footer"))
    {
        format!("{loc} is not a valid Parquet file ({error})")
    } else if error.contains("No files found") {
        format!("no {} files found at {loc}", format.extension())
    } else {
        format!("cannot read {loc}: {error}")
    }
}

/// Collapses a multi-line error into one line, with the XML error documents
/// of S3-style stores shown as their code and message
/// (`NoSuchBucket: The specified bucket does not exist`).
pub fn one_line(s: &str) -> String {
    condense_xml_errors(&s.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn condense_xml_errors(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("<?xml") {
        // S3, GCS and Azure send `<Error>`; STS and IAM wrap it in `<ErrorResponse>`.
        let closing = if rest[start..].contains("<ErrorResponse") {
            "</ErrorResponse>"
        } else {
            "</Error>"
        };
        let Some(len) = rest[start..].find(closing) else {
            break;
        };
        let end = start + len + closing.len();
        let document = &rest[start..end];
        let element = |name: &str| {
            let open = format!("<{name}>");
            let from = document.find(&open)? + open.len();
            let to = from + document[from..].find(&format!("</{name}>"))?;
            Some(
                document[from..to]
                    .replace("&quot;", "\"")
                    .replace("&apos;", "'")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&"),
            )
        };
        out.push_str(&rest[..start]);
        match (element("Code"), element("Message")) {
            (Some(code), Some(message)) => out.push_str(&format!("{code}: {message}")),
            (Some(code), None) => out.push_str(&code),
            _ => out.push_str(document),
        }
        // Azure's explanation of a refused signature.
        if let Some(detail) = element("AuthenticationErrorDetail") {
            out.push_str(&format!(" ({detail})"));
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_error_documents_become_their_code_and_message() {
        let error = "404 Not Found: <?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Error><Code>NoSuchBucket</Code>\
                     <Message>The specified bucket does not exist</Message><RequestId>X1</RequestId></Error> (tail)";
        assert_eq!(
            one_line(error),
            "404 Not Found: NoSuchBucket: The specified bucket does not exist (tail)"
        );
        assert_eq!(one_line("no xml\n here"), "no xml here");
        let sts = "<?xml version=\"1.0\"?><ErrorResponse><Error><Code>InvalidClientTokenId</Code>\
                   <Message>The token &quot;x&quot; is invalid</Message></Error><RequestId>r1</RequestId></ErrorResponse>";
        assert_eq!(
            one_line(sts),
            "InvalidClientTokenId: The token \"x\" is invalid"
        );
        assert_eq!(one_line("<?xml unterminated"), "<?xml unterminated");
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(
            TableFormat::from_file_name("a/b.PARQUET"),
            Some(TableFormat::Parquet)
        );
        assert_eq!(
            TableFormat::from_file_name("x.csv.gz"),
            Some(TableFormat::Csv)
        );
        assert_eq!(
            TableFormat::from_file_name("x.jsonl"),
            Some(TableFormat::Json)
        );
        assert_eq!(TableFormat::from_file_name("x.txt"), None);
        assert_eq!(
            TableFormat::from_file_name("x.TSV.bz2"),
            Some(TableFormat::Tsv)
        );
        assert_eq!(compression_of("x.csv.gz"), FileCompressionType::GZIP);
        assert_eq!(compression_of("x.json.zst"), FileCompressionType::ZSTD);
        assert_eq!(compression_of("x.csv"), FileCompressionType::UNCOMPRESSED);
        assert_eq!("tsv".parse::<TableFormat>(), Ok(TableFormat::Tsv));
    }

    #[tokio::test]
    async fn missing_file_names_the_table_and_path() {
        let ctx = SessionContext::new();
        let err = register_table(&ctx, "t", "/definitely/not/here.parquet", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("table 't'"), "{err}");
        assert!(err.contains("/definitely/not/here.parquet"), "{err}");
    }

    #[tokio::test]
    async fn non_parquet_file_named_parquet_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.parquet");
        std::fs::write(&path, b"this is not parquet at all").unwrap();
        let ctx = SessionContext::new();
        let err = register_table(&ctx, "fake", path.to_str().unwrap(), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid Parquet file"), "{err}");
        assert!(err.contains("fake.parquet"), "{err}");
    }
}
