//! Shared test support: TPC-H scale 0.1 generated once per test binary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use squall_connectors::Location;
use squall_connectors::tpch::{TPCH_TABLES, generate_tpch};
use squall_jobs::{Backend, LocalBackend, Session, SessionOptions};
use squall_planner::PlannerConfig;
use tokio::sync::OnceCell;

pub mod interrupted_copy;
pub mod mixed_faults;

pub struct TpchData {
    pub root: PathBuf,
}

static DATA: OnceCell<TpchData> = OnceCell::const_new();

/// TPC-H scale 0.1 as Parquet, two files per large table.
///
/// Generated once into Cargo's temporary directory for integration tests
/// (in a folder named after the generator's version) and shared by every
/// test binary: a static's `TempDir` is never dropped, so a
/// per-binary directory would be left behind in `/tmp` by every run. The data
/// is generated beside its final place and renamed into it, so a concurrent
/// or interrupted generation never leaves a partial directory in use.
pub async fn tpch_data() -> &'static TpchData {
    DATA.get_or_init(|| async {
        // Named after the generator's source and the locked crate versions:
        // a change to either generates afresh.
        let mut version = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(
            &(
                include_str!("../../../connectors/src/tpch.rs"),
                include_str!("../../../Cargo.lock"),
            ),
            &mut version,
        );
        let shared = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "tpch-sf0.1-2files-{:016x}",
            std::hash::Hasher::finish(&version)
        ));
        if !shared.join("region").exists() {
            let staging = tempfile::Builder::new()
                .prefix("tpch-staging-")
                .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
                .expect("tempdir");
            let out =
                Location::parse(staging.path().to_str().expect("utf-8 path")).expect("location");
            generate_tpch(0.1, &out, 2).await.expect("generate TPC-H");
            // Another test binary may have won the race; its data is the same.
            if std::fs::rename(staging.path(), &shared).is_err() {
                assert!(
                    shared.join("region").exists(),
                    "{} not created",
                    shared.display()
                );
            }
        }
        TpchData { root: shared }
    })
    .await
}

/// The rows of the CSV files (with headers) below `dir`, as single-node
/// DataFusion reads them back.
pub async fn csv_rows_below(dir: &std::path::Path) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE written STORED AS CSV LOCATION '{}/' OPTIONS ('format.has_header' 'true')",
        dir.display()
    ))
    .await
    .expect("register the written files");
    ctx.sql("SELECT * FROM written")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("read the written files")
}

/// The text of TPC-H query `n`.
/// The spec inside signed spec bytes a backend was handed, as JSON.
#[allow(dead_code)]
pub fn open_spec(backend: &dyn Backend, signed: &[u8]) -> serde_json::Value {
    let payload = backend
        .task_key()
        .open(signed)
        .expect("the coordinator signs every spec");
    serde_json::from_slice(&payload).expect("a spec is JSON")
}

/// The URL of the first exchange object a spec reads, if it reads any.
#[allow(dead_code)]
pub fn first_exchange_input(spec: &serde_json::Value) -> Option<String> {
    spec["exchange_inputs"]
        .as_array()?
        .iter()
        .flat_map(|input| input["partitions"].as_array().into_iter().flatten())
        .flat_map(|partition| partition.as_array().into_iter().flatten())
        .find_map(|range| range["url"].as_str().map(str::to_string))
}

pub fn tpch_query(n: usize) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../benches/queries/tpch")
        .join(format!("q{n}.sql"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Squall session over the data with small tasks, so that stages have several.
pub async fn squall_session(data: &TpchData, workers: usize) -> Session {
    squall_session_on(data, Arc::new(LocalBackend::new(workers))).await
}

/// The same, on any backend.
pub async fn squall_session_on(data: &TpchData, backend: Arc<dyn Backend>) -> Session {
    squall_session_with(
        data,
        SessionOptions {
            backend,
            ..SessionOptions::default()
        },
    )
    .await
}

/// The same, with any options; the planner's are replaced by small tasks.
pub async fn squall_session_with(data: &TpchData, options: SessionOptions) -> Session {
    let planner = PlannerConfig {
        target_task_bytes: 512 * 1024,
        max_tasks_per_stage: 8,
        ..PlannerConfig::default()
    };
    let session = Session::try_new(SessionOptions { planner, ..options }).expect("session");
    for t in TPCH_TABLES {
        session
            .register_table(t, data.root.join(t).to_str().expect("utf-8"), None)
            .await
            .expect("register");
    }
    session
}

/// Makes every join `session` plans partitioned (DataFusion's broadcast
/// thresholds both 0), as joins of large tables run; Squall's own
/// cost-based broadcast may still broadcast where that moves fewer bytes.
pub async fn partition_every_join(session: &Session) {
    session
        .sql(
            "SET datafusion.optimizer.hash_join_single_partition_threshold = 0; \
             SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 0",
        )
        .await
        .expect("settings");
}

/// Fails with every line of `failures` (one per query or case) if there are any.
pub fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs all 22 TPC-H queries on `session` and compares each with single-node
/// DataFusion; returns one line per query that differs or fails.
pub async fn tpch_differences(session: &Session, data: &TpchData) -> Vec<String> {
    let reference = reference_context(data).await;
    let mut failures = Vec::new();
    for q in 1..=22 {
        let sql = tpch_query(q);
        let actual = match session.query(&sql).await {
            Ok(stream) => stream.collect().await,
            Err(e) => Err(e),
        };
        let actual = match actual {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("q{q}: {e}"));
                continue;
            }
        };
        let expected = reference
            .sql(&sql)
            .await
            .expect("reference plans")
            .collect()
            .await
            .expect("reference runs");
        if let Err(diff) = assert_same_rows(&expected, &actual) {
            failures.push(format!("q{q}: {diff}"));
        } else if sql.to_lowercase().contains("order by") {
            // The ORDER BY keys of the TPC-H queries order every row at this
            // scale, so the order must match too.
            if let Err(diff) = assert_same_rows_in_order(&expected, &actual) {
                failures.push(format!("q{q} (order): {diff}"));
            }
        }
    }
    failures
}

/// Plain single-node DataFusion over the same files.
pub async fn reference_context(data: &TpchData) -> SessionContext {
    let ctx = SessionContext::new();
    for t in TPCH_TABLES {
        ctx.register_parquet(
            t,
            data.root.join(t).to_str().expect("utf-8"),
            ParquetReadOptions::default(),
        )
        .await
        .expect("register reference");
    }
    ctx
}

/// The rows single-node DataFusion returns for `sql` over the data.
pub async fn reference_rows(data: &TpchData, sql: &str) -> Vec<RecordBatch> {
    reference_context(data)
        .await
        .sql(sql)
        .await
        .expect("reference plans")
        .collect()
        .await
        .expect("reference runs")
}

/// Rows as comparable cells: floats as numbers, everything else as text.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Cell {
    Float(f64),
    Text(String),
}

fn rows(batches: &[RecordBatch]) -> Vec<Vec<Cell>> {
    let mut out = Vec::new();
    let options = FormatOptions::default().with_null("NULL");
    for b in batches {
        let columns: Vec<_> = b.columns().iter().collect();
        for row in 0..b.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| match c.data_type() {
                        DataType::Float32 | DataType::Float64 if !c.is_null(row) => {
                            let c = datafusion::arrow::compute::cast(c, &DataType::Float64)
                                .expect("cast");
                            Cell::Float(c.as_primitive::<Float64Type>().value(row))
                        }
                        _ => Cell::Text(
                            ArrayFormatter::try_new(c.as_ref(), &options)
                                .expect("formatter")
                                .value(row)
                                .to_string(),
                        ),
                    })
                    .collect(),
            );
        }
    }
    out
}

fn close(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Float(x), Cell::Float(y)) => {
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) || (x.is_nan() && y.is_nan())
        }
        _ => a == b,
    }
}

/// Same multiset of rows (order ignored), floats to relative 1e-9.
pub fn assert_same_rows(expected: &[RecordBatch], actual: &[RecordBatch]) -> Result<(), String> {
    let mut e = rows(expected);
    let mut a = rows(actual);
    if e.len() != a.len() {
        return Err(format!("expected {} rows, got {}", e.len(), a.len()));
    }
    let key = |r: &Vec<Cell>| format!("{r:?}");
    e.sort_by_key(key);
    a.sort_by_key(key);
    for (i, (er, ar)) in e.iter().zip(&a).enumerate() {
        if er.len() != ar.len() || !er.iter().zip(ar).all(|(x, y)| close(x, y)) {
            return Err(format!(
                "row {i} differs:\n expected {er:?}\n      got {ar:?}"
            ));
        }
    }
    Ok(())
}

/// Same rows in the same order, floats to relative 1e-9.
pub fn assert_same_rows_in_order(
    expected: &[RecordBatch],
    actual: &[RecordBatch],
) -> Result<(), String> {
    let e = rows(expected);
    let a = rows(actual);
    if e.len() != a.len() {
        return Err(format!("expected {} rows, got {}", e.len(), a.len()));
    }
    for (i, (er, ar)) in e.iter().zip(&a).enumerate() {
        if er.len() != ar.len() || !er.iter().zip(ar).all(|(x, y)| close(x, y)) {
            return Err(format!(
                "row {i} out of order or different:\n expected {er:?}\n      got {ar:?}"
            ));
        }
    }
    Ok(())
}
