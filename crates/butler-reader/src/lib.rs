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
//! - [`ButlerError`] tells transient failures from permanent ones, and never holds a secret.

mod butler_yaml;
mod error;
mod location;
mod registry;
mod s3;

use db_connect::{DbAuth, DbUrl, connect_postgres, connect_sqlite, resolve_postgres};
use transform_core::{Instrument, TaiNanos, TimeRange};

pub use error::ButlerError;
pub use registry::Element;
pub use s3::S3Error;

use crate::registry::{Connection, Filter, row_timespan};

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
    /// Usable records, in timespan order (overlap queries) or (day_obs, seq_num) order.
    pub records: Vec<DimensionRecord>,
    /// Records without a (bounded) timespan.
    pub skipped_no_timespan: usize,
    /// Records whose timespan ends before it begins.
    pub skipped_bad_timespan: usize,
    /// Records without a `seq_num` (ConsDB rows are keyed by it).
    pub skipped_no_seq_num: usize,
}

impl RecordSet {
    /// All skipped records.
    pub fn skipped(&self) -> usize {
        self.skipped_no_timespan + self.skipped_bad_timespan + self.skipped_no_seq_num
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
        for row in rows {
            let Some((begin_tai, end_tai)) = row_timespan(&row) else {
                set.skipped_no_timespan += 1;
                continue;
            };
            let Some(timespan) = TimeRange::new(begin_tai.to_utc(), end_tai.to_utc()) else {
                set.skipped_bad_timespan += 1;
                continue;
            };
            let (Some(seq_num), Ok(day_obs)) = (
                row.seq_num.and_then(|s| i32::try_from(s).ok()),
                i32::try_from(row.day_obs),
            ) else {
                set.skipped_no_seq_num += 1;
                continue;
            };
            set.records.push(DimensionRecord {
                id: row.id,
                day_obs,
                seq_num,
                begin_tai,
                end_tai,
                timespan,
                physical_filter: row.physical_filter,
                observation_type: row.observation_type,
                exposure_time: row.exposure_time,
            });
        }
        if set.skipped() > 0 {
            tracing::info!(
                message = "Butler records skipped.",
                event = "butler_records_skipped",
                element = element.as_str(),
                instrument = %instrument,
                no_timespan = set.skipped_no_timespan,
                bad_timespan = set.skipped_bad_timespan,
                no_seq_num = set.skipped_no_seq_num
            );
        }
        Ok(set)
    }
}
