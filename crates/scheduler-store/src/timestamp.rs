//! Naive UTC timestamps as the task tables store them, with no date-time crate.
//!
//! [`DbTime`] is microseconds since 1970-01-01T00:00:00 UTC, mapped onto the SQL `TIMESTAMP`
//! (without time zone) type:
//!
//! - PostgreSQL sends `timestamp` in binary as microseconds since 2000-01-01, so the value crosses
//!   the wire unchanged, whatever the session's or the server's `TimeZone`;
//! - SQLite has no date type: the value is the text SQLAlchemy writes for a `DateTime` column,
//!   `YYYY-MM-DD HH:MM:SS.ffffff` (fixed width, so text order is time order).
//!
//! The civil-date conversions are Howard Hinnant's `days_from_civil` / `civil_from_days`.

use std::io::Write as _;

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Text, Timestamp};
use diesel::sqlite::Sqlite;
use transform_core::UtcNanos;
use transform_core::time::{self, round_to_micros};

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's timestamp epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A naive UTC timestamp in whole microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct DbTime(pub(crate) i64);

impl DbTime {
    /// The instant rounded to the nearest microsecond (ties away from zero), as astropy's
    /// `Time.to_datetime` rounds the reference's task bounds.
    pub(crate) fn rounded(t: UtcNanos) -> DbTime {
        DbTime(round_to_micros(t.0).div_euclid(1_000))
    }

    /// The instant truncated to the microsecond (towards the past), for clock readings.
    pub(crate) fn floor(t: UtcNanos) -> DbTime {
        DbTime(t.0.div_euclid(1_000))
    }

    /// The same instant in nanoseconds.
    pub(crate) fn nanos(self) -> UtcNanos {
        UtcNanos(self.0.saturating_mul(1_000))
    }

    /// SQLAlchemy's SQLite text: `YYYY-MM-DD HH:MM:SS.ffffff`.
    pub(crate) fn to_sqlite_text(self) -> String {
        time::format_timestamp_micros(self.nanos())
    }

    /// Parses `YYYY-MM-DD[( |T)HH:MM[:SS[.f{1,9}]]][Z|+00:00]`; fractions beyond microseconds are
    /// truncated. Any other zone offset is refused, since the column is naive UTC.
    pub(crate) fn parse(text: &str) -> Option<DbTime> {
        time::parse_timestamp(text).map(DbTime::floor)
    }
}

/// An instant as ISO 8601 UTC with microseconds, `2024-01-01T00:00:00.000000Z`, for messages.
pub fn format_utc(t: UtcNanos) -> String {
    let mut text = DbTime::floor(t).to_sqlite_text();
    text.replace_range(10..11, "T");
    text.push('Z');
    text
}

impl ToSql<Timestamp, Pg> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        let raw = self
            .0
            .checked_sub(PG_EPOCH_MICROS)
            .ok_or("timestamp out of PostgreSQL's range")?;
        out.write_all(&raw.to_be_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<Timestamp, Pg> for DbTime {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<DbTime> {
        let bytes: [u8; 8] = value
            .as_bytes()
            .try_into()
            .map_err(|_| "a PostgreSQL timestamp is 8 bytes")?;
        let raw = i64::from_be_bytes(bytes);
        if raw == i64::MAX || raw == i64::MIN {
            return Err("infinite timestamps are not task times".into());
        }
        Ok(DbTime(
            raw.checked_add(PG_EPOCH_MICROS)
                .ok_or("timestamp out of range")?,
        ))
    }
}

impl ToSql<Timestamp, Sqlite> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.to_sqlite_text());
        Ok(IsNull::No)
    }
}

impl FromSql<Timestamp, Sqlite> for DbTime {
    fn from_sql(
        value: <Sqlite as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<DbTime> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        DbTime::parse(&text).ok_or_else(|| format!("`{text}` is not a timestamp").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_epoch_is_2000_01_01() {
        assert_eq!(
            DbTime::parse("2000-01-01").map(|t| t.0),
            Some(PG_EPOCH_MICROS)
        );
    }

    #[test]
    fn sqlite_text_is_sqlalchemy_s_and_parses_back() {
        // 2024-02-29T23:59:59.123456Z
        let t = DbTime(1_709_251_199_123_456);
        assert_eq!(t.to_sqlite_text(), "2024-02-29 23:59:59.123456");
        assert_eq!(DbTime::parse("2024-02-29 23:59:59.123456"), Some(t));
        assert_eq!(DbTime::parse("2024-02-29T23:59:59.123456789Z"), Some(t));
        assert_eq!(
            DbTime::parse("2024-02-29 23:59:59.12"),
            Some(DbTime(1_709_251_199_120_000))
        );
        assert_eq!(
            DbTime::parse("2024-02-29 23:59"),
            Some(DbTime(1_709_251_140_000_000))
        );
        assert_eq!(DbTime::parse("1970-01-01"), Some(DbTime(0)));
        assert_eq!(DbTime(-1).to_sqlite_text(), "1969-12-31 23:59:59.999999");
        for bad in [
            "2023-02-29 00:00:00",
            "2024-13-01",
            "2024-01-01 24:00:00",
            "2024-01-01 00:00:00+01:00",
            "2024-1-01",
            "1700000000",
            "",
        ] {
            assert_eq!(DbTime::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn rounding_and_formatting() {
        assert_eq!(DbTime::rounded(UtcNanos(1_500)), DbTime(2));
        assert_eq!(DbTime::rounded(UtcNanos(1_499)), DbTime(1));
        assert_eq!(DbTime::floor(UtcNanos(1_999)), DbTime(1));
        assert_eq!(DbTime::floor(UtcNanos(-1)), DbTime(-1));
        assert_eq!(DbTime(7).nanos(), UtcNanos(7_000));
        assert_eq!(
            format_utc(UtcNanos(1_704_067_200_000_001_000)),
            "2024-01-01T00:00:00.000001Z"
        );
    }
}
