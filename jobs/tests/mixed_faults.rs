//! All 22 TPC-H queries at scale 0.1 under faults injected at fixed rates
//! from a fixed seed, on the local backend: of all task attempts, 5% crash
//! before they run, 5% are delivered twice at once (as Lambda may), 2% hang
//! until the task timeout abandons them, and 2% find their first exchange
//! input deleted just before they read it. Every answer must be single-node
//! DataFusion's, and every kind of fault must actually have happened.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{first_exchange_input, open_spec, squall_session_with, tpch_data, tpch_differences};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use squall_jobs::{Backend, LocalBackend, SessionOptions, WorkerReach};
use squall_worker::TaskKey;

const SEED: u64 = 20261123;
const CRASH_RATE: f64 = 0.05;
const DUPLICATE_RATE: f64 = 0.05;
const HANG_RATE: f64 = 0.02;
const LOSE_INPUT_RATE: f64 = 0.02;

/// The local backend with faults drawn from a seeded generator.
#[derive(Debug)]
struct RandomFaults {
    inner: LocalBackend,
    rng: Mutex<StdRng>,
    injected: Mutex<BTreeMap<&'static str, usize>>,
}

impl RandomFaults {
    fn count(&self, fault: &'static str) {
        *self.injected.lock().unwrap().entry(fault).or_default() += 1;
    }
}

#[async_trait]
impl Backend for RandomFaults {
    fn name(&self) -> &str {
        "random-faults"
    }

    fn task_key(&self) -> &TaskKey {
        self.inner.task_key()
    }

    fn reach(&self) -> WorkerReach {
        self.inner.reach()
    }

    fn max_concurrency(&self) -> usize {
        self.inner.max_concurrency()
    }

    async fn invoke(&self, spec: Vec<u8>) -> Result<Vec<u8>, String> {
        let roll: f64 = self.rng.lock().unwrap().random();
        let mut threshold = CRASH_RATE;
        if roll < threshold {
            self.count("crash");
            return Err("injected crash".into());
        }
        threshold += DUPLICATE_RATE;
        if roll < threshold {
            self.count("duplicate");
            let (first, _second) =
                tokio::join!(self.inner.invoke(spec.clone()), self.inner.invoke(spec));
            return first;
        }
        threshold += HANG_RATE;
        if roll < threshold {
            self.count("hang");
            std::future::pending::<()>().await;
            unreachable!("a pending future never completes")
        }
        threshold += LOSE_INPUT_RATE;
        if roll < threshold
            && let Some(url) = first_exchange_input(&open_spec(&self.inner, &spec))
        {
            self.count("lost input");
            let _ = std::fs::remove_file(url.strip_prefix("file://").unwrap());
        }
        self.inner.invoke(spec).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_under_mixed_faults_matches_single_node_datafusion() {
    let data = tpch_data().await;
    let backend = Arc::new(RandomFaults {
        inner: LocalBackend::new(4),
        rng: Mutex::new(StdRng::seed_from_u64(SEED)),
        injected: Mutex::new(BTreeMap::new()),
    });
    let session = squall_session_with(
        data,
        SessionOptions {
            backend: Arc::clone(&backend) as Arc<dyn Backend>,
            // Each fault hits an attempt with at most 14% chance: six
            // attempts make a task that fails them all a one-in-100,000 event.
            task_attempts: 6,
            // Healthy tasks at this scale take well under a second.
            task_timeout: Some(Duration::from_secs(5)),
            ..SessionOptions::default()
        },
    )
    .await;
    let failures = tpch_differences(&session, data).await;
    let injected = backend.injected.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} queries differ under faults {injected:?}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for fault in ["crash", "duplicate", "hang", "lost input"] {
        assert!(
            injected.get(fault).copied().unwrap_or(0) > 0,
            "no {fault} was injected: {injected:?}"
        );
    }
}
