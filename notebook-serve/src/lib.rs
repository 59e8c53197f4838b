//! The live notebook: `squall notebook serve NOTEBOOK.md` serves a notebook
//! on 127.0.0.1 for a browser to edit and run.
//!
//! - [`live_notebook`] holds the served notebook: its file's text, the
//!   parsed notebook, the outcomes of its current run. An edit from the
//!   page is saved to the Markdown file and runs the notebook again;
//!   another editor's change to the file is read back the same way; the
//!   result cache makes unchanged cells come back without running, so a
//!   change re-runs the changed cells and those downstream of them.
//! - [`live_events`] is what pages hear (server-sent events): a snapshot
//!   of the whole notebook when its text changes, a block at a time as
//!   cells run and end.
//! - [`server`] is the HTTP side (axum): a random token in the URL required
//!   on every request, bound to 127.0.0.1, no file served.
//! - [`live_page`] is the page, its style and script inline (no build step,
//!   nothing fetched).
//!
//! This crate owns the live editing loop; the notebook format, running and
//! rendering belong to `squall-notebook`, queries to `squall-jobs`.

pub mod access_token;
pub mod error;
pub mod live_events;
pub mod live_notebook;
pub mod live_page;
pub mod server;

pub use error::{Result, ServeError};
pub use live_notebook::{LiveNotebook, RunSettings};
pub use server::{ServeOptions, Serving, serve};
