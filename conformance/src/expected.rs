//! The expected-failures list: records Squall cannot pass yet, grouped by cause.
//!
//! ```text
//! # cause: recursive-cte — recursive queries are refused
//! cte.slt:123
//! cte.slt:140
//! ```
//! A `# cause: TAG — TEXT` line starts a group; every `FILE:LINE` below it
//! (a record of `test_files/FILE` starting at `LINE`) belongs to that cause.
//! Other `#` lines are comments. The list may only shrink: the suite fails
//! when a listed record passes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::error::{ConformanceError, Result};

/// A cause of failures, and the records it explains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cause {
    pub tag: String,
    pub text: String,
    pub records: Vec<String>,
}

/// The parsed list, causes in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedFailures {
    pub causes: Vec<Cause>,
}

impl ExpectedFailures {
    /// Reads the list at `path` (an absent file is an empty list).
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&path.display().to_string(), &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ConformanceError::Setup(format!("{}: {e}", path.display()))),
        }
    }

    /// Parses the list's text; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Self> {
        let mut causes: Vec<Cause> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let err = |reason: &str| ConformanceError::ExpectedList {
                path: path.to_string(),
                line: i + 1,
                reason: reason.to_string(),
            };
            if let Some(rest) = line.strip_prefix("# cause:") {
                let (tag, text) = rest.split_once('—').unwrap_or((rest, ""));
                let tag = tag.trim();
                if tag.is_empty() || tag.contains(char::is_whitespace) {
                    return Err(err("a cause needs a one-word tag: `# cause: TAG — TEXT`"));
                }
                causes.push(Cause {
                    tag: tag.to_string(),
                    text: text.trim().to_string(),
                    records: Vec::new(),
                });
            } else if line.is_empty() || line.starts_with('#') {
                continue;
            } else {
                let Some((file, number)) = line.rsplit_once(':') else {
                    return Err(err("expected FILE:LINE"));
                };
                if file.is_empty() || number.parse::<u32>().is_err() {
                    return Err(err("expected FILE:LINE"));
                }
                let cause = causes
                    .last_mut()
                    .ok_or_else(|| err("a record before any `# cause:` line"))?;
                cause.records.push(line.to_string());
            }
        }
        let mut seen = BTreeMap::new();
        for cause in &causes {
            for record in &cause.records {
                if let Some(other) = seen.insert(record.clone(), cause.tag.clone()) {
                    return Err(ConformanceError::ExpectedList {
                        path: path.to_string(),
                        line: 0,
                        reason: format!("{record} is listed under both {other} and {}", cause.tag),
                    });
                }
            }
        }
        Ok(Self { causes })
    }

    /// Record → cause tag.
    pub fn by_record(&self) -> BTreeMap<&str, &str> {
        self.causes
            .iter()
            .flat_map(|c| c.records.iter().map(move |r| (r.as_str(), c.tag.as_str())))
            .collect()
    }

    /// Number of listed records.
    pub fn len(&self) -> usize {
        self.causes.iter().map(|c| c.records.len()).sum()
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The list's text, as [`ExpectedFailures::parse`] reads it.
    pub fn render(&self, header: &str) -> String {
        let mut out = String::from(header);
        for cause in self.causes.iter().filter(|c| !c.records.is_empty()) {
            let _ = writeln!(out, "\n# cause: {} — {}", cause.tag, cause.text);
            for r in &cause.records {
                let _ = writeln!(out, "{r}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_causes_and_records() {
        let list = ExpectedFailures::parse(
            "x",
            "# header\n# cause: recursive — recursive CTEs\ncte.slt:12\n\n# cause: types — interval results\nx/y.slt:3\n",
        )
        .unwrap();
        assert_eq!(list.causes.len(), 2);
        assert_eq!(list.by_record()["x/y.slt:3"], "types");
        assert_eq!(list.len(), 2);
        let again = ExpectedFailures::parse("x", &list.render("# header\n")).unwrap();
        assert_eq!(again, list);
    }

    #[test]
    fn rejects_records_without_a_cause_duplicates_and_bad_lines() {
        assert!(ExpectedFailures::parse("x", "cte.slt:1\n").is_err());
        assert!(ExpectedFailures::parse("x", "# cause: a — b\ncte.slt\n").is_err());
        let dup = "# cause: a — b\ncte.slt:1\n# cause: c — d\ncte.slt:1\n";
        let err = ExpectedFailures::parse("x", dup).unwrap_err().to_string();
        assert!(err.contains("cte.slt:1"), "{err}");
    }
}
