//! Cleanups that outlive the work they clean up after.
//!
//! A query or a `squall gen tpch` dropped before its end (its client stopped
//! reading, or was interrupted) cannot await its own cleanup: its `Drop`
//! hands the cleanup to [`spawn_cleanup`] instead. A process about to exit
//! after cancelling work calls [`finish_cleanups`] first, so that scratch and
//! staged files are gone when it exits.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;

/// How long after deleting what cancelled work wrote it is deleted once
/// more: a write already sent when its work was cancelled (a PUT on the
/// wire, a blocking file write that cannot be stopped) may land after the
/// first deletion.
pub const LATE_WRITE_SWEEP_DELAY: Duration = Duration::from_secs(2);

/// Cleanups spawned and maybe still running.
static PENDING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Runs `cleanup` in the background on the current tokio runtime (nothing
/// outside one); [`finish_cleanups`] waits for it.
pub fn spawn_cleanup(cleanup: impl Future<Output = ()> + Send + 'static) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let handle = runtime.spawn(cleanup);
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    pending.retain(|h| !h.is_finished());
    pending.push(handle);
}

/// Waits, at most `limit`, for every cleanup spawned so far and those they
/// (or work cancelled meanwhile) spawn in turn; returns whether all of them
/// finished in time.
pub async fn finish_cleanups(limit: Duration) -> bool {
    let all_done = async {
        loop {
            let pending = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
            if pending.is_empty() {
                return;
            }
            futures::future::join_all(pending).await;
        }
    };
    tokio::time::timeout(limit, all_done).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finishing_waits_for_spawned_cleanups() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        spawn_cleanup(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(());
        });
        assert!(finish_cleanups(Duration::from_secs(5)).await);
        assert!(rx.await.is_ok());
        // A cleanup that spawns another: both are waited for.
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        spawn_cleanup(async move {
            spawn_cleanup(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tx.send(());
            });
        });
        assert!(finish_cleanups(Duration::from_secs(5)).await);
        assert!(rx.try_recv().is_ok());
        spawn_cleanup(std::future::pending());
        assert!(!finish_cleanups(Duration::from_millis(20)).await);
    }
}
