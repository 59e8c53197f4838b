//! File sinks whose commit the caller makes: a query run with
//! [`crate::Session::write_staged`] stages its files like any other, but
//! instead of publishing them when its writing stage succeeds it hands
//! them over here, so that several queries' outputs can be published in one
//! decision (the sinks of an ETL job, `squall_connectors::job_commit`).
//!
//! The hand-over transfers ownership of the staging: the query's cleanup
//! leaves what it handed over alone, and the caller publishes or discards it.

use std::sync::{Arc, Mutex};

use squall_connectors::sink_staging::{SinkDestination, StagedSink};

/// The sinks one or more queries staged and did not publish.
#[derive(Debug, Clone, Default)]
pub struct StagedSinks {
    sinks: Arc<Mutex<Vec<StagedSink>>>,
    /// Every staging ever handed over (never cleared by [`Self::take`]): a
    /// query's cleanup, which may run after its caller took the sinks,
    /// must still leave them alone.
    handed: Arc<Mutex<Vec<(SinkDestination, String)>>>,
}

impl StagedSinks {
    /// Everything handed over so far, leaving none.
    pub fn take(&self) -> Vec<StagedSink> {
        std::mem::take(&mut *self.sinks.lock().expect("not poisoned"))
    }

    /// Everything handed over so far (a copy).
    pub fn list(&self) -> Vec<StagedSink> {
        self.sinks.lock().expect("not poisoned").clone()
    }

    /// How many sinks were handed over and not taken.
    pub fn len(&self) -> usize {
        self.sinks.lock().expect("not poisoned").len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands `sink` over: its owner now publishes or discards it.
    pub fn hand_over(&self, sink: StagedSink) {
        self.handed
            .lock()
            .expect("not poisoned")
            .push((sink.destination.clone(), sink.query_id.clone()));
        self.sinks.lock().expect("not poisoned").push(sink);
    }

    /// Whether `query_id`'s staging at `destination` was ever handed over.
    pub(crate) fn holds(&self, destination: &SinkDestination, query_id: &str) -> bool {
        self.handed
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|(d, q)| d == destination && q == query_id)
    }
}
