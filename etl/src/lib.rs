//! ETL jobs: a job file names sources (tables by URL and format), a
//! sequence of SQL steps, and sinks that write steps' rows to object
//! storage; [`run_job`] runs it on a [`squall_jobs::Session`] and publishes
//! every sink in one commit.
//!
//! The life of a job:
//!
//! 1. [`JobFile::parse`] reads the TOML file and checks its shape: unknown
//!    keys, missing or mistyped values, undefined `${param}`s, sinks of
//!    unknown steps. Every problem is reported at once, with its line and key.
//! 2. [`JobPlan::check`] checks it against the session: the sources
//!    exist, every step's SQL plans, every sink's partition columns are
//!    columns of its step, destinations that must be empty are. Again every
//!    problem at once, before anything runs.
//! 3. [`run_job`] reads incremental sources for the objects no earlier
//!    successful run consumed ([`incremental`]); runs the steps that several consumers read once, into the
//!    session's scratch; then writes every sink (each a distributed
//!    `COPY`, staged and not published); then publishes them all together
//!    (`squall_connectors::job_commit`), with the new state of its
//!    incremental sources: a job that fails or is killed leaves every
//!    destination, and what it has consumed, as it was.
//!
//! This crate owns the job file format and the order of a job's work. It
//! does not plan or run queries (`squall-jobs` does), nor move files
//! (`squall-connectors` does).

pub mod error;
pub mod incremental;
pub mod job_file;
pub mod job_plan;
pub mod job_run;
mod params;
pub mod problem;

pub use error::{EtlError, Result};
pub use job_file::{JobFile, SinkDef, SinkFormat, SourceDef, StepDef, WriteMode};
pub use job_plan::JobPlan;
pub use job_run::{IncrementalRead, JobOutcome, RunOptions, SinkOutcome, run_job};
pub use problem::Problem;
