//! YAML read into the TOML table the same text in TOML would give, so that
//! front matter (YAML between `---` lines, TOML between `+++` lines) and
//! chart cells are checked by one reader whichever syntax they are in:
//!
//! ```yaml
//! ---
//! title: TPC-H revenue
//! backend: process
//! tables:
//!   orders: "{{ data }}/orders/"
//! params:
//!   data: data/tpch
//!   since: 1993
//! ---
//! ```

use yaml_rust2::{Yaml, YamlLoader};

/// `text` (called `what` in errors: "front matter", "chart") as a table;
/// errors carry a line relative to it.
pub fn read(text: &str, what: &str) -> Result<toml::Table, (usize, String)> {
    let documents = YamlLoader::load_from_str(text).map_err(|e| {
        (
            e.marker().line().max(1),
            format!("{what} is not valid YAML: {}", e.info()),
        )
    })?;
    match documents.into_iter().next() {
        None | Some(Yaml::Null) => Ok(toml::Table::new()),
        Some(Yaml::Hash(map)) => {
            let mut table = toml::Table::new();
            for (key, value) in map {
                let key = name(&key, "", text)?;
                let value = to_toml(value, &key, text)?;
                table.insert(key, value);
            }
            Ok(table)
        }
        Some(_) => Err((1, format!("{what} must be keys and values (`key: value`)"))),
    }
}

/// A key, which must be a name; `path` is where it is (for errors).
fn name(key: &Yaml, path: &str, text: &str) -> Result<String, (usize, String)> {
    match key {
        Yaml::String(name) => Ok(name.clone()),
        Yaml::Integer(n) => Ok(n.to_string()),
        _ => Err((
            line_of(text, path),
            format!("keys{} must be names", in_path(path)),
        )),
    }
}

fn in_path(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" under {path}")
    }
}

/// The line of the last part of `path` in `text` (1 if not found).
fn line_of(text: &str, path: &str) -> usize {
    let last = path.rsplit('.').next().unwrap_or(path);
    if last.is_empty() {
        return 1;
    }
    text.find(last)
        .map_or(1, |offset| text[..offset].matches('\n').count() + 1)
}

/// `value` (at `path`) as TOML.
fn to_toml(value: Yaml, path: &str, text: &str) -> Result<toml::Value, (usize, String)> {
    let fail = |message: String| Err((line_of(text, path), message));
    Ok(match value {
        Yaml::String(s) => toml::Value::String(s),
        Yaml::Integer(i) => toml::Value::Integer(i),
        Yaml::Boolean(b) => toml::Value::Boolean(b),
        Yaml::Real(r) => match r.parse::<f64>() {
            Ok(f) => toml::Value::Float(f),
            Err(_) => return fail(format!("{path}: '{r}' is not a number")),
        },
        Yaml::Array(items) => toml::Value::Array(
            items
                .into_iter()
                .map(|item| to_toml(item, path, text))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Hash(map) => {
            let mut table = toml::Table::new();
            for (key, value) in map {
                let key = name(&key, path, text)?;
                let value = to_toml(value, &format!("{path}.{key}"), text)?;
                table.insert(key, value);
            }
            toml::Value::Table(table)
        }
        Yaml::Null => return fail(format!("{path} has no value")),
        Yaml::Alias(_) | Yaml::BadValue => {
            return fail(format!(
                "{path}: anchors and aliases are not read; write the value"
            ));
        }
    })
}

/// Whether `text` reads as YAML keys (`key: value`) rather than TOML
/// (`key = value`): its first line that is not blank or a comment.
pub fn looks_like_yaml(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|line| match (line.find(':'), line.find('=')) {
            (Some(colon), Some(equals)) => colon < equals,
            (Some(_), None) => true,
            _ => false,
        })
}
