//! Backends run task spec bytes and return report bytes.
//!
//! The contract is bytes in, bytes out, even in-process, so that any task runs
//! unchanged on any backend. The scheduler bounds concurrency with
//! [`Backend::max_concurrency`].

use std::fmt::Debug;

use async_trait::async_trait;
use squall_worker::{FunctionLibrary, TaskKey};

use crate::group_speculation::{GroupBackups, LaunchedTask, run_group};

mod faulty;
mod lambda;
mod local;
mod process;
mod scaling;

pub use faulty::{FaultyBackend, TaskFaults};
pub use lambda::{
    DEFAULT_LAMBDA_WORKERS, DEFAULT_LAUNCHER_THRESHOLD, LambdaBackend, LambdaOptions,
    LaunchRequest, MAX_SYNC_PAYLOAD_BYTES, run_launcher, signed_launch_payload,
};
pub use local::LocalBackend;
pub use process::ProcessBackend;
pub use scaling::{LAMBDA_SCALING_RATE, RampPermit, ScalingRamp};

/// What storage a backend's workers can reach besides object storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerReach {
    /// Workers run in this process: `memory://` stores and local files too.
    ThisProcess,
    /// Workers run on this machine: local files too, not `memory://`.
    ThisMachine,
    /// Workers run elsewhere (cloud functions): object storage only.
    ObjectStorageOnly,
}

impl WorkerReach {
    /// Whether workers can reach a store of URL scheme `scheme`.
    pub fn reaches(self, scheme: &str) -> bool {
        match scheme {
            "memory" => self == Self::ThisProcess,
            "file" => self != Self::ObjectStorageOnly,
            _ => true,
        }
    }
}

/// Runs tasks somewhere.
#[async_trait]
pub trait Backend: Debug + Send + Sync {
    /// Short name for messages (`local`, `process`, `lambda`).
    fn name(&self) -> &str;
    /// The key the backend's workers check every payload against: the
    /// coordinator signs every spec it sends with it
    /// (see [`squall_worker::signing`]).
    fn task_key(&self) -> &TaskKey;
    /// Which stores the workers can reach; the coordinator refuses a query
    /// that would send them to any other.
    fn reach(&self) -> WorkerReach;
    /// Most tasks this backend should run at once.
    fn max_concurrency(&self) -> usize;
    /// Whether the backend itself ends every invocation after a time limit
    /// (a Lambda function's timeout), so that tasks need no default timeout
    /// from the scheduler; abandoning one would not stop it anyway.
    fn ends_hung_tasks(&self) -> bool {
        false
    }
    /// Whether dropping an invocation's future stops its task (an aborted
    /// in-process task, a killed worker process). Where it does not (a
    /// Lambda invocation runs on), the scheduler keeps counting abandoned
    /// invocations until they end, so that the query's scratch is deleted
    /// after they wrote to it (see [`crate::invocations`]).
    fn cancels_abandoned_invocations(&self) -> bool {
        true
    }
    /// The most memory a task's pool can have on this backend's workers,
    /// whatever its limit says (a Lambda function's share of its memory);
    /// `None`: not known, or as much as the limit. The planner sizes tasks
    /// for the smaller of the two.
    fn worker_memory_bytes(&self) -> Option<u64> {
        None
    }
    /// The memory a worker is billed for (a Lambda function's configured
    /// memory), for cost estimates; `None` where tasks are not billed per
    /// invocation (local and process backends).
    fn billed_memory_bytes(&self) -> Option<u64> {
        None
    }
    /// Largest spec this backend carries; larger specs are stored under the
    /// query's scratch prefix and sent as `{"spec_url": ...}`.
    fn max_payload_bytes(&self) -> Option<usize> {
        None
    }
    /// Stages with more tasks than this are run through launcher invocations
    /// (see [`Backend::invoke_group`]); `None`: every task is invoked directly.
    fn launcher_threshold(&self) -> Option<usize> {
        None
    }
    /// Runs several tasks through one launcher invocation that invokes each of
    /// them, at most `in_flight` at once; returns one outcome per spec, in
    /// order. With `backups`, a straggler of the group gets a backup attempt
    /// (see [`crate::group_speculation`]).
    async fn invoke_group(
        &self,
        specs: Vec<Vec<u8>>,
        in_flight: usize,
        backups: Option<GroupBackups>,
    ) -> Result<Vec<LaunchedTask>, String> {
        let key = self.task_key();
        Ok(run_group(
            specs,
            in_flight,
            backups.as_ref().map(|b| (b, key)),
            |spec| self.invoke(spec),
        )
        .await)
    }
    /// The functions its tasks know beyond DataFusion's built-ins; the
    /// coordinator refuses plans that call any other function.
    fn functions(&self) -> FunctionLibrary {
        FunctionLibrary::builtin()
    }
    /// Runs one task. `Err` means the backend could not run it at all
    /// (a task that ran and failed returns a report saying so).
    async fn invoke(&self, spec: Vec<u8>) -> Result<Vec<u8>, String>;
}
