//! Notebooks: a Markdown file whose fenced `sql` cells run distributed
//! queries and whose `chart` cells draw their results, rendered to one
//! self-contained HTML page.
//!
//! - [`notebook_file`] reads the file: front matter, TOML between `+++`
//!   lines or YAML between `---` lines ([`yaml_table`]): title,
//!   backend, tables, parameters; prose, ```` ```sql name ```` cells
//!   (named ones are tables for later cells), ```` ```chart ```` cells (TOML
//!   or YAML).
//! - [`notebook_edit`] edits the file block by block (for a live editor).
//! - [`cell_graph`] orders the cells by the names they read; a cycle is an
//!   error at the line of a cell in it.
//! - [`run`] runs the cells on a [`squall_jobs::Session`], each after the
//!   cells it reads and independent ones at once, keeping each result's
//!   first rows and its measures ([`cell_run`] runs one); a failed cell
//!   stops the cells that read it, not the others; [`cell_cancel`] stops one
//!   running cell.
//! - [`cell_key`] digests what a cell's result depends on (its SQL, the
//!   cells it reads, the files of its tables); [`cell_cache`] keeps results
//!   under those keys, so an unchanged cell is not run again.
//! - [`chart`] draws a cell's rows as SVG (bar, line, area, scatter,
//!   histogram) with a tooltip on every mark; [`render_html`] makes the page;
//!   [`render_markdown`] writes the notebook back with its results embedded.
//!
//! This crate owns the notebook format and its rendering; it does not plan
//! or run queries (`squall-jobs` does).

pub mod cell_cache;
pub mod cell_cancel;
pub mod cell_graph;
pub mod cell_key;
pub mod cell_run;
pub mod chart;
pub mod error;
pub mod notebook_edit;
pub mod notebook_file;
pub mod render_html;
pub mod render_markdown;
pub mod run;
pub mod yaml_table;

pub use cell_cache::CellCache;
pub use error::{NotebookError, Result};
pub use notebook_file::{Block, ChartCell, Notebook, SqlCell};
pub use run::{CellEvent, CellOutcome, NotebookRun, RunOptions, run_notebook};
