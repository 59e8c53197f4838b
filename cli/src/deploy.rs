//! `squall deploy lambda`: package the worker and create or update the function.
//!
//! The package is a zip holding the binary as `bootstrap` (the
//! `provided.al2023` custom runtime). An existing function gets its code and
//! then its configuration updated; a missing one is created. Either way the
//! command waits, bounded, until the function is Active and its last update
//! succeeded, so that the next `squall sql --backend lambda` can use it.

use std::io::{Cursor, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_lambda::Client;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, FunctionCode, LastUpdateStatus, Runtime, State};

use crate::args::{DeployLambdaArgs, LambdaArch};

/// Lambda takes zips up to 50 MB in the API request; larger ones go through S3.
const DIRECT_UPLOAD_LIMIT_BYTES: usize = 50 * 1000 * 1000;

/// How long to wait for a function to become Active after a change.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Runs `squall deploy lambda`.
pub async fn deploy_lambda(args: &DeployLambdaArgs) -> Result<()> {
    if args.print_policy {
        let text = policy(&args.buckets, args.scratch.as_deref())?;
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
    let exists = match client.get_function().function_name(name).send().await {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => bail!("cannot look up function {name}: {}", aws_error(&e)),
    };
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
        "{} function {name}: {} MiB memory, {} s timeout, {:?}, package {:.1} MiB",
        if exists { "updated" } else { "created" },
        args.memory_mb,
        args.timeout_s,
        args.arch,
        zip_bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(())
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
    let object = location.as_prefix().join(&format!("{function}.zip"));
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

/// The least-privilege IAM policy of the worker function.
pub fn policy(buckets: &[String], scratch: Option<&str>) -> Result<String> {
    let scratch =
        scratch.context("--scratch s3://bucket/prefix/ is required for --print-policy")?;
    let url =
        url::Url::parse(scratch).with_context(|| format!("invalid --scratch URL '{scratch}'"))?;
    if url.scheme() != "s3" {
        bail!("--scratch must be an s3:// URL, got '{scratch}'");
    }
    let scratch_bucket = url
        .host_str()
        .context("--scratch has no bucket")?
        .to_string();
    let prefix = url.path().trim_start_matches('/').to_string();
    let mut statements = vec![
        serde_json::json!({
            "Sid": "ReadInputs",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": buckets.iter().flat_map(|b| [format!("arn:aws:s3:::{b}"), format!("arn:aws:s3:::{b}/*")]).collect::<Vec<_>>(),
        }),
        serde_json::json!({
            "Sid": "Scratch",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": [format!("arn:aws:s3:::{scratch_bucket}/{prefix}*")],
        }),
        serde_json::json!({
            "Sid": "ListScratch",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [format!("arn:aws:s3:::{scratch_bucket}")],
            "Condition": {"StringLike": {"s3:prefix": [format!("{prefix}*")]}},
        }),
        serde_json::json!({
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": ["arn:aws:logs:*:*:*"],
        }),
    ];
    if buckets.is_empty() {
        statements.remove(0);
    }
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "Version": "2012-10-17",
        "Statement": statements,
    }))?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
