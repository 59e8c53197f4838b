//! The planner: from a DataFusion physical plan to a graph of stages of stateless tasks.
//!
//! DataFusion plans a query for one machine with N partitions; every place
//! where its plan moves rows between partitions is a place where Squall's
//! tasks must move rows through object storage. [`cut_into_stages`] walks the
//! plan bottom-up and cuts it at those places:
//!
//! - a hash `RepartitionExec` becomes a **hash** exchange;
//! - `CoalescePartitionsExec` becomes a **gather** into one task;
//! - `SortPreservingMergeExec` becomes a **merge**: each map task sorts its
//!   part, one task merges the sorted streams;
//! - an input that must be seen whole by every task (the build side of a
//!   collect-left join, a scalar subquery) becomes a **broadcast**;
//! - round-robin repartitions are dropped: tasks are the unit of parallelism;
//! - a hash exchange whose rows already sit in their tasks by a hash of the
//!   same keys (read through hash exchanges on them) is left out;
//! - a hash exchange between very many map and reading tasks gets a stage of
//!   **combiners** in between ([`combine`]), so that its GETs stay far below
//!   map tasks × reading tasks.
//!
//! The number of tasks of a scan stage follows the bytes of its input splits
//! ([`squall_connectors::splits`]); the number of tasks of a stage fed by hash
//! exchanges follows the estimated bytes of its inputs. Each stage's fragment
//! is checked with DataFusion's own sanity checker, so the cut plan still
//! satisfies every operator's distribution and ordering requirements.
//!
//! One logical rewrite lives here too, because it decides what the stages
//! exchange: [`SemiJoinBelowInnerJoin`], which sessions add to DataFusion's
//! logical optimizer, filters an inner join's input by a semi join on its
//! key instead of filtering its product.

pub mod broadcast_by_cost;
pub mod combine;
pub mod config;
pub mod cut;
pub mod error;
pub mod estimates;
pub mod explain;
pub mod null_partition_folders;
pub mod portable;
pub mod scan;
pub mod semi_join_pushdown;
pub mod stage;

pub use broadcast_by_cost::BroadcastCheapBuildSides;
pub use config::PlannerConfig;
pub use cut::cut_into_stages;
pub use error::{PlannerError, Result};
pub use explain::{render_stage_graph, render_stage_graph_annotated};
pub use semi_join_pushdown::SemiJoinBelowInnerJoin;
pub use stage::{ExchangeKind, ScanLeaf, Stage, StageGraph, StageInput};
