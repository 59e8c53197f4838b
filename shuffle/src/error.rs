//! The one error type of the exchange.

use datafusion::error::DataFusionError;

/// Errors of the exchange writer, reader and codec. Each names the object at fault.
#[derive(Debug, thiserror::Error)]
pub enum ShuffleError {
    /// An object-store request failed.
    #[error("exchange object '{url}': {source}")]
    ObjectStore {
        url: String,
        #[source]
        source: object_store::Error,
    },
    /// An object's bytes are not what the writer writes.
    #[error("exchange object '{url}' is corrupt: {reason}")]
    Corrupt { url: String, reason: String },
    /// Arrow IPC encoding or decoding failed.
    #[error("exchange object '{url}': Arrow IPC error: {reason}")]
    Ipc { url: String, reason: String },
    /// An operator ran before the worker bound its task-specific inputs or output.
    #[error("{operator} of stage {stage} ran without its task inputs bound")]
    Unbound {
        operator: &'static str,
        stage: usize,
    },
    /// A plan node could not be encoded or decoded.
    #[error("plan codec: {0}")]
    Codec(String),
    /// An operator that cannot be sent to a task (no encoding for it).
    #[error("operator {operator} cannot run on Squall's workers: {reason}")]
    Unsupported { operator: String, reason: String },
    /// A fragment that would mean something else on the worker than on the
    /// coordinator (see `fidelity`): refused rather than run.
    #[error(
        "operator {operator} would change meaning on its way to the workers, so the query is refused: {detail}"
    )]
    Fidelity { operator: String, detail: String },
    /// Local spill file I/O.
    #[error("exchange spill file: {0}")]
    Spill(#[from] std::io::Error),
}

impl ShuffleError {
    /// The exchange object this error shows to be missing, truncated or
    /// corrupt: data its producer must write again (not a passing fault of
    /// the store, and not the reader's fault). Only the reader raises
    /// `Corrupt`; a writer's own failures (`Ipc`, other store errors) are not
    /// lost data.
    pub fn lost_object_url(&self) -> Option<&str> {
        match self {
            ShuffleError::Corrupt { url, .. } => Some(url),
            ShuffleError::ObjectStore {
                url,
                source: object_store::Error::NotFound { .. },
            } => Some(url),
            _ => None,
        }
    }
}

/// The exchange object `error` (however DataFusion wrapped it) shows to be
/// missing, truncated or corrupt; see [`ShuffleError::lost_object_url`].
pub fn lost_exchange_object(error: &DataFusionError) -> Option<String> {
    use datafusion::arrow::error::ArrowError;
    fn in_dyn(error: &(dyn std::error::Error + 'static)) -> Option<String> {
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(shuffle) = e.downcast_ref::<ShuffleError>() {
                return shuffle.lost_object_url().map(str::to_string);
            }
            if let Some(df) = e.downcast_ref::<DataFusionError>() {
                return in_datafusion(df);
            }
            if let Some(ArrowError::ExternalError(inner)) = e.downcast_ref::<ArrowError>() {
                return in_dyn(inner.as_ref());
            }
            current = e.source();
        }
        None
    }
    fn in_datafusion(error: &DataFusionError) -> Option<String> {
        match error {
            DataFusionError::External(inner) => in_dyn(inner.as_ref()),
            DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
                in_datafusion(inner)
            }
            DataFusionError::Shared(inner) => in_datafusion(inner),
            DataFusionError::ArrowError(inner, _) => match inner.as_ref() {
                ArrowError::ExternalError(inner) => in_dyn(inner.as_ref()),
                _ => None,
            },
            DataFusionError::Collection(errors) => errors.iter().find_map(in_datafusion),
            _ => None,
        }
    }
    in_datafusion(error)
}

impl From<ShuffleError> for DataFusionError {
    fn from(e: ShuffleError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

/// Result alias for this crate.
pub type Result<T, E = ShuffleError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn lost_objects_are_found_however_wrapped() {
        let corrupt = || -> DataFusionError {
            ShuffleError::Corrupt {
                url: "file:///s/q/t0-a0.sqx".into(),
                reason: "bad CRC".into(),
            }
            .into()
        };
        let missing: DataFusionError = ShuffleError::ObjectStore {
            url: "s3://b/q/t1-a0.sqx".into(),
            source: object_store::Error::NotFound {
                path: "q/t1-a0.sqx".into(),
                source: "gone".into(),
            },
        }
        .into();
        assert_eq!(
            lost_exchange_object(&missing).as_deref(),
            Some("s3://b/q/t1-a0.sqx")
        );
        let wrapped = DataFusionError::Context(
            "join".into(),
            Box::new(DataFusionError::Shared(Arc::new(corrupt()))),
        );
        assert_eq!(
            lost_exchange_object(&wrapped).as_deref(),
            Some("file:///s/q/t0-a0.sqx")
        );
        let through_arrow = DataFusionError::ArrowError(
            Box::new(datafusion::arrow::error::ArrowError::ExternalError(
                Box::new(corrupt()),
            )),
            None,
        );
        assert!(lost_exchange_object(&through_arrow).is_some());
        let passing: DataFusionError = ShuffleError::ObjectStore {
            url: "s3://b/x".into(),
            source: object_store::Error::Generic {
                store: "S3",
                source: "503 SlowDown".into(),
            },
        }
        .into();
        assert_eq!(lost_exchange_object(&passing), None);
        assert_eq!(
            lost_exchange_object(&DataFusionError::Execution("x".into())),
            None
        );
    }
}
