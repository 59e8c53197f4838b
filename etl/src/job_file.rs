//! The job file: TOML with parameters, sources, steps and sinks.
//!
//! ```toml
//! name = "daily_revenue"                  # optional
//!
//! [params]                                # ${name} in any string below;
//! data = "data/tpch"                      # --set name=value overrides
//!
//! [sources.orders]                        # a table the steps read
//! url = "${data}/orders/"
//! format = "parquet"                      # parquet, csv, tsv, json, delta; default: from the files
//! # version = 3                                  (delta: read this version, time travel)
//! # timestamp = "2026-12-01T10:00:00Z"           (delta: the newest version at or before it)
//! # header = true, delimiter = ",", quote = '"'   (csv and tsv)
//! # schema = "id BIGINT, name VARCHAR"           (the files' columns, instead of inferred)
//! # incremental = true                           (read only objects no successful run consumed)
//!
//! [[steps]]                               # run in order; each reads sources and earlier steps
//! name = "revenue"
//! sql = "SELECT ... FROM orders ..."
//!
//! [[sinks]]                               # where a step's rows are written
//! step = "revenue"
//! url = "out/revenue/"
//! format = "parquet"                      # parquet, csv, json, delta (a Delta Lake table)
//! partition_by = ["year", "month"]        # key=value/ folders
//! mode = "overwrite"                      # overwrite, append, merge, error_if_exists (default)
//! # merge_on = ["id"]                     (merge: the key; the step's rows replace those with its keys)
//! compression = "zstd(3)"                 # parquet: snappy, zstd(N), gzip(N), lz4, ...; csv/json: gzip, zstd, ...
//! rows_per_file = 1000000                 # most rows in one file
//! # file_size = "128MiB"                  (parquet, delta: files of about this size, instead)
//! ```
//!
//! [`JobFile::parse`] checks everything that can be checked without a
//! session and reports every problem at once, each with its line and key.

use std::collections::{BTreeMap, BTreeSet};

use squall_connectors::{CsvOptions, TableFormat};
use squall_delta::TimeTravel;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{EtlError, Result};
use crate::params::substitute;
use crate::problem::{Problem, line_of};

/// A parsed and shape-checked job file.
#[derive(Debug, Clone)]
pub struct JobFile {
    /// What errors call the file (its path as given).
    pub file: String,
    pub name: Option<String>,
    pub params: BTreeMap<String, String>,
    pub sources: Vec<SourceDef>,
    pub steps: Vec<StepDef>,
    pub sinks: Vec<SinkDef>,
}

/// A table the steps read.
#[derive(Debug, Clone)]
pub struct SourceDef {
    pub name: String,
    pub url: String,
    /// `None`: from the files' extensions.
    pub format: Option<TableFormat>,
    pub csv: CsvOptions,
    /// The files' columns as SQL column definitions (`id BIGINT, name
    /// VARCHAR`), instead of inferred from the files.
    pub schema: Option<String>,
    /// Read, in each run, only the objects no earlier successful run
    /// consumed (see [`crate::incremental`]).
    pub incremental: bool,
    /// A Delta Lake table (`format = "delta"`, or a `delta+` URL), and the
    /// snapshot to read (`version = N`; `None`: the newest).
    pub delta: Option<Option<TimeTravel>>,
    pub line: usize,
}

/// A named SQL query over sources and earlier steps.
#[derive(Debug, Clone)]
pub struct StepDef {
    pub name: String,
    pub sql: String,
    pub line: usize,
}

/// The file formats a sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFormat {
    Parquet,
    Csv,
    Json,
    /// A Delta Lake table: Parquet files committed to its transaction log.
    Delta,
}

impl SinkFormat {
    /// The name a job file gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Delta => "delta",
        }
    }

    /// The `STORED AS` name of the files it writes.
    pub fn sql_name(self) -> &'static str {
        match self {
            Self::Parquet | Self::Delta => "PARQUET",
            Self::Csv => "CSV",
            Self::Json => "JSON",
        }
    }

    /// The compression codecs DataFusion's writer of this format takes
    /// (Parquet's optionally with a level: `zstd(3)`).
    pub fn compressions(self) -> &'static [&'static str] {
        match self {
            Self::Parquet | Self::Delta => &[
                "uncompressed",
                "snappy",
                "gzip",
                "lz4",
                "lz4_raw",
                "zstd",
                "brotli",
            ],
            Self::Csv | Self::Json => &["uncompressed", "gzip", "bzip2", "xz", "zstd"],
        }
    }
}

/// What a sink does with what its destination already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// The destination's files are replaced, in the job's commit.
    Overwrite,
    /// The new files join the destination's.
    Append,
    /// The job does not run if the destination holds files (the default).
    ErrorIfExists,
    /// The destination is rewritten with the step's rows and those of its
    /// rows whose `merge_on` key the step does not have (an upsert).
    Merge,
}

/// Where a step's rows are written.
#[derive(Debug, Clone)]
pub struct SinkDef {
    pub step: String,
    /// A directory (always ends with `/`).
    pub url: String,
    pub format: SinkFormat,
    pub partition_by: Vec<String>,
    pub mode: WriteMode,
    pub compression: Option<String>,
    pub rows_per_file: Option<u64>,
    /// The key of a `merge` (columns of the step).
    pub merge_on: Vec<String>,
    /// Files of about this many bytes (Parquet and Delta sinks): the step
    /// is computed once into scratch, and its bytes per row there set the
    /// rows per file.
    pub target_file_bytes: Option<u64>,
    pub line: usize,
    /// The line of `partition_by`, for problems with its columns.
    pub partition_by_line: usize,
}

impl SinkDef {
    /// `sinks[i]`, as problems name it.
    pub fn key(index: usize) -> String {
        format!("sinks[{index}]")
    }
}

impl JobFile {
    /// Reads and parses the job file at `path`, `sets` (`NAME=VALUE`)
    /// overriding its `[params]`.
    pub fn load(path: &std::path::Path, sets: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| EtlError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text, sets)
    }

    /// Parses job file `text` (called `file` in errors).
    pub fn parse(file: &str, text: &str, sets: &[String]) -> Result<Self> {
        let mut reader = Reader {
            text,
            problems: Vec::new(),
            params: BTreeMap::new(),
        };
        let job = reader.job(sets);
        if reader.problems.is_empty() {
            Ok(JobFile {
                file: file.to_string(),
                ..job
            })
        } else {
            reader.problems.sort_by_key(|p| p.line);
            Err(EtlError::Invalid {
                file: file.to_string(),
                problems: reader.problems,
            })
        }
    }
}

/// Walks the parsed TOML, collecting problems.
struct Reader<'t> {
    text: &'t str,
    problems: Vec<Problem>,
    params: BTreeMap<String, String>,
}

type Value<'i> = Spanned<DeValue<'i>>;

impl<'t> Reader<'t> {
    fn problem(&mut self, span: std::ops::Range<usize>, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            // An empty span at 0: the file as a whole.
            line: if span == (0..0) {
                0
            } else {
                line_of(self.text, span.start)
            },
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn job(&mut self, sets: &[String]) -> JobFile {
        let empty = JobFile {
            file: String::new(),
            name: None,
            params: BTreeMap::new(),
            sources: Vec::new(),
            steps: Vec::new(),
            sinks: Vec::new(),
        };
        let root = match DeTable::parse(self.text) {
            Ok(root) => root,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                self.problem(span, "", format!("not valid TOML: {}", e.message().trim()));
                return empty;
            }
        };
        let root = root.into_inner();
        let mut fields = Fields::new(&root, "");
        let params = fields.take("params");
        let name = fields.take("name");
        let sources = fields.take("sources");
        let steps = fields.take("steps");
        let sinks = fields.take("sinks");
        fields.finish(self);

        self.read_params(params, sets);
        let name = name.and_then(|v| self.string(v, "name"));
        let sources = match sources {
            Some(v) => self.read_sources(v),
            None => Vec::new(),
        };
        let steps = match steps {
            Some(v) => self.read_steps(v),
            None => {
                self.problem(0..0, "steps", "a job needs at least one [[steps]] table");
                Vec::new()
            }
        };
        let sinks = match sinks {
            Some(v) => self.read_sinks(v, &steps),
            None => {
                self.problem(0..0, "sinks", "a job needs at least one [[sinks]] table");
                Vec::new()
            }
        };
        self.check_names(&sources, &steps);
        JobFile {
            name,
            params: self.params.clone(),
            sources,
            steps,
            sinks,
            ..empty
        }
    }

    fn read_params(&mut self, params: Option<&Value<'_>>, sets: &[String]) {
        if let Some(params) = params {
            match params.get_ref() {
                DeValue::Table(table) => {
                    for (key, value) in table.iter() {
                        let name = key.get_ref().to_string();
                        let path = format!("params.{name}");
                        if let Some(text) = self.raw_string(value, &path) {
                            self.params.insert(name, text);
                        }
                    }
                }
                _ => self.problem(params.span(), "params", "must be a table of strings"),
            }
        }
        for set in sets {
            match set.split_once('=') {
                Some((name, value)) if self.params.contains_key(name) => {
                    self.params.insert(name.to_string(), value.to_string());
                }
                Some((name, _)) => {
                    let declared: Vec<&str> = self.params.keys().map(String::as_str).collect();
                    self.problem(
                        0..0,
                        "",
                        format!(
                            "--set {name}: the job declares no such parameter in [params] (it declares: {})",
                            if declared.is_empty() { "none".to_string() } else { declared.join(", ") }
                        ),
                    );
                }
                None => self.problem(0..0, "", format!("--set '{set}' must look like NAME=VALUE")),
            }
        }
    }

    fn read_sources(&mut self, sources: &Value<'_>) -> Vec<SourceDef> {
        let DeValue::Table(table) = sources.get_ref() else {
            self.problem(
                sources.span(),
                "sources",
                "must be tables: [sources.NAME] with a url",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in table.iter() {
            let name = key.get_ref().to_string();
            let path = format!("sources.{name}");
            let DeValue::Table(source) = value.get_ref() else {
                self.problem(value.span(), &path, "must be a table with a url");
                continue;
            };
            let line = line_of(self.text, key.span().start);
            let mut fields = Fields::new(source, &path);
            let url = fields.take("url");
            let format = fields.take("format");
            let header = fields.take("header");
            let delimiter = fields.take("delimiter");
            let quote = fields.take("quote");
            let schema = fields.take("schema");
            let incremental = fields.take("incremental");
            let version = fields.take("version");
            let timestamp = fields.take("timestamp");
            fields.finish(self);
            let incremental = incremental
                .and_then(|v| self.boolean(v, &format!("{path}.incremental")))
                .unwrap_or(false);
            let schema = schema.and_then(|v| self.string(v, &format!("{path}.schema")));
            let url = match url {
                Some(v) => self.string(v, &format!("{path}.url")),
                None => {
                    self.problem(key.span(), &path, "has no url");
                    None
                }
            };
            let mut delta = url
                .as_deref()
                .is_some_and(|u| u.starts_with(squall_delta::DELTA_SCHEME_PREFIX));
            let format = format.and_then(|v| {
                let text = self.string(v, &format!("{path}.format"))?;
                if text.eq_ignore_ascii_case("delta") {
                    delta = true;
                    return None;
                }
                text.parse::<TableFormat>()
                    .map_err(|_| {
                        self.problem(
                            v.span(),
                            &format!("{path}.format"),
                            format!("unknown format '{text}' (expected parquet, csv, tsv, json or delta)"),
                        )
                    })
                    .ok()
            });
            let version = version.and_then(|v| {
                let parsed = match v.get_ref() {
                    DeValue::Integer(n) => TimeTravel::parse_version(n.as_str()),
                    DeValue::String(text) => TimeTravel::parse_version(text),
                    _ => Err("must be a commit version: 0, 1, 2, ...".to_string()),
                };
                let key = format!("{path}.version");
                if !delta {
                    self.problem(
                        v.span(),
                        &key,
                        "only a Delta source (format = \"delta\") has versions",
                    );
                    return None;
                }
                parsed.map_err(|e| self.problem(v.span(), &key, e)).ok()
            });
            let timestamp = timestamp.and_then(|v| {
                let key = format!("{path}.timestamp");
                let text = self.string(v, &key)?;
                if !delta {
                    self.problem(
                        v.span(),
                        &key,
                        "only a Delta source (format = \"delta\") has versions",
                    );
                    return None;
                }
                if version.is_some() {
                    self.problem(v.span(), &key, "give version or timestamp, not both");
                    return None;
                }
                TimeTravel::parse_timestamp(&text)
                    .map_err(|e| self.problem(v.span(), &key, e))
                    .ok()
            });
            let version = version.or(timestamp);
            if delta && incremental {
                self.problem(
                    key.span(),
                    &format!("{path}.incremental"),
                    "a Delta source cannot be incremental yet: read a version with `version`, or its folder of files",
                );
            }
            if delta && schema.is_some() {
                self.problem(
                    key.span(),
                    &format!("{path}.schema"),
                    "a Delta table's columns come from its log: leave out `schema`",
                );
            }
            let mut csv = CsvOptions::default();
            if let Some(header) = header.and_then(|v| self.boolean(v, &format!("{path}.header"))) {
                csv.header = header;
            }
            if let Some(v) = delimiter {
                csv.delimiter = self.one_byte(v, &format!("{path}.delimiter"));
            }
            if let Some(v) = quote
                && let Some(q) = self.one_byte(v, &format!("{path}.quote"))
            {
                csv.quote = q;
            }
            if incremental
                && let Some(url) = &url
                && url.contains(['*', '?', '['])
            {
                self.problem(
                    key.span(),
                    &format!("{path}.url"),
                    "an incremental source is a folder, not a glob: its new objects are found by listing it",
                );
            }
            if let Some(url) = url {
                out.push(SourceDef {
                    name,
                    url,
                    format,
                    csv,
                    schema,
                    incremental,
                    delta: delta.then_some(version),
                    line,
                });
            }
        }
        out
    }

    fn read_steps(&mut self, steps: &Value<'_>) -> Vec<StepDef> {
        let Some(tables) = self.array_of_tables(steps, "steps") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, (span, table)) in tables.into_iter().enumerate() {
            let path = format!("steps[{i}]");
            let mut fields = Fields::new(table, &path);
            let name = fields.take("name");
            let sql = fields.take("sql");
            fields.finish(self);
            let name = match name {
                Some(v) => self.identifier(v, &format!("{path}.name")),
                None => {
                    self.problem(span.clone(), &path, "has no name");
                    None
                }
            };
            let sql = match sql {
                Some(v) => self.string(v, &format!("{path}.sql")),
                None => {
                    self.problem(span.clone(), &path, "has no sql");
                    None
                }
            };
            if let (Some(name), Some(sql)) = (name, sql) {
                out.push(StepDef {
                    name,
                    sql,
                    line: line_of(self.text, span.start),
                });
            }
        }
        out
    }

    fn read_sinks(&mut self, sinks: &Value<'_>, steps: &[StepDef]) -> Vec<SinkDef> {
        let Some(tables) = self.array_of_tables(sinks, "sinks") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut urls = BTreeSet::new();
        for (i, (span, table)) in tables.into_iter().enumerate() {
            let path = SinkDef::key(i);
            let line = line_of(self.text, span.start);
            let mut fields = Fields::new(table, &path);
            let step = fields.take("step");
            let url = fields.take("url");
            let format = fields.take("format");
            let partition_by = fields.take("partition_by");
            let mode = fields.take("mode");
            let compression = fields.take("compression");
            let rows_per_file = fields.take("rows_per_file");
            let file_size = fields.take("file_size");
            let merge_on = fields.take("merge_on");
            fields.finish(self);
            let step = match step {
                Some(v) => self.string(v, &format!("{path}.step")).filter(|name| {
                    let known = steps.iter().any(|s| &s.name == name);
                    if !known && !steps.is_empty() {
                        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
                        self.problem(
                            v.span(),
                            &format!("{path}.step"),
                            format!("no step is named '{name}' (steps: {})", names.join(", ")),
                        );
                    }
                    known
                }),
                None => {
                    self.problem(span.clone(), &path, "names no step");
                    None
                }
            };
            let url = match url {
                Some(v) => self.string(v, &format!("{path}.url")).map(|u| {
                    let dir = if u.ends_with('/') { u } else { format!("{u}/") };
                    // One sink inside another's folder: an overwrite of the
                    // outer one would delete the inner one's files.
                    let nested = urls
                        .iter()
                        .find(|other: &&String| dir.starts_with(other.as_str()) || other.starts_with(&dir))
                        .cloned();
                    if let Some(other) = nested {
                        self.problem(
                            v.span(),
                            &format!("{path}.url"),
                            if other == dir {
                                format!("another sink writes to {dir} too")
                            } else {
                                format!("{dir} and another sink's {other} are one inside the other: give each sink a folder of its own")
                            },
                        );
                    }
                    urls.insert(dir.clone());
                    dir
                }),
                None => {
                    self.problem(span.clone(), &path, "has no url");
                    None
                }
            };
            let format = match format {
                Some(v) => self.string(v, &format!("{path}.format")).and_then(|f| {
                    match f.to_ascii_lowercase().as_str() {
                        "parquet" => Some(SinkFormat::Parquet),
                        "csv" => Some(SinkFormat::Csv),
                        "json" | "ndjson" => Some(SinkFormat::Json),
                        "delta" => Some(SinkFormat::Delta),
                        other => {
                            self.problem(
                                v.span(),
                                &format!("{path}.format"),
                                format!("unknown format '{other}' (expected parquet, csv, json or delta)"),
                            );
                            None
                        }
                    }
                }),
                None => Some(SinkFormat::Parquet),
            };
            let partition_by_line =
                partition_by.map_or(line, |v| line_of(self.text, v.span().start));
            let partition_by = match partition_by {
                Some(v) => self.strings(v, &format!("{path}.partition_by"))
                    .into_iter()
                    .filter(|column| {
                        let plain = is_plain_name(column);
                        if !plain {
                            self.problem(
                                v.span(),
                                &format!("{path}.partition_by"),
                                format!("'{column}' is not a plain column name (letters, digits and _): rename it in the step"),
                            );
                        }
                        plain
                    })
                    .collect(),
                None => Vec::new(),
            };
            let mode = match mode {
                Some(v) => self.string(v, &format!("{path}.mode")).and_then(|m| {
                    match m.to_ascii_lowercase().as_str() {
                        "overwrite" => Some(WriteMode::Overwrite),
                        "append" => Some(WriteMode::Append),
                        "error_if_exists" | "error-if-exists" => Some(WriteMode::ErrorIfExists),
                        "merge" => Some(WriteMode::Merge),
                        other => {
                            self.problem(
                                v.span(),
                                &format!("{path}.mode"),
                                format!(
                                    "unknown mode '{other}' (expected overwrite, append, merge or error_if_exists)"
                                ),
                            );
                            None
                        }
                    }
                }),
                None => Some(WriteMode::ErrorIfExists),
            };
            let compression = compression.and_then(|v| {
                let text = self.string(v, &format!("{path}.compression"))?;
                let codec = text.split('(').next().unwrap_or("").to_ascii_lowercase();
                let format = format?;
                if format.compressions().contains(&codec.as_str()) {
                    Some(text)
                } else {
                    self.problem(
                        v.span(),
                        &format!("{path}.compression"),
                        format!(
                            "{} files cannot be compressed with '{text}' (expected one of: {})",
                            format.sql_name().to_ascii_lowercase(),
                            format.compressions().join(", ")
                        ),
                    );
                    None
                }
            });
            let rows_per_file = rows_per_file.and_then(|v| match v.get_ref() {
                DeValue::Integer(n) => {
                    let digits = n.as_str().replace('_', "");
                    match u64::from_str_radix(&digits, n.radix()) {
                        Ok(n) if n > 0 => Some(n),
                        _ => {
                            self.problem(
                                v.span(),
                                &format!("{path}.rows_per_file"),
                                "must be a positive whole number",
                            );
                            None
                        }
                    }
                }
                _ => {
                    self.problem(
                        v.span(),
                        &format!("{path}.rows_per_file"),
                        "must be a positive whole number",
                    );
                    None
                }
            });
            let key = format!("{path}.file_size");
            let target_file_bytes = file_size.and_then(|v| {
                let parsed = match v.get_ref() {
                    DeValue::Integer(n) => {
                        n.as_str().replace('_', "").parse::<u64>().map_err(|_| {
                            "must be a size like \"128MiB\" or a number of bytes".to_string()
                        })
                    }
                    DeValue::String(text) => squall_connectors::byte_sizes::parse_bytes(text),
                    _ => Err("must be a size like \"128MiB\" or a number of bytes".to_string()),
                };
                let bytes = parsed.map_err(|e| self.problem(v.span(), &key, e)).ok()?;
                if bytes < 1 << 20 {
                    self.problem(v.span(), &key, "must be at least 1MiB");
                    return None;
                }
                if rows_per_file.is_some() {
                    self.problem(v.span(), &key, "give rows_per_file or file_size, not both");
                    return None;
                }
                if matches!(format, Some(SinkFormat::Csv | SinkFormat::Json)) {
                    self.problem(
                        v.span(),
                        &key,
                        "only Parquet and Delta sinks take file_size (use rows_per_file)",
                    );
                    return None;
                }
                Some(bytes)
            });
            let merge_key = format!("{path}.merge_on");
            let merge_on = match &merge_on {
                Some(v) => self
                    .strings(v, &merge_key)
                    .into_iter()
                    .filter(|column| {
                        let plain = is_plain_name(column);
                        if !plain {
                            self.problem(
                                v.span(),
                                &merge_key,
                                format!("'{column}' is not a plain column name (letters, digits and _): rename it in the step"),
                            );
                        }
                        plain
                    })
                    .collect(),
                None => Vec::new(),
            };
            match (mode, merge_on.is_empty()) {
                (Some(WriteMode::Merge), true) => self.problem(
                    span.clone(),
                    &merge_key,
                    "mode = \"merge\" needs merge_on: the columns that identify a row",
                ),
                (Some(m), false) if m != WriteMode::Merge => {
                    self.problem(span.clone(), &merge_key, "merge_on is for mode = \"merge\"")
                }
                _ => {}
            }
            if mode == Some(WriteMode::Merge)
                && matches!(format, Some(SinkFormat::Csv | SinkFormat::Json))
            {
                self.problem(
                    span.clone(),
                    &format!("{path}.mode"),
                    "only Parquet and Delta sinks merge (their files keep the columns' types)",
                );
            }
            if let (Some(step), Some(url), Some(format), Some(mode)) = (step, url, format, mode) {
                out.push(SinkDef {
                    step,
                    url,
                    format,
                    partition_by,
                    mode,
                    compression,
                    rows_per_file,
                    merge_on,
                    target_file_bytes,
                    line,
                    partition_by_line,
                });
            }
        }
        out
    }

    /// Sources and steps share one namespace of tables.
    fn check_names(&mut self, sources: &[SourceDef], steps: &[StepDef]) {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for s in sources {
            seen.insert(s.name.to_ascii_lowercase(), format!("source '{}'", s.name));
        }
        for (i, step) in steps.iter().enumerate() {
            if let Some(other) = seen.insert(
                step.name.to_ascii_lowercase(),
                format!("step '{}'", step.name),
            ) {
                self.problems.push(Problem {
                    line: step.line,
                    key: format!("steps[{i}].name"),
                    message: format!("'{}' is already the name of {other}", step.name),
                });
            }
        }
    }

    fn array_of_tables<'a, 'i>(
        &mut self,
        value: &'a Value<'i>,
        key: &str,
    ) -> Option<Vec<(std::ops::Range<usize>, &'a DeTable<'i>)>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(
                value.span(),
                key,
                format!("must be a list of tables: [[{key}]]"),
            );
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(t) => out.push((item.span(), t)),
                _ => self.problem(item.span(), &format!("{key}[{i}]"), "must be a table"),
            }
        }
        Some(out)
    }

    /// A string as written, without parameters substituted.
    fn raw_string(&mut self, value: &Value<'_>, key: &str) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                self.problem(
                    value.span(),
                    key,
                    format!("must be a string, not {}", other.type_str()),
                );
                None
            }
        }
    }

    /// A string with its `${params}` substituted.
    fn string(&mut self, value: &Value<'_>, key: &str) -> Option<String> {
        let raw = self.raw_string(value, key)?;
        match substitute(&raw, &self.params) {
            Ok(text) => Some(text),
            Err(missing) => {
                for name in missing {
                    self.problem(
                        value.span(),
                        key,
                        format!("${{{name}}} is not a parameter: declare it in [params] or pass --set {name}=VALUE"),
                    );
                }
                None
            }
        }
    }

    fn boolean(&mut self, value: &Value<'_>, key: &str) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.problem(value.span(), key, "must be true or false");
                None
            }
        }
    }

    fn strings(&mut self, value: &Value<'_>, key: &str) -> Vec<String> {
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(value.span(), key, "must be a list of strings");
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| self.string(item, key))
            .collect()
    }

    /// A name that is a plain SQL identifier (so that steps read each other unquoted).
    fn identifier(&mut self, value: &Value<'_>, key: &str) -> Option<String> {
        let name = self.string(value, key)?;
        if is_plain_name(&name) {
            Some(name)
        } else {
            self.problem(
                value.span(),
                key,
                format!("'{name}' is not a plain name: use letters, digits and _, starting with a letter"),
            );
            None
        }
    }

    fn one_byte(&mut self, value: &Value<'_>, key: &str) -> Option<u8> {
        let text = self.string(value, key)?;
        match text.as_str() {
            "tab" | "\\t" | "\t" => Some(b'\t'),
            s if s.len() == 1 && s.is_ascii() => Some(s.as_bytes()[0]),
            _ => {
                self.problem(
                    value.span(),
                    key,
                    format!("'{text}' is not one ASCII character"),
                );
                None
            }
        }
    }
}

/// Letters, digits and `_`, not starting with a digit: a name SQL reads unquoted.
fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The keys of one table: taken one by one; the rest are unknown.
struct Fields<'a, 'i> {
    table: &'a DeTable<'i>,
    path: String,
    taken: BTreeSet<String>,
}

impl<'a, 'i> Fields<'a, 'i> {
    fn new(table: &'a DeTable<'i>, path: &str) -> Self {
        Self {
            table,
            path: path.to_string(),
            taken: BTreeSet::new(),
        }
    }

    fn take(&mut self, key: &str) -> Option<&'a Value<'i>> {
        self.taken.insert(key.to_string());
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    /// Reports the keys nobody took.
    fn finish(self, reader: &mut Reader<'_>) {
        let known: Vec<&str> = self.taken.iter().map(String::as_str).collect();
        for (key, _) in self.table.iter() {
            let name = key.get_ref().as_ref();
            if !self.taken.contains(name) {
                let path = if self.path.is_empty() {
                    name.to_string()
                } else {
                    format!("{}.{name}", self.path)
                };
                reader.problem(
                    key.span(),
                    &path,
                    format!("unknown key (known here: {})", known.join(", ")),
                );
            }
        }
    }
}
