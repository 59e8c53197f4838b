//! From stage profiles to predicted seconds and dollars on Lambda + S3.
//!
//! A task's time is its function's start, then the larger of its transfer
//! (input and output at the function's S3 throughput) and its compute
//! (its share of the stage's vCPU time on the function's vCPUs), plus the
//! first-byte latency of its requests, a few in flight at once. A stage
//! runs its tasks in waves of the functions it can have at once (the
//! coordinator's or its launchers' invocations in flight, the account's
//! concurrency, Lambda's scaling rate) and takes at least as long as S3
//! needs to serve its requests under one prefix. A stage starts when its
//! inputs have finished; the query ends when its last stage has, and its
//! result has been downloaded.

use super::params::ModelParams;
use super::profile::StageProfile;

const MIB: f64 = 1024.0 * 1024.0;

/// What the model predicts for one stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePrediction {
    pub stage_id: usize,
    pub tasks: usize,
    /// Launcher functions that invoke the tasks (0: the coordinator does).
    pub launchers: usize,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub output_guessed: bool,
    pub get_requests: u64,
    pub put_requests: u64,
    /// One task, from invocation to report.
    pub task_seconds: f64,
    /// From the query's start.
    pub start_seconds: f64,
    pub end_seconds: f64,
    /// Billed function time: its tasks, and its launchers while they wait.
    pub gb_seconds: f64,
    pub usd: f64,
}

impl StagePrediction {
    pub fn seconds(&self) -> f64 {
        self.end_seconds - self.start_seconds
    }
}

/// What the model predicts for a query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPrediction {
    pub stages: Vec<StagePrediction>,
    /// Until the whole result is on the client.
    pub seconds: f64,
    pub usd: f64,
}

impl QueryPrediction {
    pub fn tasks(&self) -> usize {
        self.stages.iter().map(|s| s.tasks).sum()
    }
}

/// The prediction for `profiles` (inputs before the stages that read them).
pub fn predict(profiles: &[StageProfile], params: &ModelParams) -> QueryPrediction {
    let mut stages: Vec<StagePrediction> = Vec::with_capacity(profiles.len());
    for profile in profiles {
        let start_seconds = profile
            .inputs
            .iter()
            .filter_map(|id| stages.iter().find(|s| s.stage_id == *id))
            .map(|s| s.end_seconds)
            .fold(0.0, f64::max);
        stages.push(predict_stage(profile, start_seconds, params));
    }
    let last_end = stages.iter().map(|s| s.end_seconds).fold(0.0, f64::max);
    let result_bytes = profiles
        .iter()
        .filter(|p| p.is_final)
        .map(|p| p.output_bytes)
        .sum::<u64>();
    let download =
        params.s3_first_byte_ms / 1000.0 + result_bytes as f64 / MIB / params.client_mib_per_second;
    QueryPrediction {
        seconds: last_end + download,
        usd: stages.iter().map(|s| s.usd).sum(),
        stages,
    }
}

fn predict_stage(profile: &StageProfile, start_seconds: f64, p: &ModelParams) -> StagePrediction {
    let tasks = profile.tasks.max(1);
    let n = tasks as f64;
    let transfer = (profile.input_bytes + profile.output_bytes) as f64 / n / MIB;
    let transfer_seconds = transfer / p.network_mib_per_second;
    let compute_seconds = profile.cpu_ms / n / 1000.0 / p.vcpus();
    let requests = (profile.get_requests + profile.put_requests) as f64 / n;
    let latency_seconds = requests / p.requests_in_flight_per_task * p.s3_first_byte_ms / 1000.0;
    let task_seconds =
        p.cold_start_ms / 1000.0 + transfer_seconds.max(compute_seconds) + latency_seconds;

    // Who invokes: the coordinator for small stages, else launchers, each
    // keeping its own invocations in flight.
    let direct = tasks as u64 <= p.launcher_threshold;
    let launchers = if direct {
        0
    } else {
        p.launcher_threshold.max(1) as usize
    };
    let in_flight = if direct {
        p.invocations_in_flight
    } else {
        launchers as u64 * p.invocations_in_flight
    };
    let concurrency = (tasks as u64)
        .min(in_flight)
        .min(p.account_concurrency)
        .max(1);
    let waves = (tasks as u64).div_ceil(concurrency) as f64;
    let launch_seconds = if direct {
        p.invoke_ms / 1000.0
    } else {
        2.0 * p.invoke_ms / 1000.0 + p.cold_start_ms / 1000.0
    };
    // Lambda adds environments at its scaling rate: the last of
    // `concurrency` arrives this long after the first.
    let ramp_seconds = (concurrency.div_ceil(p.scaling_per_10_seconds) - 1) as f64 * 10.0;
    let run_seconds = launch_seconds + ramp_seconds + waves * (task_seconds + p.invoke_ms / 1000.0);
    let served_seconds = (profile.get_requests as f64 / p.s3_gets_per_prefix_second)
        .max(profile.put_requests as f64 / p.s3_puts_per_prefix_second);
    let stage_seconds = run_seconds.max(served_seconds);

    let gb_seconds = p.function_gb() * (n * task_seconds + launchers as f64 * stage_seconds);
    let invocations = (tasks + launchers) as f64;
    let usd = gb_seconds * p.lambda_gb_second_usd
        + invocations * p.lambda_invocation_usd
        + profile.get_requests as f64 * p.s3_get_usd
        + profile.put_requests as f64 * p.s3_put_usd;
    StagePrediction {
        stage_id: profile.stage_id,
        tasks,
        launchers,
        input_bytes: profile.input_bytes,
        output_bytes: profile.output_bytes,
        output_guessed: profile.output_guessed,
        get_requests: profile.get_requests,
        put_requests: profile.put_requests,
        task_seconds,
        start_seconds,
        end_seconds: start_seconds + stage_seconds,
        gb_seconds,
        usd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn scan(tasks: usize, input_bytes: u64) -> StageProfile {
        let params = ModelParams::default();
        StageProfile {
            stage_id: 0,
            tasks,
            inputs: vec![],
            input_bytes,
            output_bytes: input_bytes / 100,
            output_guessed: false,
            get_requests: (input_bytes as f64 / MIB / params.scan_mib_per_get) as u64,
            put_requests: tasks as u64,
            cpu_ms: input_bytes as f64 / MIB / params.cpu_mib_per_vcpu_second * 1000.0,
            is_final: false,
        }
    }

    #[test]
    fn more_tasks_finish_sooner_until_waves_and_cost_more() {
        let params = ModelParams::default();
        let seconds = |tasks| predict(&[scan(tasks, 100 * GIB)], &params).seconds;
        let usd = |tasks| predict(&[scan(tasks, 100 * GIB)], &params).usd;
        // 100 GiB: 1,280 s of transfer at 80 MiB/s on one function.
        assert!(seconds(10) > 100.0, "{}", seconds(10));
        assert!(seconds(100) < seconds(10) / 5.0);
        assert!(seconds(1000) < seconds(100));
        // Past the account's 1,000 functions, tasks run in waves: no faster.
        assert!(
            seconds(4000) > seconds(1000) * 0.9,
            "{} {}",
            seconds(4000),
            seconds(1000)
        );
        // Every task pays its start: more tasks cost more, as long as the
        // invoking stays the same (launchers are billed while they wait,
        // so a stage of fewer, longer tasks through launchers can cost more).
        assert!(usd(32) > usd(10));
        assert!(usd(4000) > usd(1000));
    }

    #[test]
    fn a_stage_waits_for_its_inputs_and_the_result_is_downloaded() {
        let params = ModelParams::default();
        let first = scan(10, GIB);
        let mut second = scan(1, GIB / 100);
        second.stage_id = 1;
        second.inputs = vec![0];
        second.is_final = true;
        second.output_bytes = 100 * 1024 * 1024;
        let prediction = predict(&[first, second], &params);
        let (a, b) = (&prediction.stages[0], &prediction.stages[1]);
        assert_eq!(b.start_seconds, a.end_seconds);
        // 100 MiB of result at 100 MiB/s.
        assert!(prediction.seconds >= b.end_seconds + 1.0);
        assert!((prediction.usd - a.usd - b.usd).abs() < 1e-12);
    }

    #[test]
    fn s3_request_rates_bound_a_stage() {
        let params = ModelParams::default();
        let mut shuffle = scan(1000, GIB);
        // A 1,000 x 1,000 exchange read: a million GETs under one prefix.
        shuffle.get_requests = 1_000_000;
        let stage = &predict(&[shuffle], &params).stages[0];
        assert!(stage.seconds() >= 1_000_000.0 / 5500.0, "{stage:?}");
        assert!(stage.usd >= 1_000_000.0 * params.s3_get_usd);
    }

    #[test]
    fn large_stages_go_through_launchers_billed_while_they_wait() {
        let params = ModelParams::default();
        let small = &predict(&[scan(32, GIB)], &params).stages[0];
        let large = &predict(&[scan(33, GIB)], &params).stages[0];
        assert_eq!(small.launchers, 0);
        assert_eq!(large.launchers, 32);
        assert!(large.gb_seconds > small.gb_seconds);
    }
}
