//! Reads exposure and visit records, with their timespans, from a data Butler registry, without
//! Python.
//!
//! The principal types and how they connect:
//!
//! - [`ButlerReader::open`] takes what `Butler(repo)` takes in production (a directory, a config
//!   path or `file://` URL, `s3://[PROFILE@]bucket/key/butler.yaml`, or a label of the index named
//!   by `DAF_BUTLER_REPOSITORY_INDEX`), reads `butler.yaml` (`location.rs`, `s3.rs`,
//!   `butler_yaml.rs`), resolves the registry database and its password as daf_butler does (via
//!   `db-connect`: the URL, `db-auth.yaml`, libpq variables) and connects read-only.
//! - Its queries return [`RecordSet`]s of [`DimensionRecord`]s: exposures or visits of an
//!   [`Instrument`] overlapping a time range, or within a `day_obs` range (`registry.rs`, the only
//!   code that knows the registry schema).
//! - Timespans are stored as TAI nanoseconds and converted to UTC here.
//! - Records that cannot be used (NULL, empty, reversed or open-ended timespans, no `seq_num`, an id
//!   already returned) are left out and counted per reason in [`SkipCounts`], and logged as
//!   `event=butler_records_skipped`: a registry oddity never fails a query.
//! - [`ButlerError`] tells transient failures from permanent ones, and never holds a secret.

mod butler_yaml;
mod error;
mod location;
mod registry;
mod s3;

use std::collections::HashSet;

use db_connect::{DbAuth, DbUrl, connect_postgres, connect_sqlite, resolve_postgres};
use transform_core::{Instrument, TaiNanos, TimeRange};

pub use error::ButlerError;
pub use registry::Element;
pub use s3::S3Error;

use crate::registry::{Connection, Filter, Row, Skip, row_timespan};

/// Skipped ids named in `event=butler_records_skipped`, at most.
const SHOWN_IDS: usize = 10;

/// Where environment variables come from (tests pass their own).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// An exposure or visit record.
#[derive(Debug, Clone, PartialEq)]
pub struct DimensionRecord {
    /// `exposure.id` or `visit.id`.
    pub id: i64,
    /// Observing day, `YYYYMMDD`.
    pub day_obs: i32,
    /// Sequence number within the day.
    pub seq_num: i32,
    /// Timespan begin, TAI as stored.
    pub begin_tai: TaiNanos,
    /// Timespan end (exclusive), TAI as stored.
    pub end_tai: TaiNanos,
    /// The timespan in UTC, `[begin, end]`.
    pub timespan: TimeRange,
    /// Physical filter.
    pub physical_filter: String,
    /// Observation type (exposures only).
    pub observation_type: Option<String>,
    /// Exposure time in seconds.
    pub exposure_time: Option<f64>,
}

/// Records of one query, and how many were skipped because they cannot be used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordSet {
    /// Usable records, in timespan order (overlap queries) or (day_obs, seq_num) order; no two
    /// with the same id.
    pub records: Vec<DimensionRecord>,
    /// The records the query returned but [`RecordSet::records`] leaves out, per reason.
    pub skips: SkipCounts,
}

impl RecordSet {
    /// All skipped records.
    pub fn skipped(&self) -> usize {
        self.skips.total()
    }
}

/// Records a query returned that cannot be used, counted per reason (each record under the first
/// reason that applies, in field order). None of them reaches ConsDB or fails a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkipCounts {
    /// A NULL timespan (daf_butler's "no timespan"), or one bound NULL (a corrupted record to
    /// daf_butler).
    pub null_timespan: usize,
    /// A zero-length timespan (begin equal to end), or daf_butler's empty timespan (an empty
    /// `int8range` on PostgreSQL; begin at its maximum and end at its minimum on SQLite).
    pub empty_timespan: usize,
    /// A timespan that ends before it begins.
    pub reversed_timespan: usize,
    /// An open-ended timespan (a bound at daf_butler's minimum, 1970 TAI, or maximum, 2100 TAI:
    /// `Timespan(None, end)`, `Timespan(begin, None)`), or one beyond those limits.
    pub unbounded_timespan: usize,
    /// No `seq_num`, or a `seq_num` or `day_obs` outside `i32` (ConsDB rows are keyed by them).
    pub no_seq_num: usize,
    /// A second record with an id the same query already returned (only the first is kept).
    pub duplicate_id: usize,
}

impl SkipCounts {
    /// All skipped records.
    pub fn total(&self) -> usize {
        self.null_timespan
            + self.empty_timespan
            + self.reversed_timespan
            + self.unbounded_timespan
            + self.no_seq_num
            + self.duplicate_id
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &SkipCounts) {
        self.null_timespan += other.null_timespan;
        self.empty_timespan += other.empty_timespan;
        self.reversed_timespan += other.reversed_timespan;
        self.unbounded_timespan += other.unbounded_timespan;
        self.no_seq_num += other.no_seq_num;
        self.duplicate_id += other.duplicate_id;
    }
}

/// A connection to one Butler repository's registry, read-only.
#[derive(Debug)]
pub struct ButlerReader {
    connection: Connection,
    shown: String,
}

impl ButlerReader {
    /// Opens the registry of `repo`; `env` is where environment variables come from.
    pub async fn open(repo: &str, env: Env<'_>) -> Result<ButlerReader, ButlerError> {
        let config = location::resolve(repo, env).await?;
        let bytes = config.read(env).await?;
        let text = String::from_utf8(bytes).map_err(|_| ButlerError::Config {
            path: config.shown(),
            message: "not UTF-8".to_owned(),
        })?;
        let section = butler_yaml::parse(&text, &config.shown(), &config.directory(), env)?;
        let url = DbUrl::parse(&section.db).map_err(|e| ButlerError::Config {
            path: config.shown(),
            message: format!("registry.db: {e}"),
        })?;
        match url {
            DbUrl::Sqlite(path) => {
                let Some(path) = path.filter(|p| !p.to_string_lossy().contains("://")) else {
                    return Err(ButlerError::Config {
                        path: config.shown(),
                        message: "registry.db is not a local SQLite file".to_owned(),
                    });
                };
                let shown = format!("sqlite:///{}", path.display());
                let conn = connect_sqlite(Some(&path), true)?;
                Ok(ButlerReader {
                    connection: Connection::Sqlite(Box::new(conn)),
                    shown,
                })
            }
            DbUrl::Postgres(mut target) => {
                for (key, value) in &section.extras {
                    match key.as_str() {
                        "username" if target.user.is_none() => target.user = Some(value.clone()),
                        "password" if target.password.is_none() => {
                            target.password = Some(transform_core::Secret::new(value.clone()));
                        }
                        "host" if target.host.is_none() => target.host = Some(value.clone()),
                        "port" if target.port.is_none() => target.port = value.parse().ok(),
                        "database" if target.database.is_none() => {
                            target.database = Some(value.clone());
                        }
                        _ => {}
                    }
                }
                let auth = DbAuth::load(env)?;
                let target = resolve_postgres(target, env, auth.as_ref(), true)?;
                let shown = target.redacted();
                let conn = connect_postgres(&target, true).await?;
                tracing::debug!(message = "Butler registry connected.", event = "butler_registry_connected", registry = %shown, namespace = ?section.namespace);
                Ok(ButlerReader {
                    connection: Connection::Postgres {
                        conn: Box::new(conn),
                        namespace: section.namespace,
                    },
                    shown,
                })
            }
        }
    }

    /// The registry database, without credentials.
    pub fn describe(&self) -> &str {
        &self.shown
    }

    /// Records of `element` for `instrument` whose timespan overlaps `[range.start, range.end)`, in
    /// timespan order, all of them (no cap).
    pub async fn overlapping(
        &mut self,
        element: Element,
        instrument: Instrument,
        range: TimeRange,
    ) -> Result<RecordSet, ButlerError> {
        self.read(element, instrument, Filter::Overlaps(range))
            .await
    }

    /// Records of `element` for `instrument` with `first <= day_obs <= last`.
    pub async fn by_day_obs(
        &mut self,
        element: Element,
        instrument: Instrument,
        first: i32,
        last: i32,
    ) -> Result<RecordSet, ButlerError> {
        self.read(element, instrument, Filter::DayObs(first, last))
            .await
    }

    async fn read(
        &mut self,
        element: Element,
        instrument: Instrument,
        filter: Filter,
    ) -> Result<RecordSet, ButlerError> {
        let rows = self
            .connection
            .query(&self.shown, element, instrument, filter)
            .await?;
        let mut set = RecordSet::default();
        let mut ids = HashSet::with_capacity(rows.len());
        // The first few skipped ids, for the log line.
        let mut skipped_ids = Vec::new();
        for row in rows {
            let id = row.id;
            let skip = match usable(row) {
                Ok(record) if ids.insert(record.id) => {
                    set.records.push(record);
                    continue;
                }
                Ok(_) => Skip::DuplicateId,
                Err(skip) => skip,
            };
            skip.count(&mut set.skips);
            if skipped_ids.len() < SHOWN_IDS {
                skipped_ids.push(id);
            }
        }
        if set.skipped() > 0 {
            let s = &set.skips;
            tracing::warn!(
                message = "Butler records skipped.",
                event = "butler_records_skipped",
                element = element.as_str(),
                instrument = %instrument,
                query = filter.kind(),
                skipped = s.total(),
                null_timespan = s.null_timespan,
                empty_timespan = s.empty_timespan,
                reversed_timespan = s.reversed_timespan,
                unbounded_timespan = s.unbounded_timespan,
                no_seq_num = s.no_seq_num,
                duplicate_id = s.duplicate_id,
                ids = ?skipped_ids
            );
        }
        Ok(set)
    }
}

/// The record of `row`, or why it cannot be used.
fn usable(row: Row) -> Result<DimensionRecord, Skip> {
    let (begin_tai, end_tai) = row_timespan(&row)?;
    // Bounds checked by `row_timespan`: the conversions cannot overflow, and begin < end.
    let timespan =
        TimeRange::new(begin_tai.to_utc(), end_tai.to_utc()).ok_or(Skip::ReversedTimespan)?;
    let (Some(seq_num), Ok(day_obs)) = (
        row.seq_num.and_then(|s| i32::try_from(s).ok()),
        i32::try_from(row.day_obs),
    ) else {
        return Err(Skip::NoSeqNum);
    };
    Ok(DimensionRecord {
        id: row.id,
        day_obs,
        seq_num,
        begin_tai,
        end_tai,
        timespan,
        physical_filter: row.physical_filter,
        observation_type: row.observation_type,
        exposure_time: row.exposure_time,
    })
}
