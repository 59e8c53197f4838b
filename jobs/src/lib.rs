//! The coordinator: sessions, the scheduler, backends and results.
//!
//! A [`Session`] holds tables and runs SQL or DataFrames. For each query it
//! asks DataFusion for a physical plan, has the planner cut it into stages,
//! and hands the stages to the [`scheduler`], which turns every task into
//! [`squall_worker::TaskSpec`] bytes signed with the backend's task key, invokes them on a [`Backend`] with a
//! bound on concurrency, picks the winning attempt of each task, and feeds the
//! winners' byte ranges into the specs of the stages that read them. The final
//! stage's result parts (Arrow IPC) stream back through a [`QueryStream`] as soon as each
//! is complete.

pub mod adaptive;
pub mod analyze;
pub mod backend;
pub mod cloud_model;
pub mod cost;
pub mod cost_planning;
mod dry_run;
pub mod error;
pub mod group_speculation;
pub mod invocations;
pub mod lease;
pub mod progress;
mod reach;
pub mod registry;
pub mod rerun;
pub mod results;
pub mod run_report;
pub mod scheduler;
pub mod session;
pub mod specs;
pub mod speculation;
pub mod staged_sinks;

pub use adaptive::AdaptivePolicy;
pub use backend::{
    Backend, FaultyBackend, LambdaBackend, LambdaOptions, LocalBackend, ProcessBackend, TaskFaults,
    WorkerReach,
};
pub use backend::{
    DEFAULT_LAMBDA_WORKERS, DEFAULT_LAUNCHER_THRESHOLD, LAMBDA_SCALING_RATE, LaunchRequest,
    run_launcher, signed_launch_payload,
};
pub use error::{JobError, Result};
pub use progress::{AttemptOutcome, ProgressEvent, ProgressListener};
pub use results::QueryStream;
pub use session::{DEFAULT_TASK_ATTEMPTS, Session, SessionOptions, StatementResult};
pub use speculation::SpeculationPolicy;
pub use staged_sinks::StagedSinks;
