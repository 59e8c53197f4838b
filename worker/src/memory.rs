//! How much memory and spill disk one task may use.
//!
//! The coordinator's [`TaskLimits`] say what a task may take; the worker
//! lowers that to what its host really has: inside a Lambda function, a
//! share of the function's memory (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`; the
//! rest holds the runtime, the decoded plan and buffers outside the pool)
//! and of `/tmp` (512 MB unless the function was given more ephemeral
//! storage, which `SQUALL_SPILL_BYTES` then says).

use crate::spec::TaskLimits;

/// The share of a Lambda function's memory a task's pool may take.
pub const LAMBDA_POOL_SHARE: f64 = 0.6;
/// Spill disk a task may use inside a Lambda function by default: most of
/// the default 512 MB of `/tmp`.
pub const LAMBDA_SPILL_BYTES: u64 = 400 * 1024 * 1024;

/// The memory pool size and spill bound of a task with `limits` on this host.
pub fn effective_limits(limits: &TaskLimits) -> (u64, u64) {
    effective_limits_in(limits, |name| std::env::var(name).ok())
}

fn effective_limits_in(limits: &TaskLimits, env: impl Fn(&str) -> Option<String>) -> (u64, u64) {
    let mut memory_bytes = limits.memory_bytes;
    let mut spill_bytes = limits.spill_bytes;
    if let Some(mb) = env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").and_then(|v| v.parse::<u64>().ok()) {
        let share = (mb as f64 * 1024.0 * 1024.0 * LAMBDA_POOL_SHARE) as u64;
        memory_bytes = memory_bytes.min(share);
        spill_bytes = spill_bytes.min(LAMBDA_SPILL_BYTES);
    }
    if let Some(bytes) = env("SQUALL_SPILL_BYTES").and_then(|v| v.parse::<u64>().ok()) {
        spill_bytes = limits.spill_bytes.min(bytes);
    }
    (memory_bytes, spill_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lambda_function_bounds_memory_and_spill() {
        let limits = TaskLimits::default();
        let none = |_: &str| None;
        assert_eq!(
            effective_limits_in(&limits, none),
            (limits.memory_bytes, limits.spill_bytes)
        );
        let lambda =
            |name: &str| (name == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE").then(|| "1769".into());
        let (memory, spill) = effective_limits_in(&limits, lambda);
        assert_eq!(
            memory,
            (1769.0 * 1024.0 * 1024.0 * LAMBDA_POOL_SHARE) as u64
        );
        assert_eq!(spill, LAMBDA_SPILL_BYTES);
        let more_tmp = |name: &str| match name {
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("10240".into()),
            "SQUALL_SPILL_BYTES" => Some("8000000000".into()),
            _ => None,
        };
        let (memory, spill) = effective_limits_in(&limits, more_tmp);
        assert_eq!(
            memory, limits.memory_bytes,
            "the coordinator's limit is lower"
        );
        assert_eq!(spill, 8_000_000_000);
    }
}
