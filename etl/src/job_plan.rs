//! A job checked against a session: every source registered, every step
//! planned, every sink's columns and destination checked, before anything
//! runs; and what the run will do (which steps are computed once).

use std::collections::{BTreeMap, BTreeSet};

use squall_connectors::Location;
use squall_connectors::sink_staging::{self, SinkDestination};
use squall_connectors::table::one_line;
use squall_jobs::Session;

use crate::error::{EtlError, Result};
use crate::job_file::{JobFile, SinkDef, SinkFormat, WriteMode};
use crate::problem::Problem;

/// A job file that plans on its session.
#[derive(Debug, Clone)]
pub struct JobPlan {
    pub job: JobFile,
    /// Steps read by more than one consumer (a sink or a later step): the
    /// run computes each once, into scratch, and its readers read that.
    pub materialized: BTreeSet<String>,
    /// How many sinks and later steps read each step.
    pub readers: BTreeMap<String, usize>,
    /// Each Delta sink's table version before the job read anything (its
    /// sources included): what its commit must follow. `None`: no table.
    pub delta_read_versions: BTreeMap<usize, Option<u64>>,
}

impl JobPlan {
    /// Registers the job's sources and steps (as views) in `session` and
    /// checks every sink; every problem found is reported at once.
    pub async fn check(session: &Session, job: JobFile) -> Result<Self> {
        let mut problems = Vec::new();
        // Before any source is read: a source that is the sink's own table
        // is then read at this version or later, and a commit after
        // another writer's is refused.
        let mut delta_read_versions = BTreeMap::new();
        for (i, sink) in job.sinks.iter().enumerate() {
            if sink.format != SinkFormat::Delta {
                continue;
            }
            let version = match squall_delta::DeltaLocation::new(&sink.url) {
                Ok(table) => squall_delta::read_version(&table).await,
                Err(e) => Err(e),
            };
            match version {
                Ok(version) => {
                    delta_read_versions.insert(i, version);
                }
                Err(e) => problems.push(Problem {
                    line: sink.line,
                    key: format!("{}.url", SinkDef::key(i)),
                    message: one_line(&e.to_string()),
                }),
            }
            if let Some(source) = job.sources.iter().find(|s| s.incremental) {
                problems.push(Problem {
                    line: sink.line,
                    key: format!("{}.format", SinkDef::key(i)),
                    message: format!(
                        "a Delta sink cannot be written by a job with an incremental source ('{}') yet: the Delta commit and the record of what was read would be two commits",
                        source.name
                    ),
                });
            }
        }
        for source in &job.sources {
            if let Err((key, message)) = register_source(session, source).await {
                problems.push(Problem {
                    line: source.line,
                    key: format!("sources.{}{key}", source.name),
                    message,
                });
            }
        }
        let mut readers: BTreeMap<String, usize> = job
            .steps
            .iter()
            .map(|s| (s.name.to_ascii_lowercase(), 0))
            .collect();
        // Steps that did not plan: their readers fail too, and say nothing new.
        let mut failed: BTreeSet<String> = job
            .sources
            .iter()
            .filter(|s| {
                problems
                    .iter()
                    .any(|p| p.key == format!("sources.{}", s.name))
            })
            .map(|s| s.name.to_ascii_lowercase())
            .collect();
        for (i, step) in job.steps.iter().enumerate() {
            let key = format!("steps[{i}].sql");
            let name = step.name.to_ascii_lowercase();
            let tables = match tables_read(session, &step.sql) {
                Ok(tables) => tables,
                Err(message) => {
                    problems.push(Problem {
                        line: step.line,
                        key,
                        message,
                    });
                    failed.insert(name);
                    continue;
                }
            };
            for table in &tables {
                if let Some(n) = readers.get_mut(table)
                    && *n < usize::MAX
                {
                    *n += 1;
                }
            }
            if tables.iter().any(|t| failed.contains(t)) {
                failed.insert(name);
                continue;
            }
            if let Err(e) = define_view(session, &step.name, &step.sql).await {
                problems.push(Problem {
                    line: step.line,
                    key,
                    message: one_line(&e.to_string()),
                });
                failed.insert(name);
            }
        }
        for (i, sink) in job.sinks.iter().enumerate() {
            let step = sink.step.to_ascii_lowercase();
            *readers.entry(step.clone()).or_default() += 1;
            if failed.contains(&step) {
                continue;
            }
            problems.extend(check_sink(session, i, sink).await);
        }
        if !problems.is_empty() {
            problems.sort_by_key(|p| p.line);
            return Err(EtlError::Invalid {
                file: job.file.clone(),
                problems,
            });
        }
        let materialized = job
            .steps
            .iter()
            .filter(|s| {
                let name = s.name.to_ascii_lowercase();
                readers.get(&name).copied().unwrap_or(0) > 1
                    // Its bytes per row size a sink's files, or a merge reads it twice.
                    || job.sinks.iter().any(|sink| {
                        (sink.target_file_bytes.is_some() || sink.mode == WriteMode::Merge)
                            && sink.step.eq_ignore_ascii_case(&name)
                    })
            })
            .map(|s| s.name.clone())
            .collect();
        Ok(Self {
            job,
            materialized,
            readers,
            delta_read_versions,
        })
    }

    /// What a run would do, for `squall run --dry-run`: the steps, and each
    /// sink with its destination and the stage graph of its write.
    pub async fn describe(&self, session: &Session) -> Result<String> {
        let job = &self.job;
        let mut out = format!(
            "Job {}{}: {} source{}, {} step{}, {} sink{}; nothing is written by a dry run.\n",
            job.name.as_deref().unwrap_or("(unnamed)"),
            format_args!(" ({})", job.file),
            job.sources.len(),
            plural(job.sources.len()),
            job.steps.len(),
            plural(job.steps.len()),
            job.sinks.len(),
            plural(job.sinks.len()),
        );
        if !job.sources.is_empty() {
            out.push_str("\nSources:\n");
            for s in &job.sources {
                let format = s.format.map_or("format from the files".to_string(), |f| {
                    format!("{f:?}").to_lowercase()
                });
                let incremental = if s.incremental {
                    ", incremental: only objects no successful run consumed"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "  {:<16} {} ({format}{incremental})\n",
                    s.name, s.url
                ));
            }
        }
        if job.sources.iter().any(|s| s.incremental) {
            let place = crate::incremental::StatePlace::of(job)?;
            out.push_str(&format!(
                "  what runs consumed is recorded in {}\n",
                place.location()?
            ));
        }
        out.push_str("\nSteps, in order:\n");
        for s in &job.steps {
            let readers = self
                .readers
                .get(&s.name.to_ascii_lowercase())
                .copied()
                .unwrap_or(0);
            let sized = job
                .sinks
                .iter()
                .any(|k| k.target_file_bytes.is_some() && k.step == s.name);
            let merged = job
                .sinks
                .iter()
                .any(|k| k.mode == WriteMode::Merge && k.step == s.name);
            let how = if self.materialized.contains(&s.name) && readers == 1 && sized {
                "computed once into scratch, its bytes per row sizing its sink's files".to_string()
            } else if self.materialized.contains(&s.name) && readers == 1 && merged {
                "computed once into scratch, read twice by its merge".to_string()
            } else if self.materialized.contains(&s.name) {
                format!("computed once into scratch, read by {readers}")
            } else if readers == 0 {
                "read by nothing".to_string()
            } else {
                "planned into its reader".to_string()
            };
            out.push_str(&format!("  {:<16} {how}\n", s.name));
        }
        out.push_str("\nSinks, published together when every one is written:\n");
        for (i, sink) in job.sinks.iter().enumerate() {
            let sink_error = |source| EtlError::Sink {
                index: i,
                url: sink.url.clone(),
                source: Box::new(source),
            };
            let existing = if sink.format == SinkFormat::Delta {
                0
            } else {
                sink_staging::visible_files(&destination(sink)?)
                    .await
                    .map_err(|source| EtlError::Commit { source })?
                    .len()
            };
            let delta_version = if sink.format == SinkFormat::Delta {
                let write = delta_write(session, sink, None).await.map_err(sink_error)?;
                Some(
                    squall_delta::read_version(&write.table)
                        .await
                        .map_err(|e| sink_error(e.into()))?,
                )
            } else {
                None
            };
            let what = match (delta_version, sink.mode, existing) {
                (Some(None), _, _) => "creates the Delta table".to_string(),
                (Some(Some(v)), WriteMode::Merge, _) => format!(
                    "merge on {}: one commit after Delta version {v} rewrites the table with the step's rows and its rows of other keys",
                    sink.merge_on.join(", ")
                ),
                (None, WriteMode::Merge, n) => format!(
                    "merge on {}: rewrites the destination with the step's rows and the rows of its {n} file{} with other keys",
                    sink.merge_on.join(", "),
                    plural(n)
                ),
                (Some(Some(v)), WriteMode::Overwrite, _) => {
                    format!("overwrite: one commit after Delta version {v} removes its files")
                }
                (Some(Some(v)), _, _) => {
                    format!("append: one commit after Delta version {v}")
                }
                (None, WriteMode::Overwrite, 0) => {
                    "overwrite (the destination is empty)".to_string()
                }
                (None, WriteMode::Overwrite, n) => {
                    format!("overwrite: replaces its {n} file{}", plural(n))
                }
                (None, WriteMode::Append, n) => format!("append: joins its {n} file{}", plural(n)),
                (None, WriteMode::ErrorIfExists, _) => {
                    "error_if_exists: the destination is empty".to_string()
                }
            };
            out.push_str(&format!(
                "  [{i}] step {} -> {} as {}{}; {}\n",
                sink.step,
                sink.url,
                sink.format.name(),
                if sink.partition_by.is_empty() {
                    String::new()
                } else {
                    format!(", partitioned by {}", sink.partition_by.join(", "))
                },
                what
            ));
            let input = sink_input(session, sink).await.map_err(sink_error)?;
            let explain = session
                .explain(&copy_sql(sink, &input))
                .await
                .map_err(sink_error)?;
            for line in explain.lines() {
                out.push_str(&format!("      {line}\n"));
            }
        }
        Ok(out)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The tables (lower-cased names) the one query `sql` reads.
fn tables_read(session: &Session, sql: &str) -> std::result::Result<Vec<String>, String> {
    let statements = session
        .statements(sql)
        .map_err(|e| one_line(&e.to_string()))?;
    let [statement] = statements.as_slice() else {
        return Err(format!(
            "a step is one query; this has {} statements",
            statements.len()
        ));
    };
    let is_query = matches!(
        statement,
        datafusion::sql::parser::Statement::Statement(s)
            if matches!(**s, datafusion::sql::sqlparser::ast::Statement::Query(_))
    );
    if !is_query {
        return Err("a step is one query (SELECT, WITH or VALUES)".into());
    }
    let tables = session
        .context()
        .state()
        .resolve_table_references(statement)
        .map_err(|e| one_line(&e.to_string()))?;
    Ok(tables
        .iter()
        .map(|t| t.table().to_ascii_lowercase())
        .collect())
}

/// Registers `source` as a table; on failure, the key at fault below the
/// source (`""` or `.schema`) and what is wrong.
async fn register_source(
    session: &Session,
    source: &crate::job_file::SourceDef,
) -> std::result::Result<(), (&'static str, String)> {
    if let Some(time_travel) = source.delta {
        let url = source
            .url
            .strip_prefix(squall_delta::DELTA_SCHEME_PREFIX)
            .unwrap_or(&source.url);
        let mut location = squall_delta::DeltaLocation::parse_with_version(url)
            .map_err(|e| ("", one_line(&e.to_string())))?;
        if time_travel.is_some() {
            location.time_travel = time_travel;
        }
        return session
            .register_delta_table(&source.name, &location)
            .await
            .map_err(|e| ("", one_line(&e.to_string())));
    }
    let schema = match &source.schema {
        Some(text) => Some(
            file_schema(session, text)
                .await
                .map_err(|message| (".schema", message))?,
        ),
        None => None,
    };
    let table = squall_connectors::table::listing_table_with_schema(
        &session.context().state(),
        &source.name,
        &source.url,
        source.format,
        &source.csv,
        schema,
    )
    .await
    .map_err(|e| ("", one_line(&e.to_string())))?;
    session
        .context()
        .register_table(source.name.as_str(), table)
        .map_err(|e| ("", one_line(&e.to_string())))?;
    Ok(())
}

/// The Arrow schema of SQL column definitions (`id BIGINT, name VARCHAR`),
/// with DataFusion's types for them (text as `Utf8`, which every file
/// reader produces).
async fn file_schema(
    session: &Session,
    text: &str,
) -> std::result::Result<datafusion::arrow::datatypes::SchemaRef, String> {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::Token;
    let mut parser = Parser::new(&GenericDialect {})
        .try_with_sql(text)
        .map_err(|e| format!("not column definitions: {e}"))?;
    let columns = parser
        .parse_comma_separated(Parser::parse_column_def)
        .map_err(|e| format!("not column definitions (name TYPE, ...): {e}"))?;
    if parser.peek_token().token != Token::EOF {
        return Err(format!(
            "not column definitions (name TYPE, ...): unexpected {}",
            parser.peek_token()
        ));
    }
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST(NULL AS {}) AS {}", c.data_type, c.name))
        .collect();
    let typed = session
        .schema_of(&format!("SELECT {}", select.join(", ")))
        .await
        .map_err(|e| one_line(&e.to_string()))?;
    let fields: Vec<Field> = typed
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8View => Field::new(f.name(), DataType::Utf8, true),
            other => Field::new(f.name(), other.clone(), true),
        })
        .collect();
    Ok(std::sync::Arc::new(Schema::new(fields)))
}

/// Defines (or redefines) step `name` as a view of `sql`.
pub(crate) async fn define_view(
    session: &Session,
    name: &str,
    sql: &str,
) -> squall_jobs::Result<()> {
    session
        .sql(&format!("CREATE OR REPLACE VIEW {name} AS {sql}"))
        .await?;
    Ok(())
}

/// The problems of sink `index`: its columns, options and destination.
async fn check_sink(session: &Session, index: usize, sink: &SinkDef) -> Vec<Problem> {
    let key = SinkDef::key(index);
    let mut problems = Vec::new();
    let problem = |line: usize, key: String, message: String| Problem { line, key, message };
    let schema = match session
        .schema_of(&format!("SELECT * FROM {}", sink.step))
        .await
    {
        Ok(schema) => schema,
        Err(e) => {
            return vec![problem(
                sink.line,
                format!("{key}.step"),
                one_line(&e.to_string()),
            )];
        }
    };
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    for column in &sink.merge_on {
        if !columns.contains(&column.as_str()) {
            problems.push(problem(
                sink.line,
                format!("{key}.merge_on"),
                format!(
                    "step '{}' produces no column '{column}' (it produces: {})",
                    sink.step,
                    columns.join(", ")
                ),
            ));
        }
    }
    for column in &sink.partition_by {
        if !columns.contains(&column.as_str()) {
            problems.push(problem(
                sink.partition_by_line,
                format!("{key}.partition_by"),
                format!(
                    "step '{}' produces no column '{column}' (it produces: {})",
                    sink.step,
                    columns.join(", ")
                ),
            ));
        }
    }
    if !sink.partition_by.is_empty() && sink.partition_by.len() >= columns.len() {
        problems.push(problem(
            sink.partition_by_line,
            format!("{key}.partition_by"),
            "partitioning by every column leaves no column for the files".into(),
        ));
    }
    if !problems.is_empty() {
        return problems;
    }
    let destination = match destination(sink) {
        Ok(d) => d,
        Err(e) => {
            return vec![problem(
                sink.line,
                format!("{key}.url"),
                one_line(&e.to_string()),
            )];
        }
    };
    if sink.format == SinkFormat::Delta {
        let checked = match delta_write(session, sink, None).await {
            Ok(write) => squall_delta::check_target(&write)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(message) = checked {
            problems.push(problem(sink.line, format!("{key}.url"), one_line(&message)));
        }
    } else if sink.mode == WriteMode::ErrorIfExists {
        match sink_staging::visible_files(&destination).await {
            Ok(files) if !files.is_empty() => problems.push(problem(
                sink.line,
                format!("{key}.url"),
                format!(
                    "{} already holds {} file{} (mode is error_if_exists): set mode = \"overwrite\" or \"append\" to write there",
                    sink.url,
                    files.len(),
                    plural(files.len())
                ),
            )),
            Ok(_) => {}
            Err(e) => problems.push(problem(sink.line, format!("{key}.url"), one_line(&e.to_string()))),
        }
    }
    let planned = match sink_input(session, sink).await {
        Ok(input) => session
            .plan_stages(&copy_sql(sink, &input))
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = planned {
        problems.push(problem(sink.line, key, one_line(&e.to_string())));
    }
    problems
}

/// What `sink`'s `COPY` reads: its step, or for a Delta sink the step's
/// columns cast to types Delta holds ([`squall_delta::delta_compatible_type`]).
pub(crate) async fn sink_input(session: &Session, sink: &SinkDef) -> squall_jobs::Result<String> {
    if sink.format != SinkFormat::Delta {
        return Ok(sink.step.clone());
    }
    let schema = session
        .schema_of(&format!("SELECT * FROM {}", sink.step))
        .await?;
    if schema
        .fields()
        .iter()
        .all(|f| squall_delta::delta_compatible_type(f.data_type()).is_none())
    {
        return Ok(sink.step.clone());
    }
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let name = format!("\"{}\"", f.name().replace('"', "\"\""));
            match squall_delta::delta_compatible_type(f.data_type()) {
                Some(target) => format!("arrow_cast({name}, '{target}') AS {name}"),
                None => name,
            }
        })
        .collect();
    Ok(format!(
        "(SELECT {} FROM {}) AS delta_rows",
        columns.join(", "),
        sink.step
    ))
}

/// What a merge sink writes: the rows of `input` (the step, as
/// [`sink_input`] gives it) and those rows of `target` (a table of the
/// destination's rows now) whose `merge_on` key no row of the step has,
/// cast to the columns of `input`. Keys match by `=`: rows with a null key
/// never match, so they are kept from both sides.
pub(crate) async fn merge_input(
    session: &Session,
    sink: &SinkDef,
    input: &str,
    target: &str,
) -> squall_jobs::Result<String> {
    let schema = session.schema_of(&format!("SELECT * FROM {input}")).await?;
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let kept: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            // A Parquet folder's partition values read as text (a folder
            // `k=__HIVE_DEFAULT_PARTITION__` as null): cast back.
            let name = quote(f.name());
            format!("arrow_cast(old.{name}, '{}') AS {name}", f.data_type())
        })
        .collect();
    let same_key: Vec<String> = sink
        .merge_on
        .iter()
        .map(|k| format!("new.{0} = old.{0}", quote(k)))
        .collect();
    Ok(format!(
        "(SELECT * FROM {input} UNION ALL SELECT {} FROM {target} AS old WHERE NOT EXISTS (SELECT 1 FROM (SELECT * FROM {input}) AS new WHERE {})) AS merged_rows",
        kept.join(", "),
        same_key.join(" AND ")
    ))
}

/// The Delta write of `sink`: its table, the columns written (after the
/// casts of [`sink_input`]), partitioning and mode; `read_version` is the
/// table's version the job read.
pub(crate) async fn delta_write(
    session: &Session,
    sink: &SinkDef,
    read_version: Option<u64>,
) -> squall_jobs::Result<squall_delta::DeltaWrite> {
    let url = sink
        .url
        .strip_prefix(squall_delta::DELTA_SCHEME_PREFIX)
        .unwrap_or(&sink.url);
    let schema = session
        .schema_of(&format!(
            "SELECT * FROM {}",
            sink_input(session, sink).await?
        ))
        .await?;
    Ok(squall_delta::DeltaWrite {
        table: squall_delta::DeltaLocation::new(url)?,
        schema,
        partition_by: sink.partition_by.clone(),
        mode: match sink.mode {
            // A merge rewrites the table.
            WriteMode::Overwrite | WriteMode::Merge => squall_delta::DeltaWriteMode::Overwrite,
            WriteMode::Append => squall_delta::DeltaWriteMode::Append,
            WriteMode::ErrorIfExists => squall_delta::DeltaWriteMode::ErrorIfExists,
        },
        read_version,
    })
}

/// Where `sink` publishes.
pub(crate) fn destination(sink: &SinkDef) -> Result<SinkDestination, EtlError> {
    let dir = Location::parse(&sink.url)
        .map_err(|source| EtlError::Commit { source })?
        .as_prefix();
    Ok(SinkDestination {
        dir,
        file_name: None,
        // A Delta table's files become visible through its log, not a marker.
        success_marker: sink.partition_by.is_empty() && sink.format != SinkFormat::Delta,
    })
}

/// The `COPY` that writes `sink` from table `from`.
pub(crate) fn copy_sql(sink: &SinkDef, from: &str) -> String {
    let mut sql = format!(
        "COPY (SELECT * FROM {from}) TO '{}' STORED AS {}",
        sink.url.replace('\'', "''"),
        sink.format.sql_name()
    );
    if !sink.partition_by.is_empty() {
        // DataFusion takes these as written (checked plain names).
        sql.push_str(&format!(
            " PARTITIONED BY ({})",
            sink.partition_by.join(", ")
        ));
    }
    let mut options = Vec::new();
    if let Some(compression) = &sink.compression {
        options.push(format!(
            "'format.compression' '{}'",
            compression.replace('\'', "''")
        ));
    }
    if sink.format == SinkFormat::Csv {
        options.push("'format.has_header' 'true'".to_string());
    }
    if !options.is_empty() {
        sql.push_str(&format!(" OPTIONS ({})", options.join(", ")));
    }
    sql
}
