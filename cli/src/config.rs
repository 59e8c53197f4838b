//! The optional config file: defaults for flags a user would otherwise repeat.
//!
//! Looked up at `--config FILE`, else `SQUALL_CONFIG`, else
//! `$XDG_CONFIG_HOME/squall/config.toml` (`~/.config/squall/config.toml`).
//! A flag or its environment variable wins over the file, the file over the
//! built-in default. An unknown key is an error naming the file and the key,
//! so that a typo never silently runs a query somewhere else.
//!
//! Object stores are not configured here: every process, including workers in
//! cloud functions that never see this file, configures them from its own
//! environment (AWS_PROFILE, AWS_REGION, GOOGLE_..., AZURE_...), so the
//! coordinator and the workers always agree and no credentials travel in a task.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::args::BackendKind;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Defaults of `squall sql` and `squall explain`.
    #[serde(default)]
    pub query: QueryDefaults,
    /// Defaults of the lambda backend and of `squall deploy lambda`.
    #[serde(default)]
    pub lambda: LambdaDefaults,
    /// Parameters of `squall explain --cost`, `--deadline` and `--budget`
    /// (docs/cost-model.md lists them with their defaults and sources).
    #[serde(default)]
    pub cost_model: squall::jobs::cloud_model::ModelParams,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryDefaults {
    pub backend: Option<BackendKind>,
    pub workers: Option<usize>,
    pub stage_workers: Option<usize>,
    pub task_attempts: Option<u32>,
    /// Seconds.
    pub task_timeout: Option<f64>,
    /// Backup attempts for slow tasks (default true).
    pub speculation: Option<bool>,
    /// Stages fed by hash exchanges sized from their inputs' exact bytes
    /// (default: true on lambda, false on local and process).
    pub adaptive_stages: Option<bool>,
    /// Extra sends of a transiently failed object-store request (default 3).
    pub request_retries: Option<u32>,
    /// Hedging of slow object-store requests (default true).
    pub hedging: Option<bool>,
    /// Milliseconds (default 200).
    pub hedge_after_ms: Option<u64>,
    pub scratch: Option<String>,
    /// A size like "128MiB".
    pub target_task_bytes: Option<String>,
    /// A size like "2GiB".
    pub task_memory: Option<String>,
    /// A size like "1GiB".
    pub max_result_bytes: Option<String>,
    /// A size like "4GiB".
    pub spill_bytes: Option<String>,
    pub max_tasks_per_stage: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaDefaults {
    /// One function name, or several to spread stages over.
    pub function: Option<OneOrMany>,
    pub qualifier: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub launcher_threshold: Option<usize>,
    pub scaling_rate: Option<usize>,
}

/// `function = "a"` or `function = ["a", "b"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// The default location of the config file, if the environment names a home.
fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("squall").join("config.toml"))
}

impl Config {
    /// Reads `explicit` (from --config or SQUALL_CONFIG), which must exist, or
    /// the default file if there is one.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => match default_path() {
                Some(p) if p.is_file() => p,
                _ => return Ok(Self::default()),
            },
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    fn parse(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| {
            // toml's message spans several lines with a source excerpt; keep its first.
            anyhow::anyhow!("{}", e.message().trim())
        })?;
        if let Some(bytes) = &config.query.task_memory {
            crate::args::parse_bytes(bytes)
                .map_err(|e| anyhow::anyhow!("query.task_memory: {e}"))?;
        }
        if let Some(bytes) = &config.query.spill_bytes {
            crate::args::parse_bytes(bytes)
                .map_err(|e| anyhow::anyhow!("query.spill_bytes: {e}"))?;
        }
        if let Some(bytes) = &config.query.max_result_bytes {
            crate::args::parse_bytes(bytes)
                .map_err(|e| anyhow::anyhow!("query.max_result_bytes: {e}"))?;
        }
        if let Some(bytes) = &config.query.target_task_bytes {
            crate::args::parse_bytes(bytes)
                .map_err(|e| anyhow::anyhow!("query.target_task_bytes: {e}"))?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let config = Config::parse(
            r#"
            [query]
            backend = "lambda"
            workers = 512
            stage_workers = 256
            scratch = "s3://scratch/squall/"
            target_task_bytes = "64MiB"

            [lambda]
            function = ["squall-a", "squall-b"]
            qualifier = "live"
            region = "eu-west-1"
            scaling_rate = 500
            "#,
        )
        .unwrap();
        assert_eq!(config.query.backend, Some(BackendKind::Lambda));
        assert_eq!(config.query.stage_workers, Some(256));
        assert_eq!(
            config.lambda.function.unwrap().into_vec(),
            vec!["squall-a", "squall-b"]
        );
        assert_eq!(config.lambda.scaling_rate, Some(500));
    }

    #[test]
    fn one_function_name_is_a_string() {
        let config = Config::parse("[lambda]\nfunction = \"squall\"\n").unwrap();
        assert_eq!(config.lambda.function.unwrap().into_vec(), vec!["squall"]);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = Config::parse("[query]\nworkerz = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("workerz"), "{err}");
        let err = Config::parse("[query]\nbackend = \"mainframe\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mainframe"), "{err}");
        let err = Config::parse("[query]\ntarget_task_bytes = \"12 parsecs\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("target_task_bytes"), "{err}");
    }
}
