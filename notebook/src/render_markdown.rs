//! `squall notebook run --format md`: the notebook written back as it was,
//! with each SQL cell's result embedded under it as a Markdown table (for
//! READMEs and code review).
//!
//! A result sits between two HTML comments, [`RESULT_BEGIN`] and
//! [`RESULT_END`], which Markdown renderers do not show. Running a notebook
//! again replaces them, and reading it ignores them
//! ([`crate::notebook_file`]), so the file can be run and written back any
//! number of times: only the results change. Everything else (front matter,
//! prose, cells with their `{{ parameters }}`, chart cells) is kept byte for
//! byte.

use crate::notebook_file::{Notebook, fence_info};
use crate::render_html::SHOWN_ROWS;
use crate::run::{CellOutcome, CellResult, NotebookRun};

/// The first line of an embedded result.
pub const RESULT_BEGIN: &str = "<!-- squall result";
/// The last line of an embedded result.
pub const RESULT_END: &str = "<!-- end of squall result -->";

/// `notebook`'s source with `run`'s results under its SQL cells, in place
/// of any results it held.
pub fn render(notebook: &Notebook, run: &NotebookRun) -> String {
    let lines: Vec<&str> = notebook.source.lines().collect();
    let mut out = String::with_capacity(notebook.source.len());
    let mut results = run.cells.iter();
    let mut at = 0;
    // Front matter: copied as it is.
    if lines.first().map(|l| l.trim_end()) == Some("+++")
        && let Some(end) = lines.iter().skip(1).position(|l| l.trim_end() == "+++")
    {
        for line in &lines[..end + 2] {
            out.push_str(line);
            out.push('\n');
        }
        at = end + 2;
    }
    while at < lines.len() {
        let line = lines[at];
        if line.trim_start().starts_with(RESULT_BEGIN) {
            // A result of an earlier run: dropped, with the blank line
            // written before it.
            let end = lines[at..]
                .iter()
                .position(|l| l.trim() == RESULT_END)
                .map_or(lines.len(), |i| at + i + 1);
            if out.ends_with("\n\n") {
                out.pop();
            }
            at = end;
            continue;
        }
        out.push_str(line);
        out.push('\n');
        match fence_info(line) {
            Some(info) if info == "sql" || info.starts_with("sql ") || info == "chart" => {
                let close = lines[at + 1..]
                    .iter()
                    .position(|l| l.trim() == "```")
                    .map_or(lines.len() - 1, |i| at + 1 + i);
                for line in &lines[at + 1..=close.min(lines.len() - 1)] {
                    out.push_str(line);
                    out.push('\n');
                }
                at = close + 1;
                if info != "chart"
                    && let Some(outcome) = results.next()
                {
                    out.push('\n');
                    out.push_str(&result_block(outcome));
                }
            }
            _ => at += 1,
        }
    }
    out
}

/// One cell's outcome between the markers.
fn result_block(outcome: &CellOutcome) -> String {
    let body = match outcome {
        CellOutcome::Done(result) => {
            return format!(
                "{RESULT_BEGIN}: {} -->\n{}{RESULT_END}\n",
                footer(result),
                table(result)
            );
        }
        CellOutcome::Failed(message) => format!("> **Error:** {}\n", cell_text(message)),
        CellOutcome::Skipped(message) => format!("> *{}*\n", cell_text(message)),
    };
    format!("{RESULT_BEGIN} -->\n{body}{RESULT_END}\n")
}

/// "3 rows · 0.12 s · 2 tasks" (no bytes or times that change between two
/// identical runs beyond the elapsed time); "from cache, ran in 0.12 s"
/// when the cell was not run again.
fn footer(result: &CellResult) -> String {
    let shown = (result.rows as usize).min(SHOWN_ROWS);
    format!(
        "{} row{}{} · {}{:.2} s · {} task{}",
        result.rows,
        if result.rows == 1 { "" } else { "s" },
        if (shown as u64) < result.rows {
            format!(", first {shown} shown")
        } else {
            String::new()
        },
        if result.cached {
            "from cache, ran in "
        } else {
            ""
        },
        result.elapsed.as_secs_f64(),
        result.tasks,
        if result.tasks == 1 { "" } else { "s" },
    )
}

/// The first rows as a Markdown table, numbers aligned right, and a line
/// saying how many more there are.
fn table(result: &CellResult) -> String {
    let fields = result.schema.fields();
    let mut out = String::from("|");
    for field in fields {
        out.push_str(&format!(" {} |", cell_text(field.name())));
    }
    out.push_str("\n|");
    for field in fields {
        out.push_str(if field.data_type().is_numeric() {
            "---:|"
        } else {
            "---|"
        });
    }
    out.push('\n');
    let rows = result.first_rows(SHOWN_ROWS);
    let shown = rows.len();
    for row in rows {
        out.push('|');
        for value in &row {
            out.push_str(&format!(" {} |", cell_text(value)));
        }
        out.push('\n');
    }
    let more = result.rows.saturating_sub(shown as u64);
    if more > 0 {
        out.push_str(&format!(
            "\n*… {more} more row{}*\n",
            if more == 1 { "" } else { "s" }
        ));
    }
    out
}

/// Text that stays inside one table cell: no line breaks, `|` escaped,
/// and nothing that would end the result's comment or open HTML.
fn cell_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace(['\n', '\r'], " ")
}
