//! Exchange objects written by `ExchangeWriterExec` read back by `ExchangeReaderExec`.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, DictionaryArray, Int32Array, Int64Array,
    LargeStringArray, ListArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_expr::expressions::col;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use squall_shuffle::writer::index_from_batch;
use squall_shuffle::{
    ExchangeIndex, ExchangeReaderExec, ExchangeWriterExec, ObjectRange, OutputPartitioning,
    ReadMode,
};

fn task_ctx() -> Arc<TaskContext> {
    SessionContext::new().task_ctx()
}

fn all_types_batch(rows: usize, key_mod: i64) -> RecordBatch {
    let n = rows as i64;
    let keys: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % key_mod)));
    let dec: ArrayRef = Arc::new(
        Decimal128Array::from_iter_values((0..n).map(|i| i as i128 * 100 + 7))
            .with_precision_and_scale(15, 2)
            .unwrap(),
    );
    let date: ArrayRef = Arc::new(Date32Array::from_iter_values(
        (0..n).map(|i| 9000 + i as i32),
    ));
    let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from_iter_values(
        (0..n).map(|i| i * 1_000_000),
    ));
    let dict: ArrayRef = Arc::new(
        (0..n)
            .map(|i| ["red", "green", "blue"][(i % 3) as usize])
            .collect::<DictionaryArray<Int32Type>>(),
    );
    let large: ArrayRef = Arc::new(LargeStringArray::from_iter_values(
        (0..n).map(|i| format!("row-{i}-{}", "x".repeat((i % 5) as usize))),
    ));
    let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
        (0..n).map(|i| {
            if i % 4 == 0 {
                None
            } else {
                Some((0..(i % 3) as i32).map(Some).collect::<Vec<_>>())
            }
        }),
    ));
    let strukt: ArrayRef = Arc::new(StructArray::from(vec![
        (
            Arc::new(Field::new("a", DataType::Int32, false)),
            Arc::new(Int32Array::from_iter_values((0..n).map(|i| i as i32))) as ArrayRef,
        ),
        (
            Arc::new(Field::new("b", DataType::Utf8, true)),
            Arc::new(StringArray::from_iter(
                (0..n).map(|i| (i % 2 == 0).then(|| format!("s{i}"))),
            )) as ArrayRef,
        ),
    ]));
    RecordBatch::try_from_iter(vec![
        ("k", keys),
        ("dec", dec),
        ("date", date),
        ("ts", ts),
        ("dict", dict),
        ("large", large),
        ("list", list),
        ("strukt", strukt),
    ])
    .unwrap()
}

fn memory_plan(batches: Vec<RecordBatch>) -> (Arc<dyn ExecutionPlan>, SchemaRef) {
    let schema = batches[0].schema();
    let plan = MemorySourceConfig::try_new_exec(&[batches], Arc::clone(&schema), None).unwrap();
    (plan, schema)
}

async fn write(
    input: Arc<dyn ExecutionPlan>,
    partitioning: OutputPartitioning,
    url: &str,
    spill_threshold_bytes: usize,
) -> ExchangeIndex {
    let writer = ExchangeWriterExec::try_new(input, 0, partitioning)
        .unwrap()
        .with_output_url(url)
        .with_spill_threshold_bytes(spill_threshold_bytes);
    let out = collect(Arc::new(writer), task_ctx()).await.unwrap();
    index_from_batch(&out[0]).unwrap()
}

async fn read(schema: SchemaRef, ranges: Vec<ObjectRange>) -> Vec<RecordBatch> {
    let reader = ExchangeReaderExec::try_new(1, schema, ReadMode::Gather)
        .unwrap()
        .with_inputs(vec![ranges])
        .unwrap();
    collect(Arc::new(reader), task_ctx()).await.unwrap()
}

fn range(url: &str, index: &ExchangeIndex, p: usize) -> ObjectRange {
    let r = index.partitions[p];
    ObjectRange {
        url: url.to_string(),
        start: r.offset,
        end: r.offset + r.len_bytes,
        crc32: r.crc32,
    }
}

fn sorted_text(batches: &[RecordBatch]) -> Vec<String> {
    let text = pretty_format_batches(batches).unwrap().to_string();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("| "))
        .skip(1)
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

fn object_url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("file://{}/{name}", dir.path().display())
}

#[tokio::test]
async fn all_types_round_trip_through_one_partition() {
    let dir = tempfile::tempdir().unwrap();
    let url = object_url(&dir, "single.sqx");
    let batches = vec![all_types_batch(1000, 7), all_types_batch(10, 3)];
    let (plan, schema) = memory_plan(batches.clone());
    let index = write(plan, OutputPartitioning::Single, &url, usize::MAX).await;
    assert_eq!(index.partitions.len(), 1);
    assert_eq!(index.rows(), 1010);
    let back = read(schema, vec![range(&url, &index, 0)]).await;
    assert_eq!(sorted_text(&back), sorted_text(&batches));
}

#[tokio::test]
async fn index_in_object_matches_reported_index() {
    let dir = tempfile::tempdir().unwrap();
    let url = object_url(&dir, "indexed.sqx");
    let (plan, schema) = memory_plan(vec![all_types_batch(500, 5)]);
    let index = write(
        plan,
        OutputPartitioning::Hash(vec![col("k", &schema).unwrap()], 4),
        &url,
        usize::MAX,
    )
    .await;
    let bytes = std::fs::read(dir.path().join("indexed.sqx")).unwrap();
    assert_eq!(
        ExchangeIndex::decode_from_object(&url, &bytes).unwrap(),
        index
    );
}

#[tokio::test]
async fn hash_partitions_are_disjoint_and_complete_with_empty_ones() {
    let dir = tempfile::tempdir().unwrap();
    let url = object_url(&dir, "hash.sqx");
    // Three distinct keys over sixteen partitions: most partitions are empty.
    let batches = vec![all_types_batch(300, 3)];
    let (plan, schema) = memory_plan(batches.clone());
    let index = write(
        plan,
        OutputPartitioning::Hash(vec![col("k", &schema).unwrap()], 16),
        &url,
        usize::MAX,
    )
    .await;
    assert_eq!(index.partitions.len(), 16);
    let empty = index.partitions.iter().filter(|p| p.len_bytes == 0).count();
    assert!(
        empty >= 13,
        "expected at least 13 empty partitions, got {empty}"
    );
    let mut all = Vec::new();
    for p in 0..16 {
        let part = read(Arc::clone(&schema), vec![range(&url, &index, p)]).await;
        let rows: usize = part.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows as u64, index.partitions[p].rows);
        // Each key lives in exactly one partition.
        let keys: std::collections::HashSet<i64> = part
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert!(keys.len() <= 1 || rows == 0 || keys.len() <= 3);
        all.extend(part);
    }
    assert_eq!(sorted_text(&all), sorted_text(&batches));
}

#[tokio::test]
async fn a_thousand_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let url = object_url(&dir, "many.sqx");
    let batches = vec![all_types_batch(5000, 5000)];
    let (plan, schema) = memory_plan(batches.clone());
    let index = write(
        plan,
        OutputPartitioning::Hash(vec![col("k", &schema).unwrap()], 1000),
        &url,
        usize::MAX,
    )
    .await;
    assert_eq!(index.partitions.len(), 1000);
    assert_eq!(index.rows(), 5000);
    // Reading every partition's range in one reader gives every row back once.
    let ranges = (0..1000)
        .filter(|p| index.partitions[*p].len_bytes > 0)
        .map(|p| range(&url, &index, p))
        .collect();
    let back = read(schema, ranges).await;
    assert_eq!(sorted_text(&back), sorted_text(&batches));
}

#[tokio::test]
async fn one_huge_partition_spills_and_reads_back_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let url = object_url(&dir, "huge.sqx");
    // ~20 MB of poorly compressible text, all under one key, with a 1 MiB spill threshold:
    // the writer spills many times and the reader fetches the partition in several GETs.
    let n = 200_000i64;
    let mix =
        |x: u64| x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29) ^ 0xda94_2042_e4dd_58b5;
    let text: Vec<String> = (0..n as u64)
        .map(|i| {
            format!(
                "{:016x}{:016x}{:016x}{:016x}",
                mix(i),
                mix(i + 1),
                mix(mix(i)),
                mix(i ^ 0xffff)
            )
        })
        .collect();
    let batch = RecordBatch::try_from_iter(vec![
        (
            "k",
            Arc::new(Int64Array::from_iter_values((0..n).map(|_| 42))) as ArrayRef,
        ),
        (
            "v",
            Arc::new(LargeStringArray::from_iter_values(text.iter())) as ArrayRef,
        ),
    ])
    .unwrap();
    let batches: Vec<RecordBatch> = (0..20).map(|i| batch.slice(i * 10_000, 10_000)).collect();
    let (plan, schema) = memory_plan(batches.clone());
    let index = write(
        plan,
        OutputPartitioning::Hash(vec![col("k", &schema).unwrap()], 4),
        &url,
        1 << 20,
    )
    .await;
    let full: Vec<_> = index.partitions.iter().filter(|p| p.rows > 0).collect();
    assert_eq!(full.len(), 1, "one partition holds everything");
    assert!(
        full[0].len_bytes > squall_shuffle::reader::CHUNK_BYTES,
        "partition must span several GETs"
    );
    let p = index.partitions.iter().position(|p| p.rows > 0).unwrap();
    let back = read(Arc::clone(&schema), vec![range(&url, &index, p)]).await;
    let rows: usize = back.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as i64, n);
    let got: Vec<String> = back
        .iter()
        .flat_map(|b| {
            b.column(1)
                .as_any()
                .downcast_ref::<LargeStringArray>()
                .unwrap()
                .iter()
                .map(|s| s.unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(got, text, "rows keep their order within a partition");

    // In a 32 MiB pool the reader buffers at most an eighth of it, reserved
    // while it reads and released after: here one 4 MiB GET at a time.
    let pool = Arc::new(GreedyMemoryPool::new(32 << 20));
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::clone(&pool) as _)
        .build_arc()
        .unwrap();
    let ctx = Arc::new(TaskContext::default().with_runtime(runtime));
    let reader = ExchangeReaderExec::try_new(1, Arc::clone(&schema), ReadMode::Gather)
        .unwrap()
        .with_inputs(vec![vec![range(&url, &index, p)]])
        .unwrap();
    let mut stream = reader.execute(0, ctx).unwrap();
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch.unwrap().num_rows();
        assert_eq!(pool.reserved(), 4 << 20, "the read-ahead is reserved");
    }
    assert_eq!(rows as i64, n);
    drop(stream);
    assert_eq!(pool.reserved(), 0, "and released when the stream ends");
}

#[tokio::test]
async fn reading_a_missing_object_names_it() {
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
    let reader = ExchangeReaderExec::try_new(3, schema, ReadMode::Gather)
        .unwrap()
        .with_inputs(vec![vec![ObjectRange {
            url: "file:///definitely/missing.sqx".into(),
            start: 0,
            end: 10,
            crc32: None,
        }]])
        .unwrap();
    let err = collect(Arc::new(reader), task_ctx())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("file:///definitely/missing.sqx"), "{err}");
}

/// A byte flipped inside a partition, or an object cut short, is reported as
/// corrupt by the reader, naming the object; it never becomes rows.
#[tokio::test]
async fn a_corrupt_or_truncated_partition_is_caught_by_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let url = object_url(&dir, "corrupt.sqx");
    let (plan, schema) = memory_plan(vec![all_types_batch(500, 5)]);
    let index = write(plan, OutputPartitioning::Single, &url, usize::MAX).await;
    let r = range(&url, &index, 0);
    assert!(r.crc32.is_some(), "the writer records a checksum");
    let path = dir.path().join("corrupt.sqx");
    let good = std::fs::read(&path).unwrap();

    let mut flipped = good.clone();
    let middle = (r.start + r.len_bytes() / 2) as usize;
    flipped[middle] ^= 0x55;
    std::fs::write(&path, &flipped).unwrap();
    let read_err = |ranges: Vec<ObjectRange>| {
        let schema = Arc::clone(&schema);
        async move {
            let reader = ExchangeReaderExec::try_new(1, schema, ReadMode::Gather)
                .unwrap()
                .with_inputs(vec![ranges])
                .unwrap();
            collect(Arc::new(reader), task_ctx())
                .await
                .expect_err("corrupt data must not be read")
                .to_string()
        }
    };
    let err = read_err(vec![r.clone()]).await;
    assert!(err.contains("corrupt") && err.contains(&url), "{err}");
    assert!(err.contains("CRC-32"), "{err}");

    std::fs::write(&path, &good[..middle]).unwrap();
    let err = read_err(vec![r]).await;
    assert!(err.contains(&url), "{err}");
}

#[tokio::test]
async fn failed_write_leaves_no_object() {
    // An input whose execution fails (a reader never bound to its inputs), under a writer.
    let dir = tempfile::tempdir().unwrap();
    let url = object_url(&dir, "never.sqx");
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
    let unbound_reader: Arc<dyn ExecutionPlan> =
        Arc::new(ExchangeReaderExec::try_new(9, Arc::clone(&schema), ReadMode::Gather).unwrap());
    let writer = ExchangeWriterExec::try_new(unbound_reader, 0, OutputPartitioning::Single)
        .unwrap()
        .with_output_url(&url);
    let err = collect(Arc::new(writer), task_ctx())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("stage 9"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "nothing may be visible after a failed write: {left:?}"
    );
}

#[tokio::test]
async fn spilling_beyond_the_tasks_spill_disk_fails_and_leaves_no_object() {
    let dir = tempfile::tempdir().unwrap();
    let url = object_url(&dir, "too-big.sqx");
    // 20 × 500 rows of all types: several MiB encoded, spilled every 64 KiB.
    let batches: Vec<RecordBatch> = (0..20).map(|i| all_types_batch(500, 7 + i)).collect();
    let (plan, _) = memory_plan(batches);
    let runtime = RuntimeEnvBuilder::new()
        .with_max_temp_directory_size(256 * 1024)
        .build_arc()
        .unwrap();
    let ctx = Arc::new(TaskContext::default().with_runtime(Arc::clone(&runtime)));
    let writer = ExchangeWriterExec::try_new(plan, 0, OutputPartitioning::Single)
        .unwrap()
        .with_output_url(&url)
        .with_spill_threshold_bytes(64 * 1024);
    let err = collect(Arc::new(writer), ctx)
        .await
        .expect_err("the spill disk is too small")
        .to_string();
    assert!(err.contains("exceeded the allowable limit of 256"), "{err}");
    assert!(!dir.path().join("too-big.sqx").exists());
    assert_eq!(
        runtime.disk_manager.used_disk_space(),
        0,
        "the spill file is gone"
    );
}
