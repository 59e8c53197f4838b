//! `--report FILE`: a run's report ([`squall::jobs::run_report`]) written for
//! tools as JSON (`.json`, schema in `docs/report.md`) or for people as one
//! self-contained HTML page (`.html`): the stage graph, a timeline of every
//! task attempt, task durations, bytes and requests per stage, and the cost.
//! `squall report IN.json OUT.html` draws a saved JSON report.
//!
//! The page needs no network: its script, styles and data are inline. The
//! file appears whole or not at all (written beside, then renamed).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use squall::jobs::Session;
use squall::jobs::run_report::{REPORT_SCHEMA, RunRecorder, RunReport};

const TEMPLATE: &str = include_str!("report.html");
const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// What a report file holds, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Html,
}

impl ReportFormat {
    /// The format `path` names by its extension; an error naming the file otherwise.
    pub fn of(path: &Path) -> Result<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("json") => Ok(Self::Json),
            Some("html" | "htm") => Ok(Self::Html),
            _ => bail!(
                "report file {}: name it .html (a page to open in a browser) or .json (the data, for tools)",
                path.display()
            ),
        }
    }
}

/// The report as one HTML page.
pub fn render_html(report: &RunReport) -> Result<String> {
    // `<` escaped, so that no string in the data can end the script element.
    let data = serde_json::to_string(report)?.replace('<', "\\u003c");
    let title = match report.queries.first() {
        Some(q) => format!("Squall report: {}", first_line(&q.sql, 80)),
        None => "Squall report".to_string(),
    };
    Ok(fill(
        TEMPLATE,
        &[
            ("VERSION", env!("CARGO_PKG_VERSION")),
            ("TITLE", &escape_html(&title)),
            ("STYLE", STYLE),
            ("SCRIPT", SCRIPT),
            ("DATA", &data),
        ],
    ))
}

/// `template` with each `{{KEY}}` replaced by its value, in one pass (a
/// value is never searched for placeholders).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").and_then(|end| {
            let key = &after[..end];
            values
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (end, *v))
        }) {
            Some((end, value)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Writes `report` to `path` in the format its name says.
pub fn write(report: &RunReport, path: &Path) -> Result<()> {
    let bytes = match ReportFormat::of(path)? {
        ReportFormat::Json => serde_json::to_vec_pretty(report)?,
        ReportFormat::Html => render_html(report)?.into_bytes(),
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing report {}", path.display()))?;
    std::io::Write::write_all(&mut file, &bytes)
        .with_context(|| format!("writing report {}", path.display()))?;
    file.persist(path)
        .with_context(|| format!("writing report {}", path.display()))?;
    Ok(())
}

/// Checks that every path names a report format, before anything runs.
pub fn check_paths(paths: &[PathBuf]) -> Result<()> {
    for path in paths {
        ReportFormat::of(path)?;
    }
    Ok(())
}

/// Writes what `recorder` recorded of the queries `session` ran to each of
/// `paths`, costed for the session's backend.
pub fn write_run(recorder: &RunRecorder, session: &Session, paths: &[PathBuf]) -> Result<()> {
    let backend = session.backend();
    let billed = backend.billed_memory_bytes();
    let report = recorder.report(
        backend.name(),
        billed.unwrap_or(squall::jobs::cost::DEFAULT_FUNCTION_MEMORY_BYTES),
        billed.is_some(),
        squall::jobs::cost::CloudPrices::default(),
    );
    for path in paths {
        write(&report, path)?;
    }
    Ok(())
}

/// `squall report IN.json OUT`: a saved JSON report drawn again.
pub fn convert(input: &Path, output: &Path) -> Result<()> {
    ReportFormat::of(output)?;
    let text =
        std::fs::read(input).with_context(|| format!("reading report {}", input.display()))?;
    let report: RunReport = serde_json::from_slice(&text).with_context(|| {
        format!(
            "report {} is not a Squall run report ({REPORT_SCHEMA})",
            input.display()
        )
    })?;
    if report.schema != REPORT_SCHEMA {
        bail!(
            "report {} has schema {}; this squall reads {REPORT_SCHEMA}",
            input.display(),
            report.schema
        );
    }
    write(&report, output)
}

fn first_line(text: &str, max_chars: usize) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(
            ReportFormat::of(Path::new("a/run.JSON")).unwrap(),
            ReportFormat::Json
        );
        assert_eq!(
            ReportFormat::of(Path::new("run.html")).unwrap(),
            ReportFormat::Html
        );
        let error = ReportFormat::of(Path::new("run.txt"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("run.txt") && error.contains(".html"),
            "{error}"
        );
    }

    #[test]
    fn data_cannot_close_the_script_element() {
        let report = RunReport {
            schema: REPORT_SCHEMA.into(),
            backend: "local".into(),
            function_memory_bytes: 1 << 30,
            billed: false,
            prices: squall::jobs::cost::CloudPrices::default().into(),
            queries: vec![squall::jobs::run_report::QueryReport {
                sql: "select '</script><b>'".into(),
                elapsed_ms: 1,
                error: None,
                plan: String::new(),
                stages: vec![],
                attempts: vec![],
                cost: Default::default(),
            }],
        };
        let html = render_html(&report).unwrap();
        assert_eq!(
            fill("a{{X}}b{{Y}}", &[("X", "{{Y}}"), ("Y", "2")]),
            "a{{Y}}b2"
        );
        assert!(!html.contains("'</script>"), "{html}");
        assert!(html.contains("<title>Squall report: select '&lt;/script&gt;&lt;b&gt;'</title>"));
        assert!(!html.contains("{{"), "a placeholder is left");
    }
}
