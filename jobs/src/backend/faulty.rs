//! A backend that crashes, duplicates, hangs and starves task attempts at
//! given rates: the failures of thousands of cloud-function invocations,
//! injected from a seed so that tests (and `--inject-task-faults`, a testing
//! option) can prove that queries survive them with the right answer.
//!
//! Per attempt, one draw decides among:
//! - **crash**: the invocation fails before the task runs, as a function
//!   killed at start would;
//! - **duplicate**: the spec is delivered twice at once, as Lambda may, and
//!   the first report is returned;
//! - **hang**: the invocation returns nothing for `hang_ms` (default 15
//!   minutes, Lambda's longest function timeout), so that the task timeout
//!   abandons it first (this fault needs `--task-timeout`); where
//!   abandoning does not cancel it, it then ends as a timed-out function
//!   would, without a report;
//! - **lose input**: the first exchange object the attempt reads is deleted
//!   just before it runs, so that its producer must be run again;
//! - **slow**: the attempt starts `slow_ms` late, a straggler that a backup
//!   attempt (speculation) can overtake.
//!
//! The draw depends on the seed and the attempt (stage, task, attempt
//! number), not on the query's random id or the order of invocations, so
//! the same query run twice with the same seed meets the same faults, as far
//! as its timing allows (backup attempts and timeouts depend on the clock).
//! A spec sent by reference, which this wrapper cannot read, draws from a
//! generator seeded by the seed instead.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use squall_worker::{FunctionLibrary, TaskKey};

use super::{Backend, WorkerReach};

/// Rates of task faults, each a share of attempts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFaults {
    pub seed: u64,
    pub crash_rate: f64,
    pub duplicate_rate: f64,
    pub hang_rate: f64,
    pub lose_input_rate: f64,
    pub slow_rate: f64,
    pub slow_ms: u64,
    pub hang_ms: u64,
}

/// How long a hung attempt hangs unless `hang-ms` says otherwise.
const DEFAULT_HANG_MS: u64 = 15 * 60 * 1000;

impl fmt::Display for TaskFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "crash={},duplicate={},hang={},hang-ms={},lose-input={},slow={},slow-ms={},seed={}",
            self.crash_rate,
            self.duplicate_rate,
            self.hang_rate,
            self.hang_ms,
            self.lose_input_rate,
            self.slow_rate,
            self.slow_ms,
            self.seed
        )
    }
}

impl FromStr for TaskFaults {
    type Err = String;

    /// Parses `crash=0.05,duplicate=0.05,hang=0.02,hang-ms=30000,
    /// lose-input=0.02,slow=0.02,slow-ms=10000,seed=7`; any key may be left out.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut faults = TaskFaults {
            slow_ms: 10_000,
            hang_ms: DEFAULT_HANG_MS,
            ..TaskFaults::default()
        };
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("'{item}' is not KEY=VALUE"))?;
            let whole = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{key}={value}: expected a whole number"))
            };
            let rate = || match value.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(format!("{key}={value}: a rate is a number from 0 to 1")),
            };
            match key {
                "crash" => faults.crash_rate = rate()?,
                "duplicate" => faults.duplicate_rate = rate()?,
                "hang" => faults.hang_rate = rate()?,
                "lose-input" => faults.lose_input_rate = rate()?,
                "slow" => faults.slow_rate = rate()?,
                "slow-ms" => faults.slow_ms = whole()?,
                "hang-ms" => faults.hang_ms = whole()?,
                "seed" => faults.seed = whole()?,
                other => {
                    return Err(format!(
                        "unknown key '{other}' (expected crash, duplicate, hang, hang-ms, \
                         lose-input, slow, slow-ms, seed)"
                    ));
                }
            }
        }
        if faults.total_rate() > 1.0 {
            return Err("the rates add up to more than 1".into());
        }
        Ok(faults)
    }
}

impl TaskFaults {
    fn total_rate(&self) -> f64 {
        self.crash_rate
            + self.duplicate_rate
            + self.hang_rate
            + self.lose_input_rate
            + self.slow_rate
    }
}

/// Wraps a backend and injects [`TaskFaults`] into its invocations.
/// Launcher fan-out is not used: every attempt is invoked (and disturbed) on
/// its own.
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    faults: TaskFaults,
    name: String,
    rng: Mutex<StdRng>,
    injected: Mutex<BTreeMap<&'static str, usize>>,
}

impl fmt::Debug for FaultyBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyBackend")
            .field("inner", &self.inner.name())
            .field("faults", &self.faults)
            .finish()
    }
}

impl FaultyBackend {
    pub fn new(inner: Arc<dyn Backend>, faults: TaskFaults) -> Self {
        Self {
            name: format!("{} with injected faults", inner.name()),
            rng: Mutex::new(StdRng::seed_from_u64(faults.seed)),
            inner,
            faults,
            injected: Mutex::new(BTreeMap::new()),
        }
    }

    /// How many faults of each kind (`crash`, `duplicate`, `hang`, `lost
    /// input`) were injected so far.
    pub fn injected(&self) -> BTreeMap<&'static str, usize> {
        self.injected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn count(&self, fault: &'static str) {
        *self
            .injected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(fault)
            .or_default() += 1;
    }

    /// The draw in [0, 1) that decides an invocation's fate: from the seed
    /// and the attempt the signed spec names.
    fn roll(&self, signed: &[u8]) -> f64 {
        let attempt = self
            .inner
            .task_key()
            .open(signed)
            .ok()
            .and_then(|payload| squall_worker::TaskSpec::from_bytes(&payload).ok())
            .map(|spec| (spec.stage_id, spec.task_index, spec.attempt));
        let Some(attempt) = attempt else {
            return self.rng.lock().unwrap_or_else(|e| e.into_inner()).random();
        };
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut draw = DefaultHasher::new();
        (self.faults.seed, attempt).hash(&mut draw);
        (draw.finish() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Deletes the first exchange object a signed spec reads; whether it did.
    async fn lose_first_input(&self, signed: &[u8]) -> bool {
        let Ok(payload) = self.inner.task_key().open(signed) else {
            return false;
        };
        let Ok(spec) = squall_worker::TaskSpec::from_bytes(&payload) else {
            // A stored spec's reference: nothing to read here.
            return false;
        };
        let Some(url) = spec
            .exchange_inputs
            .iter()
            .flat_map(|input| input.partitions.iter().flatten())
            .map(|range| range.url.clone())
            .next()
        else {
            return false;
        };
        let Ok(location) = squall_connectors::Location::parse(&url) else {
            return false;
        };
        let Ok(store) = location.build_store() else {
            return false;
        };
        use object_store::ObjectStoreExt;
        store.delete(&location.path()).await.is_ok()
    }
}

#[async_trait]
impl Backend for FaultyBackend {
    fn name(&self) -> &str {
        &self.name
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

    fn max_payload_bytes(&self) -> Option<usize> {
        self.inner.max_payload_bytes()
    }

    fn ends_hung_tasks(&self) -> bool {
        self.inner.ends_hung_tasks()
    }

    fn worker_memory_bytes(&self) -> Option<u64> {
        self.inner.worker_memory_bytes()
    }

    fn billed_memory_bytes(&self) -> Option<u64> {
        self.inner.billed_memory_bytes()
    }

    fn cancels_abandoned_invocations(&self) -> bool {
        self.inner.cancels_abandoned_invocations()
    }

    fn functions(&self) -> FunctionLibrary {
        self.inner.functions()
    }

    async fn invoke(&self, spec: Vec<u8>) -> Result<Vec<u8>, String> {
        let roll = self.roll(&spec);
        let f = &self.faults;
        if roll < f.crash_rate {
            self.count("crash");
            return Err("injected crash".into());
        }
        if roll < f.crash_rate + f.duplicate_rate {
            self.count("duplicate");
            let (first, _second) =
                tokio::join!(self.inner.invoke(spec.clone()), self.inner.invoke(spec));
            return first;
        }
        if roll < f.crash_rate + f.duplicate_rate + f.hang_rate {
            self.count("hang");
            tokio::time::sleep(std::time::Duration::from_millis(f.hang_ms)).await;
            return Err(format!("injected hang: no report after {} ms", f.hang_ms));
        }
        let lose_below = f.crash_rate + f.duplicate_rate + f.hang_rate + f.lose_input_rate;
        if roll < lose_below {
            if self.lose_first_input(&spec).await {
                self.count("lost input");
            }
        } else if roll < lose_below + f.slow_rate {
            self.count("slow");
            tokio::time::sleep(std::time::Duration::from_millis(f.slow_ms)).await;
        }
        self.inner.invoke(spec).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_print_and_bad_ones_are_named() {
        let faults: TaskFaults =
            "crash=0.05,duplicate=0.05,hang=0.02,lose-input=0.02,slow=0.1,seed=4"
                .parse()
                .unwrap();
        assert_eq!(faults.hang_rate, 0.02);
        assert_eq!(faults.slow_ms, 10_000);
        assert_eq!(faults.to_string().parse::<TaskFaults>().unwrap(), faults);
        for (bad, named) in [
            ("crash=1.5", "crash=1.5"),
            ("kill=0.1", "'kill'"),
            ("crash", "'crash'"),
            ("crash=0.9,hang=0.2", "more than 1"),
        ] {
            let err = bad.parse::<TaskFaults>().unwrap_err();
            assert!(err.contains(named), "{bad}: {err}");
        }
    }

    #[test]
    fn an_attempt_draws_the_same_fate_in_every_run_whatever_the_order() {
        let faults: TaskFaults = "crash=0.5,seed=9".parse().unwrap();
        let backend = FaultyBackend::new(Arc::new(super::super::LocalBackend::new(1)), faults);
        let signed = |query_id: &str, task_index: usize, attempt: u32| {
            let spec = squall_worker::TaskSpec {
                version: squall_worker::spec::TASK_SPEC_VERSION,
                query_id: query_id.into(),
                stage_id: 1,
                task_index,
                attempt,
                fragment: squall_worker::FragmentRef::Inline { bytes: vec![] },
                scans: vec![],
                exchange_inputs: vec![],
                output_url: format!("file:///tmp/{query_id}/out"),
                object_stores: vec![],
                limits: Default::default(),
                settings: Default::default(),
                sink_staging_url: None,
                requests: Default::default(),
                operator_metrics: false,
            };
            backend.task_key().sign(&spec.to_bytes())
        };
        let rolls = |query_id: &str| -> Vec<f64> {
            (0..20)
                .rev()
                .map(|i| backend.roll(&signed(query_id, i % 10, i as u32 / 10)))
                .collect()
        };
        let first = rolls("q-1");
        assert_eq!(first, rolls("q-2"), "the query id changes nothing");
        let mut distinct = first.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 20, "attempts draw apart: {first:?}");
        assert!(first.iter().any(|r| *r < 0.5) && first.iter().any(|r| *r >= 0.5));
        // A spec this wrapper cannot read still gets a draw.
        assert!((0.0..1.0).contains(&backend.roll(b"not a signed spec")));
    }
}
