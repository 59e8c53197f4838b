//! The notebook file: Markdown with front matter (TOML between `+++`
//! lines, or YAML between `---` lines: the same keys), `sql` cells and
//! `chart` cells.
//!
//! ````markdown
//! +++
//! title = "Revenue by year"
//! backend = "process"               # local, process or lambda; --backend wins
//! [tables]
//! orders = "{{ data }}/orders/"       # parameters work here too
//! [params]
//! data = "data/tpch"
//! min_year = "1994"                 # {{ min_year }} in SQL; --set min_year=1996
//! +++
//!
//! Prose, as Markdown.
//!
//! ```sql revenue                    <- a named cell: later cells read it as `revenue`
//! SELECT ... FROM orders WHERE year >= {{ min_year }}
//! ```
//!
//! ```chart
//! type = "bar"                      # bar, line, area, scatter, histogram
//! cell = "revenue"                  # the named cell it draws
//! x = "year"
//! y = "revenue"
//! series = "priority"               # optional: one colour per value
//! title = "Revenue per year"
//! ```
//! ````

use std::collections::BTreeMap;

use crate::error::{NotebookError, Result};

/// A parsed notebook.
#[derive(Debug, Clone)]
pub struct Notebook {
    /// What errors call the file.
    pub file: String,
    pub title: Option<String>,
    /// Where its cells run unless the command says otherwise: one of
    /// [`BACKENDS`].
    pub backend: Option<String>,
    /// Tables the cells read: name, URL, line of the declaration.
    pub tables: Vec<(String, String, usize)>,
    /// Parameters with their values (defaults, then `--set`).
    pub params: BTreeMap<String, String>,
    pub blocks: Vec<Block>,
    /// Per block, the lines of `source` it is written on (0-based, end
    /// excluded; a cell's fences included): what an editor replaces.
    pub spans: Vec<std::ops::Range<usize>>,
    /// The file's text as read (what `--format md` writes back).
    pub source: String,
}

/// One part of the notebook, in file order.
#[derive(Debug, Clone)]
pub enum Block {
    Prose(String),
    Sql(SqlCell),
    Chart(ChartCell),
}

/// A query.
#[derive(Debug, Clone)]
pub struct SqlCell {
    /// Later cells read a named cell as a table.
    pub name: Option<String>,
    /// With parameters substituted.
    pub sql: String,
    /// The line of the opening fence.
    pub line: usize,
}

/// A chart of a named cell's rows.
#[derive(Debug, Clone)]
pub struct ChartCell {
    pub spec: crate::chart::ChartSpec,
    pub line: usize,
}

impl Notebook {
    /// Reads the notebook at `path`, `sets` (`NAME=VALUE`) overriding its parameters.
    pub fn load(path: &std::path::Path, sets: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| NotebookError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text, sets)
    }

    /// Parses notebook `text` (called `file` in errors).
    pub fn parse(file: &str, text: &str, sets: &[String]) -> Result<Self> {
        let invalid = |line: usize, message: String| NotebookError::Invalid {
            file: file.to_string(),
            line,
            message,
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut at = 0;
        let mut notebook = Notebook {
            file: file.to_string(),
            title: None,
            backend: None,
            tables: Vec::new(),
            params: BTreeMap::new(),
            blocks: Vec::new(),
            spans: Vec::new(),
            source: text.to_string(),
        };
        // TOML between `+++` lines, or YAML between `---` lines (as Hugo,
        // Jekyll and Evidence write it).
        let fence = lines.first().map(|l| l.trim_end());
        if let Some(fence @ ("+++" | "---")) = fence {
            let end = lines
                .iter()
                .skip(1)
                .position(|l| l.trim_end() == fence)
                .map(|i| i + 1)
                .ok_or_else(|| invalid(1, format!("the front matter ({fence}) is not closed")))?;
            let text = lines[1..end].join("\n");
            let table = if fence == "+++" {
                toml_front_matter(&text)
            } else {
                crate::yaml_table::read(&text, "front matter")
            };
            table
                .and_then(|table| read_front_matter(&text, table, &mut notebook))
                .map_err(|(line, message)| invalid(line + 1, message))?;
            at = end + 1;
        }
        for set in sets {
            match set.split_once('=') {
                Some((name, value)) if notebook.params.contains_key(name) => {
                    notebook.params.insert(name.to_string(), value.to_string());
                }
                Some((name, _)) => {
                    return Err(invalid(
                        0,
                        format!(
                            "--set {name}: the notebook declares no such parameter in its front matter's [params]"
                        ),
                    ));
                }
                None => {
                    return Err(invalid(
                        0,
                        format!("--set '{set}' must look like NAME=VALUE"),
                    ));
                }
            }
        }
        for (_, url, line) in &mut notebook.tables {
            *url = substitute(url, &notebook.params).map_err(|name| {
                invalid(
                    *line,
                    format!("{{{{ {name} }}}} is not a parameter: declare it in the front matter's [params]"),
                )
            })?;
        }
        let mut prose = String::new();
        let mut prose_lines: Option<std::ops::Range<usize>> = None;
        while at < lines.len() {
            let line = lines[at];
            if line
                .trim_start()
                .starts_with(crate::render_markdown::RESULT_BEGIN)
            {
                // A result embedded by an earlier `--format md` run: not
                // part of the notebook.
                at = lines[at..]
                    .iter()
                    .position(|l| l.trim() == crate::render_markdown::RESULT_END)
                    .map_or(lines.len(), |i| at + i + 1);
                continue;
            }
            match fence_info(line) {
                Some(info) if info == "sql" || info.starts_with("sql ") || info == "chart" => {
                    let open = at + 1;
                    let close = lines[at + 1..]
                        .iter()
                        .position(|l| l.trim() == "```")
                        .map(|i| at + 1 + i)
                        .ok_or_else(|| {
                            invalid(open, "this cell's ``` fence is not closed".into())
                        })?;
                    let body = lines[at + 1..close].join("\n");
                    if !prose.trim().is_empty() {
                        notebook
                            .blocks
                            .push(Block::Prose(substitute_known(&prose, &notebook.params)));
                        notebook.spans.extend(prose_lines.clone());
                    }
                    prose.clear();
                    prose_lines = None;
                    notebook.spans.push(at..close + 1);
                    if info == "chart" {
                        let spec = crate::chart::ChartSpec::parse(&body)
                            .map_err(|(line, message)| invalid(open + line, message))?;
                        notebook
                            .blocks
                            .push(Block::Chart(ChartCell { spec, line: open }));
                    } else {
                        let name = info
                            .strip_prefix("sql")
                            .map(str::trim)
                            .filter(|n| !n.is_empty());
                        if let Some(name) = name
                            && !is_plain_name(name)
                        {
                            return Err(invalid(
                                open,
                                format!(
                                    "cell name '{name}' is not a plain name: use letters, digits and _"
                                ),
                            ));
                        }
                        let sql = substitute(&body, &notebook.params)
                            .map_err(|name| invalid(open, format!("{{{{ {name} }}}} is not a parameter: declare it in the front matter's [params]")))?;
                        notebook.blocks.push(Block::Sql(SqlCell {
                            name: name.map(str::to_string),
                            sql,
                            line: open,
                        }));
                    }
                    at = close + 1;
                }
                _ => {
                    prose.push_str(line);
                    prose.push('\n');
                    let start = prose_lines.as_ref().map_or(at, |l| l.start);
                    prose_lines = Some(start..at + 1);
                    at += 1;
                }
            }
        }
        if !prose.trim().is_empty() {
            notebook
                .blocks
                .push(Block::Prose(substitute_known(&prose, &notebook.params)));
            notebook.spans.extend(prose_lines);
        }
        let mut seen = BTreeMap::new();
        for cell in notebook.sql_cells() {
            if let Some(name) = &cell.name
                && let Some(first) = seen.insert(name.to_ascii_lowercase(), cell.line)
            {
                return Err(invalid(
                    cell.line,
                    format!("a cell named '{name}' is already at line {first}"),
                ));
            }
        }
        for block in &notebook.blocks {
            if let Block::Chart(chart) = block
                && !seen.contains_key(&chart.spec.cell.to_ascii_lowercase())
            {
                return Err(invalid(
                    chart.line,
                    format!(
                        "the chart draws cell '{}', which no ```sql cell is named",
                        chart.spec.cell
                    ),
                ));
            }
        }
        Ok(notebook)
    }

    /// The index in [`Notebook::sql_cells`] of block `block`, if it is a
    /// SQL cell.
    pub fn cell_of_block(&self, block: usize) -> Option<usize> {
        matches!(self.blocks.get(block)?, Block::Sql(_)).then(|| {
            self.blocks[..block]
                .iter()
                .filter(|b| matches!(b, Block::Sql(_)))
                .count()
        })
    }

    /// The block of SQL cell `cell` (an index in [`Notebook::sql_cells`]).
    pub fn block_of_cell(&self, cell: usize) -> Option<usize> {
        self.blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| matches!(b, Block::Sql(_)))
            .nth(cell)
            .map(|(i, _)| i)
    }

    /// The SQL cells, in file order.
    pub fn sql_cells(&self) -> impl Iterator<Item = &SqlCell> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Sql(cell) => Some(cell),
            _ => None,
        })
    }
}

/// The info string of a line opening a fence (```` ```sql name ```` gives
/// `sql name`), if it is one.
pub(crate) fn fence_info(line: &str) -> Option<&str> {
    line.trim_start().strip_prefix("```").map(str::trim)
}

/// Letters, digits and `_`, not starting with a digit.
fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `{{ name }}` replaced by its value; the first unknown name is the error.
fn substitute(
    text: &str,
    params: &BTreeMap<String, String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = after[..end].trim();
        out.push_str(params.get(name).ok_or_else(|| name.to_string())?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Prose with the parameters it names replaced (other `{{ ... }}` stay).
fn substitute_known(text: &str, params: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (name, value) in params {
        for pattern in [format!("{{{{ {name} }}}}"), format!("{{{{{name}}}}}")] {
            out = out.replace(&pattern, value);
        }
    }
    out
}

/// The backends a notebook may name (as `squall --backend` does).
pub const BACKENDS: [&str; 3] = ["local", "process", "lambda"];

/// The front matter's TOML as a table; errors carry a line relative to it.
fn toml_front_matter(text: &str) -> std::result::Result<toml::Table, (usize, String)> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    toml::from_str(text).map_err(|e| {
        (
            e.span().map_or(1, |s| line_of(s.start)),
            format!("front matter is not valid TOML: {}", e.message()),
        )
    })
}

/// Reads the front matter (as a TOML table, whatever its syntax); errors
/// carry a line relative to it.
fn read_front_matter(
    text: &str,
    table: toml::Table,
    notebook: &mut Notebook,
) -> std::result::Result<(), (usize, String)> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    for (key, value) in table {
        let find = |needle: &str| text.find(needle).map_or(1, line_of);
        match (key.as_str(), value) {
            ("title", toml::Value::String(title)) => notebook.title = Some(title),
            ("backend", toml::Value::String(backend)) => {
                if !BACKENDS.contains(&backend.as_str()) {
                    return Err((
                        find("backend"),
                        format!("backend '{backend}' is not one of {}", BACKENDS.join(", ")),
                    ));
                }
                notebook.backend = Some(backend);
            }
            ("tables", toml::Value::Table(tables)) => {
                for (name, url) in tables {
                    let line = find(&name);
                    match url {
                        toml::Value::String(url) if is_plain_name(&name) => {
                            notebook.tables.push((name, url, line))
                        }
                        _ => {
                            return Err((
                                line,
                                format!("tables.{name} must be a URL string, under a plain name"),
                            ));
                        }
                    }
                }
            }
            ("params", toml::Value::Table(params)) => {
                for (name, value) in params {
                    let text = match value {
                        toml::Value::String(s) => s,
                        toml::Value::Integer(i) => i.to_string(),
                        toml::Value::Float(f) => f.to_string(),
                        toml::Value::Boolean(b) => b.to_string(),
                        _ => {
                            return Err((
                                find(&name),
                                format!("params.{name} must be a string, number or boolean"),
                            ));
                        }
                    };
                    notebook.params.insert(name, text);
                }
            }
            (key, _) => {
                return Err((
                    find(key),
                    format!(
                        "unknown or mistyped front matter key '{key}' (known: title, backend, tables, params)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "+++\ntitle = \"T\"\n[tables]\norders = \"data/orders/\"\n[params]\nyear = 1995\n+++\n# Heading\n\nSome prose.\n\n```sql totals\nSELECT {{ year }} AS y\n```\n\nMore.\n\n```chart\ntype = \"bar\"\ncell = \"totals\"\nx = \"y\"\ny = \"y\"\n```\n```sql\nSELECT * FROM totals\n```\n";

    #[test]
    fn cells_prose_and_front_matter_are_read_with_their_lines() {
        let nb = Notebook::parse("n.md", TEXT, &["year=1996".into()]).unwrap();
        assert_eq!(nb.title.as_deref(), Some("T"));
        assert_eq!(nb.tables, vec![("orders".into(), "data/orders/".into(), 3)]);
        let cells: Vec<_> = nb.sql_cells().collect();
        assert_eq!(cells.len(), 2);
        assert_eq!(cells[0].name.as_deref(), Some("totals"));
        assert_eq!(cells[0].sql, "SELECT 1996 AS y");
        assert_eq!(cells[0].line, 12);
        assert!(matches!(nb.blocks[0], Block::Prose(_)));
        assert!(matches!(nb.blocks[3], Block::Chart(ref c) if c.line == 18));
        assert_eq!(nb.spans, [7..11, 11..14, 14..17, 17..23, 23..26]);
    }

    #[test]
    fn yaml_front_matter_reads_as_toml_does() {
        let yaml = "---\ntitle: T\nbackend: process\ntables:\n  orders: data/orders/\nparams:\n  year: 1995\n  mode: AIR\n---\n```sql\nSELECT {{ year }} AS y, '{{ mode }}' AS m\n```\n";
        let nb = Notebook::parse("n.md", yaml, &["year=1996".into()]).unwrap();
        assert_eq!(nb.title.as_deref(), Some("T"));
        assert_eq!(nb.backend.as_deref(), Some("process"));
        assert_eq!(nb.tables, vec![("orders".into(), "data/orders/".into(), 4)]);
        let cells: Vec<_> = nb.sql_cells().collect();
        assert_eq!(cells[0].sql, "SELECT 1996 AS y, 'AIR' AS m");
        assert_eq!(cells[0].line, 10);
        let err = |text: &str| Notebook::parse("n.md", text, &[]).unwrap_err().to_string();
        assert_eq!(
            err("---\ntitle: T\n"),
            "n.md:1: the front matter (---) is not closed"
        );
        assert!(
            err("---\ntitle: T\ncolour: red\n---\n")
                .starts_with("n.md:3: unknown or mistyped front matter key 'colour'")
        );
        let bad = err("---\ntitle: T\ntables: [unclosed\n---\n");
        assert!(
            bad.starts_with("n.md:") && bad.contains("front matter is not valid YAML"),
            "{bad}"
        );
        assert_eq!(
            err("---\nparams:\n  when:\n---\n"),
            "n.md:3: params.when has no value"
        );
    }

    #[test]
    fn parameters_are_replaced_in_prose_before_and_after_cells() {
        let text = "+++\n[params]\nmode = \"AIR\"\n+++\n# By {{ mode }}\n```sql\nSELECT 1\n```\nStill {{mode}}.\n";
        let nb = Notebook::parse("n.md", text, &["mode=RAIL".into()]).unwrap();
        let prose: Vec<&str> = nb
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Prose(p) => Some(p.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(prose, ["# By RAIL\n", "Still RAIL.\n"]);
    }

    #[test]
    fn mistakes_name_their_line() {
        let err = |text: &str| Notebook::parse("n.md", text, &[]).unwrap_err().to_string();
        assert_eq!(
            err("```sql\nSELECT 1\n"),
            "n.md:1: this cell's ``` fence is not closed"
        );
        assert_eq!(
            err("x\n```sql a\nSELECT {{ nope }}\n```\n"),
            "n.md:2: {{ nope }} is not a parameter: declare it in the front matter's [params]"
        );
        assert_eq!(
            err("```sql a\nSELECT 1\n```\n```sql a\nSELECT 2\n```\n"),
            "n.md:4: a cell named 'a' is already at line 1"
        );
        assert!(
            err("```chart\ntype = \"bar\"\ncell = \"zz\"\nx = \"a\"\ny = \"b\"\n```\n")
                .starts_with("n.md:1: the chart draws cell 'zz'")
        );
        assert!(
            err("+++\ncolour = 1\n+++\n")
                .starts_with("n.md:2: unknown or mistyped front matter key 'colour'")
        );
        assert_eq!(
            err("+++\ntitle = \"x\"\nbackend = \"cloud\"\n+++\n"),
            "n.md:3: backend 'cloud' is not one of local, process, lambda"
        );
        let nb = Notebook::parse("n.md", "+++\nbackend = \"process\"\n+++\n", &[]).unwrap();
        assert_eq!(nb.backend.as_deref(), Some("process"));
    }
}
