//! Squall for Rust programs: a [`Session`] whose SQL and DataFusion
//! [`DataFrame`]s run distributed, cut into stages of stateless tasks that
//! exchange data through object storage, on the backend the session was
//! built with (in-process tasks, local processes or AWS Lambda).
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let session = squall::Session::builder().workers(2).build()?;
//! let df = session
//!     .sql("SELECT value % 3 AS k, count(*) AS n FROM range(1000) GROUP BY 1 ORDER BY 1")
//!     .await?;
//! // `collect`, `execute_stream`, `write_parquet`, ...: DataFusion's
//! // DataFrame methods, each run as a distributed query.
//! let batches = df.collect().await?;
//! assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
//! # Ok(())
//! # }
//! ```
//!
//! This crate owns the library surface: building a session, and making
//! DataFusion's own DataFrame API run distributed (a query planner that
//! wraps every query's physical plan in a [`DistributedExec`]). It must not
//! plan stages or run tasks itself: that is the coordinator, `squall_jobs`,
//! re-exported as [`jobs`] for programs that drive it as the `squall`
//! command does (statements with progress and measures, EXPLAIN, the cloud
//! cost model, run reports); a session's own is [`Session::jobs`]. The
//! `squall` command builds every session through [`SessionBuilder`] and
//! reaches the coordinator only through this crate.

mod distributed_exec;
#[cfg(feature = "polars")]
mod polars_frames;
mod session;

pub use datafusion::dataframe::DataFrame;
pub use distributed_exec::{DistributedExec, DistributedPlanner};
/// Polars' core crate, of the release [`CollectPolars`] returns frames of
/// (the optional `polars` feature).
#[cfg(feature = "polars")]
pub use polars_core;
#[cfg(feature = "polars")]
pub use polars_frames::{CollectPolars, PolarsConversionError, record_batches_to_polars};
pub use session::{Session, SessionBuilder};
/// The coordinator: sessions' statements, backends, progress, measures,
/// the cloud cost model, run reports, scratch leases.
pub use squall_jobs as jobs;
/// Why a query failed: the coordinator's error type, the CLI's too.
pub use squall_jobs::JobError as Error;
/// Backends a session can run its tasks on.
pub use squall_jobs::{Backend, LambdaBackend, LambdaOptions, LocalBackend, ProcessBackend};
/// Events a session reports while queries run.
pub use squall_jobs::{ProgressEvent, ProgressListener};

/// The README's Rust example, compiled by the doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;

/// A result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
