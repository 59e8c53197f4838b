//! The task contract: a task is a pure function of its spec bytes, and it
//! runs only specs signed with its key.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{squall_session, tpch_data};
use object_store::ObjectStoreExt;
use squall_connectors::Location;
use squall_jobs::specs::{StageTemplate, stage_object_stores, task_spec};
use squall_shuffle::codec::encode_plan;
use squall_worker::{FragmentRef, TaskKey, TaskLimits, TaskOutcome, TaskReport, run_task};

fn key() -> TaskKey {
    TaskKey::new("task-contract-test-key-0123456789abcdef").unwrap()
}

async fn run(payload: &[u8]) -> TaskReport {
    TaskReport::from_bytes(&run_task(&key().sign(payload), &key()).await).unwrap()
}

/// The (unsigned) spec bytes of task 0 of the first scan stage of `sql`, writing below `scratch_dir`.
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
        requests: Default::default(),
        operator_metrics: false,
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
        let report = run(&spec).await;
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
    let report = run(b"not json").await;
    assert!(
        report.failure().unwrap().contains("invalid task spec"),
        "{report:?}"
    );
}

/// Unsigned, altered, foreign and expired specs fail before the task reads
/// or writes anything; only the expired one may be retried (signed afresh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_not_signed_with_the_workers_key_do_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let spec = first_scan_task_spec(
        "SELECT l_returnflag, count(*) FROM lineitem GROUP BY l_returnflag",
        "refused",
        scratch.path(),
    )
    .await;
    let signed = String::from_utf8(key().sign(&spec)).unwrap();
    let other_key = TaskKey::new("another-deployment-key-0123456789abcdef").unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("unsigned", spec.clone(), "not signed"),
        (
            "altered",
            signed
                .replace("\\\"attempt\\\":0", "\\\"attempt\\\":7")
                .into_bytes(),
            "does not match",
        ),
        ("foreign", other_key.sign(&spec), "does not match"),
        ("expired", key().sign_until(&spec, 1_000), "expired"),
    ];
    for (case, payload, expected) in cases {
        let report = TaskReport::from_bytes(&run_task(&payload, &key()).await).unwrap();
        let failure = report.failure().unwrap_or_default().to_string();
        assert!(
            failure.starts_with("task spec rejected: ") && failure.contains(expected),
            "{case}: {failure}"
        );
        let TaskOutcome::Failed { error, .. } = &report.outcome else {
            unreachable!()
        };
        let retriable = error.as_ref().is_none_or(|e| e.is_retriable());
        assert_eq!(retriable, case == "expired", "{case}: {error:?}");
    }
    assert!(
        signed.contains("\\\"attempt\\\":0"),
        "the altered case changed nothing"
    );
    let written: Vec<_> = walk(scratch.path());
    assert!(written.is_empty(), "a refused spec wrote {written:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().is_dir() {
            files.extend(walk(&entry.path()));
        } else {
            files.push(entry.path());
        }
    }
    files
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
    let stored = key().sign(&spec);
    std::fs::write(&spec_path, &stored).unwrap();
    let reference = format!(
        "{{\"spec_url\": \"file://{}\", \"sha256\": \"{}\"}}",
        spec_path.display(),
        squall_worker::signing::sha256_hex(&stored)
    );
    let report = run(reference.as_bytes()).await;
    assert!(
        matches!(report.outcome, TaskOutcome::Exchange { .. }),
        "{report:?}"
    );
    assert_eq!(report.input_rows, 25);

    let missing = run(br#"{"spec_url": "file:///no/such/spec.json", "sha256": ""}"#).await;
    assert!(
        missing.failure().unwrap().contains("/no/such/spec.json"),
        "{missing:?}"
    );

    // The object a reference names must be the one it pins: another spec,
    // even one signed with the right key, is refused.
    let other = key().sign(&spec.clone().into_iter().chain(*b" ").collect::<Vec<u8>>());
    std::fs::write(&spec_path, &other).unwrap();
    let swapped = run(reference.as_bytes()).await;
    assert!(
        swapped.failure().unwrap().contains("SHA-256 differs"),
        "{swapped:?}"
    );
    // And it must be signed.
    std::fs::write(&spec_path, &spec).unwrap();
    let unsigned = run(format!(
        "{{\"spec_url\": \"file://{}\", \"sha256\": \"{}\"}}",
        spec_path.display(),
        squall_worker::signing::sha256_hex(&spec)
    )
    .as_bytes())
    .await;
    assert!(
        unsigned.failure().unwrap().contains("not signed"),
        "{unsigned:?}"
    );
}
