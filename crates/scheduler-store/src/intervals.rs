//! Cutting a time range into task intervals, exactly as the reference does (BEHAVIOUR.md §2.2).
//!
//! `span = round(end − start, 6 decimals of a second)`, `n = ceil(span / I)`, task `k` is
//! `[start + k·I, start + (k+1)·I]` with its bounds rounded to the microsecond; the last task may
//! end after `end`. Integer arithmetic replaces the reference's floats, which agree with it except
//! where a float error would have added a spurious task.

use transform_core::UtcNanos;
use transform_core::time::round_to_micros;

use crate::error::SchedulerError;
use crate::timestamp::format_utc;

/// Most tasks one creation may make (a year of one-minute tasks is 527,040).
pub const MAX_TASKS_PER_CREATION: i64 = 1_000_000;

const NANOS_PER_MINUTE: i64 = 60_000_000_000;

/// The task length in nanoseconds, or a clear error for a non-positive number of minutes.
pub(crate) fn interval_nanos(interval_minutes: i64) -> Result<i64, SchedulerError> {
    if interval_minutes <= 0 {
        return Err(SchedulerError::Invalid(format!(
            "the task interval must be a positive number of minutes, got {interval_minutes}"
        )));
    }
    interval_minutes
        .checked_mul(NANOS_PER_MINUTE)
        .ok_or_else(|| {
            SchedulerError::Invalid(format!(
                "the task interval of {interval_minutes} minutes is too long"
            ))
        })
}

/// The task intervals covering `[start, end]` in tasks of `interval_minutes`, bounds rounded to
/// the microsecond.
///
/// Errors: `start >= end`, `interval_minutes <= 0`, or more than [`MAX_TASKS_PER_CREATION`]
/// tasks. A range shorter than half a microsecond gives no task, as in the reference.
pub fn task_intervals(
    start: UtcNanos,
    end: UtcNanos,
    interval_minutes: i64,
) -> Result<Vec<(UtcNanos, UtcNanos)>, SchedulerError> {
    let interval = interval_nanos(interval_minutes)?;
    if start >= end {
        return Err(SchedulerError::Invalid(format!(
            "the start ({}) must be before the end ({})",
            format_utc(start),
            format_utc(end)
        )));
    }
    let too_long = || {
        SchedulerError::Invalid(format!(
            "{} to {} in {interval_minutes}-minute tasks makes more than {MAX_TASKS_PER_CREATION} tasks",
            format_utc(start),
            format_utc(end)
        ))
    };
    let span = round_to_micros(end.0.checked_sub(start.0).ok_or_else(too_long)?);
    // ceil(span / interval) for span >= 0.
    let n = span.div_euclid(interval) + i64::from(span.rem_euclid(interval) != 0);
    if n > MAX_TASKS_PER_CREATION {
        return Err(too_long());
    }
    (0..n)
        .map(|k| {
            let at = |k: i64| {
                k.checked_mul(interval)
                    .and_then(|offset| start.0.checked_add(offset))
                    .map(|t| UtcNanos(round_to_micros(t)))
            };
            Some((at(k)?, at(k + 1)?))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(too_long)
}

/// The range the cron job creates tasks for: from the end of the repository's last task (or one
/// interval before `now` when it has none) to `now`, stretched to one interval when shorter.
/// `None` when the last task already ends at or after `now`: the schedule is ahead, and creating
/// more would only push it further into the future.
pub(crate) fn cron_range(
    last_end: Option<UtcNanos>,
    now: UtcNanos,
    interval: i64,
) -> Option<(UtcNanos, UtcNanos)> {
    let start = last_end.unwrap_or(now.offset(-interval));
    if start >= now {
        return None;
    }
    let end = if round_to_micros(now.0 - start.0) < interval {
        start.offset(interval)
    } else {
        now
    };
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = NANOS_PER_MINUTE;
    /// 2023-01-01T00:00:00Z.
    const T0: i64 = 1_672_531_200_000_000_000;

    fn t(minutes: i64) -> UtcNanos {
        UtcNanos(T0 + minutes * MIN)
    }

    #[test]
    fn two_hours_in_hours_is_two_tasks() {
        // test_queue_manager.py: 2 h with 1 h intervals gives 2 intervals.
        assert_eq!(
            task_intervals(t(0), t(120), 60).unwrap(),
            vec![(t(0), t(60)), (t(60), t(120))]
        );
    }

    #[test]
    fn the_last_task_may_run_past_the_end() {
        assert_eq!(
            task_intervals(t(0), t(90), 60).unwrap(),
            vec![(t(0), t(60)), (t(60), t(120))]
        );
        assert_eq!(task_intervals(t(0), t(1), 5).unwrap(), vec![(t(0), t(5))]);
    }

    #[test]
    fn span_and_bounds_round_to_the_microsecond() {
        // 60 min + 0.4 µs rounds to exactly 60 min: one task, not two.
        let end = UtcNanos(t(60).0 + 400);
        assert_eq!(task_intervals(t(0), end, 60).unwrap().len(), 1);
        // + 0.5 µs rounds up to 60 min + 1 µs: two tasks.
        let end = UtcNanos(t(60).0 + 500);
        assert_eq!(task_intervals(t(0), end, 60).unwrap().len(), 2);
        // Bounds: a start at +1.5 µs becomes +2 µs (ties away from zero).
        let start = UtcNanos(T0 + 1_500);
        let tasks = task_intervals(start, UtcNanos(start.0 + 10 * MIN), 5).unwrap();
        assert_eq!(tasks[0].0, UtcNanos(T0 + 2_000));
        assert_eq!(
            tasks[1],
            (UtcNanos(t(5).0 + 2_000), UtcNanos(t(10).0 + 2_000))
        );
        // Less than half a microsecond: nothing.
        assert!(
            task_intervals(t(0), UtcNanos(t(0).0 + 499), 5)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn validation_messages() {
        let e = task_intervals(t(10), t(10), 5).unwrap_err().to_string();
        assert!(
            e.contains("start (2023-01-01T00:10:00.000000Z) must be before the end"),
            "{e}"
        );
        assert!(task_intervals(t(20), t(10), 5).is_err());
        for minutes in [0, -5] {
            let e = task_intervals(t(0), t(10), minutes)
                .unwrap_err()
                .to_string();
            assert!(e.contains("positive number of minutes, got"), "{e}");
        }
        let e = task_intervals(t(0), t(2_000_000), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 1000000 tasks"), "{e}");
        assert!(task_intervals(UtcNanos(i64::MIN), UtcNanos(i64::MAX), 1).is_err());
    }

    #[test]
    fn cron_ranges() {
        // Empty table: one interval up to now.
        assert_eq!(cron_range(None, t(100), 5 * MIN), Some((t(95), t(100))));
        // Short gap: stretched to one interval, into the future.
        assert_eq!(
            cron_range(Some(t(98)), t(100), 5 * MIN),
            Some((t(98), t(103)))
        );
        // Long gap: up to now (the tasks themselves cover it in whole intervals).
        assert_eq!(
            cron_range(Some(t(80)), t(100), 5 * MIN),
            Some((t(80), t(100)))
        );
        // Already scheduled past now: nothing.
        assert_eq!(cron_range(Some(t(100)), t(100), 5 * MIN), None);
        assert_eq!(cron_range(Some(t(103)), t(100), 5 * MIN), None);
    }
}
