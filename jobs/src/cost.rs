//! What a run on a serverless backend costs, estimated from what its tasks
//! measured: Lambda bills GB-seconds (configured memory times billed
//! duration) and invocations; S3 bills requests.
//!
//! Estimates use the worker's own busy time, which leaves out a function's
//! start-up (cold starts are billed too), so they are a floor; the prices
//! are list prices and can be overridden by the caller.

use crate::analyze::StageMeasures;

/// Function memory costs are estimated for when the backend bills none
/// (local, process): what `squall deploy lambda` gives a function by default.
pub const DEFAULT_FUNCTION_MEMORY_BYTES: u64 = 3538 * 1024 * 1024;

/// Prices in US dollars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CloudPrices {
    /// One GB-second of Lambda (x86, first pricing tier, us-east-1).
    pub lambda_gb_second_usd: f64,
    /// One Lambda invocation.
    pub lambda_invocation_usd: f64,
    /// One S3 GET or HEAD (Standard).
    pub s3_get_usd: f64,
    /// One S3 PUT, COPY, POST (multipart requests) or LIST.
    pub s3_put_usd: f64,
}

impl Default for CloudPrices {
    fn default() -> Self {
        Self {
            lambda_gb_second_usd: 0.000_016_666_7,
            lambda_invocation_usd: 0.20 / 1e6,
            s3_get_usd: 0.0004 / 1000.0,
            s3_put_usd: 0.005 / 1000.0,
        }
    }
}

/// The parts of an estimate, and their sum.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CostEstimate {
    pub gb_seconds: f64,
    /// Task attempts: finished tasks, retries and backups.
    pub invocations: u64,
    pub get_requests: u64,
    pub put_requests: u64,
    pub usd: f64,
}

/// The cost of `measures` on functions of `function_memory_bytes` each.
pub fn estimate(
    measures: &StageMeasures,
    function_memory_bytes: u64,
    prices: &CloudPrices,
) -> CostEstimate {
    // Lambda's GB is 1,024 MB of configured memory.
    let gb = function_memory_bytes as f64 / (1u64 << 30) as f64;
    let gb_seconds = gb * measures.busy_ms as f64 / 1000.0;
    let invocations = (measures.finished_tasks + measures.retries + measures.backups) as u64;
    let r = &measures.requests;
    let get_requests = r.get + r.head;
    let put_requests = r.put + r.multipart_put + r.copy + r.list;
    let usd = gb_seconds * prices.lambda_gb_second_usd
        + invocations as f64 * prices.lambda_invocation_usd
        + get_requests as f64 * prices.s3_get_usd
        + put_requests as f64 * prices.s3_put_usd;
    CostEstimate {
        gb_seconds,
        invocations,
        get_requests,
        put_requests,
        usd,
    }
}

/// "$0.0123", with enough digits to show a cent's fraction.
pub fn dollars(usd: f64) -> String {
    if usd >= 1.0 {
        format!("${usd:.2}")
    } else if usd >= 0.0001 {
        format!("${usd:.4}")
    } else {
        format!("${usd:.6}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_tasks_of_a_second_on_two_gigabytes() {
        let measures = StageMeasures {
            finished_tasks: 1000,
            busy_ms: 1_000_000,
            requests: squall_worker::RequestCounts {
                get: 10_000,
                put: 1000,
                ..Default::default()
            },
            ..StageMeasures::default()
        };
        let cost = estimate(&measures, 2 << 30, &CloudPrices::default());
        assert_eq!(cost.gb_seconds, 2000.0);
        assert_eq!(cost.invocations, 1000);
        // 2,000 GB-s, 1,000 invocations, 10,000 GETs and 1,000 PUTs.
        let expected = 2000.0 * 0.000_016_666_7 + 0.0002 + 0.004 + 0.005;
        assert!((cost.usd - expected).abs() < 1e-12, "{cost:?}");
        assert_eq!(dollars(cost.usd), "$0.0425");
        assert_eq!(dollars(12.345), "$12.35");
        assert_eq!(dollars(0.00001), "$0.000010");
    }
}
