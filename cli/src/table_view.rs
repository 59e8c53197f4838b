//! Result tables for people: aligned boxes that fit the terminal, with a
//! bounded sample (first and last rows) of long results.
//!
//! Memory is bounded whatever the result's size: with a row limit only the
//! first rows and a ring of the last ones are kept; without one, rows are
//! printed in blocks of [`BLOCK_ROWS`] as they arrive.

use std::collections::VecDeque;
use std::io::Write;

use anyhow::Result;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;
use squall::jobs::QueryStream;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Rows printed at a time when every row is printed.
pub const BLOCK_ROWS: usize = 1000;

/// Widest a cell is shown when the table must fit a terminal.
const MAX_CELL_WIDTH: usize = 40;

/// How a table is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableStyle {
    /// Most rows shown: the first half and the last half of them, with a
    /// marker between. `None`: every row.
    pub max_rows: Option<usize>,
    /// Width to fit in (a terminal's columns): long cells are cut and
    /// middle columns hidden. `None`: every column in full.
    pub max_width: Option<usize>,
}

/// What a printed table held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSummary {
    pub rows: u64,
    pub shown_rows: u64,
    pub columns: usize,
    pub shown_columns: usize,
}

impl TableSummary {
    /// "3 rows", "1,000 rows (40 shown)", "... 12 columns (7 shown)".
    pub fn footer(&self) -> String {
        let mut text = format!("{} row{}", self.rows, if self.rows == 1 { "" } else { "s" });
        if self.shown_rows < self.rows {
            text.push_str(&format!(" ({} shown)", self.shown_rows));
        }
        if self.shown_columns < self.columns {
            text.push_str(&format!(
                ", {} columns ({} shown)",
                self.columns, self.shown_columns
            ));
        }
        text
    }
}

/// Prints `stream` as a table to `sink` (without the footer).
pub async fn write_table(
    mut stream: QueryStream,
    style: TableStyle,
    sink: &mut dyn Write,
) -> Result<TableSummary> {
    let schema = stream.schema();
    let mut rows = 0u64;
    match style.max_rows {
        Some(limit) => {
            let mut sample = RowSample::new(limit);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                for row in format_rows(&batch)? {
                    sample.push(row);
                }
            }
            let (head, tail) = sample.finish();
            let shown = (head.len() + tail.len()) as u64;
            let layout = Layout::new(&schema, head.iter().chain(&tail), style.max_width);
            layout.top(sink)?;
            for row in &head {
                layout.row(sink, row)?;
            }
            if shown < rows {
                layout.gap(sink)?;
            }
            for row in &tail {
                layout.row(sink, row)?;
            }
            layout.bottom(sink)?;
            Ok(layout.summary(rows, shown))
        }
        None => {
            let mut block: Vec<Vec<String>> = Vec::new();
            let mut layout: Option<Layout> = None;
            loop {
                let next = stream.next().await.transpose()?;
                if let Some(batch) = &next {
                    rows += batch.num_rows() as u64;
                    block.extend(format_rows(batch)?);
                    if block.len() < BLOCK_ROWS {
                        continue;
                    }
                }
                match layout.as_mut() {
                    None => {
                        let first = Layout::new(&schema, block.iter(), style.max_width);
                        first.top(sink)?;
                        layout = Some(first);
                    }
                    Some(layout) => {
                        if layout.widen(block.iter()) {
                            layout.separator(sink)?;
                        }
                    }
                }
                let current = layout.as_ref().expect("laid out above");
                for row in block.drain(..) {
                    current.row(sink, &row)?;
                }
                if next.is_none() {
                    break;
                }
            }
            let layout = layout.expect("laid out on the last block");
            layout.bottom(sink)?;
            Ok(layout.summary(rows, rows))
        }
    }
}

/// The first rows of a stream and a ring of its last ones.
#[derive(Debug)]
struct RowSample {
    limit: usize,
    head: Vec<Vec<String>>,
    tail: VecDeque<Vec<String>>,
    seen: usize,
}

impl RowSample {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            head: Vec::new(),
            tail: VecDeque::new(),
            seen: 0,
        }
    }

    fn push(&mut self, row: Vec<String>) {
        self.seen += 1;
        if self.head.len() < self.limit {
            self.head.push(row);
            return;
        }
        let tail_limit = self.limit / 2;
        if tail_limit == 0 {
            return;
        }
        if self.tail.len() == tail_limit {
            self.tail.pop_front();
        }
        self.tail.push_back(row);
    }

    /// The rows to show: all of them when they fit the limit, else the
    /// first `limit - limit / 2` and the last `limit / 2`.
    fn finish(self) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
        if self.seen <= self.limit {
            return (self.head, Vec::new());
        }
        // The last rows may begin inside the head (a result just over the limit).
        let mut all = self.head;
        all.extend(self.tail);
        let tail = all.split_off(all.len() - self.limit / 2);
        all.truncate(self.limit - self.limit / 2);
        (all, tail)
    }
}

/// Every row of `batch` as display strings (NULL for nulls; line breaks
/// and tabs shown escaped so that a row stays one line).
fn format_rows(batch: &RecordBatch) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default().with_null("NULL");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|i| {
            formatters
                .iter()
                .map(|f| one_line(&f.value(i).to_string()))
                .collect()
        })
        .collect())
}

/// `value` with carriage returns and tabs shown escaped; line breaks stay
/// (a cell of several lines, such as an EXPLAIN plan, spans rows of text).
fn one_line(value: &str) -> String {
    if !value.contains(['\r', '\t']) {
        return value.to_string();
    }
    value.replace('\r', "\\r").replace('\t', "\\t")
}

/// The display width of the widest line of `value`.
fn cell_width(value: &str) -> usize {
    value.lines().map(|l| l.width()).max().unwrap_or(0)
}

/// Column widths and which columns show.
#[derive(Debug)]
struct Layout {
    names: Vec<String>,
    types: Vec<String>,
    right_aligned: Vec<bool>,
    widths: Vec<usize>,
    /// Indexes of the columns shown, in order; `None` marks the hidden middle.
    shown: Vec<Option<usize>>,
    cell_cap: Option<usize>,
}

impl Layout {
    fn new<'a>(
        schema: &SchemaRef,
        rows: impl Iterator<Item = &'a Vec<String>>,
        max_width: Option<usize>,
    ) -> Self {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let types: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| type_name(f.data_type()))
            .collect();
        let right_aligned = schema
            .fields()
            .iter()
            .map(|f| f.data_type().is_numeric())
            .collect();
        let cell_cap = max_width.map(|_| MAX_CELL_WIDTH);
        let widths = names
            .iter()
            .zip(&types)
            .map(|(n, t)| capped(n.width().max(t.width()).max(1), cell_cap))
            .collect();
        let mut layout = Self {
            names,
            types,
            right_aligned,
            widths,
            shown: Vec::new(),
            cell_cap,
        };
        layout.widen(rows);
        layout.shown = layout.fit(max_width);
        layout
    }

    /// Widens columns to `rows`' values; whether any width changed.
    fn widen<'a>(&mut self, rows: impl Iterator<Item = &'a Vec<String>>) -> bool {
        let mut changed = false;
        for row in rows {
            for (width, value) in self.widths.iter_mut().zip(row) {
                let w = capped(cell_width(value), self.cell_cap);
                if w > *width {
                    *width = w;
                    changed = true;
                }
            }
        }
        changed
    }

    /// The columns that fit `max_width`: from both ends inwards, the hidden
    /// middle marked by one narrow column.
    fn fit(&self, max_width: Option<usize>) -> Vec<Option<usize>> {
        let all: Vec<Option<usize>> = (0..self.widths.len()).map(Some).collect();
        let Some(max_width) = max_width else {
            return all;
        };
        let total = |cols: &[usize]| 1 + cols.iter().map(|&c| self.widths[c] + 3).sum::<usize>();
        let every: Vec<usize> = (0..self.widths.len()).collect();
        if total(&every) <= max_width {
            return all;
        }
        // Room for the marker column ("…" and its borders).
        let budget = max_width.saturating_sub(4);
        let (mut left, mut right) = (Vec::new(), Vec::new());
        let (mut lo, mut hi) = (0usize, self.widths.len());
        let mut used = 1;
        let mut from_left = true;
        while lo < hi {
            let c = if from_left { lo } else { hi - 1 };
            if used + self.widths[c] + 3 > budget && !(left.is_empty() && right.is_empty()) {
                break;
            }
            used += self.widths[c] + 3;
            if from_left {
                left.push(c);
                lo += 1;
            } else {
                right.push(c);
                hi -= 1;
            }
            from_left = !from_left;
        }
        let mut shown: Vec<Option<usize>> = left.into_iter().map(Some).collect();
        if lo < hi {
            shown.push(None);
        }
        shown.extend(right.into_iter().rev().map(Some));
        shown
    }

    fn summary(&self, rows: u64, shown_rows: u64) -> TableSummary {
        TableSummary {
            rows,
            shown_rows,
            columns: self.widths.len(),
            shown_columns: self.shown.iter().flatten().count(),
        }
    }

    fn width_of(&self, column: Option<usize>) -> usize {
        column.map_or(1, |c| self.widths[c])
    }

    fn rule(&self, sink: &mut dyn Write, left: &str, middle: &str, right: &str) -> Result<()> {
        let mut line = String::from(left);
        for (i, column) in self.shown.iter().enumerate() {
            if i > 0 {
                line.push_str(middle);
            }
            line.push_str(&"─".repeat(self.width_of(*column) + 2));
        }
        line.push_str(right);
        writeln!(sink, "{line}")?;
        Ok(())
    }

    fn cells(
        &self,
        sink: &mut dyn Write,
        value: impl Fn(usize) -> String,
        align: bool,
    ) -> Result<()> {
        let cells: Vec<(String, usize, bool)> = self
            .shown
            .iter()
            .map(|column| match column {
                Some(c) => (value(*c), self.widths[*c], align && self.right_aligned[*c]),
                None => ("…".to_string(), 1, false),
            })
            .collect();
        // A cell of several lines makes the row as tall as its lines.
        let height = cells
            .iter()
            .map(|(text, _, _)| text.lines().count().max(1))
            .max()
            .unwrap_or(1);
        for row_line in 0..height {
            let mut line = String::from("│");
            for (text, width, right) in &cells {
                let part = text.lines().nth(row_line).unwrap_or("");
                let part = truncate(part, *width);
                let pad = " ".repeat(width - part.width());
                if *right {
                    line.push_str(&format!(" {pad}{part} │"));
                } else {
                    line.push_str(&format!(" {part}{pad} │"));
                }
            }
            writeln!(sink, "{line}")?;
        }
        Ok(())
    }

    /// The top border, the column names and types, and the rule under them.
    fn top(&self, sink: &mut dyn Write) -> Result<()> {
        self.rule(sink, "┌", "┬", "┐")?;
        self.cells(sink, |c| self.names[c].clone(), false)?;
        self.cells(sink, |c| self.types[c].clone(), false)?;
        self.rule(sink, "├", "┼", "┤")
    }

    fn separator(&self, sink: &mut dyn Write) -> Result<()> {
        self.rule(sink, "├", "┼", "┤")
    }

    fn row(&self, sink: &mut dyn Write, row: &[String]) -> Result<()> {
        self.cells(sink, |c| row[c].clone(), true)
    }

    /// The marker of rows left out.
    fn gap(&self, sink: &mut dyn Write) -> Result<()> {
        self.cells(sink, |_| "·".to_string(), false)
    }

    fn bottom(&self, sink: &mut dyn Write) -> Result<()> {
        self.rule(sink, "└", "┴", "┘")
    }
}

fn capped(width: usize, cap: Option<usize>) -> usize {
    cap.map_or(width, |cap| width.min(cap))
}

/// `text` cut to `width` display columns, ending in "…" when cut.
fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in text.chars() {
        let w = ch.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(ch);
        used += w;
    }
    out.push('…');
    out
}

/// A short lowercase name of `data_type`, as a column's second header line.
fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Dictionary(_, value) => type_name(value),
        other => other.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<Vec<String>> {
        (0..n).map(|i| vec![i.to_string()]).collect()
    }

    #[test]
    fn a_sample_keeps_the_first_and_last_rows() {
        for (count, limit, head, tail) in [
            (3, 10, vec![0, 1, 2], vec![]),
            (10, 10, (0..10).collect(), vec![]),
            (11, 10, (0..5).collect(), (6..11).collect()),
            (100, 4, vec![0, 1], vec![98, 99]),
            (5, 3, vec![0, 1], vec![4]),
            (5, 1, vec![0], vec![]),
        ] {
            let mut sample = RowSample::new(limit);
            for row in rows(count) {
                sample.push(row);
            }
            let (h, t) = sample.finish();
            let nums = |v: Vec<Vec<String>>| -> Vec<usize> {
                v.into_iter().map(|r| r[0].parse().unwrap()).collect()
            };
            assert_eq!(nums(h), head, "{count} rows, limit {limit}");
            assert_eq!(nums(t), tail, "{count} rows, limit {limit}");
        }
    }

    #[test]
    fn a_cell_of_several_lines_spans_rows_of_text() {
        use datafusion::arrow::datatypes::{Field, Schema};
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("plan_type", DataType::Utf8, false),
            Field::new("plan", DataType::Utf8, false),
        ]));
        let rows = [vec![
            "physical".to_string(),
            one_line("Stage 0\n  scan\ttab"),
        ]];
        let layout = Layout::new(&schema, rows.iter(), None);
        let mut out = Vec::new();
        layout.row(&mut out, &rows[0]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "│ physical  │ Stage 0     │\n│           │   scan\\ttab │\n"
        );
    }

    #[test]
    fn cells_are_cut_to_their_width() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(truncate("日本語のテキスト", 5), "日本…");
    }

    #[test]
    fn middle_columns_hide_when_the_table_is_too_wide() {
        use datafusion::arrow::datatypes::{Field, Schema};
        let fields: Vec<Field> = (0..10)
            .map(|i| Field::new(format!("column_{i}"), DataType::Int64, false))
            .collect();
        let schema = std::sync::Arc::new(Schema::new(fields));
        let layout = Layout::new(&schema, std::iter::empty(), Some(60));
        // Each column is 8 wide plus 3 of borders: five fit besides the marker.
        assert_eq!(
            layout.shown,
            vec![Some(0), Some(1), Some(2), None, Some(8), Some(9)],
            "{layout:?}"
        );
        let mut out = Vec::new();
        layout.top(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.width() <= 60), "{text}");
        assert!(text.contains("│ … │"), "{text}");
        let wide = Layout::new(&schema, std::iter::empty(), None);
        assert_eq!(wide.shown.len(), 10);
    }
}
