//! Time inside the pipeline: `i64` nanoseconds since the Unix epoch, UTC or TAI.
//!
//! Everything downstream of the two edges that store TAI (Butler timespans, packed `cRIO_timestamp`)
//! works in [`UtcNanos`]. [`TaiNanos`] exists so those edges cannot forget the conversion: the only way
//! between the two is the leap-second table here ([`TaiNanos::to_utc`], [`UtcNanos::to_tai`]).
//!
//! "Unix TAI" follows astropy's `unix_tai`: seconds since 1970-01-01T00:00:00 UTC counted on the TAI
//! scale, so that `unix_tai - unix = TAI - UTC` (37 s since 2017-01-01). Before 1972, when UTC had
//! fractional rates, the 1972 offset of 10 s is used; no EFD data predates 2019.

use std::fmt;

/// Nanoseconds in one second.
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
/// Nanoseconds in one hour.
pub const NANOS_PER_HOUR: i64 = 3_600 * NANOS_PER_SECOND;

/// An instant on the UTC scale, in nanoseconds since 1970-01-01T00:00:00Z (leap seconds not counted).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UtcNanos(pub i64);

/// An instant on the TAI scale, in nanoseconds of astropy's `unix_tai`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TaiNanos(pub i64);

/// An inclusive UTC interval `[start, end]` with `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeRange {
    start: UtcNanos,
    end: UtcNanos,
}

impl TimeRange {
    /// The interval `[start, end]`; `None` when `end` is before `start`.
    pub fn new(start: UtcNanos, end: UtcNanos) -> Option<TimeRange> {
        (start <= end).then_some(TimeRange { start, end })
    }

    /// First instant.
    pub fn start(&self) -> UtcNanos {
        self.start
    }

    /// Last instant (inclusive).
    pub fn end(&self) -> UtcNanos {
        self.end
    }

    /// The smallest interval holding both.
    pub fn union(&self, other: &TimeRange) -> TimeRange {
        TimeRange {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// This interval with its start moved by `nanos` (negative looks back), never past its end.
    pub fn with_start_offset(&self, nanos: i64) -> TimeRange {
        let start = self.start.offset(nanos);
        TimeRange {
            start: start.min(self.end),
            end: self.end,
        }
    }
}

/// UTC instants (Unix seconds) at which TAI − UTC changed, with the new value in seconds.
/// Source: IERS Bulletin C (the table in astropy/ERFA `dat.c`); valid until the next announced leap.
const LEAP_SECONDS: [(i64, i64); 28] = [
    (63_072_000, 10),    // 1972-01-01
    (78_796_800, 11),    // 1972-07-01
    (94_694_400, 12),    // 1973-01-01
    (126_230_400, 13),   // 1974-01-01
    (157_766_400, 14),   // 1975-01-01
    (189_302_400, 15),   // 1976-01-01
    (220_924_800, 16),   // 1977-01-01
    (252_460_800, 17),   // 1978-01-01
    (283_996_800, 18),   // 1979-01-01
    (315_532_800, 19),   // 1980-01-01
    (362_793_600, 20),   // 1981-07-01
    (394_329_600, 21),   // 1982-07-01
    (425_865_600, 22),   // 1983-07-01
    (489_024_000, 23),   // 1985-07-01
    (567_993_600, 24),   // 1988-01-01
    (631_152_000, 25),   // 1990-01-01
    (662_688_000, 26),   // 1991-01-01
    (709_948_800, 27),   // 1992-07-01
    (741_484_800, 28),   // 1993-07-01
    (773_020_800, 29),   // 1994-07-01
    (820_454_400, 30),   // 1996-01-01
    (867_715_200, 31),   // 1997-07-01
    (915_148_800, 32),   // 1999-01-01
    (1_136_073_600, 33), // 2006-01-01
    (1_230_768_000, 34), // 2009-01-01
    (1_341_100_800, 35), // 2012-07-01
    (1_435_708_800, 36), // 2015-07-01
    (1_483_228_800, 37), // 2017-01-01
];

/// TAI − UTC in seconds at a UTC instant.
pub fn tai_minus_utc_seconds(utc: UtcNanos) -> i64 {
    let secs = utc.0.div_euclid(NANOS_PER_SECOND);
    let idx = LEAP_SECONDS.partition_point(|&(start, _)| start <= secs);
    if idx == 0 {
        LEAP_SECONDS[0].1
    } else {
        LEAP_SECONDS[idx - 1].1
    }
}

impl UtcNanos {
    /// Converts to astropy `unix_tai` nanoseconds.
    pub fn to_tai(self) -> TaiNanos {
        TaiNanos(self.0 + tai_minus_utc_seconds(self) * NANOS_PER_SECOND)
    }

    /// This instant moved by a signed number of nanoseconds, saturating at the ends of `i64`.
    pub fn offset(self, nanos: i64) -> UtcNanos {
        UtcNanos(self.0.saturating_add(nanos))
    }
}

impl TaiNanos {
    /// Converts to UTC. During an inserted leap second (23:59:60 UTC) the result repeats the last
    /// second of the day, as Unix time does.
    pub fn to_utc(self) -> UtcNanos {
        // On the TAI scale an entry takes effect one second before its UTC start plus its offset:
        // that second is the inserted 23:59:60, mapped by the new offset onto the repeated 23:59:59.
        let secs = self.0.div_euclid(NANOS_PER_SECOND);
        let idx = LEAP_SECONDS.partition_point(|&(start, dt)| start + dt - 1 <= secs);
        let dt = if idx == 0 {
            LEAP_SECONDS[0].1
        } else {
            LEAP_SECONDS[idx - 1].1
        };
        UtcNanos(self.0 - dt * NANOS_PER_SECOND)
    }
}

impl fmt::Debug for UtcNanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UtcNanos({})", self.0)
    }
}

impl fmt::Debug for TaiNanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaiNanos({})", self.0)
    }
}

/// Truncates nanoseconds to whole microseconds (towards −∞), as the reference's pandas round trip of
/// `/query` timestamps does (BEHAVIOUR.md §5.6). Used only in reference semantics.
pub fn truncate_to_micros(nanos: i64) -> i64 {
    nanos - nanos.rem_euclid(1_000)
}

/// Rounds nanoseconds to the nearest whole microsecond (ties away from zero), as astropy's
/// `Time.to_datetime` does for Butler timespans. Used only in reference semantics.
pub fn round_to_micros(nanos: i64) -> i64 {
    round_to_multiple(nanos, 1_000)
}

/// Rounds nanoseconds to the nearest whole millisecond (ties away from zero), as the reference does
/// for packed-series sample times (`Time.iso`, BEHAVIOUR.md §5.7). Used only in reference semantics.
pub fn round_to_millis(nanos: i64) -> i64 {
    round_to_multiple(nanos, 1_000_000)
}

fn round_to_multiple(nanos: i64, unit: i64) -> i64 {
    let rem = nanos.rem_euclid(unit);
    let floor = nanos - rem;
    if rem * 2 >= unit { floor + unit } else { floor }
}

/// Converts signed hours (a config `start_offset`) to nanoseconds, rounded to the nearest nanosecond.
pub fn hours_to_nanos(hours: f64) -> i64 {
    // Bounded by validation to ±1 week, far inside i64 and exact to well under a microsecond.
    #[allow(clippy::cast_possible_truncation)] // Validated range; see above.
    let nanos = (hours * NANOS_PER_HOUR as f64).round() as i64;
    nanos
}

/// Formats an instant as ISO 8601 UTC, `YYYY-MM-DDTHH:MM:SS.ffffff` (truncated to the microsecond),
/// as log lines show times.
pub fn format_isot(t: UtcNanos) -> String {
    format_timestamp_micros(t).replacen(' ', "T", 1)
}

/// Formats an instant as a naive UTC timestamp, `YYYY-MM-DD HH:MM:SS.ffffff` (truncated to the
/// microsecond), the text both PostgreSQL and SQLite (SQLAlchemy's layout) read as `TIMESTAMP`.
pub fn format_timestamp_micros(t: UtcNanos) -> String {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    let micros = t.0.div_euclid(1_000);
    let (day, in_day) = (
        micros.div_euclid(MICROS_PER_DAY),
        micros.rem_euclid(MICROS_PER_DAY),
    );
    let (y, m, d) = civil_from_days(day);
    let secs = in_day / 1_000_000;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        in_day % 1_000_000
    )
}

/// Parses `YYYY-MM-DD[( |T)HH:MM[:SS[.f{1,9}]]][Z|+00:00]` as UTC; a fraction beyond
/// microseconds is truncated. `None` for anything else, including other zone offsets.
pub fn parse_timestamp(text: &str) -> Option<UtcNanos> {
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
        micros = ((h * 60 + min) * 60 + s) * 1_000_000;
        if let Some(frac) = frac {
            if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let six: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
            micros += six.parse::<i64>().ok()?;
        }
    }
    let total = days_from_civil(y, m, d)
        .checked_mul(86_400_000_000)?
        .checked_add(micros)?;
    Some(UtcNanos(total.checked_mul(1_000)?))
}

/// The observing day (`YYYYMMDD`) of an instant: the UTC date of the instant 12 hours earlier, as
/// Rubin's day_obs rolls over at 12:00 UTC.
pub fn day_obs_of(t: UtcNanos) -> i32 {
    let days = (t.0 - 12 * NANOS_PER_HOUR).div_euclid(24 * NANOS_PER_HOUR);
    let (y, m, d) = civil_from_days(days);
    i32::try_from(y * 10_000 + m * 100 + d).unwrap_or(i32::MAX)
}

/// 00:00 UTC of the calendar date `day_obs` (`YYYYMMDD`); `None` when it is not a valid date.
pub fn date_start(day_obs: i32) -> Option<UtcNanos> {
    let (y, m, d) = (
        i64::from(day_obs / 10_000),
        i64::from(day_obs / 100 % 100),
        i64::from(day_obs % 100),
    );
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(UtcNanos(days_from_civil(y, m, d) * 24 * NANOS_PER_HOUR))
}

/// The day_obs `n` days after (negative: before) `day_obs`; `None` when it is not a valid date.
pub fn day_obs_add(day_obs: i32, n: i64) -> Option<i32> {
    let days = date_start(day_obs)?.0 / (24 * NANOS_PER_HOUR);
    let (y, m, d) = civil_from_days(days + n);
    i32::try_from(y * 10_000 + m * 100 + d).ok()
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

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
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

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NANOS_PER_SECOND;

    #[test]
    fn leap_second_offsets_match_iers() {
        // 2017-01-01T00:00:00Z onwards: 37 s.
        assert_eq!(tai_minus_utc_seconds(UtcNanos(1_483_228_800 * S)), 37);
        assert_eq!(tai_minus_utc_seconds(UtcNanos(1_760_000_000 * S)), 37);
        // 2016-07-01: 36 s; the last instant of 2016 still 36 s.
        assert_eq!(tai_minus_utc_seconds(UtcNanos(1_467_331_200 * S)), 36);
        assert_eq!(tai_minus_utc_seconds(UtcNanos(1_483_228_800 * S - 1)), 36);
        // Before 1972 the 1972 offset applies.
        assert_eq!(tai_minus_utc_seconds(UtcNanos(0)), 10);
    }

    #[test]
    fn tai_round_trip_is_exact_outside_leap_seconds() {
        for utc in [
            1_467_331_200 * S,
            1_483_228_800 * S - 1,
            1_483_228_800 * S,
            1_704_067_200 * S + 123_456_789,
        ] {
            assert_eq!(UtcNanos(utc).to_tai().to_utc(), UtcNanos(utc));
        }
        // astropy: Time(1704067237.0, format="unix_tai").unix == 1704067200.0
        assert_eq!(
            TaiNanos(1_704_067_237 * S).to_utc(),
            UtcNanos(1_704_067_200 * S)
        );
    }

    #[test]
    fn leap_second_itself_maps_into_the_repeated_second() {
        // 2016-12-31T23:59:60 UTC is TAI unix 1483228800 + 36.
        let during = TaiNanos((1_483_228_800 + 36) * S + S / 2);
        assert_eq!(during.to_utc(), UtcNanos(1_483_228_800 * S - S / 2));
        let after = TaiNanos((1_483_228_800 + 37) * S);
        assert_eq!(after.to_utc(), UtcNanos(1_483_228_800 * S));
    }

    #[test]
    fn day_obs_rolls_over_at_noon_utc() {
        // BEHAVIOUR.md §2.6: 2026-01-02T11:59Z is day_obs 20260101; 12:00Z is 20260102.
        let noon = parse_timestamp("2026-01-02T12:00:00").unwrap();
        assert_eq!(day_obs_of(noon.offset(-60 * S)), 20_260_101);
        assert_eq!(day_obs_of(noon), 20_260_102);
        assert_eq!(day_obs_add(20_260_101, -1), Some(20_251_231));
        assert_eq!(day_obs_add(20_240_228, 1), Some(20_240_229));
        assert_eq!(day_obs_add(20_241_301, 1), None);
        assert_eq!(date_start(19_700_102), Some(UtcNanos(86_400 * S)));
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-719_468, -1, 0, 1, 10_957, 19_723, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn timestamps_format_and_parse() {
        let t = UtcNanos(1_704_067_200_123_456_789);
        assert_eq!(format_timestamp_micros(t), "2024-01-01 00:00:00.123456");
        assert_eq!(format_isot(t), "2024-01-01T00:00:00.123456");
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00.123456789Z"),
            Some(UtcNanos(t.0 - 789))
        );
        assert_eq!(
            parse_timestamp("2024-02-29 23:59"),
            Some(UtcNanos(1_709_251_140 * S))
        );
        assert_eq!(
            format_timestamp_micros(UtcNanos(-1)),
            "1969-12-31 23:59:59.999999"
        );
        for bad in [
            "2023-02-29",
            "2024-01-01T00:00:00+01:00",
            "2024-1-01",
            "x",
            "2024-01-01T24:00",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert!(TimeRange::new(UtcNanos(2), UtcNanos(1)).is_none());
        let a = TimeRange::new(UtcNanos(0), UtcNanos(10)).unwrap();
        let b = TimeRange::new(UtcNanos(5), UtcNanos(20)).unwrap();
        assert_eq!(
            a.union(&b),
            TimeRange::new(UtcNanos(0), UtcNanos(20)).unwrap()
        );
        assert_eq!(a.with_start_offset(-5).start(), UtcNanos(-5));
        assert_eq!(a.with_start_offset(50).start(), UtcNanos(10));
    }

    #[test]
    fn truncation_and_rounding_helpers() {
        assert_eq!(truncate_to_micros(1_999), 1_000);
        assert_eq!(truncate_to_micros(-1), -1_000);
        assert_eq!(round_to_micros(1_499), 1_000);
        assert_eq!(round_to_micros(1_500), 2_000);
        assert_eq!(round_to_millis(999_600_000), 1_000_000_000);
        assert_eq!(round_to_millis(1_000_400_000), 1_000_000_000);
        assert_eq!(hours_to_nanos(-0.5), -1_800 * S);
        assert_eq!(hours_to_nanos(-1.0), -3_600 * S);
    }
}
