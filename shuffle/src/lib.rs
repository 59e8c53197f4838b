//! Squall's exchange: how one stage hands rows to the next through object storage.
//!
//! Each map task writes exactly one object holding all of its output partitions
//! back to back, each an Arrow IPC stream, followed by an index of their byte
//! ranges ([`format`]). The index also comes back in the task's report, so a
//! reader never lists and never reads an index: it is told the exact byte range
//! of its partition in every committed map object and issues ranged GETs
//! ([`ExchangeReaderExec`]). One object per task keeps request counts at
//! `map tasks` PUTs and `map tasks x reduce tasks` ranged GETs, and the object
//! names are attempt-scoped ([`keys`]) so that retries never overwrite a
//! winner.
//!
//! The operators here are DataFusion `ExecutionPlan`s serialized by
//! [`SquallCodec`]; task-specific facts (which objects to read, where to write)
//! are bound by the worker after decoding, so all tasks of a stage share one
//! plan fragment.

pub mod builtin_functions;
pub mod codec;
pub mod debug_tree;
pub mod error;
pub mod expr_codec;
pub mod fidelity;
pub mod format;
pub mod grouping_sets_codec;
pub mod join_topk_codec;
pub mod keys;
pub mod reader;
pub mod recursive_codec;
pub mod result_writer;
pub mod scan_codec;
pub mod sink_codec;
pub mod window_codec;
pub mod wire_types;
pub mod writer;

pub use codec::SquallCodec;
pub use error::{Result, ShuffleError};
pub use format::{ExchangeIndex, ObjectRange, PartitionRange};
pub use reader::{ExchangeReaderExec, ReadMode};
pub use result_writer::ResultWriterExec;
pub use writer::{ExchangeWriterExec, OutputPartitioning};
