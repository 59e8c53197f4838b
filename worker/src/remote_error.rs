//! [`RemoteError`]: a task's DataFusion error, carried in its report.
//!
//! A task fails with a `DataFusionError` in the worker; the coordinator
//! rebuilds an error of the same kind and text, so that a failed query says
//! exactly what DataFusion on one machine says ("Arrow error: Divide by zero
//! error", "Execution error: ..."), and so that the kind of failure is known
//! where retries are decided.

use std::sync::Arc;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use serde::{Deserialize, Serialize};

/// A DataFusion error as data: its kind and text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum RemoteError {
    Execution(String),
    Plan(String),
    Configuration(String),
    NotImplemented(String),
    Internal(String),
    ResourcesExhausted(String),
    /// An Arrow error, by its text ("Parser error: ...").
    Arrow(String),
    /// An error from outside DataFusion, by its text.
    External(String),
    /// Context around another error.
    Context(String, Box<RemoteError>),
    /// Any other kind: its prefix ("Parquet error: ") and message.
    Other {
        prefix: String,
        message: String,
    },
}

/// An error known only by its text.
#[derive(Debug)]
struct Text(String);

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Text {}

/// Builds one kind of Arrow error from its text.
type ArrowErrorKind = fn(String) -> ArrowError;

/// Arrow's error kinds by the prefix of their text.
const ARROW_PREFIXES: &[(&str, ArrowErrorKind)] = &[
    ("Not yet implemented: ", ArrowError::NotYetImplemented),
    ("Cast error: ", ArrowError::CastError),
    ("Memory error: ", ArrowError::MemoryError),
    ("Parser error: ", ArrowError::ParseError),
    ("Schema error: ", ArrowError::SchemaError),
    ("Compute error: ", ArrowError::ComputeError),
    ("Arithmetic overflow: ", ArrowError::ArithmeticOverflow),
    ("Avro error: ", ArrowError::AvroError),
    ("Csv error: ", ArrowError::CsvError),
    ("Json error: ", ArrowError::JsonError),
    ("Ipc error: ", ArrowError::IpcError),
    ("Invalid argument error: ", ArrowError::InvalidArgumentError),
    ("Parquet argument error: ", ArrowError::ParquetError),
    ("C Data interface error: ", ArrowError::CDataInterface),
];

fn arrow_error(text: &str) -> ArrowError {
    if text == "Divide by zero error" {
        return ArrowError::DivideByZero;
    }
    for (prefix, make) in ARROW_PREFIXES {
        if let Some(rest) = text.strip_prefix(prefix) {
            return make(rest.to_string());
        }
    }
    let external = text.strip_prefix("External error: ").unwrap_or(text);
    ArrowError::ExternalError(Box::new(Text(external.to_string())))
}

impl RemoteError {
    /// The error as data.
    pub fn from_datafusion(e: &DataFusionError) -> Self {
        match e {
            DataFusionError::Execution(m) => Self::Execution(m.clone()),
            DataFusionError::Plan(m) => Self::Plan(m.clone()),
            DataFusionError::Configuration(m) => Self::Configuration(m.clone()),
            DataFusionError::NotImplemented(m) => Self::NotImplemented(m.clone()),
            DataFusionError::Internal(m) => Self::Internal(m.clone()),
            DataFusionError::ResourcesExhausted(m) => Self::ResourcesExhausted(m.clone()),
            DataFusionError::ArrowError(a, _) => Self::Arrow(a.to_string()),
            DataFusionError::External(inner) => Self::External(inner.to_string()),
            DataFusionError::Context(desc, inner) => {
                Self::Context(desc.clone(), Box::new(Self::from_datafusion(inner)))
            }
            DataFusionError::Shared(inner) => Self::from_datafusion(inner),
            DataFusionError::Diagnostic(_, inner) => Self::from_datafusion(inner),
            DataFusionError::Collection(errors) if !errors.is_empty() => {
                Self::from_datafusion(&errors[0])
            }
            other => {
                let text = other.strip_backtrace();
                let message = other.message().to_string();
                let prefix = text.strip_suffix(&message).unwrap_or_default().to_string();
                Self::Other { prefix, message }
            }
        }
    }

    /// A `DataFusionError` of the same kind whose text is the original's.
    pub fn to_datafusion(&self) -> DataFusionError {
        match self {
            Self::Execution(m) => DataFusionError::Execution(m.clone()),
            Self::Plan(m) => DataFusionError::Plan(m.clone()),
            Self::Configuration(m) => DataFusionError::Configuration(m.clone()),
            Self::NotImplemented(m) => DataFusionError::NotImplemented(m.clone()),
            Self::Internal(m) => DataFusionError::Internal(m.clone()),
            Self::ResourcesExhausted(m) => DataFusionError::ResourcesExhausted(m.clone()),
            Self::Arrow(text) => DataFusionError::ArrowError(Box::new(arrow_error(text)), None),
            Self::External(text) => DataFusionError::External(Box::new(Text(text.clone()))),
            Self::Context(desc, inner) => {
                DataFusionError::Context(desc.clone(), Box::new(inner.to_datafusion()))
            }
            Self::Other { prefix, message } => DataFusionError::Shared(Arc::new(
                DataFusionError::External(Box::new(Text(format!("{prefix}{message}")))),
            )),
        }
    }
}

impl RemoteError {
    /// The error below any context wrappers.
    pub fn innermost(&self) -> &RemoteError {
        match self {
            Self::Context(_, inner) => inner.innermost(),
            other => other,
        }
    }

    /// Whether the task ran out of disk while spilling: over its spill
    /// limit (DataFusion's `DiskManager`, whose error arrives as an I/O
    /// error) or on a full local disk. DataFusion reports either as I/O.
    pub fn out_of_disk(&self) -> Option<OutOfDisk> {
        let text = self.to_datafusion().to_string();
        if text.contains("during the spilling process has exceeded the allowable limit") {
            Some(OutOfDisk::SpillLimit)
        } else if text.contains("No space left on device") {
            Some(OutOfDisk::DiskFull)
        } else {
            None
        }
    }

    /// Whether another attempt of the task may succeed. Not when the query
    /// itself is at fault (SQL, plan, schema, type, cast and arithmetic
    /// errors: the same input gives the same error) or when storage says an
    /// input is missing or access is denied, nor when the task ran out of
    /// memory or spill disk, or filled the local disk (another attempt gets
    /// the same limits, and on one machine the same disk); yes for
    /// internal faults and for other storage and I/O failures, which are
    /// often transient (`503 SlowDown`, a reset connection).
    pub fn is_retriable(&self) -> bool {
        if self.out_of_disk().is_some() {
            return false;
        }
        match self {
            Self::Plan(_)
            | Self::Configuration(_)
            | Self::NotImplemented(_)
            | Self::Execution(_)
            | Self::ResourcesExhausted(_) => false,
            Self::Arrow(text) => {
                (text.starts_with("Io error") || text.starts_with("External error"))
                    && !is_permanent_storage_fault(text)
            }
            Self::Internal(_) => true,
            Self::External(text) => !is_permanent_storage_fault(text),
            Self::Context(_, inner) => inner.is_retriable(),
            Self::Other { prefix, message } => {
                matches!(prefix.as_str(), "Object Store error: " | "IO error: ")
                    && !is_permanent_storage_fault(message)
            }
        }
    }
}

/// How a task ran out of disk (see [`RemoteError::out_of_disk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfDisk {
    /// Its spill files reached the task's spill limit.
    SpillLimit,
    /// The local disk was full.
    DiskFull,
}

/// Storage failures no retry fixes: a missing object or bucket, refused credentials.
fn is_permanent_storage_fault(text: &str) -> bool {
    const PERMANENT: &[&str] = &[
        "not found",
        "notfound",
        "no such file",
        "nosuchkey",
        "nosuchbucket",
        "access denied",
        "accessdenied",
        "permission denied",
        "forbidden",
        "unauthenticated",
        "unauthorized",
        "invalidaccesskeyid",
        "signaturedoesnotmatch",
    ];
    let text = text.to_ascii_lowercase();
    PERMANENT.iter().any(|p| text.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(e: DataFusionError) {
        let remote = RemoteError::from_datafusion(&e);
        let json = serde_json::to_string(&remote).unwrap();
        let back: RemoteError = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_datafusion().to_string(), e.to_string(), "{json}");
    }

    #[test]
    fn errors_come_back_with_their_kind_and_text() {
        round_trip(DataFusionError::Execution("bad value".into()));
        round_trip(DataFusionError::Plan("no such column".into()));
        round_trip(DataFusionError::Internal("oops".into()));
        round_trip(DataFusionError::ArrowError(
            Box::new(ArrowError::DivideByZero),
            None,
        ));
        round_trip(DataFusionError::ArrowError(
            Box::new(ArrowError::ParseError("Error parsing 'x'".into())),
            None,
        ));
        round_trip(DataFusionError::ArrowError(
            Box::new(ArrowError::CastError("Cannot cast".into())),
            None,
        ));
        round_trip(DataFusionError::Context(
            "while reading".into(),
            Box::new(DataFusionError::Execution("inner".into())),
        ));
    }

    #[test]
    fn wrappers_keep_their_text() {
        let inner = DataFusionError::Execution("deep".into());
        round_trip(DataFusionError::External(Box::new(inner)));
        let shared = DataFusionError::Shared(Arc::new(DataFusionError::Plan("p".into())));
        assert_eq!(
            RemoteError::from_datafusion(&shared),
            RemoteError::Plan("p".into())
        );
        let other = DataFusionError::IoError(std::io::Error::other("disk"));
        assert!(
            RemoteError::from_datafusion(&other)
                .to_datafusion()
                .to_string()
                .contains("IO error: disk")
        );
    }

    #[test]
    fn retries_are_for_faults_another_attempt_may_not_meet() {
        let fatal = [
            RemoteError::Plan("no such column".into()),
            RemoteError::Execution("Scalar subquery returned more than one row".into()),
            RemoteError::Arrow("Divide by zero error".into()),
            RemoteError::Other {
                prefix: "Object Store error: ".into(),
                message: "Object at location x.parquet not found".into(),
            },
            RemoteError::External("Generic S3 error: Access Denied".into()),
            RemoteError::Other {
                prefix: "Schema error: ".into(),
                message: "duplicate field".into(),
            },
        ];
        for e in fatal {
            assert!(!e.is_retriable(), "{e:?}");
        }
        assert!(!RemoteError::ResourcesExhausted("Failed to allocate".into()).is_retriable());
        let retriable = [
            RemoteError::External("Generic S3 error: 503 SlowDown".into()),
            RemoteError::Other {
                prefix: "IO error: ".into(),
                message: "connection reset by peer".into(),
            },
            RemoteError::Context(
                "reading stage 1".into(),
                Box::new(RemoteError::Internal("worker panicked".into())),
            ),
        ];
        for e in retriable {
            assert!(e.is_retriable(), "{e:?}");
        }
    }

    #[test]
    fn running_out_of_disk_is_told_apart_and_not_retried() {
        let limit = RemoteError::Arrow(
            "Io error: The used disk space during the spilling process has exceeded the allowable limit of 1024.0 KB."
                .into(),
        );
        assert_eq!(limit.out_of_disk(), Some(OutOfDisk::SpillLimit));
        assert!(!limit.is_retriable());
        let full = RemoteError::Context(
            "writing spill".into(),
            Box::new(RemoteError::Other {
                prefix: "IO error: ".into(),
                message: "No space left on device (os error 28)".into(),
            }),
        );
        assert_eq!(full.out_of_disk(), Some(OutOfDisk::DiskFull));
        assert!(!full.is_retriable());
        let reset = RemoteError::Arrow("Io error: connection reset by peer".into());
        assert_eq!(reset.out_of_disk(), None);
        assert!(reset.is_retriable());
    }
}
