//! S3 credentials and region from the AWS SDK's default chain.
//!
//! object_store reads keys from the environment, container and web-identity
//! credentials and the instance role, but not `~/.aws/config` and
//! `~/.aws/credentials`: without this, `AWS_PROFILE=analytics squall ...`
//! would silently go anonymous. When no access key is in the environment, S3
//! stores therefore take their credentials from the SDK's chain, which is what
//! the AWS CLI does: environment, profile files (AWS_PROFILE, SSO,
//! `credential_process`, assumed roles), web identity, container, instance.
//! On Lambda the function's role arrives as environment keys, so object_store's
//! own path is used there.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use object_store::CredentialProvider;
use object_store::aws::{AwsCredential, AwsCredentialProvider};
use tokio::sync::Mutex;

/// Credentials are fetched again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// The SDK chain as an object_store credential provider, unless object_store
/// finds keys in the environment itself.
pub fn sdk_chain_if_needed() -> Option<AwsCredentialProvider> {
    if env_set("AWS_ACCESS_KEY_ID") || env_set("AWS_SKIP_SIGNATURE") {
        return None;
    }
    Some(Arc::new(SdkChainCredentials::default()))
}

/// The region of the AWS profile (AWS_PROFILE or `default`), when neither
/// AWS_REGION nor AWS_DEFAULT_REGION is set.
pub fn profile_region_if_needed() -> Option<String> {
    if env_set("AWS_REGION") || env_set("AWS_DEFAULT_REGION") {
        return None;
    }
    use aws_config::meta::region::ProvideRegion;
    let provider = aws_config::profile::ProfileFileRegionProvider::builder().build();
    // Profile files are read with std::fs, so this needs no reactor.
    futures::executor::block_on(provider.region()).map(|r| r.to_string())
}

/// The SDK's default credential chain, loaded on first use and cached until
/// shortly before the credentials expire.
#[derive(Debug, Default)]
struct SdkChainCredentials {
    state: Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    provider: Option<SharedCredentialsProvider>,
    credential: Option<(Arc<AwsCredential>, Option<SystemTime>)>,
}

#[async_trait]
impl CredentialProvider for SdkChainCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut state = self.state.lock().await;
        if let Some((credential, expiry)) = &state.credential
            && expiry.is_none_or(|e| {
                e.duration_since(SystemTime::now())
                    .is_ok_and(|left| left > REFRESH_BEFORE_EXPIRY)
            })
        {
            return Ok(Arc::clone(credential));
        }
        if state.provider.is_none() {
            let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .load()
                .await;
            state.provider = config.credentials_provider();
        }
        let Some(provider) = &state.provider else {
            return Err(no_credentials("the AWS SDK found no credential provider"));
        };
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| no_credentials(&error_chain(&e)))?;
        let credential = Arc::new(AwsCredential {
            key_id: credentials.access_key_id().to_string(),
            secret_key: credentials.secret_access_key().to_string(),
            token: credentials.session_token().map(str::to_string),
        });
        state.credential = Some((Arc::clone(&credential), credentials.expiry()));
        Ok(credential)
    }
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

fn no_credentials(reason: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: format!(
            "no AWS credentials: {reason} (set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
             or AWS_SKIP_SIGNATURE=true for public buckets)"
        )
        .into(),
    }
}
