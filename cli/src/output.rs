//! Printing or writing a query result in the chosen format.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;
use futures::StreamExt;
use squall_jobs::QueryStream;

use crate::args::OutputFormat;

/// Streams `stream` to `output` (or stdout) in `format`. A file output is
/// written next to its final name and renamed into place only when complete.
pub async fn write_result(
    stream: QueryStream,
    format: OutputFormat,
    output: Option<&Path>,
) -> Result<()> {
    if format == OutputFormat::Parquet && output.is_none() && std::io::stdout().is_terminal() {
        bail!("--format parquet writes binary data: pass --output FILE or redirect stdout");
    }
    if format == OutputFormat::Parquet
        && let Some((column, data_type, reason)) = parquet_unsupported_column(&stream.schema())
    {
        bail!(
            "column '{column}' of the result is {data_type}, which Parquet cannot hold ({reason}): \
             use --format csv, json or table, or CAST the column to a type Parquet holds"
        );
    }
    match output {
        None => {
            write_to(
                stream,
                format,
                Box::new(std::io::BufWriter::new(std::io::stdout())),
            )
            .await
        }
        Some(path) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            let tmp = tempfile::NamedTempFile::new_in(&dir)
                .with_context(|| format!("cannot create output file in {}", dir.display()))?;
            let file: File = tmp
                .reopen()
                .with_context(|| format!("cannot write {}", tmp.path().display()))?;
            write_to(stream, format, Box::new(std::io::BufWriter::new(file))).await?;
            tmp.persist(path)
                .with_context(|| format!("cannot create output file {}", path.display()))?;
            Ok(())
        }
    }
}

/// The first column Parquet cannot hold (intervals, run-end-encoded arrays,
/// negative-scale decimals, ...), with its type and Parquet's reason: each
/// column is written, one NULL, to a Parquet file in memory.
fn parquet_unsupported_column(
    schema: &datafusion::arrow::datatypes::Schema,
) -> Option<(String, String, String)> {
    use datafusion::arrow::array::new_null_array;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    schema.fields().iter().find_map(|field| {
        let probe = Field::new(field.name(), field.data_type().clone(), true);
        let schema = std::sync::Arc::new(Schema::new(vec![probe]));
        let written = RecordBatch::try_new(
            std::sync::Arc::clone(&schema),
            vec![new_null_array(field.data_type(), 1)],
        )
        .map_err(|e| e.to_string())
        .and_then(|batch| {
            let mut writer =
                ArrowWriter::try_new(Vec::new(), schema, None).map_err(|e| e.to_string())?;
            writer.write(&batch).map_err(|e| e.to_string())?;
            writer.close().map(|_| ()).map_err(|e| e.to_string())
        });
        written.err().map(|reason| {
            (
                field.name().clone(),
                field.data_type().to_string(),
                squall_connectors::table::one_line(&reason),
            )
        })
    })
}

async fn write_to(
    mut stream: QueryStream,
    format: OutputFormat,
    mut sink: Box<dyn Write + Send>,
) -> Result<()> {
    let schema = stream.schema();
    match format {
        OutputFormat::Table => {
            let mut batches = Vec::new();
            while let Some(b) = stream.next().await {
                batches.push(b?);
            }
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            if batches.is_empty() {
                batches.push(datafusion::arrow::record_batch::RecordBatch::new_empty(
                    schema,
                ));
            }
            writeln!(sink, "{}", pretty_format_batches(&batches)?)?;
            writeln!(sink, "{rows} row{}", if rows == 1 { "" } else { "s" })?;
        }
        OutputFormat::Csv => {
            let mut writer = CsvWriterBuilder::new().with_header(true).build(&mut sink);
            let mut wrote = false;
            while let Some(b) = stream.next().await {
                writer.write(&b?)?;
                wrote = true;
            }
            if !wrote {
                writer.write(&datafusion::arrow::record_batch::RecordBatch::new_empty(
                    schema,
                ))?;
            }
        }
        OutputFormat::Json => {
            let mut writer = LineDelimitedWriter::new(&mut sink);
            while let Some(b) = stream.next().await {
                writer.write(&b?)?;
            }
            writer.finish()?;
        }
        OutputFormat::Parquet => {
            let mut writer = ArrowWriter::try_new(&mut sink, schema, None)?;
            while let Some(b) = stream.next().await {
                writer.write(&b?)?;
            }
            writer.close()?;
        }
    }
    sink.flush()?;
    Ok(())
}
