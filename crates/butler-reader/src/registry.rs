//! Queries of the registry's `exposure` and `visit` tables, read-only, on PostgreSQL or SQLite.
//!
//! The only place that knows the registry schema (daf_butler dimension universe v8, DDL in
//! `shared/reference/butler-registry/`). Timespans are TAI nanoseconds, half-open `[begin, end)`:
//! one `int8range` column on PostgreSQL, `timespan_begin`/`timespan_end` on SQLite. The overlap
//! test is daf_butler's (`timespan && '[start,end)'`; SQLite `end > start AND stop > begin`), with
//! no cap on the number of records.
//!
//! PostgreSQL ranges are read in SQLite's (daf_butler's "compound") form, so one check serves both:
//! an empty range as begin [`MAX_NSEC`], end [`MIN_NSEC`]; an unbounded side as that limit. The
//! check ([`row_timespan`]) tells usable timespans from NULL, empty, reversed and open-ended ones.

use db_connect::AsyncSqliteConnection;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use transform_core::{Instrument, TaiNanos, TimeRange};

use crate::error::ButlerError;

/// daf_butler's earliest timespan bound (`TimeConverter().min_nsec`: 1970-01-01 TAI), which
/// stands for "no lower bound".
pub(crate) const MIN_NSEC: i64 = 0;
/// daf_butler's latest timespan bound (`TimeConverter().max_nsec`: 2100-01-01 TAI), which stands
/// for "no upper bound".
pub(crate) const MAX_NSEC: i64 = 4_102_444_800_000_000_000;

/// Why a record read cannot be used (see [`crate::SkipCounts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    NullTimespan,
    EmptyTimespan,
    ReversedTimespan,
    UnboundedTimespan,
    NoSeqNum,
    DuplicateId,
}

impl Skip {
    /// Adds one to this reason's count.
    pub(crate) fn count(self, counts: &mut crate::SkipCounts) {
        let n = match self {
            Skip::NullTimespan => &mut counts.null_timespan,
            Skip::EmptyTimespan => &mut counts.empty_timespan,
            Skip::ReversedTimespan => &mut counts.reversed_timespan,
            Skip::UnboundedTimespan => &mut counts.unbounded_timespan,
            Skip::NoSeqNum => &mut counts.no_seq_num,
            Skip::DuplicateId => &mut counts.duplicate_id,
        };
        *n += 1;
    }
}

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

impl Filter {
    /// The query's name in logs.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Filter::Overlaps(_) => "overlap",
            Filter::DayObs(..) => "day_obs",
        }
    }
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

fn select_list(element: Element, begin: &str, end: &str) -> String {
    let timespan = format!("{begin} AS begin_ns, {end} AS end_ns");
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
    /// (TAI ns for overlaps, day_obs for ranges). Rows sharing an id (which only a registry
    /// altered by hand holds) come earliest begin first, so the one kept is always the same.
    fn sql(&self, element: Element, filter: Filter) -> String {
        let table = element.as_str();
        // `ts_begin` orders the rows; `begin` and `end` are the bounds as SQLite stores them (see
        // the module docs; NULL stays NULL).
        let (from, ts_begin, begin, end, p) = match self {
            Connection::Postgres { namespace, .. } => (
                match namespace {
                    Some(ns) => format!("{}.{table}", quote_ident(ns)),
                    None => table.to_owned(),
                },
                "lower(e.timespan)",
                format!(
                    "CASE WHEN isempty(e.timespan) THEN {MAX_NSEC} \
                     WHEN lower_inf(e.timespan) THEN {MIN_NSEC} ELSE lower(e.timespan) END"
                ),
                format!(
                    "CASE WHEN isempty(e.timespan) THEN {MIN_NSEC} \
                     WHEN upper_inf(e.timespan) THEN {MAX_NSEC} ELSE upper(e.timespan) END"
                ),
                ["$1", "$2", "$3"],
            ),
            Connection::Sqlite(_) => (
                table.to_owned(),
                "e.timespan_begin",
                "e.timespan_begin".to_owned(),
                "e.timespan_end".to_owned(),
                ["?", "?", "?"],
            ),
        };
        let select = select_list(element, &begin, &end);
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
                 AND e.day_obs BETWEEN {a} AND {b} \
                 ORDER BY e.day_obs, e.seq_num, e.id, coalesce({ts_begin}, 0)"
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

/// Half-open TAI bounds of a row, when they make a usable timespan: both set, begin before end,
/// and both strictly inside daf_butler's limits (which stand for "unbounded").
pub(crate) fn row_timespan(row: &Row) -> Result<(TaiNanos, TaiNanos), Skip> {
    let (Some(begin), Some(end)) = (row.begin_ns, row.end_ns) else {
        return Err(Skip::NullTimespan);
    };
    if begin == end || (begin, end) == (MAX_NSEC, MIN_NSEC) {
        Err(Skip::EmptyTimespan)
    } else if end < begin {
        Err(Skip::ReversedTimespan)
    } else if begin <= MIN_NSEC || end >= MAX_NSEC {
        Err(Skip::UnboundedTimespan)
    } else {
        Ok((TaiNanos(begin), TaiNanos(end)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(begin: Option<i64>, end: Option<i64>) -> Row {
        Row {
            id: 1,
            day_obs: 20_251_001,
            seq_num: Some(1),
            begin_ns: begin,
            end_ns: end,
            physical_filter: "r".to_owned(),
            observation_type: None,
            exposure_time: None,
        }
    }

    #[test]
    fn timespans_are_classified_as_daf_butler_stores_them() {
        let t = 1_759_374_037_000_000_000; // 2025-10-02T03:00:00 UTC, in TAI
        let cases = [
            (Some(t), Some(t + 30), Ok((TaiNanos(t), TaiNanos(t + 30)))),
            // daf_butler pads an instantaneous timespan to 1 ns: usable.
            (Some(t), Some(t + 1), Ok((TaiNanos(t), TaiNanos(t + 1)))),
            (None, None, Err(Skip::NullTimespan)),
            (Some(t), None, Err(Skip::NullTimespan)),
            (None, Some(t), Err(Skip::NullTimespan)),
            (Some(t), Some(t), Err(Skip::EmptyTimespan)),
            (Some(MAX_NSEC), Some(MIN_NSEC), Err(Skip::EmptyTimespan)),
            (Some(t + 30), Some(t), Err(Skip::ReversedTimespan)),
            (Some(MIN_NSEC), Some(t), Err(Skip::UnboundedTimespan)),
            (Some(t), Some(MAX_NSEC), Err(Skip::UnboundedTimespan)),
            (Some(i64::MIN), Some(i64::MAX), Err(Skip::UnboundedTimespan)),
            (Some(-5), Some(t), Err(Skip::UnboundedTimespan)),
        ];
        for (begin, end, want) in cases {
            assert_eq!(row_timespan(&row(begin, end)), want, "{begin:?}..{end:?}");
        }
    }
}
