//! The exchange at thousands of tasks: what a hash exchange costs in
//! object-store requests, counted by every task's counting store and summed
//! from the task reports, and what sizing stages from their inputs' exact
//! bytes saves, each with the rows checked against single-node DataFusion.

mod common;

use std::sync::{Arc, Mutex};

use common::assert_same_rows;
use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use squall_jobs::{LocalBackend, ProgressEvent, Session, SessionOptions};
use squall_planner::{ExchangeKind, PlannerConfig};
use squall_worker::RequestCounts;

/// Map tasks of the big exchange: one per row group.
const MAP_TASKS: usize = 1000;
/// Rows per row group: enough that almost every map task writes rows into
/// almost every one of 1,000 partitions (1 − e⁻³ ≈ 95% of them), so that
/// without combining the readers would make about 950,000 GETs.
const ROWS_PER_MAP: usize = 3000;
const KEYS: i64 = 100_003;

/// One Parquet file of `groups` row groups of `rows` rows each: `k`
/// spread over [`KEYS`] keys, `v` the row number.
fn write_table(dir: &std::path::Path, groups: usize, rows: usize) -> String {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]));
    let path = dir.join("t.parquet");
    let file = std::fs::File::create(&path).expect("create table file");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows))
        .build();
    let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).expect("writer");
    for g in 0..groups {
        let first = (g * rows) as i64;
        let v: Vec<i64> = (first..first + rows as i64).collect();
        // A multiplicative hash spreads consecutive rows over the keys.
        let k: Vec<i64> = v.iter().map(|i| (i * 7919) % KEYS).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(k)), Arc::new(Int64Array::from(v))],
        )
        .expect("batch");
        writer.write(&batch).expect("write");
        writer.flush().expect("end the row group");
    }
    writer.close().expect("close");
    path.to_str().expect("utf-8").to_string()
}

/// What the tasks of one query did, from their reports.
#[derive(Debug, Default)]
struct Tally {
    requests: RequestCounts,
    /// (stage, tasks run, tasks planned) as each stage started.
    stages: Vec<(usize, usize, usize)>,
}

impl Tally {
    fn total_requests(&self) -> u64 {
        let r = &self.requests;
        r.get + r.put + r.multipart_put + r.head + r.list + r.delete
    }
}

async fn session(options: SessionOptions, table: &str) -> (Session, Arc<Mutex<Tally>>) {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let listener_tally = Arc::clone(&tally);
    let session = Session::try_new(SessionOptions {
        backend: Arc::new(LocalBackend::new(2)),
        progress: Some(Arc::new(move |event| {
            let mut t = listener_tally.lock().unwrap();
            match event {
                ProgressEvent::TaskFinished { requests, .. } => t.requests.add(&requests),
                ProgressEvent::StageStarted {
                    stage,
                    tasks,
                    planned_tasks,
                } => t.stages.push((stage, tasks, planned_tasks)),
                _ => {}
            }
        })),
        ..options
    })
    .expect("session");
    session
        .register_table("t", table, None)
        .await
        .expect("register t");
    (session, tally)
}

async fn reference(table: &str, sql: &str) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    ctx.register_parquet("t", table, ParquetReadOptions::default())
        .await
        .expect("register reference");
    ctx.sql(sql)
        .await
        .expect("reference plan")
        .collect()
        .await
        .expect("reference rows")
}

const GROUP_BY: &str = "SELECT k, count(*) AS n, sum(v) AS s FROM t GROUP BY k";

/// A 1,000 × 1,000 hash exchange (1,000 map tasks, 1,000 reading tasks,
/// every reading task run) goes through a combining stage and costs under
/// 10% of its 1,000,000 map × reader pairs in requests, with the rows of
/// single-node DataFusion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_by_thousand_exchange_costs_under_a_tenth_of_its_pairs_in_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = write_table(dir.path(), MAP_TASKS, ROWS_PER_MAP);
    let (session, tally) = session(
        SessionOptions {
            // One task per row group, and as many reading tasks (the cap).
            planner: PlannerConfig {
                target_task_bytes: 1,
                max_tasks_per_stage: MAP_TASKS,
                ..PlannerConfig::default()
            },
            // Every planned reading task runs: the exchange itself is tested.
            adaptive_stages: false,
            ..SessionOptions::default()
        },
        &table,
    )
    .await;

    let graph = session.plan_stages(GROUP_BY).await.expect("plan");
    let tasks: Vec<usize> = graph.stages.iter().map(|s| s.task_count).collect();
    assert_eq!(tasks, vec![MAP_TASKS, 32, MAP_TASKS], "{graph:#?}");
    assert_eq!(
        graph.stages[1].inputs[0].kind,
        ExchangeKind::Combine { maps_per_task: 32 }
    );
    assert_eq!(graph.stages[2].inputs[0].stage_id, 1);

    let rows = session
        .query(GROUP_BY)
        .await
        .expect("query")
        .collect()
        .await
        .expect("rows");
    assert_same_rows(&reference(&table, GROUP_BY).await, &rows).expect("same rows");

    let tally = tally.lock().unwrap();
    let pairs = (MAP_TASKS * MAP_TASKS) as u64;
    assert!(
        tally.total_requests() * 10 < pairs,
        "{} requests for a {MAP_TASKS} × {MAP_TASKS} exchange: {:?}",
        tally.total_requests(),
        tally.requests
    );
    // Readers read combined objects: about 32 GETs each, not 950.
    assert!(tally.requests.get < 60_000, "{:?}", tally.requests);
    assert_eq!(
        tally.stages.iter().map(|s| s.1).sum::<usize>(),
        MAP_TASKS + 32 + MAP_TASKS
    );
}

/// A GROUP BY of 50 groups, planned with many reading tasks (the
/// estimate of what its map tasks write falls back to their input bytes):
/// sized from what its map tasks wrote, the reading stage runs a few tasks,
/// each reading a range of partitions with one GET per map object, and
/// returns the rows of single-node DataFusion; with adaptive stages off it
/// runs every planned task and costs a GET per map task and non-empty
/// partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_sized_from_its_inputs_runs_fewer_tasks_and_gets_with_the_same_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = write_table(dir.path(), 16, 80_000);
    let sql = "SELECT k % 50 AS g, count(*) AS n, sum(v) AS s FROM t GROUP BY k % 50";
    let expected = reference(&table, sql).await;
    let planner = PlannerConfig {
        target_task_bytes: 64 * 1024,
        max_tasks_per_stage: 64,
        ..PlannerConfig::default()
    };
    let mut runs = Vec::new();
    for adaptive_stages in [true, false] {
        let (session, tally) = session(
            SessionOptions {
                planner: planner.clone(),
                adaptive_stages,
                ..SessionOptions::default()
            },
            &table,
        )
        .await;
        let rows = session
            .query(sql)
            .await
            .expect("query")
            .collect()
            .await
            .expect("rows");
        assert_same_rows(&expected, &rows).expect("same rows");
        let tally = tally.lock().unwrap();
        let reading = *tally
            .stages
            .iter()
            .find(|s| s.0 == 1)
            .expect("the reading stage started");
        runs.push((reading, tally.requests.get));
    }
    let (((_, adapted_tasks, planned), adapted_gets), ((_, fixed_tasks, _), fixed_gets)) =
        (runs[0], runs[1]);
    assert_eq!(planned, 64, "{runs:?}");
    assert_eq!(fixed_tasks, 64, "{runs:?}");
    // 50 groups from 16 map tasks are a few hundred KiB: fewer tasks of
    // 16 KiB of exchange data each (a quarter of the planner's target)
    // than planned, each reading several non-empty partitions.
    assert!((1..32).contains(&adapted_tasks), "{runs:?}");
    // Both runs read the same Parquet; the readers' GETs differ: one per
    // map object and non-empty partition as planned, one per map object
    // and task after.
    assert!(adapted_gets < fixed_gets, "{runs:?}");
}
