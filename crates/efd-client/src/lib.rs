//! Fetches EFD telemetry for the planned queries of `transform-core`.
//!
//! The principal types and how they connect:
//!
//! - [`EfdSource`] is the back-end trait: `select` (fields over a time range, optionally aggregated
//!   per bucket) and `field_keys` (`SHOW FIELD KEYS`). Two implementations:
//!   [`HttpSource`] speaks InfluxQL to any InfluxDB serving `/query` (the EFD is InfluxDB Enterprise
//!   1.x), and [`FileSource`] answers the same selects from a line-protocol file (the format
//!   `influx_inspect export` writes and `/write` accepts), the embedded default of the demo.
//! - [`run_query`] runs one [`TopicQuery`] (a planned `QueryGroup` bound to a task's time range) on
//!   any source: it expands and unpacks packed series and applies the reference's timestamp
//!   truncation under `--compat reference`.
//! - [`EfdOptions`] holds the connection options (URL, credentials as a [`Secret`], timeouts,
//!   retries, concurrency) and [`EfdClient`] is the source they select.
//! - [`Catalog`] ([`EfdClient::catalog`]) is what the EFD holds for some topics: measurements,
//!   field and tag keys, for checking a config against it.
//! - [`EfdError`] tells transient failures (retry the task later) from permanent ones.
//!
//! Only this crate knows InfluxQL ([`influxql`]) and the `/query` JSON and MessagePack.

mod catalog;
mod client;
mod error;
mod file;
mod http;
pub mod influxql;
mod json;
mod lineproto;
mod merge;
mod msgpack;
mod options;
mod packed;
mod source;
mod stats;

pub use catalog::Catalog;
pub use client::EfdClient;
pub use error::EfdError;
pub use file::FileSource;
pub use http::HttpSource;
pub use json::parse_query_response;
pub use msgpack::parse_query_response_msgpack;
pub use options::{EfdLocation, EfdOptions, ResponseFormat};
pub use packed::{CRIO_TIMESTAMP, unpack};
pub use source::{EfdSource, FieldKey, FieldType, Select, TopicQuery, run_query};
pub use stats::{EfdStats, StatsCounters};
pub use transform_core::Secret;
