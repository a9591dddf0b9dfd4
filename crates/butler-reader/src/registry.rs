//! Queries of the registry's `exposure` and `visit` tables, read-only, on PostgreSQL or SQLite.
//!
//! The only place that knows the registry schema (daf_butler dimension universe v8, DDL in
//! `shared/reference/butler-registry/`). Timespans are TAI nanoseconds, half-open `[begin, end)`:
//! one `int8range` column on PostgreSQL, `timespan_begin`/`timespan_end` on SQLite. The overlap
//! test is daf_butler's (`timespan && '[start,end)'`; SQLite `end > start AND stop > begin`), with
//! no cap on the number of records.

use db_connect::AsyncSqliteConnection;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use transform_core::{Instrument, TaiNanos, TimeRange};

use crate::error::ButlerError;

/// The dimension elements the service reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Element {
    /// `exposure`
    Exposure,
    /// `visit`
    Visit,
}

impl Element {
    /// The table (and dimension) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Element::Exposure => "exposure",
            Element::Visit => "visit",
        }
    }
}

/// Which records to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    /// Timespan overlapping `[start, end)` (UTC).
    Overlaps(TimeRange),
    /// `day_obs` in `first..=last`.
    DayObs(i32, i32),
}

/// One row as read, before validation.
#[derive(Debug, QueryableByName)]
pub(crate) struct Row {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) day_obs: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) seq_num: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) begin_ns: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) end_ns: Option<i64>,
    #[diesel(sql_type = Text)]
    pub(crate) physical_filter: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) observation_type: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    pub(crate) exposure_time: Option<f64>,
}

/// An open registry connection.
pub(crate) enum Connection {
    Postgres {
        conn: Box<AsyncPgConnection>,
        namespace: Option<String>,
    },
    Sqlite(Box<AsyncSqliteConnection>),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connection::Postgres { namespace, .. } => f
                .debug_struct("Postgres")
                .field("namespace", namespace)
                .finish_non_exhaustive(),
            Connection::Sqlite(_) => f.write_str("Sqlite"),
        }
    }
}

/// A double-quoted SQL identifier (the namespace comes from a config file).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn select_list(element: Element, ts_begin: &str, ts_end: &str) -> String {
    let timespan = format!("{ts_begin} AS begin_ns, {ts_end} AS end_ns");
    let observation_type = match element {
        Element::Exposure => "e.observation_type",
        Element::Visit => "CAST(NULL AS TEXT)",
    };
    format!(
        "e.id AS id, e.day_obs AS day_obs, e.seq_num AS seq_num, {timespan}, \
         e.physical_filter AS physical_filter, {observation_type} AS observation_type, \
         e.exposure_time AS exposure_time"
    )
}

fn tai_bounds(range: TimeRange) -> (i64, i64) {
    (range.start().to_tai().0, range.end().to_tai().0)
}

impl Connection {
    /// The query text for this backend. Binds, in order: instrument name, then the two bounds
    /// (TAI ns for overlaps, day_obs for ranges).
    fn sql(&self, element: Element, filter: Filter) -> String {
        let table = element.as_str();
        let (from, ts_begin, ts_end, p) = match self {
            Connection::Postgres { namespace, .. } => (
                match namespace {
                    Some(ns) => format!("{}.{table}", quote_ident(ns)),
                    None => table.to_owned(),
                },
                "lower(e.timespan)",
                "upper(e.timespan)",
                ["$1", "$2", "$3"],
            ),
            Connection::Sqlite(_) => (
                table.to_owned(),
                "e.timespan_begin",
                "e.timespan_end",
                ["?", "?", "?"],
            ),
        };
        let select = select_list(element, ts_begin, ts_end);
        let [instrument, a, b] = p;
        match (filter, self) {
            (Filter::Overlaps(_), Connection::Postgres { .. }) => format!(
                "SELECT {select} FROM {from} e WHERE e.instrument = {instrument} \
                 AND e.timespan && int8range({a}, {b}, '[)') ORDER BY coalesce({ts_begin}, 0), e.id"
            ),
            (Filter::Overlaps(_), Connection::Sqlite(_)) => format!(
                "SELECT {select} FROM {from} e WHERE e.instrument = {instrument} \
                 AND e.timespan_end > {a} AND {b} > e.timespan_begin ORDER BY coalesce({ts_begin}, 0), e.id"
            ),
            (Filter::DayObs(..), _) => format!(
                "SELECT {select} FROM {from} e WHERE e.instrument = {instrument} \
                 AND e.day_obs BETWEEN {a} AND {b} ORDER BY e.day_obs, e.seq_num, e.id"
            ),
        }
    }

    pub(crate) async fn query(
        &mut self,
        shown: &str,
        element: Element,
        instrument: Instrument,
        filter: Filter,
    ) -> Result<Vec<Row>, ButlerError> {
        let (a, b) = match filter {
            Filter::Overlaps(range) => tai_bounds(range),
            Filter::DayObs(first, last) => (i64::from(first), i64::from(last)),
        };
        let query = diesel::sql_query(self.sql(element, filter))
            .bind::<Text, _>(instrument.butler_name())
            .bind::<BigInt, _>(a)
            .bind::<BigInt, _>(b);
        let result = match self {
            Connection::Postgres { conn, .. } => query.load::<Row>(conn.as_mut()).await,
            Connection::Sqlite(conn) => query.load::<Row>(conn.as_mut()).await,
        };
        result.map_err(|e| ButlerError::Query {
            registry: shown.to_owned(),
            transient: matches!(
                e,
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ClosedConnection
                        | diesel::result::DatabaseErrorKind::SerializationFailure,
                    _
                ) | diesel::result::Error::BrokenTransactionManager
            ),
            message: e.to_string(),
        })
    }
}

/// Half-open TAI bounds of a row, when it has a bounded timespan.
pub(crate) fn row_timespan(row: &Row) -> Option<(TaiNanos, TaiNanos)> {
    match (row.begin_ns, row.end_ns) {
        (Some(b), Some(e)) => Some((TaiNanos(b), TaiNanos(e))),
        _ => None,
    }
}
