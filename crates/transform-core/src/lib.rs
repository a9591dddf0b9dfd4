//! The pure core of transformed-efd: what to compute and how, with no I/O and no async.
//!
//! The principal types and how they connect:
//!
//! - [`Config`] is the validated column config (`config_<instrument>.yaml`): one [`Column`] per
//!   output column, each naming a [`Function`], its topic and fields, and the [`Table`]s it goes to.
//! - [`QueryPlan`] groups the columns into EFD topic queries ([`QueryGroup`]s), once per config;
//!   the sources in `efd-client` run them and return one [`Frame`] per group.
//! - [`PreparedColumn`] filters a frame for one column (subset, missing values) and evaluates it
//!   for each [`Item`] (exposure or visit) over its inclusive window, with the [`kernels`].
//! - [`Semantics`] switches between the corrected behaviour and the Python service's exact numbers.
//! - [`Instrument`] names each camera as the CLI, the Butler and ConsDB spell it; [`Secret`] holds
//!   credentials so that they are never printed.
//! - [`time`] holds the `i64`-nanosecond instants ([`UtcNanos`], [`TaiNanos`]) and the leap-second
//!   table that converts between them.
//!
//! Invariant: nothing here returns an error for a data reason. Missing, NaN or unusable data gives
//! `None`; only configs ([`CoreError`]) can be rejected.

pub mod config;
mod error;
pub mod eval;
pub mod frame;
mod instrument;
pub mod kernels;
pub mod plan;
pub mod polyfit;
mod secret;
pub mod semantics;
pub mod time;
mod yaml_lines;

pub use config::{
    AggregateFn, Column, Config, Datatype, Field, FitBasis, Function, InfluxDuration,
    PreAggregation, Subset, SubsetScalar, SubsetValue, Table, Topic,
};
pub use error::{CoreError, Problem, error_chain};
pub use eval::{DataIssue, Item, ItemKind, PreparedColumn, UnpivotedValue};
pub use frame::{ColumnData, Frame, FrameColumn};
pub use instrument::Instrument;
pub use plan::{MAX_FIELDS_PER_QUERY, PlanSummary, QueryGroup, QueryPlan};
pub use secret::{Secret, redact};
pub use semantics::Semantics;
pub use time::{TaiNanos, TimeRange, UtcNanos};
