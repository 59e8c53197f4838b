//! [`LocalBackend`]: tasks as tokio tasks in this process, still bytes in and bytes out.

use std::sync::Arc;

use async_trait::async_trait;
use squall_worker::{FunctionLibrary, TaskKey};

use super::{Backend, WorkerReach};

/// Runs tasks as tokio tasks in this process.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    workers: usize,
    functions: Arc<FunctionLibrary>,
    /// Generated for this backend: specs are signed and checked in-process
    /// too, so that every backend runs the same bytes the same way.
    key: TaskKey,
}

impl LocalBackend {
    /// At most `workers` tasks at once (at least one); tasks know DataFusion's built-in functions.
    pub fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            functions: Arc::new(FunctionLibrary::builtin()),
            key: TaskKey::generate(),
        }
    }

    /// The same backend, whose tasks also know the functions of `functions`.
    pub fn with_functions(mut self, functions: FunctionLibrary) -> Self {
        self.functions = Arc::new(functions);
        self
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &str {
        "local"
    }

    fn task_key(&self) -> &TaskKey {
        &self.key
    }

    fn reach(&self) -> WorkerReach {
        WorkerReach::ThisProcess
    }

    fn max_concurrency(&self) -> usize {
        self.workers
    }

    fn functions(&self) -> FunctionLibrary {
        self.functions.as_ref().clone()
    }

    async fn invoke(&self, spec: Vec<u8>) -> Result<Vec<u8>, String> {
        // Its own tokio task: a panic in a task is reported, not propagated;
        // and a cancelled query aborts it instead of leaving it running.
        let functions = Arc::clone(&self.functions);
        let key = self.key.clone();
        let mut task = AbortOnDrop(Some(tokio::spawn(async move {
            squall_worker::run_task_with_functions(&spec, &key, &functions).await
        })));
        task.0
            .as_mut()
            .expect("taken only when dropped")
            .await
            .map_err(|e| format!("task panicked: {e}"))
    }
}

/// Aborts a spawned task when its handle is dropped. Its end is registered
/// as a cleanup, so that a process about to exit waits until the task was
/// dropped and what that dropping spawned (aborting its open uploads) ran.
struct AbortOnDrop<T: Send + 'static>(Option<tokio::task::JoinHandle<T>>);

impl<T: Send + 'static> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take()
            && !handle.is_finished()
        {
            handle.abort();
            squall_connectors::cleanup::spawn_cleanup(async move {
                let _ = handle.await;
            });
        }
    }
}
