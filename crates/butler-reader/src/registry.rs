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

fn select_list(element: Element, range_column: bool) -> String {
    let timespan = if range_column {
        "lower(e.timespan) AS begin_ns, upper(e.timespan) AS end_ns"
    } else {
        "e.timespan_begin AS begin_ns, e.timespan_end AS end_ns"
    };
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
    pub(crate) async fn query(
        &mut self,
        shown: &str,
        element: Element,
        instrument: Instrument,
        filter: Filter,
    ) -> Result<Vec<Row>, ButlerError> {
        let table = element.as_str();
        let result = match self {
            Connection::Postgres { conn, namespace } => {
                let qualified = match namespace {
                    Some(ns) => format!("{}.{table}", quote_ident(ns)),
                    None => table.to_owned(),
                };
                let select = select_list(element, true);
                match filter {
                    Filter::Overlaps(range) => {
                        let (start, end) = tai_bounds(range);
                        let sql = format!(
                            "SELECT {select} FROM {qualified} e WHERE e.instrument = $1 \
                             AND e.timespan && int8range($2, $3, '[)') \
                             ORDER BY coalesce(lower(e.timespan), 0), e.id"
                        );
                        diesel::sql_query(sql)
                            .bind::<Text, _>(instrument.butler_name())
                            .bind::<BigInt, _>(start)
                            .bind::<BigInt, _>(end)
                            .load::<Row>(conn.as_mut())
                            .await
                    }
                    Filter::DayObs(first, last) => {
                        let sql = format!(
                            "SELECT {select} FROM {qualified} e WHERE e.instrument = $1 \
                             AND e.day_obs BETWEEN $2 AND $3 ORDER BY e.day_obs, e.seq_num, e.id"
                        );
                        diesel::sql_query(sql)
                            .bind::<Text, _>(instrument.butler_name())
                            .bind::<BigInt, _>(i64::from(first))
                            .bind::<BigInt, _>(i64::from(last))
                            .load::<Row>(conn.as_mut())
                            .await
                    }
                }
            }
            Connection::Sqlite(conn) => {
                let select = select_list(element, false);
                match filter {
                    Filter::Overlaps(range) => {
                        let (start, end) = tai_bounds(range);
                        let sql = format!(
                            "SELECT {select} FROM {table} e WHERE e.instrument = ? \
                             AND e.timespan_end > ? AND ? > e.timespan_begin \
                             ORDER BY coalesce(e.timespan_begin, 0), e.id"
                        );
                        diesel::sql_query(sql)
                            .bind::<Text, _>(instrument.butler_name())
                            .bind::<BigInt, _>(start)
                            .bind::<BigInt, _>(end)
                            .load::<Row>(conn.as_mut())
                            .await
                    }
                    Filter::DayObs(first, last) => {
                        let sql = format!(
                            "SELECT {select} FROM {table} e WHERE e.instrument = ? \
                             AND e.day_obs BETWEEN ? AND ? ORDER BY e.day_obs, e.seq_num, e.id"
                        );
                        diesel::sql_query(sql)
                            .bind::<Text, _>(instrument.butler_name())
                            .bind::<BigInt, _>(i64::from(first))
                            .bind::<BigInt, _>(i64::from(last))
                            .load::<Row>(conn.as_mut())
                            .await
                    }
                }
            }
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
