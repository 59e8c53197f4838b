//! Backends run task spec bytes and return report bytes.
//!
//! The contract is bytes in, bytes out, even in-process, so that any task runs
//! unchanged on any backend. The scheduler bounds concurrency with
//! [`Backend::max_concurrency`].

use std::fmt::Debug;

use async_trait::async_trait;
use squall_worker::FunctionLibrary;

mod lambda;
mod local;
mod process;
mod scaling;

pub use lambda::{
    DEFAULT_LAMBDA_WORKERS, DEFAULT_LAUNCHER_THRESHOLD, LambdaBackend, LambdaOptions,
    LaunchRequest, MAX_SYNC_PAYLOAD_BYTES, run_launcher,
};
pub use local::LocalBackend;
pub use process::ProcessBackend;
pub use scaling::{LAMBDA_SCALING_RATE, RampPermit, ScalingRamp};

/// Runs tasks somewhere.
#[async_trait]
pub trait Backend: Debug + Send + Sync {
    /// Short name for messages (`local`, `process`, `lambda`).
    fn name(&self) -> &str;
    /// Most tasks this backend should run at once.
    fn max_concurrency(&self) -> usize;
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
    /// them, at most `in_flight` at once; returns one result per spec, in order.
    async fn invoke_group(
        &self,
        specs: Vec<Vec<u8>>,
        in_flight: usize,
    ) -> Result<Vec<Result<Vec<u8>, String>>, String> {
        use futures::StreamExt;
        Ok(futures::stream::iter(specs)
            .map(|s| self.invoke(s))
            .buffered(in_flight.max(1))
            .collect()
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
