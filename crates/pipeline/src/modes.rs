//! What `efd-job` and `efd-cronjob` do with the pipeline (BEHAVIOUR.md §2.3–2.5, with the
//! concurrency defects fixed by the scheduler store).
//!
//! - job: create idle tasks for `[start, end)` (unless resuming), retry the repo's failed tasks with
//!   retries ≤ 3 (failures of earlier runs: this pass runs first, so a task failing now is not
//!   retried at once), then process its idle tasks (within the range when resuming) in time order.
//! - cronjob: when no task of this repo is pending, create the pending tasks since its last task;
//!   then process pending tasks whose end is at least the margin old, oldest first.

use std::time::Duration;

use scheduler_store::{SchedulerStore, Selection, Task, TaskSpec, TaskStatus};
use tokio::sync::watch;
use transform_core::UtcNanos;

use crate::Pipeline;
use crate::error::PipelineError;
use crate::runner::{RunOptions, RunSummary};

/// Failed tasks are retried while their retry count is at most this.
pub const MAX_RETRIES: i32 = 3;
/// A pending task is due this long after its end (the reference's 300 s).
pub const DUE_MARGIN: Duration = Duration::from_secs(300);

/// Options of a job run.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// First instant of the range.
    pub start: UtcNanos,
    /// End of the range.
    pub end: UtcNanos,
    /// Task length in minutes.
    pub interval_minutes: i64,
    /// Padding in minutes.
    pub timewindow_minutes: i32,
    /// Process the range's existing idle tasks instead of creating them.
    pub resume: bool,
    /// The Butler repository (the tasks' `butler_repo`).
    pub repo: String,
}

/// Runs job mode.
pub async fn job(
    pipeline: &Pipeline,
    store: &SchedulerStore,
    job: &JobOptions,
    run: &RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<RunSummary, PipelineError> {
    if job.start >= job.end {
        return Err(PipelineError::Usage(
            "-s/--start (DATETIME_START) must be earlier than -e/--end (DATETIME_END)".into(),
        ));
    }
    recover_orphans(store).await?;
    let range = if job.resume {
        tracing::info!(
            message = "Resuming the range's idle tasks.",
            event = "job_resume_idle_tasks"
        );
        Some((job.start, job.end))
    } else {
        let spec = TaskSpec {
            butler_repo: job.repo.clone(),
            interval_minutes: job.interval_minutes,
            timewindow: job.timewindow_minutes,
            status: TaskStatus::Idle,
        };
        tracing::debug!(
            message = "Creating the range's tasks.",
            event = "job_create_tasks",
            start_time = %transform_core::time::format_isot(job.start),
            end_time = %transform_core::time::format_isot(job.end)
        );
        // The store logs `event=tasks_created`.
        let _created = store.create_tasks(job.start, job.end, &spec).await?;
        None
    };
    let failed = Selection::Failed {
        repo: job.repo.clone(),
        max_retries: MAX_RETRIES,
    };
    let idle = Selection::Idle {
        repo: job.repo.clone(),
        range,
    };
    if let Some(progress) = pipeline.progress() {
        for selection in [&failed, &idle] {
            progress.add_total(store.select(selection).await?.len() as u64);
        }
    }
    let retried = pipeline.run(store, &failed, run, shutdown.clone()).await?;
    let mut summary = pipeline.run(store, &idle, run, shutdown).await?;
    summary.add(&retried);
    Ok(summary)
}

/// Marks failed the running tasks whose worker's lease expired (a crashed or killed process), so
/// this run or the monitor retries them; the reference's `orphaned_tasks_marked_failed`, but tasks
/// of live workers elsewhere keep running.
async fn recover_orphans(store: &SchedulerStore) -> Result<usize, PipelineError> {
    let recovered = store.recover_expired_leases().await?.into_value().len();
    if recovered > 0 {
        tracing::info!(
            message = "Tasks of dead workers marked failed.",
            event = "orphaned_tasks_marked_failed",
            count = recovered
        );
    }
    Ok(recovered)
}

/// Runs cronjob mode.
pub async fn cronjob(
    pipeline: &Pipeline,
    store: &SchedulerStore,
    repo: &str,
    interval_minutes: i64,
    timewindow_minutes: i32,
    run: &RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<RunSummary, PipelineError> {
    recover_orphans(store).await?;
    let spec = TaskSpec {
        butler_repo: repo.to_owned(),
        interval_minutes,
        timewindow: timewindow_minutes,
        status: TaskStatus::Pending,
    };
    // As the reference: new tasks only when none of this repo is pending (due or not), so a run
    // every few minutes does not stack up future tasks.
    let pending = store
        .status_summary(Some(repo), 0)
        .await?
        .counts
        .get(TaskStatus::Pending.as_str())
        .copied()
        .unwrap_or(0);
    let created = if pending == 0 {
        store.create_cron_tasks(&spec).await?.into_value().len()
    } else {
        0
    };
    tracing::info!(
        message = "Checked the pending tasks.",
        event = "cronjob_check_pending_tasks",
        pending,
        created
    );
    pipeline
        .run(
            store,
            &Selection::DuePending {
                repo: repo.to_owned(),
                margin: DUE_MARGIN,
            },
            run,
            shutdown,
        )
        .await
}

/// Failed tasks older than this become stale (the reference's 72 h).
pub const STALE_AFTER: Duration = Duration::from_secs(72 * 3600);
/// The backoff base: a task with `r` retries waits `RETRY_BASE_HOURS^(r+1)` hours from creation.
pub const RETRY_BASE_HOURS: f64 = 2.82843;

/// What the monitor does with a failed task now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Its backoff has not elapsed.
    Wait,
    /// Retry it.
    Retry,
    /// Too old (or retried too often): mark it stale.
    Stale,
}

/// The reference's backoff (BEHAVIOUR.md §2.6 a): retry when `2.82843^(retries+1)` hours have passed
/// since creation and the task is younger than 72 h; stale from 72 h, or beyond the retry limit
/// (where the reference left tasks failed forever).
pub fn retry_decision(task: &Task, now: UtcNanos) -> RetryDecision {
    if task.retries > MAX_RETRIES {
        return RetryDecision::Stale;
    }
    let Some(created) = task.created_at else {
        return RetryDecision::Retry;
    };
    #[allow(clippy::cast_precision_loss)] // Ages in ns are far below 2^53 × the tolerance needed.
    let age_hours = (now.0 - created.0) as f64 / 3.6e12;
    let wait_hours = RETRY_BASE_HOURS.powi(task.retries + 1);
    #[allow(clippy::cast_precision_loss)]
    let stale_hours = STALE_AFTER.as_secs() as f64 / 3600.0;
    if age_hours >= stale_hours {
        RetryDecision::Stale
    } else if age_hours > wait_hours {
        RetryDecision::Retry
    } else {
        RetryDecision::Wait
    }
}

/// Runs the failure monitor's retry pass: recover expired leases, mark stale tasks, and retry the
/// failed tasks whose backoff has elapsed.
pub async fn monitor_retries(
    pipeline: &Pipeline,
    store: &SchedulerStore,
    repo: &str,
    run: &RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<RunSummary, PipelineError> {
    let recovered = recover_orphans(store).await?;
    let now = store.clock().now();
    let mut stale = Vec::new();
    let mut retry = Vec::new();
    for task in store
        .select(&Selection::Failed {
            repo: repo.to_owned(),
            max_retries: i32::MAX,
        })
        .await?
    {
        match retry_decision(&task, now) {
            RetryDecision::Stale => stale.push(task.id),
            RetryDecision::Retry => retry.push(task.id),
            RetryDecision::Wait => {}
        }
    }
    let staled = store.mark_stale(&stale).await?.into_value();
    tracing::info!(
        message = "Failure monitor selected tasks.",
        event = "failure_monitor_selected_tasks",
        recovered,
        stale = staled.len(),
        retry = retry.len()
    );
    pipeline.run_ids(store, &retry, run, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use scheduler_store::TaskId;

    const HOUR: i64 = 3_600_000_000_000;

    fn failed(retries: i32, created_hours_ago: f64, now: UtcNanos) -> Task {
        #[allow(clippy::cast_possible_truncation)]
        let created = UtcNanos(now.0 - (created_hours_ago * HOUR as f64) as i64);
        Task {
            id: TaskId(1),
            start: created,
            end: created,
            timewindow: Some(1),
            status: TaskStatus::Failed,
            process_start: None,
            process_end: None,
            process_exec_time: None,
            exposures: None,
            visits1: None,
            retries,
            error: Some("boom".into()),
            butler_repo: Some("repo".into()),
            created_at: Some(created),
            claimed_by: None,
            lease_expires_at: None,
            previous_status: None,
            last_error_at: None,
            replica_failures: None,
            timings: None,
        }
    }

    #[test]
    fn backoff_follows_the_reference_schedule() {
        let now = UtcNanos(1_800_000_000 * 1_000_000_000);
        // Waits of 2.828 h, 8.000 h, 22.63 h, 64.00 h for 0..3 retries.
        for (retries, wait) in [(0, 2.82843), (1, 8.0), (2, 22.627), (3, 64.0)] {
            assert_eq!(
                retry_decision(&failed(retries, wait - 0.01, now), now),
                RetryDecision::Wait,
                "{retries}"
            );
            assert_eq!(
                retry_decision(&failed(retries, wait + 0.01, now), now),
                RetryDecision::Retry,
                "{retries}"
            );
        }
        assert_eq!(
            retry_decision(&failed(0, 72.0, now), now),
            RetryDecision::Stale
        );
        // Beyond the retry limit: stale instead of stuck.
        assert_eq!(
            retry_decision(&failed(4, 1.0, now), now),
            RetryDecision::Stale
        );
    }
}
