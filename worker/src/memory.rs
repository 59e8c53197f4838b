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

/// The share of this machine's memory that the tasks of the local and
/// process backends share by default (the rest: the coordinator, result
/// parts, buffers outside the pools, the OS).
pub const MACHINE_MEMORY_SHARE_PERCENT: u64 = 75;

/// This machine's memory: the smaller of `MemTotal` and the memory limit of
/// this process's cgroup (a container's limit), if either can be read.
pub fn machine_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let total = meminfo.as_deref().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    // cgroup v2; "max" when unlimited.
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// The default memory limit of each of `concurrency` tasks running at once
/// on this machine: [`MACHINE_MEMORY_SHARE_PERCENT`] of its memory, shared
/// by them, so that together they stay within one process-wide budget.
pub fn machine_share_per_task(concurrency: usize) -> Option<u64> {
    let machine = machine_memory_bytes()?;
    Some(machine / 100 * MACHINE_MEMORY_SHARE_PERCENT / concurrency.max(1) as u64)
}

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
    fn tasks_running_at_once_share_three_quarters_of_the_machine() {
        let machine = machine_memory_bytes().expect("/proc/meminfo on Linux");
        let one = machine_share_per_task(1).unwrap();
        assert_eq!(one, machine / 100 * 75);
        let four = machine_share_per_task(4).unwrap();
        assert!(four * 4 <= one && four * 4 > one - 4, "{four} × 4 vs {one}");
        assert_eq!(machine_share_per_task(0), Some(one), "at least one task");
    }

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
