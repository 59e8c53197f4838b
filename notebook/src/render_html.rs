//! One self-contained HTML page of a notebook and its run: prose, each SQL
//! cell (its query folded, its first rows, its measures or its error) and
//! each chart as inline SVG. No script, style or font is fetched when the
//! page opens: the style and a small script (the tooltip that shows a
//! mark's `<title>` on hover) are inline.

use crate::chart::render_svg;
use crate::notebook_file::{Block, Notebook};
use crate::run::{CellOutcome, CellResult, NotebookRun};

/// Rows of a result shown on the page.
pub const SHOWN_ROWS: usize = 10;

/// Shows a mark's `<title>` in a tooltip that follows the pointer; records
/// script errors for tests.
const SCRIPT: &str = r#"
window.squallNotebookErrors = [];
window.addEventListener('error', e => window.squallNotebookErrors.push(String(e.message)));
const tip = document.getElementById('tooltip');
document.querySelectorAll('svg.chart .mark').forEach(mark => {
  const title = mark.querySelector('title');
  if (!title) return;
  mark.dataset.tip = title.textContent;
  title.remove();
  mark.addEventListener('mouseenter', () => { tip.textContent = mark.dataset.tip; tip.hidden = false; });
  mark.addEventListener('mousemove', e => { tip.style.left = (e.clientX + 12) + 'px'; tip.style.top = (e.clientY + 12) + 'px'; });
  mark.addEventListener('mouseleave', () => { tip.hidden = true; });
});
document.body.dataset.rendered = 'true';
"#;

pub const STYLE: &str = r#"
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2937; max-width: 980px; margin: 2rem auto; padding: 0 1rem; }
h1, h2, h3 { line-height: 1.2; }
.cell { border: 1px solid #e5e7eb; border-radius: 8px; margin: 1rem 0; padding: .5rem .75rem; }
.cell header { font-size: 12px; color: #6b7280; display: flex; gap: .75rem; }
.cell header .name { font-weight: 600; color: #111827; }
details summary { cursor: pointer; font-size: 12px; color: #6b7280; }
pre { background: #f9fafb; padding: .5rem; overflow-x: auto; font-size: 13px; }
table.result { border-collapse: collapse; font-size: 13px; margin: .5rem 0; }
table.result th, table.result td { border-bottom: 1px solid #f3f4f6; padding: 2px 10px; text-align: left; white-space: nowrap; }
table.result th { color: #374151; border-bottom: 1px solid #d1d5db; }
table.result td.num { text-align: right; font-variant-numeric: tabular-nums; }
.footer { font-size: 12px; color: #6b7280; }
.footer .cached { color: #047857; font-weight: 600; }
.error { color: #b91c1c; background: #fef2f2; padding: .4rem .6rem; border-radius: 4px; font-family: ui-monospace, monospace; font-size: 13px; white-space: pre-wrap; }
.pending { color: #6b7280; font-size: 13px; font-style: italic; }
.skipped { color: #92400e; background: #fffbeb; padding: .4rem .6rem; border-radius: 4px; font-size: 13px; }
figure.chart-cell { margin: 1rem 0; }
figure.chart-cell figcaption { font-weight: 600; margin-bottom: .25rem; }
svg.chart text.tick { font-size: 11px; fill: #6b7280; }
svg.chart .mark:hover { opacity: .7; }
#tooltip { position: fixed; pointer-events: none; background: #111827; color: #fff; font-size: 12px; padding: 4px 8px; border-radius: 4px; white-space: pre; }
.legend { font-size: 12px; display: flex; gap: 1rem; } .legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
"#;

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn bytes(n: u64) -> String {
    let mut value = n as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if value < 1024.0 || unit == "GiB" {
            return if unit == "B" {
                format!("{n} B")
            } else {
                format!("{value:.1} {unit}")
            };
        }
        value /= 1024.0;
    }
    unreachable!()
}

/// The first rows of `result` as an HTML table, and its footer.
fn result_table(result: &CellResult) -> String {
    let mut html = String::from(r#"<table class="result"><thead><tr>"#);
    for field in result.schema.fields() {
        html.push_str(&format!("<th>{}</th>", escape(field.name())));
    }
    html.push_str("</tr></thead><tbody>");
    let rows = result.first_rows(SHOWN_ROWS);
    let shown = rows.len();
    for row in rows {
        html.push_str("<tr>");
        for (value, field) in row.iter().zip(result.schema.fields()) {
            let numeric = field.data_type().is_numeric();
            html.push_str(&format!(
                "<td{}>{}</td>",
                if numeric { r#" class="num""# } else { "" },
                escape(value)
            ));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    let more = result.rows.saturating_sub(shown as u64);
    html.push_str(&format!(
        r#"<div class="footer">{} row{}{} · {}{:.2} s · {} task{} · {} read · <span class="cost" title="what its tasks would cost on AWS Lambda + S3 at list prices (start-ups not included)">≈ {}</span></div>"#,
        result.rows,
        if result.rows == 1 { "" } else { "s" },
        if more > 0 {
            format!(" (first {shown} shown)")
        } else {
            String::new()
        },
        if result.cached {
            r#"<span class="cached" title="unchanged since the run measured here: not run again">from cache</span>, ran in "#
        } else {
            ""
        },
        result.elapsed.as_secs_f64(),
        result.tasks,
        if result.tasks == 1 { "" } else { "s" },
        bytes(result.bytes_read),
        squall_jobs::cost::dollars(result.cost_usd)
    ));
    html
}

/// A SQL cell's state as the page marks it (`data-state`): `done`,
/// `failed`, `skipped`, or `pending` while it has not ended.
pub fn cell_state(outcome: Option<&CellOutcome>) -> &'static str {
    match outcome {
        Some(CellOutcome::Done(_)) => "done",
        Some(CellOutcome::Failed(_)) => "failed",
        Some(CellOutcome::Skipped(_)) => "skipped",
        None => "pending",
    }
}

/// Block `index` of `notebook` as HTML, given the outcomes of its SQL
/// cells so far (by index in `Notebook::sql_cells`; `None`: not ended yet).
pub fn render_block(
    notebook: &Notebook,
    outcomes: &[Option<&CellOutcome>],
    index: usize,
) -> String {
    let mut body = String::new();
    let cells: Vec<_> = notebook.sql_cells().collect();
    match &notebook.blocks[index] {
        Block::Prose(text) => {
            let parser = pulldown_cmark::Parser::new(text);
            pulldown_cmark::html::push_html(&mut body, parser);
        }
        Block::Sql(cell) => {
            let outcome = notebook
                .cell_of_block(index)
                .and_then(|i| outcomes.get(i).copied().flatten());
            let state = cell_state(outcome);
            body.push_str(&format!(
                r#"<section class="cell" data-state="{state}"{}><header>{}<span>line {}</span></header>"#,
                cell.name
                    .as_ref()
                    .map(|n| format!(r#" data-name="{}""#, escape(n)))
                    .unwrap_or_default(),
                cell.name
                    .as_ref()
                    .map(|n| format!(r#"<span class="name">{}</span>"#, escape(n)))
                    .unwrap_or_default(),
                cell.line
            ));
            body.push_str(&format!(
                "<details><summary>SQL</summary><pre><code>{}</code></pre></details>",
                escape(cell.sql.trim())
            ));
            match outcome {
                Some(CellOutcome::Done(result)) => body.push_str(&result_table(result)),
                Some(CellOutcome::Failed(message)) => body.push_str(&format!(
                    r#"<div class="error">error: {}</div>"#,
                    escape(message)
                )),
                Some(CellOutcome::Skipped(why)) => {
                    body.push_str(&format!(r#"<div class="skipped">{}</div>"#, escape(why)))
                }
                None => body.push_str(r#"<div class="pending">waiting to run</div>"#),
            }
            body.push_str("</section>");
        }
        Block::Chart(chart) => {
            let drawn = cells.iter().position(|c| {
                c.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(&chart.spec.cell))
            });
            let caption = chart
                .spec
                .title
                .clone()
                .unwrap_or_else(|| format!("{} of {}", chart.spec.cell, chart.spec.x));
            let drawing = match drawn.and_then(|i| outcomes.get(i).copied().flatten()) {
                Some(CellOutcome::Done(result)) => render_svg(&chart.spec, &result.batches)
                    .unwrap_or_else(|e| {
                        format!(
                            r#"<div class="error">error: chart at line {}: {}</div>"#,
                            chart.line,
                            escape(&e)
                        )
                    }),
                Some(_) => format!(
                    r#"<div class="skipped">not drawn: cell '{}' did not run to its end</div>"#,
                    escape(&chart.spec.cell)
                ),
                None => format!(
                    r#"<div class="pending">waiting for cell '{}'</div>"#,
                    escape(&chart.spec.cell)
                ),
            };
            body.push_str(&format!(
                r#"<figure class="chart-cell"><figcaption>{}</figcaption>{drawing}</figure>"#,
                escape(&caption)
            ));
        }
    }
    body
}

/// The page of `notebook` after `run`.
pub fn render(notebook: &Notebook, run: &NotebookRun) -> String {
    let title = notebook.title.clone().unwrap_or_else(|| {
        std::path::Path::new(&notebook.file)
            .file_stem()
            .map_or("notebook".into(), |s| s.to_string_lossy().to_string())
    });
    let outcomes: Vec<Option<&CellOutcome>> = run.cells.iter().map(Some).collect();
    let cells: Vec<_> = notebook.sql_cells().collect();
    let body: String = (0..notebook.blocks.len())
        .map(|i| render_block(notebook, &outcomes, i))
        .collect();
    let failures = run.failures();
    let cached = run.cached();
    let summary = format!(
        "{} cell{} · {:.1} s{}{}",
        cells.len(),
        if cells.len() == 1 { "" } else { "s" },
        run.elapsed.as_secs_f64(),
        if cached > 0 {
            format!(" · {cached} from cache")
        } else {
            String::new()
        },
        if failures > 0 {
            format!(" · {failures} did not run to their end")
        } else {
            String::new()
        }
    );
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><div class=\"footer\">{}</div>{body}<div id=\"tooltip\" hidden></div><script>{SCRIPT}</script></body></html>\n",
        escape(&title),
        escape(&summary)
    )
}
