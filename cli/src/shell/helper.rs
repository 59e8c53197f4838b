//! Line editing help for the shell: a statement is complete at its ';'
//! (so it may span lines), and Tab completes SQL keywords, table and column
//! names, dot commands and their arguments.

use std::sync::{Arc, RwLock};

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use super::dot_command::COMMANDS;

/// The names Tab offers besides SQL keywords, refreshed after every input.
#[derive(Debug, Default, Clone)]
pub struct Vocabulary {
    pub tables: Vec<String>,
    pub columns: Vec<String>,
}

/// The shell's rustyline helper.
pub struct ShellHelper {
    vocabulary: Arc<RwLock<Vocabulary>>,
    files: FilenameCompleter,
}

impl std::fmt::Debug for ShellHelper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellHelper").finish_non_exhaustive()
    }
}

impl ShellHelper {
    pub fn new(vocabulary: Arc<RwLock<Vocabulary>>) -> Self {
        Self {
            vocabulary,
            files: FilenameCompleter::new(),
        }
    }
}

/// Keywords after which a table name comes.
const TABLE_BEFORE: &[&str] = &["FROM", "JOIN", "INTO", "TABLE", "UPDATE", "DESCRIBE"];

/// Whether `input` is ready to run: empty, a dot command, or SQL ending in ';'.
pub fn is_complete(input: &str) -> bool {
    let input = input.trim();
    input.is_empty() || input.starts_with('.') || input.ends_with(';')
}

/// Completions of the word ending at `pos` of `line`: where it starts, and the candidates.
pub fn complete(line: &str, pos: usize, vocabulary: &Vocabulary) -> (usize, Vec<String>) {
    let before = &line[..pos];
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before[start..];
    let trimmed = before.trim_start();
    if trimmed.starts_with('.') {
        let mut words = trimmed.split_whitespace();
        let command = words.next().unwrap_or("");
        // The command itself.
        if !trimmed.contains(char::is_whitespace) {
            let names = COMMANDS
                .iter()
                .map(|(name, _, _)| name.to_string())
                .filter(|name| name.starts_with(trimmed))
                .collect();
            return (before.len() - trimmed.len(), names);
        }
        let choices: Vec<String> = match command {
            ".schema" => vocabulary.tables.clone(),
            ".mode" => ["table", "csv", "json", "line"].map(String::from).to_vec(),
            ".timer" => ["on", "off"].map(String::from).to_vec(),
            ".backend" => ["local", "process", "lambda"].map(String::from).to_vec(),
            _ => Vec::new(),
        };
        return (start, with_prefix(choices, word, false));
    }
    if word.is_empty() {
        return (start, Vec::new());
    }
    let lowercase = word.chars().all(|c| !c.is_uppercase());
    let keywords = datafusion::sql::sqlparser::keywords::ALL_KEYWORDS
        .iter()
        .map(|k| {
            if lowercase {
                k.to_lowercase()
            } else {
                k.to_string()
            }
        });
    // After FROM, JOIN and the like only a table fits.
    let previous = before[..start]
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .rfind(|w| !w.is_empty())
        .unwrap_or("")
        .to_ascii_uppercase();
    if TABLE_BEFORE.contains(&previous.as_str()) {
        return (start, with_prefix(vocabulary.tables.clone(), word, true));
    }
    let names: Vec<String> = vocabulary
        .tables
        .iter()
        .chain(&vocabulary.columns)
        .cloned()
        .collect();
    // Names first (they are what a user types most), then keywords.
    let names = with_prefix(names, word, true);
    let mut candidates = names;
    for keyword in with_prefix(keywords.collect(), word, true) {
        if !candidates.contains(&keyword) {
            candidates.push(keyword);
        }
    }
    (start, candidates)
}

fn with_prefix(words: Vec<String>, prefix: &str, ignore_case: bool) -> Vec<String> {
    let prefix_lower = prefix.to_lowercase();
    let mut matching: Vec<String> = words
        .into_iter()
        .filter(|w| {
            if ignore_case {
                w.to_lowercase().starts_with(&prefix_lower)
            } else {
                w.starts_with(prefix)
            }
        })
        .collect();
    matching.sort();
    matching.dedup();
    matching
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let trimmed = line[..pos].trim_start();
        if (trimmed.starts_with(".read ") || trimmed.starts_with(".output ")) && pos > 0 {
            return self.files.complete(line, pos, ctx);
        }
        let vocabulary = self.vocabulary.read().unwrap_or_else(|e| e.into_inner());
        let (start, words) = complete(line, pos, &vocabulary);
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}

impl Validator for ShellHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if is_complete(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary() -> Vocabulary {
        Vocabulary {
            tables: vec!["lineitem".into(), "orders".into()],
            columns: vec!["l_orderkey".into(), "o_orderkey".into()],
        }
    }

    #[test]
    fn statements_end_at_their_semicolon() {
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT 1\nFROM t"));
        assert!(is_complete("SELECT 1\nFROM t;  "));
        assert!(is_complete(".tables"));
        assert!(is_complete("   "));
    }

    #[test]
    fn names_and_keywords_complete() {
        let v = vocabulary();
        assert_eq!(
            complete("SELECT * FROM line", 18, &v),
            (14, vec!["lineitem".into()])
        );
        let (_, words) = complete("SELECT l_o", 10, &v);
        assert_eq!(words, vec!["l_orderkey".to_string()]);
        // Keywords in the case they are typed.
        let (_, words) = complete("sel", 3, &v);
        assert!(words.contains(&"select".to_string()), "{words:?}");
        let (_, words) = complete("SEL", 3, &v);
        assert!(words.contains(&"SELECT".to_string()), "{words:?}");
        assert_eq!(complete("SELECT ", 7, &v).1, Vec::<String>::new());
    }

    #[test]
    fn dot_commands_and_their_arguments_complete() {
        let v = vocabulary();
        assert_eq!(complete(".ta", 3, &v), (0, vec![".tables".into()]));
        assert_eq!(complete(".schema or", 10, &v), (8, vec!["orders".into()]));
        assert_eq!(complete(".mode c", 7, &v), (6, vec!["csv".into()]));
    }
}
