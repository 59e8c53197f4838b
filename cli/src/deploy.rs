//! `squall deploy lambda`: package the worker and create or update the function.
//!
//! The package is a zip holding the binary as `bootstrap` (the
//! `provided.al2023` custom runtime). An existing function gets its code and
//! then its configuration updated; a missing one is created. Either way the
//! command waits, bounded, until the function is Active and its last update
//! succeeded, so that the next `squall sql --backend lambda` can use it.
//!
//! The function's environment carries its task key (SQUALL_TASK_KEY): the
//! coordinator reads it from the function's configuration and signs every
//! task with it; the workers refuse anything else.

use std::io::{Cursor, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_lambda::Client;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, Environment, FunctionCode, LastUpdateStatus, Runtime, State,
};
use squall_worker::calls::{CallTarget, WorkerCall};
use squall_worker::{TASK_KEY_ENV, TaskKey};

use crate::args::{DeployLambdaArgs, LambdaArch};

/// Lambda takes zips up to 50 MB in the API request; larger ones go through S3.
const DIRECT_UPLOAD_LIMIT_BYTES: usize = 50 * 1000 * 1000;

/// How long to wait for a function to become Active after a change.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Runs `squall deploy lambda`.
pub async fn deploy_lambda(args: &DeployLambdaArgs) -> Result<()> {
    if args.print_policy {
        let text = policy(
            args.name.as_deref(),
            &args.buckets,
            args.scratch.as_deref(),
            &args.destinations,
        )?;
        use std::io::Write;
        writeln!(std::io::stdout().lock(), "{text}")?;
        return Ok(());
    }
    let name = args
        .name
        .as_deref()
        .context("--name is required to deploy (or use --print-policy)")?;
    let role = args
        .role
        .as_deref()
        .context("--role ARN is required to deploy")?;
    let binary = match &args.binary {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot find the squall binary to package")?,
    };
    let zip = package(&binary)?;
    let zip_bytes = zip.len();
    let client = client(args.region.as_deref(), args.lambda_endpoint.as_deref()).await;
    let arch = match args.arch {
        LambdaArch::X86_64 => Architecture::X8664,
        LambdaArch::Arm64 => Architecture::Arm64,
    };
    let code = match &args.code_bucket {
        Some(url) => Code::S3(upload_package(url, name, zip).await?),
        None if zip_bytes > DIRECT_UPLOAD_LIMIT_BYTES => bail!(
            "the package is {:.1} MB zipped, over Lambda's {} MB limit for direct upload: \
             pass --code-bucket s3://BUCKET/PREFIX/ to upload it through S3",
            zip_bytes as f64 / 1e6,
            DIRECT_UPLOAD_LIMIT_BYTES / 1_000_000
        ),
        None => Code::Zip(zip),
    };
    let existing = match client.get_function().function_name(name).send().await {
        Ok(function) => Some(
            function
                .configuration()
                .and_then(|c| c.environment())
                .and_then(|e| e.variables())
                .cloned()
                .unwrap_or_default(),
        ),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            None
        }
        Err(e) => bail!("cannot look up function {name}: {}", aws_error(&e)),
    };
    let exists = existing.is_some();
    let mut variables = existing.unwrap_or_default();
    let key_source = task_key(&mut variables, args.rotate_task_key)?;
    let environment = Environment::builder()
        .set_variables(Some(variables))
        .build();
    if exists {
        let update = client.update_function_code().function_name(name);
        let update = match &code {
            Code::Zip(zip) => update.zip_file(Blob::new(zip.clone())),
            Code::S3((bucket, key)) => update.s3_bucket(bucket).s3_key(key),
        };
        update
            .architectures(arch)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("updating the code of {name}: {}", aws_error(&e)))?;
        wait_ready(&client, name).await?;
        client
            .update_function_configuration()
            .function_name(name)
            .role(role)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .memory_size(args.memory_mb as i32)
            .timeout(args.timeout_s as i32)
            .environment(environment)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("updating the configuration of {name}: {}", aws_error(&e))
            })?;
    } else {
        client
            .create_function()
            .function_name(name)
            .role(role)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .architectures(arch)
            .memory_size(args.memory_mb as i32)
            .timeout(args.timeout_s as i32)
            .environment(environment)
            .description("Squall worker")
            .code(match code {
                Code::Zip(zip) => FunctionCode::builder().zip_file(Blob::new(zip)).build(),
                Code::S3((bucket, key)) => FunctionCode::builder()
                    .s3_bucket(bucket)
                    .s3_key(key)
                    .build(),
            })
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("creating {name}: {}", aws_error(&e)))?;
    }
    wait_ready(&client, name).await?;
    eprintln!(
        "{} function {name}: {} MiB memory, {} s timeout, {:?}, package {:.1} MiB, task key {key_source}",
        if exists { "updated" } else { "created" },
        args.memory_mb,
        args.timeout_s,
        args.arch,
        zip_bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// Sets SQUALL_TASK_KEY in the function's environment `variables`: this
/// process's SQUALL_TASK_KEY if set, else the function's current key unless
/// `rotate`, else a fresh one. Returns where the key came from (never the key).
fn task_key(
    variables: &mut std::collections::HashMap<String, String>,
    rotate: bool,
) -> Result<&'static str> {
    let (key, source) = match TaskKey::from_env()? {
        Some(_) if rotate => bail!(
            "--rotate-task-key generates a new key, but SQUALL_TASK_KEY is set: unset it, or \
             drop --rotate-task-key to deploy that key"
        ),
        Some(key) => (key, "from SQUALL_TASK_KEY"),
        None => match variables.get(TASK_KEY_ENV) {
            Some(current) if !rotate => (TaskKey::new(current)?, "kept"),
            Some(_) => (TaskKey::generate(), "rotated"),
            None => (TaskKey::generate(), "generated"),
        },
    };
    variables.insert(TASK_KEY_ENV.to_string(), key.expose_secret().to_string());
    Ok(source)
}

/// Where the function's code comes from.
enum Code {
    Zip(Vec<u8>),
    /// Bucket and key of the uploaded zip.
    S3((String, String)),
}

/// Uploads the zip to `{url}{function}.zip` (an `s3://bucket/prefix/` in the
/// function's region); returns its bucket and key.
async fn upload_package(url: &str, function: &str, zip: Vec<u8>) -> Result<(String, String)> {
    let location = squall_connectors::Location::parse(url)?;
    if location.url().scheme() != "s3" {
        bail!("--code-bucket must be an s3:// URL, got '{url}'");
    }
    // A function given by ARN names its zip by what follows the last ':'.
    let file = function.rsplit(':').next().unwrap_or(function);
    let object = location.as_prefix().join(&format!("{file}.zip"))?;
    let store = object.build_store()?;
    object_store::ObjectStoreExt::put(&*store, &object.path(), zip.into())
        .await
        .with_context(|| format!("uploading the package to {object}"))?;
    let bucket = object.url().host_str().unwrap_or_default().to_string();
    Ok((bucket, object.path().to_string()))
}

/// An AWS error as one short line: its code and message when the service sent them.
fn aws_error<E, R>(e: &aws_sdk_lambda::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => squall_connectors::table::one_line(
            &aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
        ),
    }
}

async fn client(region: Option<&str>, endpoint: Option<&str>) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    let sdk = loader.load().await;
    let mut config = aws_sdk_lambda::config::Builder::from(&sdk);
    if let Some(e) = endpoint {
        config = config.endpoint_url(e);
    }
    Client::from_conf(config.build())
}

/// A zip with `binary` stored as an executable `bootstrap`.
pub fn package(binary: &Path) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options)?;
    zip.write_all(&bytes)?;
    Ok(zip.finish()?.into_inner())
}

/// What a function's state and last update say about waiting for it.
#[derive(Debug, PartialEq, Eq)]
enum Readiness {
    Ready,
    Wait,
    Failed(String),
}

fn readiness(
    state: Option<&State>,
    update: Option<&LastUpdateStatus>,
    reason: Option<&str>,
) -> Readiness {
    match (state, update) {
        (Some(State::Failed), _) | (_, Some(LastUpdateStatus::Failed)) => {
            Readiness::Failed(reason.unwrap_or("no reason given").to_string())
        }
        (Some(State::Active) | None, None | Some(LastUpdateStatus::Successful)) => Readiness::Ready,
        // Pending, Inactive (woken by the next call), an update in progress.
        _ => Readiness::Wait,
    }
}

async fn wait_ready(client: &Client, name: &str) -> Result<()> {
    let started = Instant::now();
    loop {
        let f = client
            .get_function()
            .function_name(name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("waiting for {name}: {}", aws_error(&e)))?;
        let config = f.configuration();
        let reason = config.and_then(|c| c.state_reason().or(c.last_update_status_reason()));
        match readiness(
            config.and_then(|c| c.state()),
            config.and_then(|c| c.last_update_status()),
            reason,
        ) {
            Readiness::Ready => return Ok(()),
            Readiness::Failed(reason) => {
                bail!("function {name} failed to become active: {reason}")
            }
            Readiness::Wait if started.elapsed() > ACTIVE_TIMEOUT => {
                bail!(
                    "function {name} was not active after {} s",
                    ACTIVE_TIMEOUT.as_secs()
                )
            }
            Readiness::Wait => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// An S3 location a policy grants access to: its bucket, and the key prefix
/// below it (empty: the whole bucket).
#[derive(Debug, Clone, PartialEq)]
struct S3Grant {
    bucket: String,
    prefix: String,
}

impl S3Grant {
    /// `s3://bucket/prefix/` (or a bare bucket name when `bare_bucket_ok`).
    fn parse(text: &str, flag: &str, bare_bucket_ok: bool) -> Result<Self> {
        if bare_bucket_ok && !text.contains("://") {
            return Ok(Self {
                bucket: text.trim_matches('/').to_string(),
                prefix: String::new(),
            });
        }
        let url = url::Url::parse(text).with_context(|| format!("invalid {flag} URL '{text}'"))?;
        if url.scheme() != "s3" {
            bail!("{flag} must be an s3:// URL, got '{text}'");
        }
        Ok(Self {
            bucket: url
                .host_str()
                .with_context(|| format!("{flag} '{text}' has no bucket"))?
                .to_string(),
            prefix: url.path().trim_start_matches('/').to_string(),
        })
    }

    fn objects(&self) -> String {
        format!("arn:aws:s3:::{}/{}*", self.bucket, self.prefix)
    }

    /// Where writes to this destination stage: beside it, as
    /// `squall_connectors::sink_staging::SinkDestination::staging_root`
    /// puts them (`None`: inside it, at a bucket's root).
    fn staging(&self) -> Option<Self> {
        let trimmed = self.prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            return None;
        }
        let (parent, name) = match trimmed.rsplit_once('/') {
            Some((parent, name)) => (format!("{parent}/"), name),
            None => (String::new(), trimmed),
        };
        Some(Self {
            bucket: self.bucket.clone(),
            prefix: format!(
                "{parent}{}/{name}/",
                squall_connectors::sink_staging::STAGING_DIR
            ),
        })
    }
}

/// The least-privilege IAM policy of the worker function `function`: for
/// every call the worker makes ([`WorkerCall::ALL`]), its actions on the
/// resources it makes them on — tables in `buckets`, the `scratch` prefix,
/// COPY/INSERT `destinations`, the function itself, its logs.
pub fn policy(
    function: Option<&str>,
    buckets: &[String],
    scratch: Option<&str>,
    destinations: &[String],
) -> Result<String> {
    let function = function.context(
        "--name FUNCTION is required for --print-policy: launchers invoke the function itself",
    )?;
    let scratch =
        scratch.context("--scratch s3://bucket/prefix/ is required for --print-policy")?;
    let scratch = S3Grant::parse(scratch, "--scratch", false)?;
    let inputs = buckets
        .iter()
        .map(|b| S3Grant::parse(b, "--bucket", true))
        .collect::<Result<Vec<_>>>()?;
    let mut destinations = destinations
        .iter()
        .map(|d| S3Grant::parse(d, "--destination", false))
        .collect::<Result<Vec<_>>>()?;
    // Writers stage beside each destination.
    let staging: Vec<S3Grant> = destinations.iter().filter_map(S3Grant::staging).collect();
    destinations.extend(staging);
    let mut statements = Vec::new();
    for (target, sid) in [
        (CallTarget::Inputs, "Inputs"),
        (CallTarget::Scratch, "Scratch"),
        (CallTarget::Destinations, "Destinations"),
        (CallTarget::OwnFunction, "LaunchTasks"),
        (CallTarget::Logs, "Logs"),
    ] {
        let calls = WorkerCall::ALL
            .into_iter()
            .filter(|c| c.targets().contains(&target));
        let mut object_actions = std::collections::BTreeSet::new();
        let mut list = false;
        let mut other_actions = std::collections::BTreeSet::new();
        for call in calls {
            for action in call.iam_actions() {
                match *action {
                    "s3:ListBucket" => list = true,
                    a if a.starts_with("s3:") => {
                        object_actions.insert(a);
                    }
                    a => {
                        other_actions.insert(a);
                    }
                }
            }
        }
        let grants: &[S3Grant] = match target {
            CallTarget::Inputs => &inputs,
            CallTarget::Scratch => std::slice::from_ref(&scratch),
            CallTarget::Destinations => &destinations,
            CallTarget::OwnFunction => {
                statements.push(serde_json::json!({
                    "Sid": sid,
                    "Effect": "Allow",
                    "Action": other_actions,
                    "Resource": [
                        format!("arn:aws:lambda:*:*:function:{function}"),
                        format!("arn:aws:lambda:*:*:function:{function}:*"),
                    ],
                }));
                continue;
            }
            CallTarget::Logs => {
                statements.push(serde_json::json!({
                    "Sid": sid,
                    "Effect": "Allow",
                    "Action": other_actions,
                    "Resource": ["arn:aws:logs:*:*:*"],
                }));
                continue;
            }
        };
        if grants.is_empty() {
            continue;
        }
        statements.push(serde_json::json!({
            "Sid": sid,
            "Effect": "Allow",
            "Action": object_actions,
            "Resource": grants.iter().map(S3Grant::objects).collect::<Vec<_>>(),
        }));
        if list {
            for (i, grant) in grants.iter().enumerate() {
                let mut statement = serde_json::json!({
                    "Sid": format!("List{sid}{}", if grants.len() > 1 { i.to_string() } else { String::new() }),
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": [format!("arn:aws:s3:::{}", grant.bucket)],
                });
                if !grant.prefix.is_empty() {
                    statement["Condition"] = serde_json::json!({"StringLike": {"s3:prefix": [format!("{}*", grant.prefix)]}});
                }
                statements.push(statement);
            }
        }
    }
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "Version": "2012-10-17",
        "Statement": statements,
    }))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every call the worker makes is granted on every resource it makes it on.
    #[test]
    fn the_policy_grants_every_worker_call() {
        let text = policy(
            Some("squall"),
            &["lake".into()],
            Some("s3://tmp/squall/"),
            &["s3://out/reports/".into()],
        )
        .unwrap();
        let policy: serde_json::Value = serde_json::from_str(&text).unwrap();
        let granted = |action: &str, resource: &str| {
            policy["Statement"].as_array().unwrap().iter().any(|s| {
                s["Action"].as_array().unwrap().iter().any(|a| a == action)
                    && s["Resource"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|r| r == resource)
            })
        };
        for call in WorkerCall::ALL {
            for target in call.targets() {
                let resources: &[&str] = match target {
                    CallTarget::Inputs => &["arn:aws:s3:::lake/*", "arn:aws:s3:::lake"],
                    CallTarget::Scratch => &["arn:aws:s3:::tmp/squall/*", "arn:aws:s3:::tmp"],
                    CallTarget::Destinations => &[
                        "arn:aws:s3:::out/reports/*",
                        "arn:aws:s3:::out/_squall_staging/reports/*",
                        "arn:aws:s3:::out",
                    ],
                    CallTarget::OwnFunction => &["arn:aws:lambda:*:*:function:squall"],
                    CallTarget::Logs => &["arn:aws:logs:*:*:*"],
                };
                for action in call.iam_actions() {
                    // Listing is granted on the bucket, everything else on
                    // objects (of a destination: its staging's too).
                    let needed = if *action == "s3:ListBucket" {
                        &resources[resources.len() - 1..]
                    } else {
                        &resources[..resources.len().max(2) - 1]
                    };
                    for resource in needed {
                        assert!(
                            granted(action, resource),
                            "{call:?} needs {action} on {resource}: {text}"
                        );
                    }
                }
            }
        }
        assert!(!text.contains("s3:*") && !text.contains("\"*\""), "{text}");
    }

    #[test]
    fn pending_functions_and_running_updates_are_waited_for() {
        assert_eq!(
            readiness(Some(&State::Pending), None, None),
            Readiness::Wait
        );
        assert_eq!(
            readiness(
                Some(&State::Active),
                Some(&LastUpdateStatus::InProgress),
                None
            ),
            Readiness::Wait
        );
        assert_eq!(
            readiness(Some(&State::Inactive), None, None),
            Readiness::Wait
        );
    }

    #[test]
    fn active_functions_are_ready_and_failures_say_why() {
        assert_eq!(
            readiness(Some(&State::Active), None, None),
            Readiness::Ready
        );
        assert_eq!(
            readiness(
                Some(&State::Active),
                Some(&LastUpdateStatus::Successful),
                None
            ),
            Readiness::Ready
        );
        assert_eq!(
            readiness(
                Some(&State::Active),
                Some(&LastUpdateStatus::Failed),
                Some("bad zip")
            ),
            Readiness::Failed("bad zip".into())
        );
        assert_eq!(
            readiness(Some(&State::Failed), None, None),
            Readiness::Failed("no reason given".into())
        );
    }
}
