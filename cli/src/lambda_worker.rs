//! The worker as an AWS Lambda function (`provided.al2023`, binary `bootstrap`).
//!
//! When the Lambda runtime starts `squall` (AWS_LAMBDA_RUNTIME_API is set and
//! there are no arguments), it serves the Runtime API: each event is a
//! signed TaskSpec, `{"spec_url": ...}` or launcher request (checked against
//! the function's SQUALL_TASK_KEY before anything else), each response the
//! TaskReport. Nothing
//! is set up before the first event arrives beyond the runtime client, so
//! the function is ready within milliseconds of starting.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

/// True when this process was started by the Lambda runtime.
pub fn started_by_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() && std::env::args_os().len() == 1
}

/// Serves task invocations until the runtime stops the process.
pub async fn serve() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let envelope = serde_json::to_vec(&event.payload)?;
    // Nothing is read, fetched or invoked before the payload's signature is checked.
    let opened = squall_worker::TaskKey::required_from_env()
        .and_then(|key| key.open(&envelope).map(|payload| (key, payload)));
    let (key, payload) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("squall worker: refused an invocation: {e}");
            return Ok(serde_json::from_slice(&squall_worker::refused_report(&e))?);
        }
    };
    let parsed: Value = serde_json::from_slice(&payload)?;
    if let Some(launch) = parsed.get("launch") {
        // A launcher: invoke every task of its share, return their reports.
        let request: squall::jobs::LaunchRequest = serde_json::from_value(launch.clone())?;
        eprintln!("squall launcher: invoking {} tasks", request.specs.len());
        let endpoint = std::env::var("AWS_ENDPOINT_URL_LAMBDA").ok();
        let response = squall::jobs::run_launcher(request, key, endpoint).await?;
        let response: Value = serde_json::from_slice(&response)?;
        let backups = response["backups"].as_array().cloned().unwrap_or_default();
        let launched = backups.iter().filter(|b| b["launched"] == true).count();
        if launched > 0 {
            let won = backups.iter().filter(|b| b["won"] == true).count();
            eprintln!("squall launcher: {launched} backup attempts for stragglers, {won} won");
        }
        return Ok(response);
    }
    let functions = squall_worker::FunctionLibrary::builtin();
    let report = squall_worker::run_opened_task(&payload, &key, &functions).await;
    let report: Value = serde_json::from_slice(&report)?;
    // One line per task in the function's log (CloudWatch, and the log tail
    // an invocation returns): which task ran here and how it ended.
    let field = |name: &str| report.get(name).cloned().unwrap_or(Value::Null);
    eprintln!(
        "squall worker: {} query {} stage {} task {} attempt {}: {}",
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        field("query_id").as_str().unwrap_or("?"),
        field("stage_id"),
        field("task_index"),
        field("attempt"),
        report
            .pointer("/outcome/status")
            .and_then(Value::as_str)
            .unwrap_or("?")
    );
    Ok(report)
}
