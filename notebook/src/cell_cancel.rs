//! Cancelling one running cell: whoever holds a clone of a run's
//! [`CellCancels`] may stop a cell of it; the cell's query is dropped (its
//! tasks cancelled), it ends as not run to its end, and the cells that read
//! it are not run. Cells that do not read it go on.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The cells of one run asked to stop.
#[derive(Debug, Clone, Default)]
pub struct CellCancels {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cells: Mutex<BTreeSet<usize>>,
    changed: Notify,
}

impl CellCancels {
    /// Stops cell `cell` (an index of `Notebook::sql_cells`) if it runs, or
    /// keeps it from starting.
    pub fn cancel(&self, cell: usize) {
        self.inner
            .cells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cell);
        self.inner.changed.notify_waiters();
    }

    pub fn is_cancelled(&self, cell: usize) -> bool {
        self.inner
            .cells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&cell)
    }

    /// Resolves once cell `cell` is cancelled.
    pub async fn cancelled(&self, cell: usize) {
        loop {
            // Registered before the check: a cancel between the two wakes it.
            let changed = self.inner.changed.notified();
            if self.is_cancelled(cell) {
                return;
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_wakes_the_cell_it_names_only() {
        let cancels = CellCancels::default();
        let waiting = tokio::spawn({
            let cancels = cancels.clone();
            async move { cancels.cancelled(2).await }
        });
        cancels.cancel(1);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        cancels.cancel(2);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert!(cancels.is_cancelled(1) && cancels.is_cancelled(2) && !cancels.is_cancelled(3));
    }
}
