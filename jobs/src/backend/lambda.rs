//! [`LambdaBackend`]: one synchronous AWS Lambda `Invoke` per task.
//!
//! The payload is the signed TaskSpec JSON (see [`squall_worker::signing`];
//! launcher requests are signed too); the response is the TaskReport JSON.
//! Throttling (429 `TooManyRequestsException`) and server errors (5xx) are
//! retried with exponential backoff and full jitter, a bounded number of
//! times. A function error (unhandled panic, timeout, out of memory) comes
//! back with the function's error message and the tail of its log.
//!
//! Every `Invoke` has a deadline: the function's timeout, a tenth more, and
//! [`INVOKE_DEADLINE_MARGIN`] (from Lambda's longest timeout when the
//! function's cannot be read). Lambda answers every invocation by then, so an
//! invocation still unanswered was lost (a dropped connection, a runtime
//! that died without reporting): it fails, and the scheduler runs the task
//! again as a new attempt.
//!
//! A stage may be spread over several functions (names or aliases): tasks go
//! to them in turn, and each function's invocations in flight follow its own
//! [`ScalingRamp`], since Lambda adds capacity per function.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_lambda::Client;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, LogType};
use base64::Engine;
use rand::Rng;

use squall_worker::{TASK_KEY_ENV, TaskKey};

use super::scaling::{LAMBDA_SCALING_RATE, LAMBDA_SCALING_WINDOW, ScalingRamp};
use super::{Backend, WorkerReach};
use crate::group_speculation::{AttemptSpan, BackupUse, GroupBackups, LaunchedTask, run_group};
use futures::FutureExt;

/// The payload of a launcher invocation: `{"launch": request}`, signed like
/// a spec (a launcher invokes functions only on the coordinator's word).
pub fn signed_launch_payload(key: &TaskKey, request: &LaunchRequest) -> Result<Vec<u8>, String> {
    let payload =
        serde_json::to_vec(&serde_json::json!({ "launch": request })).map_err(|e| e.to_string())?;
    Ok(key.sign(&payload))
}

/// Synchronous invocation payloads are limited to 6 MB; larger specs travel by reference.
pub const MAX_SYNC_PAYLOAD_BYTES: usize = 6 * 1024 * 1024 - 64 * 1024;
/// Retries of one invocation after throttling or a server error.
const MAX_INVOKE_RETRIES: u32 = 8;
const BACKOFF_BASE_MS: u64 = 100;
const BACKOFF_CAP_MS: u64 = 20_000;
/// Lambda's longest function timeout, assumed where a function's own
/// cannot be read (no `lambda:GetFunctionConfiguration`, an emulator).
pub const LAMBDA_MAX_FUNCTION_TIMEOUT: Duration = Duration::from_secs(900);
/// How long past the function's timeout an `Invoke` may stay unanswered
/// before it counts as lost, besides a tenth of the timeout: Lambda's own
/// answer to a timed-out function comes within seconds.
pub const INVOKE_DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// Where and how to invoke the worker function.
#[derive(Debug, Clone)]
pub struct LambdaOptions {
    /// Function names or ARNs; tasks are spread over them in turn.
    pub functions: Vec<String>,
    /// Version or alias.
    pub qualifier: Option<String>,
    /// Region; default from the environment (AWS_REGION, profile).
    pub region: Option<String>,
    /// Invoke API endpoint (an emulator); default from AWS_ENDPOINT_URL_LAMBDA or AWS.
    pub endpoint_url: Option<String>,
    /// Most invocations in flight.
    pub workers: usize,
    /// Stages with more tasks than this go through at most this many launcher
    /// invocations, each invoking its share of the tasks (0: never).
    pub launcher_threshold: usize,
    /// New invocations in flight each function may add per 10 s (0: no pacing).
    pub scaling_rate: usize,
    /// The functions' task key; `None`: SQUALL_TASK_KEY, or else the
    /// `SQUALL_TASK_KEY` in the functions' configuration (which
    /// `squall deploy lambda` sets).
    pub task_key: Option<TaskKey>,
}

impl Default for LambdaOptions {
    fn default() -> Self {
        Self {
            functions: Vec::new(),
            qualifier: None,
            region: None,
            endpoint_url: None,
            workers: DEFAULT_LAMBDA_WORKERS,
            launcher_threshold: DEFAULT_LAUNCHER_THRESHOLD,
            scaling_rate: LAMBDA_SCALING_RATE,
            task_key: None,
        }
    }
}

/// Invocations in flight unless the user says otherwise.
pub const DEFAULT_LAMBDA_WORKERS: usize = 64;
/// Default launcher threshold: a stage of up to 32 tasks is invoked directly.
pub const DEFAULT_LAUNCHER_THRESHOLD: usize = 32;
/// Sub-invocations a launcher keeps in flight unless its request says otherwise.
const LAUNCHER_CONCURRENCY: usize = 64;
/// The most sub-invocations one launcher keeps in flight, whatever it is asked.
const MAX_LAUNCHER_CONCURRENCY: usize = 1000;

/// What a launcher invocation carries.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LaunchRequest {
    pub function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// Sub-invocations to keep in flight (the coordinator's share of its caps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<usize>,
    pub specs: Vec<serde_json::Value>,
    /// Backup specs for the group's stragglers (see [`crate::group_speculation`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backups: Option<GroupBackups>,
}

/// A launcher's response: one result per spec, which tasks got a backup,
/// and when each task's attempts ran (for the report's timeline).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct LaunchResponse {
    results: Vec<LaunchResult>,
    #[serde(default)]
    backups: Vec<BackupUse>,
    #[serde(default)]
    spans: Vec<Vec<AttemptSpan>>,
}

/// One sub-invocation's outcome in a launcher's response.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaunchResult {
    Report(serde_json::Value),
    Error(String),
}

/// Runs a launcher request (already opened with `key`): invokes every spec
/// on its function, as many at once as the request says (bounded), and the
/// backup of any straggler the request allows one for; returns the JSON
/// response. The specs go on as they came, signed by the coordinator.
pub async fn run_launcher(
    request: LaunchRequest,
    key: TaskKey,
    endpoint_url: Option<String>,
) -> Result<Vec<u8>, String> {
    let in_flight = request
        .in_flight
        .unwrap_or(LAUNCHER_CONCURRENCY)
        .clamp(1, MAX_LAUNCHER_CONCURRENCY);
    let backend = LambdaBackend::try_new(LambdaOptions {
        functions: vec![request.function.clone()],
        qualifier: request.qualifier.clone(),
        region: None,
        endpoint_url,
        // A backup waits for a free slot of `in_flight` (see `run_group`).
        workers: in_flight,
        launcher_threshold: 0,
        // The coordinator paced this launcher with its sub-invocations counted.
        scaling_rate: 0,
        task_key: Some(key.clone()),
    })
    .await?;
    let specs: Vec<Vec<u8>> = request
        .specs
        .iter()
        .map(|spec| serde_json::to_vec(spec).unwrap_or_default())
        .collect();
    let backups = request.backups.as_ref().map(|b| (b, &key));
    let launched = run_group(specs, in_flight, backups, |spec| {
        let backend = backend.clone();
        async move { backend.invoke(spec).await }.boxed()
    })
    .await;
    let response = LaunchResponse {
        backups: launched.iter().map(|t| t.backup).collect(),
        spans: launched.iter().map(|t| t.spans.clone()).collect(),
        results: launched
            .into_iter()
            .map(|t| match t.result {
                Ok(report) => match serde_json::from_slice::<serde_json::Value>(&report) {
                    Ok(raw) => LaunchResult::Report(raw),
                    Err(e) => LaunchResult::Error(format!("report is not JSON: {e}")),
                },
                Err(e) => LaunchResult::Error(e),
            })
            .collect(),
    };
    serde_json::to_vec(&response).map_err(|e| e.to_string())
}

/// Runs tasks as invocations of a Lambda function serving `squall` workers.
#[derive(Debug, Clone)]
pub struct LambdaBackend {
    client: Client,
    options: LambdaOptions,
    /// One ramp per function of `options.functions`; empty when not pacing.
    ramps: Arc<Vec<Arc<ScalingRamp>>>,
    /// The function the next invocation goes to, modulo their number.
    next_function: Arc<AtomicUsize>,
    key: TaskKey,
    /// The memory of the smallest function (`MemorySize`), once read
    /// ([`LambdaBackend::read_function_configuration`]).
    function_memory_bytes: Option<u64>,
    /// The longest timeout of the functions (`Timeout`), once read; Lambda's
    /// longest until then.
    function_timeout: Duration,
}

impl LambdaBackend {
    /// A backend for `options`, with credentials and region from the usual AWS sources.
    pub async fn try_new(options: LambdaOptions) -> Result<Self, String> {
        let mut options = options;
        options.functions.retain(|f| !f.trim().is_empty());
        if options.functions.is_empty() {
            return Err(
                "the lambda backend needs a function name (--function, SQUALL_LAMBDA_FUNCTION \
                 or `function` in the [lambda] section of the config file)"
                    .into(),
            );
        }
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &options.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let sdk_config = loader.load().await;
        if sdk_config.region().is_none() {
            return Err("no AWS region: set AWS_REGION or pass --region".into());
        }
        let mut config = aws_sdk_lambda::config::Builder::from(&sdk_config)
            // The SDK's own retries would multiply ours.
            .retry_config(aws_config::retry::RetryConfig::disabled());
        if let Some(endpoint) = &options.endpoint_url {
            config = config.endpoint_url(endpoint.clone());
        }
        let client = Client::from_conf(config.build());
        let key = match options.task_key.clone() {
            Some(key) => key,
            None => match TaskKey::from_env().map_err(|e| e.to_string())? {
                Some(key) => key,
                None => functions_task_key(&client, &options).await?,
            },
        };
        let ramps = if options.scaling_rate > 0 {
            options
                .functions
                .iter()
                .map(|_| ScalingRamp::new(options.scaling_rate, LAMBDA_SCALING_WINDOW))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            client,
            options,
            ramps: Arc::new(ramps),
            next_function: Arc::new(AtomicUsize::new(0)),
            key,
            function_memory_bytes: None,
            function_timeout: LAMBDA_MAX_FUNCTION_TIMEOUT,
        })
    }

    /// Reads the memory and timeout of every function
    /// (`lambda:GetFunctionConfiguration`), so that tasks are planned for
    /// the smallest memory ([`Backend::worker_memory_bytes`]) and an
    /// unanswered invocation counts as lost soon after the longest timeout
    /// ([`LambdaBackend::invoke_deadline`]). Where it cannot be read (no
    /// permission, an emulator that does not serve it), tasks are planned
    /// by `--task-memory` alone and Lambda's longest timeout is assumed.
    pub async fn read_function_configuration(mut self) -> Self {
        let mut smallest: Option<u64> = None;
        let mut longest = Duration::ZERO;
        for function in &self.options.functions {
            let read = self
                .client
                .get_function_configuration()
                .function_name(function)
                .set_qualifier(self.options.qualifier.clone())
                .send()
                .await;
            let configuration = read
                .ok()
                .and_then(|c| Some((c.memory_size()?, c.timeout()?)))
                .filter(|(mb, seconds)| *mb > 0 && *seconds > 0);
            let Some((mb, seconds)) = configuration else {
                log::debug!(
                    "the configuration of function {function} could not be read: tasks are \
                     planned by --task-memory alone"
                );
                return self;
            };
            let bytes = mb as u64 * 1024 * 1024;
            smallest = Some(smallest.map_or(bytes, |s| s.min(bytes)));
            longest = longest.max(Duration::from_secs(seconds as u64));
        }
        self.function_memory_bytes = smallest;
        self.function_timeout = longest.min(LAMBDA_MAX_FUNCTION_TIMEOUT);
        self
    }

    /// How long one `Invoke` may stay unanswered before it counts as lost:
    /// the function's timeout, a tenth of it and [`INVOKE_DEADLINE_MARGIN`].
    pub fn invoke_deadline(&self) -> Duration {
        self.function_timeout + self.function_timeout / 10 + INVOKE_DEADLINE_MARGIN
    }

    /// The function for the next invocation, and its ramp when pacing.
    fn pick_function(&self) -> (usize, Option<&Arc<ScalingRamp>>) {
        let i = self.next_function.fetch_add(1, Ordering::Relaxed) % self.options.functions.len();
        (i, self.ramps.get(i))
    }

    /// Invokes `function` with retries on throttling and server errors.
    async fn invoke_function(&self, function: &str, spec: &[u8]) -> Result<Vec<u8>, String> {
        let mut retries = 0;
        loop {
            match self.invoke_once(function, spec).await {
                Ok(report) => return Ok(report),
                Err(Attempt::Final(message)) => {
                    return Err(format!("function {function}: {message}"));
                }
                Err(Attempt::Retry(message)) if retries >= MAX_INVOKE_RETRIES => {
                    return Err(format!(
                        "function {function}: gave up after {retries} retries: {message}"
                    ));
                }
                Err(Attempt::Retry(_)) => {
                    // Exponential backoff with full jitter.
                    let cap = (BACKOFF_BASE_MS << retries.min(16)).min(BACKOFF_CAP_MS);
                    let wait = rand::rng().random_range(0..=cap);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    retries += 1;
                }
            }
        }
    }

    async fn invoke_once(&self, function: &str, spec: &[u8]) -> Result<Vec<u8>, Attempt> {
        let deadline = self.invoke_deadline();
        let response = self
            .client
            .invoke()
            .function_name(function)
            .set_qualifier(self.options.qualifier.clone())
            .invocation_type(InvocationType::RequestResponse)
            .log_type(LogType::Tail)
            .payload(Blob::new(spec.to_vec()))
            .send();
        let output = match tokio::time::timeout(deadline, response).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(classify(&e)),
            // Sent again, the same attempt could be lost again: the
            // scheduler runs a new attempt instead.
            Err(_) => {
                return Err(Attempt::Final(lost_invocation(
                    deadline,
                    self.function_timeout,
                )));
            }
        };
        let payload = output
            .payload()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        if let Some(kind) = output.function_error() {
            let message = String::from_utf8_lossy(&payload).to_string();
            let logs = output
                .log_result()
                .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l).ok())
                .map(|l| tail(&String::from_utf8_lossy(&l), 1024))
                .unwrap_or_default();
            return Err(Attempt::Final(format!(
                "function error ({kind}): {}; log tail: {}",
                tail(&message, 1024),
                if logs.is_empty() {
                    "(none)".to_string()
                } else {
                    logs
                }
            )));
        }
        Ok(payload)
    }
}

/// The task key in the configuration of every function of `options`
/// (`lambda:GetFunctionConfiguration`); they must all have the same one.
async fn functions_task_key(client: &Client, options: &LambdaOptions) -> Result<TaskKey, String> {
    let mut found: Option<(String, String)> = None;
    for function in &options.functions {
        let config = client
            .get_function_configuration()
            .function_name(function)
            .set_qualifier(options.qualifier.clone())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "no task key: {TASK_KEY_ENV} is not set here, and reading it from the \
                     configuration of function {function} failed ({}); set {TASK_KEY_ENV} to \
                     the function's key",
                    match classify(&e) {
                        Attempt::Retry(m) | Attempt::Final(m) => m,
                    }
                )
            })?;
        let secret = config
            .environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get(TASK_KEY_ENV))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "function {function} has no {TASK_KEY_ENV} in its environment, so it runs no \
                     task: deploy it with `squall deploy lambda`, which sets one"
                )
            })?;
        match &found {
            Some((first, key)) if *key != secret => {
                return Err(format!(
                    "functions {first} and {function} have different {TASK_KEY_ENV}s: deploy \
                     them with the same key ({TASK_KEY_ENV}=... squall deploy lambda)"
                ));
            }
            Some(_) => {}
            None => found = Some((function.clone(), secret)),
        }
    }
    let (_, secret) = found.ok_or("the lambda backend needs a function name")?;
    TaskKey::new(&secret).map_err(|e| e.to_string())
}

/// The report of a refused launch request, once for each of its tasks.
fn specs_refused(tasks: usize, report: &[u8]) -> Vec<Result<Vec<u8>, String>> {
    (0..tasks).map(|_| Ok(report.to_vec())).collect()
}

/// Whether a failed attempt may be retried.
enum Attempt {
    Retry(String),
    Final(String),
}

fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: &SdkError<E, R>,
) -> Attempt
where
    SdkError<E, R>: std::error::Error,
{
    let status = match e {
        SdkError::ServiceError(s) => Some(s.raw()),
        _ => None,
    };
    let code = e.code().unwrap_or_default().to_string();
    let message = match e.message() {
        Some(m) if !code.is_empty() => format!("{code}: {m}"),
        _ => format!("{}", aws_sdk_lambda::error::DisplayErrorContext(e)),
    };
    let retryable = matches!(
        e,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_)
    ) || code == "TooManyRequestsException"
        || code.ends_with("ThrottledException")
        || code == "ServiceException"
        || code == "ResourceNotReadyException"
        || status.is_some_and(|_| message.contains("status code: 5") || message.contains("429"));
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if retryable {
        Attempt::Retry(message)
    } else {
        Attempt::Final(message)
    }
}

/// Why an invocation unanswered after `deadline` failed.
fn lost_invocation(deadline: Duration, function_timeout: Duration) -> String {
    format!(
        "no answer within {} s, although the function's timeout is {} s: the invocation \
         or its answer was lost",
        deadline.as_secs(),
        function_timeout.as_secs()
    )
}

fn tail(s: &str, max_chars: usize) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let skip = s.chars().count().saturating_sub(max_chars);
    s.chars().skip(skip).collect()
}

#[async_trait]
impl Backend for LambdaBackend {
    fn name(&self) -> &str {
        "lambda"
    }

    fn task_key(&self) -> &TaskKey {
        &self.key
    }

    fn reach(&self) -> WorkerReach {
        WorkerReach::ObjectStorageOnly
    }

    fn max_concurrency(&self) -> usize {
        self.options.workers.max(1)
    }

    fn ends_hung_tasks(&self) -> bool {
        // The function's timeout (15 minutes at most) ends every invocation,
        // and one unanswered soon after it fails (`invoke_deadline`).
        true
    }

    fn cancels_abandoned_invocations(&self) -> bool {
        // Dropping the Invoke request does not stop the function.
        false
    }

    fn max_payload_bytes(&self) -> Option<usize> {
        Some(MAX_SYNC_PAYLOAD_BYTES)
    }

    fn worker_memory_bytes(&self) -> Option<u64> {
        // What a task's pool may take inside the function (see
        // `squall_worker::memory::effective_limits`).
        self.function_memory_bytes
            .map(|bytes| (bytes as f64 * squall_worker::memory::LAMBDA_POOL_SHARE) as u64)
    }

    fn billed_memory_bytes(&self) -> Option<u64> {
        self.function_memory_bytes
    }

    fn launcher_threshold(&self) -> Option<usize> {
        (self.options.launcher_threshold > 0).then_some(self.options.launcher_threshold)
    }

    async fn invoke_group(
        &self,
        specs: Vec<Vec<u8>>,
        in_flight: usize,
        backups: Option<GroupBackups>,
    ) -> Result<Vec<LaunchedTask>, String> {
        let (function, ramp) = self.pick_function();
        let function = self.options.functions[function].clone();
        // The launcher and the sub-invocations it keeps in flight all run on `function`.
        let _ramp = match ramp {
            Some(r) => Some(r.acquire(in_flight + 1).await),
            None => None,
        };
        let specs = specs
            .into_iter()
            .map(|s| {
                serde_json::from_slice::<serde_json::Value>(&s)
                    .map_err(|e| format!("spec is not JSON: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let request_len = specs.len();
        let request = LaunchRequest {
            function: function.clone(),
            qualifier: self.options.qualifier.clone(),
            in_flight: Some(in_flight),
            specs,
            backups,
        };
        let signed = signed_launch_payload(&self.key, &request)?;
        if signed.len() > MAX_SYNC_PAYLOAD_BYTES {
            // Too large for one launcher payload even with the specs the
            // scheduler stored by reference: invoke directly instead.
            log::debug!(
                "a launch request of {} specs takes {} bytes: invoking them one by one",
                request.specs.len(),
                signed.len()
            );
            let specs = request
                .specs
                .iter()
                .map(|s| serde_json::to_vec(s).unwrap_or_default())
                .collect();
            let backups = request.backups.as_ref().map(|b| (b, &self.key));
            let function = &function;
            return Ok(run_group(specs, in_flight, backups, |spec| {
                async move { self.invoke_function(function, &spec).await }.boxed()
            })
            .await);
        }
        let response = self.invoke_function(&function, &signed).await?;
        let response: LaunchResponse = match serde_json::from_slice(&response) {
            Ok(response) => response,
            // The launcher refused the request itself (its key differs,
            // it expired): that refusal is every task's report.
            Err(_) if squall_worker::TaskReport::from_bytes(&response).is_ok() => {
                return Ok(specs_refused(request_len, &response)
                    .into_iter()
                    .map(LaunchedTask::alone)
                    .collect());
            }
            Err(e) => return Err(format!("launcher response is not valid: {e}")),
        };
        let backups = response.backups;
        let mut spans = response.spans;
        spans.resize(response.results.len(), Vec::new());
        Ok(response
            .results
            .into_iter()
            .enumerate()
            .map(|(i, r)| LaunchedTask {
                result: match r {
                    LaunchResult::Report(report) => {
                        serde_json::to_vec(&report).map_err(|e| e.to_string())
                    }
                    LaunchResult::Error(e) => Err(format!("via launcher: {e}")),
                },
                backup: backups.get(i).copied().unwrap_or_default(),
                spans: std::mem::take(&mut spans[i]),
            })
            .collect())
    }

    async fn invoke(&self, spec: Vec<u8>) -> Result<Vec<u8>, String> {
        let (function, ramp) = self.pick_function();
        let _ramp = match ramp {
            Some(r) => Some(r.acquire(1).await),
            None => None,
        };
        self.invoke_function(&self.options.functions[function], &spec)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launch_request_carries_its_backups_and_a_response_says_which_ran() {
        let key = TaskKey::generate();
        let backups = crate::group_speculation::group_backups(
            &key,
            "s3://scratch/q/s1/specs/g0-backups.json",
            b"[]",
            crate::SpeculationPolicy::for_uncancellable_attempts(),
        );
        let request = LaunchRequest {
            function: "squall".into(),
            qualifier: None,
            in_flight: Some(4),
            specs: vec![serde_json::json!("spec")],
            backups: Some(backups.clone()),
        };
        let signed = signed_launch_payload(&key, &request).unwrap();
        let opened: serde_json::Value =
            serde_json::from_slice(&key.open(&signed).unwrap()).unwrap();
        let back: LaunchRequest = serde_json::from_value(opened["launch"].clone()).unwrap();
        let back = back.backups.expect("backups travel");
        assert_eq!(back.reference, backups.reference);
        assert_eq!(back.policy, backups.policy);

        // A response without backups (nothing straggled) reads as none launched.
        let response: LaunchResponse =
            serde_json::from_str(r#"{"results": [{"error": "boom"}]}"#).unwrap();
        assert!(response.backups.is_empty());
        let response: LaunchResponse = serde_json::from_str(
            r#"{"results": [{"error": "boom"}], "backups": [{"launched": true, "won": false}]}"#,
        )
        .unwrap();
        assert_eq!(
            response.backups,
            vec![BackupUse {
                launched: true,
                won: false
            }]
        );
    }
}
