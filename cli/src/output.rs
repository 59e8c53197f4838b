//! Printing or writing a query result in the chosen format.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use futures::StreamExt;
use squall::jobs::QueryStream;

use crate::args::OutputFormat;
use crate::table_view::{self, TableStyle};

/// How a result is shown.
#[derive(Debug, Clone, Copy)]
pub struct ResultStyle {
    pub format: OutputFormat,
    /// Table layout (with [`OutputFormat::Table`]).
    pub table: TableStyle,
}

impl ResultStyle {
    /// `format`, with tables sized for where they go: on a terminal
    /// (stdout, unless `to_file`), its width and `max_rows` (default
    /// [`DEFAULT_TERMINAL_ROWS`]); elsewhere every column and `max_rows`
    /// (default: every row). `max_rows` 0 means every row.
    pub fn new(format: OutputFormat, max_rows: Option<usize>, to_file: bool) -> Self {
        let terminal = if to_file {
            None
        } else {
            console::Term::stdout().size_checked()
        };
        let max_rows = match (max_rows, terminal) {
            (Some(0), _) => None,
            (Some(n), _) => Some(n),
            (None, Some(_)) => Some(DEFAULT_TERMINAL_ROWS),
            (None, None) => None,
        };
        Self {
            format,
            table: TableStyle {
                max_rows,
                max_width: terminal.map(|(_, columns)| usize::from(columns)),
            },
        }
    }
}

/// Rows of a table shown on a terminal unless --max-rows says otherwise.
pub const DEFAULT_TERMINAL_ROWS: usize = 40;

/// Streams `stream` to `output` (or stdout) in `style`. A file output is
/// written next to its final name and renamed into place only when complete.
/// A table ends with a footer line: its rows, then `footer_extra()` (called
/// once the last row arrived) after a " · ". `before_stdout` runs before the
/// first byte goes to stdout (a progress display clears itself).
pub async fn write_result(
    stream: QueryStream,
    style: ResultStyle,
    output: Option<&Path>,
    footer_extra: &(dyn Fn() -> Option<String> + Sync),
    before_stdout: Box<dyn FnOnce() + Send>,
) -> Result<()> {
    let format = style.format;
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
                style,
                Box::new(BeforeFirstWrite {
                    inner: std::io::BufWriter::new(std::io::stdout()),
                    hook: Some(before_stdout),
                }),
                footer_extra,
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
            write_to(
                stream,
                style,
                Box::new(std::io::BufWriter::new(file)),
                footer_extra,
            )
            .await?;
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

/// Whether a result is an EXPLAIN's: a plan type and a plan per row.
fn is_explain(schema: &datafusion::arrow::datatypes::Schema) -> bool {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    names == ["plan_type", "plan"]
}

/// A writer that runs a hook before its first write.
struct BeforeFirstWrite<W> {
    inner: W,
    hook: Option<Box<dyn FnOnce() + Send>>,
}

impl<W: Write> Write for BeforeFirstWrite<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(hook) = self.hook.take() {
            hook();
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `stream` to `sink` in `style` (and flushes it).
pub async fn write_to(
    mut stream: QueryStream,
    style: ResultStyle,
    mut sink: Box<dyn Write + Send>,
    footer_extra: &(dyn Fn() -> Option<String> + Sync),
) -> Result<()> {
    let schema = stream.schema();
    match style.format {
        OutputFormat::Table if is_explain(&schema) => {
            // Plans read best as the text they are, not cut to a cell.
            let options = FormatOptions::default();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let kinds = ArrayFormatter::try_new(batch.column(0).as_ref(), &options)?;
                let plans = ArrayFormatter::try_new(batch.column(1).as_ref(), &options)?;
                for row in 0..batch.num_rows() {
                    writeln!(sink, "{}:\n{}", kinds.value(row), plans.value(row))?;
                }
            }
        }
        OutputFormat::Table => {
            let summary = table_view::write_table(stream, style.table, &mut sink).await?;
            let mut footer = summary.footer();
            if let Some(extra) = footer_extra() {
                footer.push_str(" · ");
                footer.push_str(&extra);
            }
            writeln!(sink, "{footer}")?;
        }
        OutputFormat::Line => {
            let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
            let options = FormatOptions::default().with_null("NULL");
            let mut first = true;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let formatters = batch
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                    .collect::<Result<Vec<_>, _>>()?;
                for row in 0..batch.num_rows() {
                    if !first {
                        writeln!(sink)?;
                    }
                    first = false;
                    for (name, formatter) in names.iter().zip(&formatters) {
                        writeln!(sink, "{name:>width$} = {}", formatter.value(row))?;
                    }
                }
            }
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
