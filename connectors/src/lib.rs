//! Where Squall's data lives and how it is cut into work.
//!
//! Everything that touches a user's storage goes through this crate: turning a
//! location the user typed (`/data/lineitem`, `s3://lake/orders/`) into an
//! `object_store` URL and store, registering tables with DataFusion, cutting
//! input files into splits that tasks read independently, and generating the
//! TPC-H demo data set. Keeping it in one place means the coordinator and the
//! workers agree on how a URL maps to a store: a worker rebuilds its stores
//! from the URLs in its TaskSpec, never from shared objects. (A library
//! program may provide a store as an object, `store_builder::provide_store`;
//! only in-process tasks, which share the coordinator's process, may use it.)

pub mod aws_credentials;
pub mod byte_sizes;
pub mod cleanup;
pub mod error;
pub mod faulty_store;
mod forward;
pub mod hedged_store;
pub mod job_commit;
pub mod null_partitions;
pub mod request_policy;
pub mod retrying_store;
pub mod scan_leaf;
pub mod sink_staging;
pub mod splits;
pub mod state_rebuild;
pub mod store;
pub mod store_builder;
pub mod table;
pub mod tpch;
pub mod upload_guard;
pub mod url_tables;

pub use error::{ConnectorError, Result};
pub use request_policy::{HedgePolicy, RequestPolicy, RequestStats, StoreFaults};
pub use splits::FileSplit;
pub use store::{Location, register_object_store};
pub use table::{CsvOptions, TableFormat, register_table, register_table_with};
