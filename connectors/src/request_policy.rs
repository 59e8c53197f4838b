//! How Squall sends each object-store request: how often a failed one is
//! sent again, when a slow one is hedged, and (for tests) which faults are
//! injected into it.
//!
//! Every store [`build_store_with`](crate::store_builder::build_store_with)
//! builds is layered, outermost first:
//!
//! 1. [`HedgedStore`](crate::hedged_store::HedgedStore): a GET of a bounded
//!    range, a HEAD or a PUT that has not completed within a deadline derived
//!    from its size is sent again; the first complete response wins. Only
//!    for the tasks' stores (the coordinator's rewrite keys a late hedge
//!    could undo), and not on local disk or memory unless faults are
//!    injected.
//! 2. [`RetryingStore`](crate::retrying_store::RetryingStore): a request that
//!    failed transiently is sent again after a short backoff, and a GET whose
//!    body broke off is resumed where it stopped. Only where nothing below
//!    retries: local disk, memory, and faults injected above a cloud store
//!    (which retries in its own HTTP client).
//! 3. [`FaultyStore`](crate::faulty_store::FaultyStore), only when
//!    [`RequestPolicy::faults`] is set: fails, delays and truncates requests
//!    at given rates, drawn from a seed.
//! 4. The store itself. Cloud stores retry HTTP errors (503 SlowDown,
//!    timeouts, broken bodies) with object_store's own `RetryConfig` first.
//!
//! The policy travels inside each TaskSpec, so a worker on any backend sends
//! its requests exactly as the session asked; the counts of retries and
//! hedges go back in the task's report.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Extra sends of one failed request, beyond the first, by default.
pub const DEFAULT_REQUEST_RETRIES: u32 = 3;

/// How requests are retried, hedged and (in tests) disturbed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestPolicy {
    /// Extra sends of a request that failed transiently.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// When slow requests are sent again; `None`: never.
    #[serde(default = "default_hedging")]
    pub hedging: Option<HedgePolicy>,
    /// Faults to inject (a testing option); `None` in normal use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<StoreFaults>,
}

fn default_retries() -> u32 {
    DEFAULT_REQUEST_RETRIES
}

fn default_hedging() -> Option<HedgePolicy> {
    Some(HedgePolicy::default())
}

impl Default for RequestPolicy {
    fn default() -> Self {
        Self {
            retries: DEFAULT_REQUEST_RETRIES,
            hedging: default_hedging(),
            faults: None,
        }
    }
}

/// When a request is hedged, as in Starling: after the time a healthy
/// request of its size takes (first-byte latency plus size over bandwidth)
/// it is sent again, and the first complete response wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HedgePolicy {
    /// Expected time to the first byte of a response.
    pub first_byte_ms: u64,
    /// Expected transfer rate of one request.
    pub bytes_per_second: u64,
    /// Hedges allowed per hundred requests of one task (plus one), so that a
    /// slow store is not answered with twice the load.
    pub max_hedged_percent: u32,
}

/// Requests larger than this are not hedged: hedging them would hold two
/// copies in memory and double their transfer.
pub const MAX_HEDGED_BYTES: u64 = 16 * 1024 * 1024;

impl Default for HedgePolicy {
    fn default() -> Self {
        Self {
            first_byte_ms: 200,
            bytes_per_second: 32 * 1024 * 1024,
            max_hedged_percent: 5,
        }
    }
}

impl HedgePolicy {
    /// How long a healthy request moving `bytes` takes, at most.
    pub fn deadline(&self, bytes: u64) -> Duration {
        let transfer_ms = bytes.saturating_mul(1000) / self.bytes_per_second.max(1);
        Duration::from_millis(self.first_byte_ms.saturating_add(transfer_ms))
    }
}

/// Faults injected into object-store requests, each drawn independently
/// per request from `seed` (a testing option: `--inject-store-faults`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreFaults {
    pub seed: u64,
    /// Share of requests that fail as a 503 would (a PUT, copy or delete
    /// fails before or, half of the time, after it took effect).
    pub fail_rate: f64,
    /// Share of requests delayed by `delay_ms` before they are sent.
    pub delay_rate: f64,
    pub delay_ms: u64,
    /// Share of GETs whose body breaks off half-way with an error.
    pub truncate_rate: f64,
}

impl Default for StoreFaults {
    fn default() -> Self {
        Self {
            seed: 0,
            fail_rate: 0.0,
            delay_rate: 0.0,
            delay_ms: 2_000,
            truncate_rate: 0.0,
        }
    }
}

impl fmt::Display for StoreFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fail={},delay={},delay-ms={},truncate={},seed={}",
            self.fail_rate, self.delay_rate, self.delay_ms, self.truncate_rate, self.seed
        )
    }
}

impl FromStr for StoreFaults {
    type Err = String;

    /// Parses `fail=0.1,delay=0.02,delay-ms=2000,truncate=0.02,seed=7`; any
    /// key may be left out.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut faults = StoreFaults::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("'{item}' is not KEY=VALUE"))?;
            let rate = |value: &str| -> Result<f64, String> {
                match value.parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                    _ => Err(format!("{key}={value}: a rate is a number from 0 to 1")),
                }
            };
            let whole = |value: &str| -> Result<u64, String> {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{key}={value}: expected a whole number"))
            };
            match key {
                "fail" => faults.fail_rate = rate(value)?,
                "delay" => faults.delay_rate = rate(value)?,
                "truncate" => faults.truncate_rate = rate(value)?,
                "delay-ms" => faults.delay_ms = whole(value)?,
                "seed" => faults.seed = whole(value)?,
                other => {
                    return Err(format!(
                        "unknown key '{other}' (expected fail, delay, delay-ms, truncate, seed)"
                    ));
                }
            }
        }
        if faults.fail_rate + faults.delay_rate + faults.truncate_rate > 1.0 {
            return Err("the rates add up to more than 1".into());
        }
        Ok(faults)
    }
}

/// Retries and hedges of one task's (or one process's) requests.
#[derive(Debug, Default)]
pub struct RequestStats {
    retried: AtomicU64,
    hedged: AtomicU64,
    hedges_won: AtomicU64,
}

impl RequestStats {
    pub(crate) fn count_retry(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_hedge(&self) {
        self.hedged.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_hedge_won(&self) {
        self.hedges_won.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests sent again after a transient failure.
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// Requests sent a second time because the first was slow.
    pub fn hedged(&self) -> u64 {
        self.hedged.load(Ordering::Relaxed)
    }

    /// Hedges that completed before the request they hedged.
    pub fn hedges_won(&self) -> u64 {
        self.hedges_won.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_print_and_bad_ones_are_named() {
        let faults: StoreFaults = "fail=0.1, delay=0.02,delay-ms=300,truncate=0.05,seed=9"
            .parse()
            .unwrap();
        assert_eq!(faults.fail_rate, 0.1);
        assert_eq!(faults.delay_ms, 300);
        assert_eq!(faults.seed, 9);
        assert_eq!(faults.to_string().parse::<StoreFaults>().unwrap(), faults);
        for (bad, named) in [
            ("fail=2", "fail=2"),
            ("delay", "'delay'"),
            ("seed=x", "seed=x"),
            ("jitter=1", "'jitter'"),
            ("fail=0.6,delay=0.6", "more than 1"),
        ] {
            let err = bad.parse::<StoreFaults>().unwrap_err();
            assert!(err.contains(named), "{bad}: {err}");
        }
    }

    #[test]
    fn hedge_deadline_grows_with_size() {
        let policy = HedgePolicy {
            first_byte_ms: 100,
            bytes_per_second: 1_000_000,
            max_hedged_percent: 5,
        };
        assert_eq!(policy.deadline(0), Duration::from_millis(100));
        assert_eq!(policy.deadline(2_000_000), Duration::from_millis(2_100));
    }

    #[test]
    fn specs_without_a_policy_get_the_default() {
        let policy: RequestPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(policy, RequestPolicy::default());
    }
}
