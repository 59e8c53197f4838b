//! Delta Lake tables for Squall.
//!
//! This crate owns what makes a folder of Parquet files a Delta table to
//! Squall: opening a snapshot (the newest, or a version or time for time
//! travel) through Squall's own object stores; turning the snapshot's
//! active files and partition values into an ordinary DataFusion Parquet
//! scan, which the planner cuts into splits like any other
//! ([`DeltaSnapshotTable`]); and committing the files a distributed write
//! staged as one Delta transaction ([`commit_staged`]), whose optimistic
//! concurrency refuses a commit that another writer's would invalidate.
//!
//! It runs on the coordinator only. It must not read or write data files
//! itself (workers scan them; sinks write them), and nothing in a task
//! spec depends on it: a Delta scan reaches a worker as a plain Parquet
//! scan with partition values.
//!
//! The log is read and written by delta-rs (`deltalake`), without its
//! DataFusion integration.

mod delta_commit;
mod delta_factory;
mod delta_file_stats;
mod delta_location;
mod delta_open;
mod delta_schema;
mod delta_table;
pub mod error;

pub use delta_commit::{
    DeltaWrite, DeltaWriteMode, DeltaWriteOutcome, check_target, check_writers, commit_staged,
    read_version,
};
pub use delta_factory::DeltaTableFactory;
pub use delta_location::{DELTA_SCHEME_PREFIX, DeltaLocation, TimeTravel};
pub use delta_schema::delta_compatible_type;
pub use delta_table::{DeltaSnapshotTable, delta_table};
pub use error::{DeltaError, Result};
