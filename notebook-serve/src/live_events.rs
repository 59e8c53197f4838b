//! What the server tells the page, as server-sent events: a whole snapshot
//! when the notebook's text changes (or the page connects, or fell
//! behind), then a block at a time as its cell runs and ends.

use serde::Serialize;

/// One event, sent as JSON in the `data:` of an SSE event named by `kind`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveEvent {
    /// The notebook as it is now: every block's Markdown and drawing.
    Snapshot(Snapshot),
    /// Block `index` drawn again (its cell ended, or the cell it charts).
    Block {
        generation: u64,
        index: usize,
        state: String,
        html: String,
    },
    /// The query of the cell at block `index` is running.
    Progress {
        generation: u64,
        index: usize,
        done: u64,
        planned: u64,
    },
    /// Every cell of the run has ended (or the run was cancelled).
    RunEnded {
        generation: u64,
        failures: usize,
        cached: usize,
        elapsed_ms: u64,
        cancelled: bool,
    },
    /// Something to tell the person at the page: an edit refused, a file
    /// that no longer parses, a table that cannot be read.
    Problem { message: String },
}

/// The notebook at one generation of its text.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Bumped by every change of the text; edits name the generation they
    /// were made on, and an edit of an older one is refused.
    pub generation: u64,
    pub title: String,
    /// Why the file on disk does not parse (the blocks are then the last
    /// text that did).
    pub problem: Option<String>,
    pub running: bool,
    pub blocks: Vec<BlockView>,
}

/// One block: what an editor shows and what the page draws.
#[derive(Debug, Clone, Serialize)]
pub struct BlockView {
    /// `prose`, `sql` or `chart`.
    pub kind: &'static str,
    /// Its Markdown, as in the file (fences and `{{ parameters }}` included).
    pub source: String,
    /// `done`, `failed`, `skipped`, `pending` (SQL cells); empty otherwise.
    pub state: String,
    pub html: String,
}

impl LiveEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::Snapshot(_) => "snapshot",
            LiveEvent::Block { .. } => "block",
            LiveEvent::Progress { .. } => "progress",
            LiveEvent::RunEnded { .. } => "run_ended",
            LiveEvent::Problem { .. } => "problem",
        }
    }
}
