//! Squall's conformance suite: DataFusion's own sqllogictest files, run
//! through Squall's distributed path and judged against single-node DataFusion.
//!
//! DataFusion 55's `.slt` files (from the `datafusion-sqllogictest` crate)
//! hold statements, queries and DataFusion's answers. [`run::run_file`] runs
//! a file twice: once on single-node DataFusion (the reference: only records
//! it passes count) and once through a Squall session on the same test
//! context, where every query is cut into stages of several tasks that
//! exchange data through object storage on local disk ([`engine`]).
//! Records Squall cannot pass yet are listed, each with its cause, in
//! `expected-failures.txt` ([`expected`]); the suite fails on any other
//! failure, on a listed record that passes, on a listed wrong answer, and
//! below a 99% pass rate.
//!
//! This crate is a test harness: nothing in Squall depends on it.

pub mod engine;
pub mod error;
pub mod expected;
pub mod layout;
pub mod run;
pub mod summary;

pub use error::{ConformanceError, Result};
