//! [`run_task`]: spec bytes in, report bytes out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::ObjectStoreExt;
use squall_connectors::Location;
use squall_connectors::scan_leaf::{bind_scan_splits, file_scan_config};
use squall_connectors::sink_staging::{file_sink_config, stage_file_sink};
use squall_connectors::store_builder::build_store_with;
use squall_shuffle::codec::decode_plan;
use squall_shuffle::result_writer::result_summary_from_batch;
use squall_shuffle::writer::{index_from_batch, split_object_url};
use squall_shuffle::{ExchangeReaderExec, ExchangeWriterExec, ResultWriterExec};

use crate::counting_store::{CountingStore, RequestCounters};
use crate::error::WorkerError;
use crate::functions::FunctionLibrary;
use crate::peak_memory::PeakMemoryPool;
use crate::pinned::fetch_pinned;
use crate::remote_error::RemoteError;
use crate::report::{TaskOutcome, TaskReport};
use crate::signing::TaskKey;
use crate::spec::{FragmentRef, TaskSpec};

/// A spec stored in object storage because it is too large for the backend's payload.
#[derive(serde::Deserialize)]
struct SpecByReference {
    spec_url: String,
    /// SHA-256 (hex) of the object's bytes: the signed reference pins the
    /// one spec it names, so that another signed spec put in its place is refused.
    sha256: String,
}

/// Runs the task in `envelope` (a signed TaskSpec, or a signed
/// `{"spec_url": ...}` naming a signed one in object storage; see
/// [`crate::signing`]) and returns its report as bytes. Never panics on bad
/// input: a payload that is unsigned, altered, signed with another key,
/// expired or unreadable yields a failed report, before anything is read or
/// written.
pub async fn run_task(envelope: &[u8], key: &TaskKey) -> Vec<u8> {
    run_task_with_functions(envelope, key, &FunctionLibrary::builtin()).await
}

/// [`run_task`] with the functions of `functions` registered in the task's
/// context on top of DataFusion's built-ins.
pub async fn run_task_with_functions(
    envelope: &[u8],
    key: &TaskKey,
    functions: &FunctionLibrary,
) -> Vec<u8> {
    match key.open(envelope) {
        Ok(payload) => run_opened_task(&payload, key, functions).await,
        Err(e) => refused_report(&e),
    }
}

/// [`run_task`] with the key of this process's environment
/// ([`TASK_KEY_ENV`](crate::signing::TASK_KEY_ENV)): how `squall worker`
/// and the Lambda function run tasks. Without a usable key, every task fails.
pub async fn run_task_with_env_key(envelope: &[u8]) -> Vec<u8> {
    match TaskKey::required_from_env() {
        Ok(key) => run_task(envelope, &key).await,
        Err(e) => refused_report(&e),
    }
}

/// Runs a payload already taken out of its envelope with `key`: a TaskSpec,
/// or a reference to a signed one, which is fetched and opened with `key`.
pub async fn run_opened_task(
    payload: &[u8],
    key: &TaskKey,
    functions: &FunctionLibrary,
) -> Vec<u8> {
    let fetched;
    let spec_bytes = match serde_json::from_slice::<SpecByReference>(payload) {
        Ok(reference) => match fetch_pinned(&reference.spec_url, &reference.sha256).await {
            Ok(bytes) => match key.open(&bytes) {
                Ok(spec) => {
                    fetched = spec;
                    &fetched[..]
                }
                Err(e) => return refused_report(&e),
            },
            Err(e @ WorkerError::Unreadable { .. }) => return failed_report(e.to_string(), None),
            Err(e) => return refused_report(&e),
        },
        Err(_) => payload,
    };
    match TaskSpec::from_bytes(spec_bytes) {
        Ok(spec) => run_task_spec(&spec, functions).await.to_bytes(),
        Err(e) => failed_report(e.to_string(), None),
    }
}

/// The report of a payload the worker did not run. A payload no retry can
/// make acceptable (unsigned, altered, foreign, or no key here) says so as
/// a configuration error; an expired one may be signed afresh and retried.
pub fn refused_report(error: &WorkerError) -> Vec<u8> {
    let remote = match error {
        WorkerError::SpecExpired { .. } => None,
        _ => Some(RemoteError::Configuration(error.to_string())),
    };
    failed_report(error.to_string(), remote)
}

fn failed_report(message: String, error: Option<RemoteError>) -> Vec<u8> {
    TaskReport {
        outcome: TaskOutcome::Failed { message, error },
        ..TaskReport::new("", 0, 0, 0, "")
    }
    .to_bytes()
}

/// Runs one task from a parsed spec.
pub async fn run_task_spec(spec: &TaskSpec, functions: &FunctionLibrary) -> TaskReport {
    let counters = Arc::new(RequestCounters::default());
    let (memory_bytes, spill_bytes) = crate::memory::effective_limits(&spec.limits);
    let pool = Arc::new(PeakMemoryPool::of_kind(
        spec.limits.memory_pool,
        memory_bytes as usize,
    ));
    let input_bytes = spec.input_bytes();
    let mut report = TaskReport {
        input_bytes,
        ..TaskReport::new(
            &spec.query_id,
            spec.stage_id,
            spec.task_index,
            spec.attempt,
            &spec.output_url,
        )
    };
    report.memory_limit_bytes = memory_bytes;
    report.spill_limit_bytes = spill_bytes;
    match execute(spec, functions, &counters, &pool, spill_bytes, &mut report).await {
        Ok(outcome) => report.outcome = outcome,
        Err(e) => {
            // Only an object the spec gave it to read counts as lost input.
            report.lost_input_url = squall_shuffle::error::lost_exchange_object(&e).filter(|url| {
                spec.exchange_inputs
                    .iter()
                    .flat_map(|input| input.partitions.iter().flatten())
                    .any(|range| range.url == *url)
            });
            report.outcome = TaskOutcome::Failed {
                message: e.strip_backtrace(),
                error: Some(RemoteError::from_datafusion(&e)),
            }
        }
    }
    report.requests = counters.snapshot();
    report.peak_memory_bytes = pool.peak_bytes() as u64;
    report
}

/// Tells apart the injected-fault draws of different task attempts, and
/// keeps them the same when the query runs again (its id left out).
fn fault_salt(spec: &TaskSpec) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    (spec.stage_id, spec.task_index, spec.attempt).hash(&mut hasher);
    hasher.finish()
}

async fn execute(
    spec: &TaskSpec,
    functions: &FunctionLibrary,
    counters: &Arc<RequestCounters>,
    pool: &Arc<PeakMemoryPool>,
    spill_bytes: u64,
    report: &mut TaskReport,
) -> DFResult<TaskOutcome> {
    let started = Instant::now();
    // Spill files go to the OS temporary directory (`/tmp` on Lambda),
    // bounded; they are deleted when the task ends.
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::clone(pool) as _)
        .with_max_temp_directory_size(spill_bytes)
        .build_arc()?;
    for store_url in &spec.object_stores {
        let url = url::Url::parse(store_url)
            .map_err(|e| DataFusionError::Plan(format!("invalid store URL '{store_url}': {e}")))?;
        let store = build_store_with(&url, &spec.requests, fault_salt(spec), counters.resends())
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let counted = Arc::new(CountingStore::new(store, Arc::clone(counters)));
        runtime.register_object_store(&url, counted);
    }
    let config = task_config(spec.limits.batch_size, &spec.settings)?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    functions.register_into(&ctx);
    let task_ctx = ctx.task_ctx();

    let fragment = match &spec.fragment {
        FragmentRef::Inline { bytes } => bytes.clone(),
        FragmentRef::Stored { url } => {
            let (store_url, path) = split_object_url(url)?;
            let store = task_ctx.runtime_env().object_store(&store_url)?;
            store
                .get(&path)
                .await
                .map_err(|e| {
                    DataFusionError::Execution(format!("reading plan fragment {url}: {e}"))
                })?
                .bytes()
                .await
                .map_err(|e| {
                    DataFusionError::Execution(format!("reading plan fragment {url}: {e}"))
                })?
                .to_vec()
        }
    };
    let plan = decode_plan(&fragment, &task_ctx)?;
    let (plan, staged_url) = bind_task(plan, spec)?;
    // An aborted task (a cancelled query) stops within a few batches.
    let plan = crate::cooperative::yield_between_operators(plan)?;
    report.staged_url = staged_url;
    report.decode_ms = started.elapsed().as_millis() as u64;

    let executing = Instant::now();
    let batches = collect(Arc::clone(&plan), Arc::clone(&task_ctx) as Arc<TaskContext>).await?;
    report.execute_ms = executing.elapsed().as_millis() as u64;
    report.input_rows = leaf_output_rows(&plan);
    report.spilled_bytes = spilled_bytes(&plan);
    if spec.operator_metrics {
        report.operator_metrics = crate::operator_metrics::collect(&plan);
    }
    let batch = batches
        .first()
        .ok_or_else(|| DataFusionError::Internal("task writer returned no summary".into()))?;
    if plan.is::<ExchangeWriterExec>() {
        let index = index_from_batch(batch)
            .ok_or_else(|| DataFusionError::Internal("malformed exchange summary".into()))?;
        report.output_rows = index.rows();
        report.output_bytes = index.data_bytes();
        Ok(TaskOutcome::Exchange { index })
    } else {
        let (rows, bytes) = result_summary_from_batch(batch)
            .ok_or_else(|| DataFusionError::Internal("malformed result summary".into()))?;
        report.output_rows = rows;
        report.output_bytes = bytes;
        Ok(TaskOutcome::Result { rows, bytes })
    }
}

/// The task's DataFusion configuration: the defaults, the spec's batch size,
/// then the session's settings (which win: `SET datafusion.execution.batch_size`
/// must reach the task).
pub fn task_config(
    batch_size: usize,
    settings: &BTreeMap<String, String>,
) -> DFResult<SessionConfig> {
    let mut config = SessionConfig::new().with_batch_size(batch_size.max(1));
    for (key, value) in settings {
        config
            .options_mut()
            .set(key, value)
            .map_err(|e| DataFusionError::Plan(format!("task setting {key} = '{value}': {e}")))?;
    }
    Ok(config)
}

/// Binds this task's splits, exchange inputs and output URL into the shared
/// fragment; a file sink writes into a fresh folder below the spec's staging
/// folder, which is returned.
fn bind_task(
    plan: Arc<dyn ExecutionPlan>,
    spec: &TaskSpec,
) -> DFResult<(Arc<dyn ExecutionPlan>, Option<String>)> {
    let mut scan_ordinal = 0usize;
    let mut staged_url = None;
    let bound = plan.transform_down(|node| {
        if let Some(staging) = &spec.sink_staging_url
            && file_sink_config(&node).is_some()
        {
            // A folder per delivery: running this spec twice writes two
            // folders, and only the reported one can be published.
            let staging =
                Location::parse(staging).map_err(|e| DataFusionError::External(Box::new(e)))?;
            let delivery = staging
                .join(&format!("{}/", uuid::Uuid::new_v4().simple()))
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let staged = stage_file_sink(&node, &delivery)?;
            staged_url = Some(delivery.to_string());
            return Ok(Transformed::yes(staged));
        }
        if let Some(w) = node.downcast_ref::<ExchangeWriterExec>() {
            return Ok(Transformed::yes(
                Arc::new(w.with_output_url(&spec.output_url)) as _,
            ));
        }
        if let Some(w) = node.downcast_ref::<ResultWriterExec>() {
            return Ok(Transformed::yes(
                Arc::new(w.with_output_url(&spec.output_url)) as _,
            ));
        }
        if let Some(r) = node.downcast_ref::<ExchangeReaderExec>() {
            let input = spec
                .exchange_inputs
                .iter()
                .find(|i| i.stage_id == r.stage_id())
                .ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "task spec has no inputs for stage {}",
                        r.stage_id()
                    ))
                })?;
            return Ok(Transformed::yes(
                Arc::new(r.with_inputs(input.partitions.clone())?) as _,
            ));
        }
        if node.children().is_empty() && file_scan_config(&node).is_some() {
            let ordinal = scan_ordinal;
            scan_ordinal += 1;
            let scan = spec
                .scans
                .iter()
                .find(|s| s.ordinal == ordinal)
                .ok_or_else(|| {
                    DataFusionError::Plan(format!("task spec has no splits for scan {ordinal}"))
                })?;
            return Ok(Transformed::yes(bind_scan_splits(&node, &scan.splits)?));
        }
        Ok(Transformed::no(node))
    })?;
    Ok((bound.data, staged_url))
}

/// Bytes the plan's operators spilled to disk.
fn spilled_bytes(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let mut bytes = 0u64;
    let _ = plan.apply(|node| {
        if let Some(n) = node.metrics().and_then(|m| m.spilled_bytes()) {
            bytes += n as u64;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    bytes
}

fn leaf_output_rows(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let mut rows = 0u64;
    let _ = plan.apply(|node| {
        if node.children().is_empty()
            && let Some(n) = node.metrics().and_then(|m| m.output_rows())
        {
            rows += n as u64;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    rows
}
