//! Edits of a notebook's text, block by block, as an editor makes them:
//! replace a block's Markdown, insert a block after another, delete one.
//! Each returns the new text of the whole file, the lines of the other
//! blocks untouched; the caller parses it before keeping it, so an edit
//! that breaks the notebook is refused rather than saved.

use crate::error::{NotebookError, Result};
use crate::notebook_file::Notebook;

/// What an edit does (as JSON: `{"replace": {"block": 1, "text": "..."}}`,
/// `{"insert": {"after": 1, "text": "..."}}`, `{"delete": {"block": 1}}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Edit {
    /// Block `block`'s lines become `text` (its whole Markdown, fences
    /// included for a cell).
    Replace { block: usize, text: String },
    /// `text` goes after block `after` (`None`: before the first block).
    Insert { after: Option<usize>, text: String },
    /// Block `block` goes.
    Delete { block: usize },
}

impl Edit {
    /// The text of `notebook`'s file with this edit made.
    pub fn apply(&self, notebook: &Notebook) -> Result<String> {
        let lines: Vec<&str> = notebook.source.lines().collect();
        let span = |block: usize| {
            notebook
                .spans
                .get(block)
                .cloned()
                .ok_or_else(|| NotebookError::Invalid {
                    file: notebook.file.clone(),
                    line: 0,
                    message: format!(
                        "there is no block {block}: the notebook has {}",
                        notebook.spans.len()
                    ),
                })
        };
        let (range, new): (std::ops::Range<usize>, Vec<&str>) = match self {
            Edit::Replace { block, text } => (span(*block)?, text.lines().collect()),
            Edit::Insert { after, text } => {
                let at = match after {
                    Some(block) => span(*block)?.end,
                    None => notebook.spans.first().map_or(lines.len(), |s| s.start),
                };
                // A blank line on each side keeps prose from running into it.
                let mut new = vec![""];
                new.extend(text.lines());
                new.push("");
                (at..at, new)
            }
            Edit::Delete { block } => (span(*block)?, Vec::new()),
        };
        if let Edit::Replace { text, .. } | Edit::Insert { text, .. } = self {
            // A block must close what it opens: an open fence would
            // swallow the blocks after it and still parse.
            closed_fences(text).map_err(|message| NotebookError::Invalid {
                file: notebook.file.clone(),
                line: range.start + 1,
                message,
            })?;
        }
        let mut out: Vec<&str> = lines[..range.start].to_vec();
        out.extend(new);
        out.extend(&lines[range.end..]);
        let mut text = out.join("\n");
        text.push('\n');
        Ok(text)
    }
}

/// Whether every ``` fence `text` opens it also closes.
fn closed_fences(text: &str) -> std::result::Result<(), String> {
    let mut open: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        if !line.trim_start().starts_with("```") {
            continue;
        }
        open = match open {
            None => Some(i + 1),
            Some(_) if line.trim() == "```" => None,
            Some(at) => {
                return Err(format!(
                    "the ``` fence opened at line {at} of the block is not closed before another opens"
                ));
            }
        };
    }
    match open {
        Some(at) => Err(format!(
            "the ``` fence opened at line {at} of the block is not closed"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "+++\n[params]\ny = 1\n+++\n# Title\n\n```sql a\nSELECT {{ y }} AS v\n```\n\nProse.\n\n```sql\nSELECT v FROM a\n```\n";

    fn notebook(text: &str) -> Notebook {
        Notebook::parse("n.md", text, &[]).unwrap()
    }

    #[test]
    fn a_cell_is_replaced_with_its_parameters_and_the_rest_kept() {
        let nb = notebook(TEXT);
        let edit = Edit::Replace {
            block: 1,
            text: "```sql a\nSELECT {{ y }} + 1 AS v\n```".into(),
        };
        let text = edit.apply(&nb).unwrap();
        assert_eq!(text, TEXT.replace("{{ y }} AS v", "{{ y }} + 1 AS v"));
        let cells: Vec<String> = notebook(&text).sql_cells().map(|c| c.sql.clone()).collect();
        assert_eq!(cells, ["SELECT 1 + 1 AS v", "SELECT v FROM a"]);
    }

    #[test]
    fn a_block_that_leaves_a_fence_open_is_refused() {
        let nb = notebook(TEXT);
        for text in ["```sql a\nSELECT 1", "```sql a\nSELECT 1\n```sql\n```"] {
            let err = Edit::Replace {
                block: 1,
                text: text.into(),
            }
            .apply(&nb)
            .unwrap_err()
            .to_string();
            assert!(err.contains("is not closed"), "{err}");
        }
    }

    #[test]
    fn blocks_are_inserted_and_deleted() {
        let nb = notebook(TEXT);
        let inserted = Edit::Insert {
            after: Some(1),
            text: "```sql b\nSELECT 2 AS w\n```".into(),
        }
        .apply(&nb)
        .unwrap();
        let names: Vec<Option<String>> = notebook(&inserted)
            .sql_cells()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(names, [Some("a".into()), Some("b".into()), None]);
        assert!(inserted.contains("```\n\n```sql b\nSELECT 2 AS w\n```\n\n\nProse."));

        let first = Edit::Insert {
            after: None,
            text: "Before.".into(),
        }
        .apply(&nb)
        .unwrap();
        assert!(first.starts_with("+++\n[params]\ny = 1\n+++\n\nBefore.\n\n# Title\n"));

        let deleted = Edit::Delete { block: 3 }.apply(&nb).unwrap();
        assert_eq!(notebook(&deleted).sql_cells().count(), 1);
        assert!(deleted.ends_with("Prose.\n\n"), "{deleted:?}");
        assert!(
            Edit::Delete { block: 9 }
                .apply(&nb)
                .unwrap_err()
                .to_string()
                .contains("there is no block 9")
        );
    }
}
