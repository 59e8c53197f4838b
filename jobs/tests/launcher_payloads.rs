//! Launcher groups fit their backend's payload limit: when the specs of a
//! group together would exceed it, the largest travel by reference (stored
//! under the query's scratch prefix), and the group is still one launcher
//! invocation whose tasks resolve their specs and return the right rows.

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{assert_same_rows, reference_rows, squall_session_with, tpch_data, tpch_query};
use squall_jobs::group_speculation::{GroupBackups, LaunchedTask, run_group};
use squall_jobs::{
    Backend, LaunchRequest, LocalBackend, SessionOptions, WorkerReach, signed_launch_payload,
};
use squall_worker::TaskKey;

#[derive(Debug, Default)]
struct Seen {
    groups: usize,
    /// The largest spec payload in any group.
    largest_spec_bytes: usize,
    /// The largest signed launch request a group would make (as the
    /// Lambda backend builds it).
    largest_group_bytes: usize,
    /// Specs that came in a group as a `{"spec_url"}` reference.
    references_in_groups: usize,
}

/// A local backend with a payload limit and launcher groups, which checks
/// what each group carries.
#[derive(Debug)]
struct LimitedBackend {
    inner: LocalBackend,
    payload_limit_bytes: Option<usize>,
    seen: Mutex<Seen>,
}

#[async_trait]
impl Backend for LimitedBackend {
    fn name(&self) -> &str {
        "limited"
    }
    fn task_key(&self) -> &TaskKey {
        self.inner.task_key()
    }
    fn reach(&self) -> WorkerReach {
        self.inner.reach()
    }
    fn max_concurrency(&self) -> usize {
        2
    }
    fn max_payload_bytes(&self) -> Option<usize> {
        self.payload_limit_bytes
    }
    fn launcher_threshold(&self) -> Option<usize> {
        Some(2)
    }

    async fn invoke_group(
        &self,
        specs: Vec<Vec<u8>>,
        in_flight: usize,
        backups: Option<GroupBackups>,
    ) -> Result<Vec<LaunchedTask>, String> {
        {
            let mut seen = self.seen.lock().unwrap();
            seen.groups += 1;
            let request = LaunchRequest {
                function: "squall-worker".into(),
                qualifier: Some("live".into()),
                in_flight: Some(in_flight),
                specs: specs
                    .iter()
                    .map(|s| serde_json::from_slice(s).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?,
                backups: backups.clone(),
            };
            let launch = signed_launch_payload(self.task_key(), &request)?;
            seen.largest_group_bytes = seen.largest_group_bytes.max(launch.len());
            for spec in &specs {
                seen.largest_spec_bytes = seen.largest_spec_bytes.max(spec.len());
                let payload = self.task_key().open(spec).map_err(|e| e.to_string())?;
                let json: serde_json::Value =
                    serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
                if json.get("spec_url").is_some() {
                    seen.references_in_groups += 1;
                }
            }
        }
        let backups = backups.as_ref().map(|b| (b, self.task_key()));
        Ok(run_group(specs, in_flight, backups, |s| self.inner.invoke(s)).await)
    }

    async fn invoke(&self, spec: Vec<u8>) -> Result<Vec<u8>, String> {
        self.inner.invoke(spec).await
    }
}

/// Runs Q3 on a [`LimitedBackend`] and checks its rows; returns what it saw.
async fn run_q3(payload_limit_bytes: Option<usize>) -> Seen {
    let data = tpch_data().await;
    let backend = Arc::new(LimitedBackend {
        inner: LocalBackend::new(2),
        payload_limit_bytes,
        seen: Mutex::new(Seen::default()),
    });
    let session = squall_session_with(
        data,
        SessionOptions {
            backend: Arc::clone(&backend) as Arc<dyn Backend>,
            ..SessionOptions::default()
        },
    )
    .await;
    let sql = tpch_query(3);
    let rows = session
        .query(&sql)
        .await
        .expect("query")
        .collect()
        .await
        .expect("rows");
    assert_same_rows(&reference_rows(data, &sql).await, &rows).expect("Q3's rows");
    std::mem::take(&mut *backend.seen.lock().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launcher_group_too_large_for_one_payload_carries_its_largest_specs_by_reference() {
    // Without a limit: how large Q3's specs and groups are.
    let free = run_q3(None).await;
    assert!(free.groups > 0, "Q3's scans run in launcher groups");
    assert_eq!(free.references_in_groups, 0, "{free:?}");
    // A limit every spec fits alone but the largest group does not.
    let limit = free.largest_spec_bytes * 3 / 2;
    assert!(
        free.largest_group_bytes > limit,
        "the largest group must outgrow the limit for this test: {free:?}"
    );
    let limited = run_q3(Some(limit)).await;
    assert!(
        limited.references_in_groups > 0,
        "some specs of a group travel by reference: {limited:?}"
    );
    assert!(
        limited.largest_group_bytes <= limit,
        "every launch request fits the payload limit ({limit} bytes): {limited:?}"
    );
}
