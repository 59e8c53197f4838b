//! [`LocalBackend`]: tasks as tokio tasks in this process, still bytes in and bytes out.

use async_trait::async_trait;

use super::Backend;

/// Runs tasks as tokio tasks in this process.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    workers: usize,
}

impl LocalBackend {
    /// At most `workers` tasks at once (at least one).
    pub fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
        }
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &str {
        "local"
    }

    fn max_concurrency(&self) -> usize {
        self.workers
    }

    async fn invoke(&self, spec: Vec<u8>) -> Result<Vec<u8>, String> {
        // Its own tokio task: a panic in a task is reported, not propagated;
        // and a cancelled query aborts it instead of leaving it running.
        let mut task = AbortOnDrop(tokio::spawn(
            async move { squall_worker::run_task(&spec).await },
        ));
        (&mut task.0)
            .await
            .map_err(|e| format!("task panicked: {e}"))
    }
}

/// Aborts a spawned task when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
