//! The monitor's Butler reconciliation (BEHAVIOUR.md §2.6 b): exposures and visits the Butler has
//! for the last complete nights but ConsDB lacks get tasks, which are then processed.
//!
//! Missing records that an idle or failed task already covers are left to it (the failed ones to
//! the retry pass), so an interval that keeps failing, or that an interrupted run left idle, does
//! not pile up new tasks every hour. The others are grouped into intervals of consecutive
//! `seq_num`s of one day_obs, exposure and visit intervals of a day_obs that overlap or touch are
//! merged, and each interval becomes idle tasks (the store also skips exact twins of unfinished
//! tasks). Then the new tasks and the window's other idle tasks are processed, each claimed just
//! before it starts. The night in progress is excluded unless asked: the cron is still processing
//! it.

use butler_reader::{DimensionRecord, Element};
use consdb_writer::{ConsDb, WriterError};
use scheduler_store::{SchedulerStore, Selection, TaskSpec, TaskStatus};
use tokio::sync::watch;
use transform_core::time::{NANOS_PER_SECOND, date_start, day_obs_add, day_obs_of};
use transform_core::{Table, UtcNanos};

use crate::Pipeline;
use crate::error::PipelineError;
use crate::runner::{RunOptions, RunSummary};

/// How far back to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileOptions {
    /// Complete nights to check (at least 1).
    pub window_days: u32,
    /// Also check the night in progress.
    pub include_current_night: bool,
    /// Task length in minutes.
    pub interval_minutes: i64,
    /// Padding in minutes (clamped to 1..=5, as the reference).
    pub timewindow_minutes: i32,
}

/// The day_obs window `[first, last]` for `now`.
pub fn day_obs_window(now: UtcNanos, options: &ReconcileOptions) -> (i32, i32) {
    let current = day_obs_of(now);
    let last = if options.include_current_night {
        current
    } else {
        day_obs_add(current, -1).unwrap_or(current)
    };
    let back = i64::from(options.window_days.max(1)) - 1;
    (day_obs_add(last, -back).unwrap_or(last), last)
}

/// Intervals `(day_obs, start, end)` of consecutive `seq_num`s among `records`.
fn intervals(mut records: Vec<&DimensionRecord>) -> Vec<(i32, UtcNanos, UtcNanos)> {
    records.sort_by_key(|r| (r.day_obs, r.seq_num));
    let mut out: Vec<(i32, UtcNanos, UtcNanos)> = Vec::new();
    let mut previous: Option<(i32, i32)> = None;
    for r in records {
        let (begin, end) = (r.timespan.start(), r.timespan.end());
        match (out.last_mut(), previous) {
            (Some(last), Some((day, seq))) if day == r.day_obs && r.seq_num == seq + 1 => {
                last.2 = last.2.max(end);
            }
            _ => out.push((r.day_obs, begin, end)),
        }
        previous = Some((r.day_obs, r.seq_num));
    }
    out
}

/// Merges intervals of one day_obs that overlap or touch.
fn merge(mut all: Vec<(i32, UtcNanos, UtcNanos)>) -> Vec<(i32, UtcNanos, UtcNanos)> {
    all.sort_by_key(|&(day, start, _)| (day, start));
    let mut out: Vec<(i32, UtcNanos, UtcNanos)> = Vec::new();
    for (day, start, end) in all {
        match out.last_mut() {
            Some(last) if last.0 == day && start <= last.2 => last.2 = last.2.max(end),
            _ => out.push((day, start, end)),
        }
    }
    out
}

async fn present(
    consdb: &mut ConsDb,
    table: Table,
    first: i32,
    last: i32,
) -> Result<Vec<i64>, WriterError> {
    consdb.ids_for_day_obs(table, first..=last).await
}

impl Pipeline {
    /// Creates tasks for the Butler's exposures and visits that ConsDB lacks in the window (but
    /// for those an idle or failed task already covers), and processes them with the window's
    /// other idle tasks. Returns the number of tasks created and the run summary.
    pub async fn reconcile(
        &self,
        store: &SchedulerStore,
        repo: &str,
        options: &ReconcileOptions,
        run: &RunOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(usize, RunSummary), PipelineError> {
        let (first, last) = day_obs_window(store.clock().now(), options);
        let (exposures, visits) = {
            let mut butler = self.butler.lock().await;
            (
                butler
                    .by_day_obs(Element::Exposure, self.instrument, first, last)
                    .await?,
                butler
                    .by_day_obs(Element::Visit, self.instrument, first, last)
                    .await?,
            )
        };
        let (have_exposures, have_visits) = {
            let mut consdb = self.consdb.lock().await;
            (
                present(&mut consdb, Table::ExposureEfd, first, last).await?,
                present(&mut consdb, Table::VisitEfd, first, last).await?,
            )
        };
        // Tasks already queued for the window: the idle ones (which an interrupted earlier run may
        // have left) and the failed ones (which the retry pass takes). An item overlapping one of
        // them is processed by it, so it gets no new task.
        let hours = |h: i64| h * 3_600 * NANOS_PER_SECOND;
        let idle = match (date_start(first), date_start(last)) {
            (Some(from), Some(to)) => {
                store
                    .select(&Selection::Idle {
                        repo: repo.to_owned(),
                        range: Some((from.offset(hours(12)), to.offset(hours(36)))),
                    })
                    .await?
            }
            _ => Vec::new(),
        };
        let failed = store
            .select(&Selection::Failed {
                repo: repo.to_owned(),
                max_retries: i32::MAX,
            })
            .await?;
        let queued: Vec<(UtcNanos, UtcNanos)> = idle
            .iter()
            .chain(&failed)
            .map(|t| (t.start, t.end))
            .collect();
        let unqueued = |r: &&DimensionRecord| {
            let (begin, end) = (r.timespan.start(), r.timespan.end());
            !queued.iter().any(|&(s, e)| begin < e && end >= s)
        };
        let missing_exposures: Vec<&DimensionRecord> = exposures
            .records
            .iter()
            .filter(|r| !have_exposures.contains(&r.id))
            .collect();
        let missing_visits: Vec<&DimensionRecord> = visits
            .records
            .iter()
            .filter(|r| !have_visits.contains(&r.id))
            .collect();
        let already_queued = missing_exposures.len() + missing_visits.len();
        let missing_exposures: Vec<&DimensionRecord> =
            missing_exposures.into_iter().filter(unqueued).collect();
        let missing_visits: Vec<&DimensionRecord> =
            missing_visits.into_iter().filter(unqueued).collect();
        let already_queued = already_queued - missing_exposures.len() - missing_visits.len();
        tracing::info!(
            message = "Butler reconciliation window.",
            event = "butler_reconciliation_window",
            day_obs_start = first,
            day_obs_end = last,
            missing_exposures = missing_exposures.len(),
            missing_visits = missing_visits.len(),
            missing_already_queued = already_queued,
            idle_tasks = idle.len()
        );
        let mut all = intervals(missing_exposures);
        all.extend(intervals(missing_visits));
        let merged = merge(all);
        let spec = TaskSpec {
            butler_repo: repo.to_owned(),
            interval_minutes: options.interval_minutes.max(1),
            timewindow: options.timewindow_minutes.clamp(1, 5),
            status: TaskStatus::Idle,
        };
        let mut created = Vec::new();
        for (_, start, end) in &merged {
            // An interval of one instant still needs a task: extend it to a whole one.
            let end = if end > start {
                *end
            } else {
                start.offset(1_000)
            };
            created.extend(store.create_tasks(*start, end, &spec).await?.into_value());
        }
        tracing::info!(
            message = "Butler reconciliation result.",
            event = "butler_reconciliation_result",
            intervals_merged = merged.len(),
            tasks_created = created.len()
        );
        // This run's tasks and the idle ones an interrupted earlier run left, by start.
        let mut waiting: Vec<_> = idle
            .iter()
            .chain(&created)
            .map(|t| (t.start, t.id))
            .collect();
        waiting.sort_unstable();
        waiting.dedup();
        let ids: Vec<_> = waiting.into_iter().map(|(_, id)| id).collect();
        let summary = self.run_ids(store, &ids, run, shutdown).await?;
        Ok((created.len(), summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(days: u32, current: bool) -> ReconcileOptions {
        ReconcileOptions {
            window_days: days,
            include_current_night: current,
            interval_minutes: 5,
            timewindow_minutes: 1,
        }
    }

    #[test]
    fn the_window_ends_with_the_last_complete_night() {
        let t = transform_core::time::parse_timestamp("2026-01-02T11:59:00").unwrap();
        assert_eq!(
            day_obs_window(t, &options(1, true)),
            (20_260_101, 20_260_101)
        );
        assert_eq!(
            day_obs_window(t, &options(1, false)),
            (20_251_231, 20_251_231)
        );
        let t = transform_core::time::parse_timestamp("2026-01-02T12:00:00").unwrap();
        assert_eq!(
            day_obs_window(t, &options(2, true)),
            (20_260_101, 20_260_102)
        );
        assert_eq!(
            day_obs_window(t, &options(7, false)),
            (20_251_226, 20_260_101)
        );
    }
}
