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
use transform_core::time::round_to_micros;

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's timestamp epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

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
        let (date, micros) = (
            self.0.div_euclid(MICROS_PER_DAY),
            self.0.rem_euclid(MICROS_PER_DAY),
        );
        let (y, m, d) = civil_from_days(date);
        let secs = micros / MICROS_PER_SECOND;
        format!(
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            micros % MICROS_PER_SECOND
        )
    }

    /// Parses `YYYY-MM-DD[( |T)HH:MM[:SS[.f{1,9}]]][Z|+00:00]`; fractions beyond microseconds are
    /// truncated. Any other zone offset is refused, since the column is naive UTC.
    pub(crate) fn parse(text: &str) -> Option<DbTime> {
        let text = text.trim();
        let text = text
            .strip_suffix('Z')
            .or_else(|| text.strip_suffix("+00:00"))
            .unwrap_or(text);
        let (date, time) = match text.find([' ', 'T']) {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        let mut parts = date.split('-');
        let y = digits(parts.next()?, 4)?;
        let m = digits(parts.next()?, 2)?;
        let d = digits(parts.next()?, 2)?;
        if parts.next().is_some() || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
            return None;
        }
        let mut micros = 0;
        if let Some(time) = time {
            let (hms, frac) = match time.split_once('.') {
                Some((hms, frac)) => (hms, Some(frac)),
                None => (time, None),
            };
            let mut fields = hms.split(':');
            let h = digits(fields.next()?, 2)?;
            let min = digits(fields.next()?, 2)?;
            let s = fields.next().map_or(Some(0), |s| digits(s, 2))?;
            if fields.next().is_some() || h > 23 || min > 59 || s > 60 {
                return None;
            }
            micros = ((h * 60 + min) * 60 + s) * MICROS_PER_SECOND;
            if let Some(frac) = frac {
                if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let six: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
                micros += six.parse::<i64>().ok()?;
            }
        }
        Some(DbTime(days_from_civil(y, m, d) * MICROS_PER_DAY + micros))
    }
}

/// Exactly `len` ASCII digits.
fn digits(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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
    fn civil_dates_round_trip() {
        for days in [-719_468, -1, 0, 1, 10_957, 19_723, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(
            days_from_civil(2000, 1, 1) * MICROS_PER_DAY,
            PG_EPOCH_MICROS
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
