//! A model of a query on AWS Lambda + S3: predicted seconds and dollars per
//! stage, before anything runs (`squall explain --cost`), and the fan-out
//! that meets a deadline or a budget (`--deadline`, `--budget`).
//!
//! - [`params`]: every number the model uses, with its source, overridable
//!   in the config file's `[cost_model]` table;
//! - [`profile`]: what each stage reads, writes, computes and requests,
//!   estimated from the stage graph;
//! - [`predict`]: from profiles to a timeline and a bill;
//! - [`fanout`]: choosing the task size for a goal.
//!
//! Predictions are estimates from a model, labelled as such wherever they
//! are shown; what a run cost is measured by `--stats` and `EXPLAIN
//! ANALYZE` ([`crate::cost`]). This module runs nothing and must not: it
//! reads a stage graph and returns numbers.

pub mod fanout;
pub mod params;
pub mod predict;
pub mod profile;
pub mod render;

pub use fanout::{Candidate, Goal};
pub use params::ModelParams;
pub use predict::{QueryPrediction, StagePrediction};
pub use profile::{StageProfile, profile_from_measures, profiles_from_plan, scaled_profiles};
