//! The task contract: a task is a pure function of its spec bytes.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{squall_session, tpch_data};
use object_store::ObjectStoreExt;
use squall_connectors::Location;
use squall_jobs::specs::{StageTemplate, stage_object_stores, task_spec};
use squall_shuffle::codec::encode_plan;
use squall_worker::{FragmentRef, TaskLimits, TaskOutcome, TaskReport, run_task};

/// The spec bytes of task 0 of the first scan stage of `sql`, writing below `scratch_dir`.
async fn first_scan_task_spec(sql: &str, query_id: &str, scratch_dir: &std::path::Path) -> Vec<u8> {
    let data = tpch_data().await;
    let session = squall_session(data, 2).await;
    let graph = session.plan_stages(sql).await.expect("plans");
    let stage = graph
        .stages
        .iter()
        .find(|s| !s.scans.is_empty())
        .expect("a scan stage");
    let scratch = Location::parse(scratch_dir.to_str().unwrap())
        .unwrap()
        .as_prefix();
    let template = StageTemplate {
        query_id: query_id.into(),
        stage_id: stage.id,
        fragment: FragmentRef::Inline {
            bytes: encode_plan(Arc::clone(&stage.plan)).unwrap(),
        },
        object_stores: stage_object_stores(stage, &scratch),
        limits: TaskLimits::default(),
        scratch,
        is_final: stage.is_final,
        settings: Default::default(),
        sink: None,
    };
    task_spec(stage, &template, &HashMap::new(), 0, 0).to_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_spec_bytes_give_byte_identical_output() {
    let scratch = tempfile::tempdir().unwrap();
    let spec = first_scan_task_spec(
        "SELECT l_returnflag, sum(l_quantity) FROM lineitem GROUP BY l_returnflag",
        "determinism",
        scratch.path(),
    )
    .await;

    let mut outputs = Vec::new();
    for _ in 0..2 {
        let report = TaskReport::from_bytes(&run_task(&spec).await).unwrap();
        assert!(
            matches!(report.outcome, TaskOutcome::Exchange { .. }),
            "{report:?}"
        );
        assert!(
            report.input_rows > 0 && report.output_rows > 0,
            "{report:?}"
        );
        assert!(
            report.requests.get > 0 && report.requests.put + report.requests.multipart_put > 0,
            "{report:?}"
        );
        let loc = Location::parse(&report.output_url).unwrap();
        let bytes = loc
            .build_store()
            .unwrap()
            .get(&loc.path())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        outputs.push(bytes);
    }
    assert_eq!(
        outputs[0], outputs[1],
        "two runs of the same spec wrote different bytes"
    );
}

#[tokio::test]
async fn garbage_spec_gives_a_failed_report() {
    let report = TaskReport::from_bytes(&run_task(b"not json").await).unwrap();
    assert!(
        report.failure().unwrap().contains("invalid task spec"),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_stored_in_object_storage_runs_by_reference() {
    let dir = tempfile::tempdir().unwrap();
    let spec = first_scan_task_spec(
        "SELECT n_regionkey, count(*) FROM nation GROUP BY n_regionkey",
        "by-reference",
        dir.path(),
    )
    .await;
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, &spec).unwrap();
    let envelope = format!("{{\"spec_url\": \"file://{}\"}}", spec_path.display());
    let report = TaskReport::from_bytes(&run_task(envelope.as_bytes()).await).unwrap();
    assert!(
        matches!(report.outcome, TaskOutcome::Exchange { .. }),
        "{report:?}"
    );
    assert_eq!(report.input_rows, 25);

    let missing =
        TaskReport::from_bytes(&run_task(br#"{"spec_url": "file:///no/such/spec.json"}"#).await)
            .unwrap();
    assert!(
        missing.failure().unwrap().contains("/no/such/spec.json"),
        "{missing:?}"
    );
}
