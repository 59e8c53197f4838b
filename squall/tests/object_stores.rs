//! Object stores given to the builder as objects: tables, scratch and
//! `COPY` destinations on them run through in-process tasks (no store for
//! the URL could be built from the environment: there is no such bucket),
//! and agree with single-node DataFusion reading the same store; backends
//! whose workers build their own stores are refused when the session is
//! built.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Four Parquet files of (k, v) rows under `sales/` in `store`.
async fn write_sales(store: &InMemory) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("v", DataType::Int64, false),
    ]));
    for part in 0..4i64 {
        let keys: Vec<String> = (0..1000)
            .map(|i| format!("key{}", (i * 7 + part) % 13))
            .collect();
        let values: Vec<i64> = (0..1000).map(|i| i * part + 1).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(keys)),
                Arc::new(Int64Array::from(values)),
            ],
        )
        .unwrap();
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, Arc::clone(&schema), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        store
            .put(
                &Path::from(format!("sales/part-{part}.parquet")),
                PutPayload::from(bytes),
            )
            .await
            .unwrap();
    }
}

fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

const QUERY: &str = "SELECT k, count(*) AS n, sum(v) AS total FROM sales GROUP BY k ORDER BY k";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_scratch_and_copies_use_the_given_store() {
    let store = Arc::new(InMemory::new());
    write_sales(&store).await;
    let url = "s3://squall-given-store-test";
    let session = squall::Session::builder()
        .workers(2)
        .target_task_bytes(4 * 1024)
        .scratch(format!("{url}/scratch/"))
        .object_store(url, Arc::clone(&store) as Arc<dyn ObjectStore>)
        .build()
        .unwrap();
    session
        .register_table("sales", &format!("{url}/sales/"))
        .await
        .unwrap();
    let rows = session.sql(QUERY).await.unwrap().collect().await.unwrap();

    // Single-node DataFusion, reading the same store.
    let reference = SessionContext::new();
    reference.register_object_store(
        &url::Url::parse(url).unwrap(),
        Arc::clone(&store) as Arc<dyn ObjectStore>,
    );
    reference
        .register_parquet("sales", &format!("{url}/sales/"), Default::default())
        .await
        .unwrap();
    let expected = reference.sql(QUERY).await.unwrap().collect().await.unwrap();
    assert_eq!(text(&rows), text(&expected));

    // The query ran as stages of tasks exchanging through the given store.
    let stages = session.jobs().explain(QUERY).await.unwrap();
    assert!(stages.contains("Stage 1"), "{stages}");

    // A COPY lands in the store too, and reads back the same.
    session
        .sql(&format!(
            "COPY (SELECT * FROM sales) TO '{url}/copy/' STORED AS PARQUET"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let copied: Vec<_> = store
        .list(Some(&Path::from("copy")))
        .try_collect()
        .await
        .unwrap();
    assert!(!copied.is_empty());
    session
        .register_table("copied", &format!("{url}/copy/"))
        .await
        .unwrap();
    let again = session
        .sql(&QUERY.replace("FROM sales", "FROM copied"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(text(&again), text(&expected));
}

#[test]
fn a_store_for_workers_that_cannot_reach_it_is_refused_when_the_session_is_built() {
    let backend = Arc::new(squall::ProcessBackend::new(
        "squall",
        vec!["worker".into()],
        2,
    ));
    let error = squall::Session::builder()
        .backend(backend)
        .object_store("s3://elsewhere", Arc::new(InMemory::new()))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("s3://elsewhere") && error.contains("in-process workers only"),
        "{error}"
    );
}
