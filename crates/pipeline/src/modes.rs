//! What `efd-job` and `efd-cronjob` do with the pipeline (BEHAVIOUR.md §2.3–2.5, with the
//! concurrency defects fixed by the scheduler store).
//!
//! - job: create idle tasks for `[start, end)` (unless resuming), retry the repo's failed tasks with
//!   retries ≤ 3 (failures of earlier runs: this pass runs first, so a task failing now is not
//!   retried at once), then process its idle tasks (within the range when resuming) in time order.
//! - cronjob: when no task of this repo is pending, create the pending tasks since its last task;
//!   then process pending tasks whose end is at least the margin old, oldest first.

use std::time::Duration;

use scheduler_store::{SchedulerStore, Selection, TaskSpec, TaskStatus};
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
            "the start must be earlier than the end".into(),
        ));
    }
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
        let created = store
            .create_tasks(job.start, job.end, &spec)
            .await?
            .into_value();
        tracing::info!(
            message = "Tasks created.",
            event = "tasks_created",
            count = created.len()
        );
        None
    };
    let retried = pipeline
        .run(
            store,
            &Selection::Failed {
                repo: job.repo.clone(),
                max_retries: MAX_RETRIES,
            },
            run,
            shutdown.clone(),
        )
        .await?;
    let mut summary = pipeline
        .run(
            store,
            &Selection::Idle {
                repo: job.repo.clone(),
                range,
            },
            run,
            shutdown,
        )
        .await?;
    summary.add(&retried);
    Ok(summary)
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
        message = "Tasks created.",
        event = "tasks_created",
        count = created,
        pending
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
