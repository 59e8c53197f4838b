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
