//! The source trait both EFD back ends implement, and the query entry point built on it.
//!
//! A source answers two questions: the field keys of a topic (`SHOW FIELD KEYS`) and a plain select
//! of fields over a time range, optionally aggregated per time bucket. [`run_query`] builds everything
//! else on those two, identically for every source: packed-series expansion and unpacking, and the
//! reference's timestamp truncation under `Semantics::Reference`.

use std::future::Future;

use transform_core::{Frame, PreAggregation, QueryGroup, Semantics, TimeRange};

use crate::error::EfdError;
use crate::packed;

/// The InfluxDB type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// `float`
    Float,
    /// `integer`
    Integer,
    /// `unsigned` (InfluxDB 1.8+; returned as integers)
    Unsigned,
    /// `boolean`
    Boolean,
    /// `string`
    String,
}

impl FieldType {
    /// Parses InfluxDB's `fieldType` name.
    pub fn from_influx(name: &str) -> Option<FieldType> {
        Some(match name {
            "float" => FieldType::Float,
            "integer" => FieldType::Integer,
            "unsigned" => FieldType::Unsigned,
            "boolean" => FieldType::Boolean,
            "string" => FieldType::String,
            _ => return None,
        })
    }

    /// InfluxDB's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Float => "float",
            FieldType::Integer => "integer",
            FieldType::Unsigned => "unsigned",
            FieldType::Boolean => "boolean",
            FieldType::String => "string",
        }
    }
}

/// One field key of a measurement, as `SHOW FIELD KEYS` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldKey {
    /// The field name.
    pub name: String,
    /// Its type. A field stored with different types in different shards is listed once per type.
    pub field_type: FieldType,
}

/// A plain select: `SELECT <fields> FROM <topic> WHERE time >= start AND time <= end
/// [GROUP BY time(interval)]`.
#[derive(Debug, Clone, Copy)]
pub struct Select<'a> {
    /// The measurement.
    pub topic: &'a str,
    /// The fields, in output order. May exceed the per-statement limit; the source chunks.
    pub fields: &'a [String],
    /// Inclusive time range.
    pub range: TimeRange,
    /// Server-side aggregation into epoch-aligned buckets; buckets with no value in any field are
    /// dropped.
    pub aggregation: Option<&'a PreAggregation>,
}

/// An EFD back end.
///
/// Implementations return frames whose columns are the requested fields, in request order, typed by
/// the field's InfluxDB type (tag keys selected as fields are strings); rows where every requested
/// field is missing are absent, as InfluxDB omits them.
pub trait EfdSource: Send + Sync {
    /// Runs a plain select.
    fn select(&self, select: Select<'_>) -> impl Future<Output = Result<Frame, EfdError>> + Send;

    /// Lists the field keys of a measurement (empty when it does not exist).
    fn field_keys(
        &self,
        topic: &str,
    ) -> impl Future<Output = Result<Vec<FieldKey>, EfdError>> + Send;

    /// Where the data comes from, for logs (never with credentials).
    fn describe(&self) -> String;

    /// Learns the field keys of `topics` ahead of their queries, in as few statements as the
    /// source can (the HTTP source: one `SHOW FIELD KEYS` for up to 50 topics instead of one per
    /// topic); a source that needs nothing ahead does nothing.
    fn prefetch_field_keys(
        &self,
        topics: &[&str],
    ) -> impl Future<Output = Result<(), EfdError>> + Send {
        let _ = topics;
        async { Ok(()) }
    }
}

/// One topic query of a task: a planned [`QueryGroup`] bound to a time range.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicQuery {
    /// The measurement.
    pub topic: String,
    /// Fields (packed: base names).
    pub fields: Vec<String>,
    /// Inclusive time range.
    pub range: TimeRange,
    /// Server-side aggregation, if any.
    pub pre_aggregation: Option<PreAggregation>,
    /// Whether `fields` are packed-series bases.
    pub packed: bool,
}

impl TopicQuery {
    /// The query of `group` for a task whose topic interval is `interval` (the group's
    /// `start_offset` applied).
    pub fn for_group(group: &QueryGroup, interval: TimeRange) -> TopicQuery {
        TopicQuery {
            topic: group.topic.clone(),
            fields: group.fields.clone(),
            range: group.query_range(interval),
            pre_aggregation: group.pre_aggregation.clone(),
            packed: group.packed,
        }
    }
}

/// Runs one topic query against a source: a plain select, or for packed series `SHOW FIELD KEYS`, a
/// select of every `<base>N` and `cRIO_timestamp`, and unpacking into one sample per row.
///
/// Under `Semantics::Reference` sample times are truncated to µs (ms for packed series), as the
/// Python service's parsing does (BEHAVIOUR.md §5.6–5.7).
pub async fn run_query<S: EfdSource + ?Sized>(
    source: &S,
    query: &TopicQuery,
    semantics: Semantics,
) -> Result<Frame, EfdError> {
    if query.packed {
        return packed::query(source, query, semantics).await;
    }
    let frame = source
        .select(Select {
            topic: &query.topic,
            fields: &query.fields,
            range: query.range,
            aggregation: query.pre_aggregation.as_ref(),
        })
        .await?;
    Ok(match semantics {
        Semantics::Default => frame,
        Semantics::Reference => map_timestamps(frame, transform_core::time::truncate_to_micros),
    })
}

/// The frame with every timestamp mapped through `f` (monotone, so order is kept).
pub(crate) fn map_timestamps(frame: Frame, f: fn(i64) -> i64) -> Frame {
    let (mut ts, columns) = frame.into_parts();
    for t in &mut ts {
        *t = f(*t);
    }
    Frame::new(ts, columns).expect("same shape as before")
}
