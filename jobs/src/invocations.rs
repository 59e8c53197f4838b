//! Invocations that outlive the coordinator's interest in them.
//!
//! On the local and process backends, dropping an invocation's future stops
//! its task (the in-process task is aborted, the worker process killed). A
//! Lambda invocation cannot be stopped: a losing speculative attempt, an
//! attempt abandoned by a failed or cancelled query, runs on until it ends
//! and may write its exchange object or result part after its query is
//! over. Deleting the query's scratch before then would leave that late
//! object behind.
//!
//! So on such backends ([`Backend::cancels_abandoned_invocations`] false)
//! every invocation runs as a tokio task of its own, counted by the query's
//! [`Invocations`] until its response arrives, whoever still waits for it;
//! the query's scratch is deleted once [`Invocations::settle`] saw them all
//! end, or after [`ABANDONED_INVOCATIONS_WAIT`]. What an invocation still
//! running then writes later is removed by a later query's clean (or
//! `squall scratch clean`), as scratch without a live lease, once it is
//! older than a lease's life (see [`crate::lease`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::backend::Backend;
use crate::group_speculation::{GroupBackups, LaunchedTask};

/// How long the end of a query waits for its abandoned invocations before it
/// deletes its scratch anyway.
pub const ABANDONED_INVOCATIONS_WAIT: Duration = Duration::from_secs(10);

/// How long after deleting its scratch a query that dropped something
/// mid-flight deletes it once more, for writes its store applied late.
pub use squall_connectors::cleanup::LATE_WRITE_SWEEP_DELAY;

/// The invocations of one query still running on a backend that cannot
/// cancel them.
#[derive(Debug, Default)]
pub struct Invocations {
    running: AtomicUsize,
    ended: Notify,
    /// Whether an attempt or request of the query was dropped mid-flight
    /// (see [`Invocations::note_abandoned`]).
    abandoned: std::sync::atomic::AtomicBool,
}

/// Counts one running invocation until dropped.
struct Running(Arc<Invocations>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.ended.notify_waiters();
        }
    }
}

impl Invocations {
    /// Invokes `spec` on `backend`. Where the backend cannot cancel an
    /// invocation, it runs detached and counted, so that dropping the
    /// returned future abandons the wait, not the count.
    pub async fn invoke(
        self: &Arc<Self>,
        backend: &Arc<dyn Backend>,
        spec: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        if backend.cancels_abandoned_invocations() {
            return backend.invoke(spec).await;
        }
        let running = self.track();
        let backend = Arc::clone(backend);
        tokio::spawn(async move {
            let _running = running;
            backend.invoke(spec).await
        })
        .await
        .unwrap_or_else(|e| Err(format!("the invocation panicked: {e}")))
    }

    /// [`Backend::invoke_group`], counted the same way.
    pub async fn invoke_group(
        self: &Arc<Self>,
        backend: &Arc<dyn Backend>,
        specs: Vec<Vec<u8>>,
        in_flight: usize,
        backups: Option<GroupBackups>,
    ) -> Result<Vec<LaunchedTask>, String> {
        if backend.cancels_abandoned_invocations() {
            return backend.invoke_group(specs, in_flight, backups).await;
        }
        let running = self.track();
        let backend = Arc::clone(backend);
        tokio::spawn(async move {
            let _running = running;
            backend.invoke_group(specs, in_flight, backups).await
        })
        .await
        .unwrap_or_else(|e| Err(format!("the launcher invocation panicked: {e}")))
    }

    /// Something of the query was dropped mid-flight: a losing backup
    /// attempt, an attempt past its timeout, a losing hedged request, the
    /// tasks of a failed or cancelled query. Even where dropping cancels
    /// the task, a write it had already sent may be applied by the store
    /// after the drop, and after the query's scratch was deleted; such a
    /// query's scratch is swept once more a little later
    /// ([`LATE_WRITE_SWEEP_DELAY`]).
    pub fn note_abandoned(&self) {
        self.abandoned.store(true, Ordering::Release);
    }

    /// Whether [`Invocations::note_abandoned`] was called.
    pub fn any_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// How many invocations are running.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Waits until no invocation runs, at most `limit`; whether none does.
    pub async fn settle(&self, limit: Duration) -> bool {
        let all_ended = async {
            loop {
                let ended = self.ended.notified();
                if self.running() == 0 {
                    return;
                }
                ended.await;
            }
        };
        tokio::time::timeout(limit, all_ended).await.is_ok()
    }

    fn track(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::AcqRel);
        Running(Arc::clone(self))
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use squall_worker::TaskKey;

    use super::*;
    use crate::backend::WorkerReach;

    /// Sleeps as many milliseconds as its spec's first byte says; cannot be cancelled.
    #[derive(Debug)]
    struct Sleeper {
        key: TaskKey,
        cancels: bool,
    }

    #[async_trait]
    impl Backend for Sleeper {
        fn name(&self) -> &str {
            "sleeper"
        }
        fn task_key(&self) -> &TaskKey {
            &self.key
        }
        fn reach(&self) -> WorkerReach {
            WorkerReach::ThisProcess
        }
        fn max_concurrency(&self) -> usize {
            4
        }
        fn cancels_abandoned_invocations(&self) -> bool {
            self.cancels
        }
        async fn invoke(&self, spec: Vec<u8>) -> Result<Vec<u8>, String> {
            tokio::time::sleep(Duration::from_millis(u64::from(spec[0]) * 10)).await;
            Ok(spec)
        }
    }

    fn sleeper(cancels: bool) -> Arc<dyn Backend> {
        Arc::new(Sleeper {
            key: TaskKey::generate(),
            cancels,
        })
    }

    #[tokio::test]
    async fn abandoned_invocations_are_counted_until_they_end() {
        let invocations = Arc::new(Invocations::default());
        let backend = sleeper(false);
        assert_eq!(invocations.invoke(&backend, vec![1]).await, Ok(vec![1]));
        assert_eq!(invocations.running(), 0);
        // Abandoned after 20 ms: it runs on for about 180 ms more.
        let abandoned = tokio::time::timeout(
            Duration::from_millis(20),
            invocations.invoke(&backend, vec![20]),
        )
        .await;
        assert!(abandoned.is_err());
        let group = tokio::time::timeout(
            Duration::from_millis(20),
            invocations.invoke_group(&backend, vec![vec![10], vec![10]], 1, None),
        )
        .await;
        assert!(group.is_err());
        assert_eq!(invocations.running(), 2);
        assert!(!invocations.settle(Duration::from_millis(20)).await);
        assert!(invocations.settle(Duration::from_secs(5)).await);
        assert_eq!(invocations.running(), 0);
        assert!(
            invocations.settle(Duration::ZERO).await,
            "nothing to wait for"
        );
    }

    #[tokio::test]
    async fn cancellable_invocations_are_not_counted() {
        let invocations = Arc::new(Invocations::default());
        let backend = sleeper(true);
        let abandoned = tokio::time::timeout(
            Duration::from_millis(20),
            invocations.invoke(&backend, vec![50]),
        )
        .await;
        assert!(abandoned.is_err());
        assert_eq!(invocations.running(), 0);
    }
}
