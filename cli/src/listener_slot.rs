//! A session's progress listener that can be pointed elsewhere for each
//! statement (a fresh progress display, a fresh footer's measures).

use std::sync::{Arc, Mutex};

use squall::jobs::{ProgressEvent, ProgressListener};

/// Forwards every event to whatever listener was [`ListenerSlot::set`] last.
#[derive(Clone, Default)]
pub struct ListenerSlot(Arc<Mutex<Option<ProgressListener>>>);

impl std::fmt::Debug for ListenerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenerSlot")
    }
}

impl ListenerSlot {
    /// The listener to build the session with.
    pub fn listener(&self) -> ProgressListener {
        let slot = Arc::clone(&self.0);
        Arc::new(move |event: ProgressEvent| {
            let current = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(listener) = current {
                listener(event);
            }
        })
    }

    /// Sends later events to `listener` (none: dropped).
    pub fn set(&self, listener: Option<ProgressListener>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = listener;
    }
}
