//! The worker: runs one task from its serialized, signed [`TaskSpec`], returns a serialized [`TaskReport`].
//!
//! [`run_task`] is a pure function of its input bytes plus the objects they
//! name. It builds a fresh DataFusion context, registers only the object
//! stores the spec names, decodes the stage's plan fragment, binds the task's
//! own splits, exchange inputs and output location into it, executes it and
//! reports what happened. Nothing survives the call: the same bytes run
//! unchanged in-process (local backend), in a child process or in a cloud
//! function.

pub mod calls;
pub mod cooperative;
pub mod counting_store;
pub mod error;
pub mod functions;
pub mod memory;
pub mod operator_metrics;
pub mod peak_memory;
pub mod pinned;
pub mod remote_error;
pub mod report;
pub mod run;
pub mod signing;
pub mod spec;

pub use error::{Result, WorkerError};
pub use functions::FunctionLibrary;
pub use operator_metrics::OperatorMetrics;
pub use remote_error::{OutOfDisk, RemoteError};
pub use report::{RequestCounts, TaskOutcome, TaskReport};
pub use run::{
    refused_report, run_opened_task, run_task, run_task_spec, run_task_with_env_key,
    run_task_with_functions, task_config,
};
pub use signing::{TASK_KEY_ENV, TaskKey};
pub use spec::{ExchangeInput, FragmentRef, MemoryPoolKind, ScanInput, TaskLimits, TaskSpec};
