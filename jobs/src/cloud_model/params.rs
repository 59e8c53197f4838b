//! Every number the cloud model uses, with where it comes from.
//!
//! One table, [`PARAMETERS`], names each field of [`ModelParams`] with its
//! unit and source; `docs/cost-model.md` shows it (a test keeps the two
//! equal), and the config file's `[cost_model]` table overrides any field.

use serde::Deserialize;

/// The parameters of a Lambda + S3 run (us-east-1, x86_64).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelParams {
    /// Memory of each function.
    pub function_memory_mb: u64,
    /// Memory at which a function has one full vCPU.
    pub mb_per_vcpu: u64,
    /// Most vCPUs a function gets (at 10,240 MB).
    pub max_vcpus: f64,
    /// Input one vCPU decodes and processes per second.
    pub cpu_mib_per_vcpu_second: f64,
    /// S3 throughput of one function, reading or writing.
    pub network_mib_per_second: f64,
    /// Time to first byte of one S3 request.
    pub s3_first_byte_ms: f64,
    /// Requests one task keeps in flight.
    pub requests_in_flight_per_task: f64,
    /// Input bytes one GET of a Parquet scan covers.
    pub scan_mib_per_get: f64,
    /// Bytes above which an object is uploaded in parts of this size.
    pub multipart_part_mib: f64,
    /// GETs and PUTs S3 serves per second under one prefix.
    pub s3_gets_per_prefix_second: f64,
    pub s3_puts_per_prefix_second: f64,
    /// Start of a new execution environment, Squall's worker included.
    pub cold_start_ms: f64,
    /// One synchronous Invoke call's own time (not the function's run).
    pub invoke_ms: f64,
    /// Invocations the coordinator, and each launcher, keep in flight.
    pub invocations_in_flight: u64,
    /// Stages with more tasks than this are invoked through this many launchers.
    pub launcher_threshold: u64,
    /// Functions running at once in the account (its concurrency quota).
    pub account_concurrency: u64,
    /// New execution environments Lambda adds per function per 10 seconds.
    pub scaling_per_10_seconds: u64,
    /// The client's download rate of the result.
    pub client_mib_per_second: f64,
    /// Prices in US dollars.
    pub lambda_gb_second_usd: f64,
    pub lambda_invocation_usd: f64,
    pub s3_get_usd: f64,
    pub s3_put_usd: f64,
}

impl Default for ModelParams {
    fn default() -> Self {
        let prices = crate::cost::CloudPrices::default();
        Self {
            function_memory_mb: 3538,
            mb_per_vcpu: 1769,
            max_vcpus: 6.0,
            cpu_mib_per_vcpu_second: 150.0,
            network_mib_per_second: 80.0,
            s3_first_byte_ms: 30.0,
            requests_in_flight_per_task: 8.0,
            scan_mib_per_get: 4.0,
            multipart_part_mib: 10.0,
            s3_gets_per_prefix_second: 5500.0,
            s3_puts_per_prefix_second: 3500.0,
            cold_start_ms: 250.0,
            invoke_ms: 25.0,
            invocations_in_flight: 64,
            launcher_threshold: 32,
            account_concurrency: 1000,
            scaling_per_10_seconds: 1000,
            client_mib_per_second: 100.0,
            lambda_gb_second_usd: prices.lambda_gb_second_usd,
            lambda_invocation_usd: prices.lambda_invocation_usd,
            s3_get_usd: prices.s3_get_usd,
            s3_put_usd: prices.s3_put_usd,
        }
    }
}

impl ModelParams {
    /// vCPUs of one function: proportional to memory, at most [`Self::max_vcpus`].
    pub fn vcpus(&self) -> f64 {
        (self.function_memory_mb as f64 / self.mb_per_vcpu.max(1) as f64)
            .clamp(0.1, self.max_vcpus.max(0.1))
    }

    /// Lambda's GB of one function (1,024 MB).
    pub fn function_gb(&self) -> f64 {
        self.function_memory_mb as f64 / 1024.0
    }

    /// A one-line complaint about a value that makes no sense, if any.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("function_memory_mb", self.function_memory_mb as f64),
            ("mb_per_vcpu", self.mb_per_vcpu as f64),
            ("max_vcpus", self.max_vcpus),
            ("cpu_mib_per_vcpu_second", self.cpu_mib_per_vcpu_second),
            ("network_mib_per_second", self.network_mib_per_second),
            (
                "requests_in_flight_per_task",
                self.requests_in_flight_per_task,
            ),
            ("scan_mib_per_get", self.scan_mib_per_get),
            ("multipart_part_mib", self.multipart_part_mib),
            ("s3_gets_per_prefix_second", self.s3_gets_per_prefix_second),
            ("s3_puts_per_prefix_second", self.s3_puts_per_prefix_second),
            ("invocations_in_flight", self.invocations_in_flight as f64),
            ("account_concurrency", self.account_concurrency as f64),
            ("scaling_per_10_seconds", self.scaling_per_10_seconds as f64),
            ("client_mib_per_second", self.client_mib_per_second),
        ];
        for (name, value) in positive {
            if !(value > 0.0 && value.is_finite()) {
                return Err(format!(
                    "cost_model.{name} must be a positive number, not {value}"
                ));
            }
        }
        let non_negative = [
            ("s3_first_byte_ms", self.s3_first_byte_ms),
            ("cold_start_ms", self.cold_start_ms),
            ("invoke_ms", self.invoke_ms),
            ("lambda_gb_second_usd", self.lambda_gb_second_usd),
            ("lambda_invocation_usd", self.lambda_invocation_usd),
            ("s3_get_usd", self.s3_get_usd),
            ("s3_put_usd", self.s3_put_usd),
        ];
        for (name, value) in non_negative {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(format!(
                    "cost_model.{name} must be zero or more, not {value}"
                ));
            }
        }
        Ok(())
    }
}

/// One row of the parameter table: the config key, its unit, and where its
/// default comes from.
#[derive(Debug)]
pub struct Parameter {
    pub key: &'static str,
    pub unit: &'static str,
    pub source: &'static str,
    pub value: fn(&ModelParams) -> String,
}

const AWS_MEMORY: &str = "AWS Lambda docs, \"Configure Lambda function memory\": CPU grows with memory, one full vCPU at 1,769 MB, up to 6 vCPUs at 10,240 MB";
const AWS_S3_RATES: &str = "AWS S3 docs, \"Best practices design patterns: optimizing Amazon S3 performance\": at least 3,500 PUT/COPY/POST/DELETE and 5,500 GET/HEAD requests per second per prefix";
const AWS_PRICES: &str = "AWS price lists, us-east-1, x86_64, S3 Standard (first tier)";
const SQUALL_DEFAULT: &str = "Squall's default (`squall deploy lambda`, the Lambda backend)";
const MEASURED_CPU: &str = "measured: TPC-H SF1 queries 1, 3, 9 and 18 on the local backend read 157-216 MiB per task-second (`squall sql --stats`, release build, 2026-12-07); rounded down";
const ASSUMED: &str = "assumption, not measured here: override it with your own measurement";

/// Every parameter, in the order of [`ModelParams`].
pub const PARAMETERS: &[Parameter] = &[
    Parameter {
        key: "function_memory_mb",
        unit: "MB",
        source: SQUALL_DEFAULT,
        value: |p| p.function_memory_mb.to_string(),
    },
    Parameter {
        key: "mb_per_vcpu",
        unit: "MB",
        source: AWS_MEMORY,
        value: |p| p.mb_per_vcpu.to_string(),
    },
    Parameter {
        key: "max_vcpus",
        unit: "vCPUs",
        source: AWS_MEMORY,
        value: |p| p.max_vcpus.to_string(),
    },
    Parameter {
        key: "cpu_mib_per_vcpu_second",
        unit: "MiB/s",
        source: MEASURED_CPU,
        value: |p| p.cpu_mib_per_vcpu_second.to_string(),
    },
    Parameter {
        key: "network_mib_per_second",
        unit: "MiB/s",
        source: "assumption, not measured here: published serverless-analytics work reports tens of MB/s up to about 100 MB/s per function; override it with your own measurement",
        value: |p| p.network_mib_per_second.to_string(),
    },
    Parameter {
        key: "s3_first_byte_ms",
        unit: "ms",
        source: ASSUMED,
        value: |p| p.s3_first_byte_ms.to_string(),
    },
    Parameter {
        key: "requests_in_flight_per_task",
        unit: "requests",
        source: ASSUMED,
        value: |p| p.requests_in_flight_per_task.to_string(),
    },
    Parameter {
        key: "scan_mib_per_get",
        unit: "MiB",
        source: "measured: TPC-H SF1 query 1 reads 220 MiB of Parquet in 63 GETs (`squall sql --stats`, 2026-12-07)",
        value: |p| p.scan_mib_per_get.to_string(),
    },
    Parameter {
        key: "multipart_part_mib",
        unit: "MiB",
        source: "object_store's buffered upload: objects above 10 MiB are sent in parts",
        value: |p| p.multipart_part_mib.to_string(),
    },
    Parameter {
        key: "s3_gets_per_prefix_second",
        unit: "requests/s",
        source: AWS_S3_RATES,
        value: |p| p.s3_gets_per_prefix_second.to_string(),
    },
    Parameter {
        key: "s3_puts_per_prefix_second",
        unit: "requests/s",
        source: AWS_S3_RATES,
        value: |p| p.s3_puts_per_prefix_second.to_string(),
    },
    Parameter {
        key: "cold_start_ms",
        unit: "ms",
        source: "assumption: a provided.al2023 function's init; Squall's own worker start is a few ms (docs/benchmarks.md, worker cold start)",
        value: |p| p.cold_start_ms.to_string(),
    },
    Parameter {
        key: "invoke_ms",
        unit: "ms",
        source: ASSUMED,
        value: |p| p.invoke_ms.to_string(),
    },
    Parameter {
        key: "invocations_in_flight",
        unit: "invocations",
        source: SQUALL_DEFAULT,
        value: |p| p.invocations_in_flight.to_string(),
    },
    Parameter {
        key: "launcher_threshold",
        unit: "tasks",
        source: SQUALL_DEFAULT,
        value: |p| p.launcher_threshold.to_string(),
    },
    Parameter {
        key: "account_concurrency",
        unit: "functions",
        source: "AWS Lambda quotas: 1,000 concurrent executions per account and Region by default",
        value: |p| p.account_concurrency.to_string(),
    },
    Parameter {
        key: "scaling_per_10_seconds",
        unit: "functions",
        source: "AWS Lambda docs, \"Lambda scaling behavior\": each function adds up to 1,000 execution environments every 10 seconds",
        value: |p| p.scaling_per_10_seconds.to_string(),
    },
    Parameter {
        key: "client_mib_per_second",
        unit: "MiB/s",
        source: ASSUMED,
        value: |p| p.client_mib_per_second.to_string(),
    },
    Parameter {
        key: "lambda_gb_second_usd",
        unit: "USD",
        source: AWS_PRICES,
        value: |p| p.lambda_gb_second_usd.to_string(),
    },
    Parameter {
        key: "lambda_invocation_usd",
        unit: "USD",
        source: AWS_PRICES,
        value: |p| p.lambda_invocation_usd.to_string(),
    },
    Parameter {
        key: "s3_get_usd",
        unit: "USD",
        source: AWS_PRICES,
        value: |p| p.s3_get_usd.to_string(),
    },
    Parameter {
        key: "s3_put_usd",
        unit: "USD",
        source: AWS_PRICES,
        value: |p| p.s3_put_usd.to_string(),
    },
];

/// The parameter table as Markdown, with `params`' values.
pub fn parameter_table(params: &ModelParams) -> String {
    let mut out = String::from("| key | default | unit | source |\n|---|---|---|---|\n");
    for p in PARAMETERS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            p.key,
            (p.value)(params),
            p.unit,
            p.source
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/cost-model.md shows [`parameter_table`] between markers;
    /// `SQUALL_UPDATE_DOCS=1` rewrites it.
    #[test]
    fn the_documented_table_is_the_models() {
        const BEGIN: &str = "<!-- parameters: generated by the cloud_model::params test -->\n";
        const END: &str = "<!-- end of parameters -->";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cost-model.md");
        let doc = std::fs::read_to_string(path).expect("docs/cost-model.md");
        let start = doc.find(BEGIN).expect("the begin marker") + BEGIN.len();
        let end = doc.find(END).expect("the end marker");
        let table = parameter_table(&ModelParams::default());
        if std::env::var_os("SQUALL_UPDATE_DOCS").is_some() {
            let updated = format!("{}{table}{}", &doc[..start], &doc[end..]);
            std::fs::write(path, updated).unwrap();
        } else {
            assert_eq!(
                &doc[start..end],
                table,
                "docs/cost-model.md is stale: run SQUALL_UPDATE_DOCS=1 cargo test --workspace --lib -- cloud_model"
            );
        }
    }

    #[test]
    fn every_field_is_in_the_table_and_overridable() {
        let defaults = ModelParams::default();
        assert!(defaults.check().is_ok());
        for p in PARAMETERS {
            // A config file setting this key alone parses and changes it.
            let value = (p.value)(&defaults);
            let bumped = match value.parse::<u64>() {
                Ok(n) => (n * 2).to_string(),
                Err(_) => format!("{}", value.parse::<f64>().unwrap() * 2.0),
            };
            let text = format!("{} = {bumped}", p.key);
            let parsed: ModelParams =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_ne!(parsed, defaults, "{text} changed nothing");
        }
        let fields = format!("{defaults:?}").matches(": ").count();
        assert_eq!(
            fields,
            PARAMETERS.len(),
            "a field is missing from PARAMETERS"
        );
        assert!(toml::from_str::<ModelParams>("lambda_price = 1").is_err());
        let zero: ModelParams = toml::from_str("network_mib_per_second = 0.0").unwrap();
        assert_eq!(
            zero.check().unwrap_err(),
            "cost_model.network_mib_per_second must be a positive number, not 0"
        );
    }
}
