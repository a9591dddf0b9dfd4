//! The task loop: workers claim tasks from the scheduler store, process them, and record the result.
//!
//! Each worker claims one task at a time (atomically, with its owner name and a lease), keeps the
//! lease alive with heartbeats while it works, then completes or fails the task, only as its owner.
//! On shutdown no new task is claimed; a task in flight may finish within the grace period, else it
//! is released back to the status it had before the claim (not failed) for the next run.

use std::time::Duration;

use scheduler_store::{Completion, SchedulerStore, Selection, Task};
use tokio::sync::watch;
use transform_core::time::NANOS_PER_SECOND;

use crate::Pipeline;
use crate::error::PipelineError;

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Tasks in flight at once in this process.
    pub workers: usize,
    /// Who claims (unique per process, e.g. `host:pid`).
    pub owner: String,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// Padding, in minutes, for tasks that do not record their own.
    pub default_timewindow_minutes: i64,
    /// How long a task in flight may take to finish after a shutdown request.
    pub grace_period: Duration,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Tasks claimed.
    pub tasks: usize,
    /// Tasks completed.
    pub completed: usize,
    /// Tasks failed (recorded with their error).
    pub failed: usize,
    /// Tasks released unfinished at shutdown.
    pub released: usize,
    /// `exposure_efd` rows written.
    pub exposures: usize,
    /// `visit1_efd` rows written.
    pub visits: usize,
    /// Time per phase, summed over the tasks (completed or failed).
    pub timings: crate::PhaseTimings,
}

impl RunSummary {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &RunSummary) {
        self.tasks += other.tasks;
        self.completed += other.completed;
        self.failed += other.failed;
        self.released += other.released;
        self.exposures += other.exposures;
        self.visits += other.visits;
        self.timings.add(&other.timings);
    }
}

/// A task this process holds, and how long claiming it took.
struct Claim<'a> {
    task: &'a Task,
    owner: &'a str,
    took: Duration,
}

impl Pipeline {
    /// Claims and processes tasks matching `selection` until none is left or `shutdown` turns true.
    pub async fn run(
        &self,
        store: &SchedulerStore,
        selection: &Selection,
        options: &RunOptions,
        shutdown: watch::Receiver<bool>,
    ) -> Result<RunSummary, PipelineError> {
        let workers = (0..options.workers.max(1))
            .map(|w| self.worker(store, selection, options, shutdown.clone(), w));
        let mut summary = RunSummary::default();
        for result in futures::future::join_all(workers).await {
            summary.add(&result?);
        }
        let t = &summary.timings;
        let efd = self.efd_stats();
        tracing::info!(
            message = "Task processing summary.",
            event = "task_processing_summary",
            tasks = summary.tasks,
            completed = summary.completed,
            failed = summary.failed,
            released = summary.released,
            exposures = summary.exposures,
            visits = summary.visits,
            butler_s = t.butler.as_secs_f64(),
            efd_s = t.efd.as_secs_f64(),
            transform_s = t.transform.as_secs_f64(),
            write_s = t.write.as_secs_f64(),
            scheduler_s = t.scheduler.as_secs_f64(),
            efd_statements = efd.statements,
            efd_requests = efd.requests,
            efd_bytes = efd.bytes,
            efd_retries = efd.retries
        );
        Ok(summary)
    }

    /// Processes the tasks `ids`, in this order, one at a time, claiming each just before it
    /// starts: a claim's lease is renewed only while its task runs, so claiming a long list at once
    /// would let the leases of the tasks still waiting run out (and another process fail them as
    /// orphans). Ids another process holds by then, or that finished meanwhile, are skipped.
    pub async fn run_ids(
        &self,
        store: &SchedulerStore,
        ids: &[scheduler_store::TaskId],
        options: &RunOptions,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<RunSummary, PipelineError> {
        let mut summary = RunSummary::default();
        for &id in ids {
            if *shutdown.borrow() {
                tracing::warn!(message = "Shutdown requested; claiming no more tasks.", event = "graceful_shutdown_between_tasks", worker = %options.owner);
                break;
            }
            let claiming = std::time::Instant::now();
            let Some(task) = store
                .claim_ids(&[id], &options.owner, options.lease)
                .await?
                .into_value()
                .pop()
            else {
                summary.timings.scheduler += claiming.elapsed();
                continue;
            };
            summary.tasks += 1;
            let claim = Claim {
                task: &task,
                owner: &options.owner,
                took: claiming.elapsed(),
            };
            self.run_one(store, claim, options, &mut shutdown, &mut summary)
                .await?;
        }
        Ok(summary)
    }

    async fn worker(
        &self,
        store: &SchedulerStore,
        selection: &Selection,
        options: &RunOptions,
        mut shutdown: watch::Receiver<bool>,
        index: usize,
    ) -> Result<RunSummary, PipelineError> {
        let owner = format!("{}/{index}", options.owner);
        let mut summary = RunSummary::default();
        loop {
            if *shutdown.borrow() {
                tracing::warn!(message = "Shutdown requested; claiming no more tasks.", event = "graceful_shutdown_between_tasks", worker = %owner);
                break;
            }
            let claiming = std::time::Instant::now();
            let Some(task) = store
                .claim_next(selection, &owner, options.lease)
                .await?
                .into_value()
            else {
                summary.timings.scheduler += claiming.elapsed();
                break;
            };
            let claim = Claim {
                task: &task,
                owner: &owner,
                took: claiming.elapsed(),
            };
            summary.tasks += 1;
            self.run_one(store, claim, options, &mut shutdown, &mut summary)
                .await?;
        }
        Ok(summary)
    }

    async fn run_one(
        &self,
        store: &SchedulerStore,
        claim: Claim<'_>,
        options: &RunOptions,
        shutdown: &mut watch::Receiver<bool>,
        summary: &mut RunSummary,
    ) -> Result<(), PipelineError> {
        let Claim { task, owner, took } = claim;
        let mut scheduler_time = took;
        let minutes = i64::from(task.timewindow.unwrap_or(0));
        let minutes = if minutes > 0 {
            minutes
        } else {
            options.default_timewindow_minutes
        };
        tracing::debug!(
            message = "Task processing start.",
            event = "task_processing_start",
            id = task.id.0,
            start_time = %transform_core::time::format_isot(task.start),
            end_time = %transform_core::time::format_isot(task.end),
            timewindow = minutes,
            retry = task.retries,
            worker = owner
        );
        let began = std::time::Instant::now();
        let created_at = store.clock().now();
        let work = self.process_interval(
            task.start,
            task.end,
            minutes * 60 * NANOS_PER_SECOND,
            created_at,
        );
        tokio::pin!(work);
        let beat_every = options.lease / 3;
        let mut beat = tokio::time::interval(beat_every.max(Duration::from_millis(100)));
        beat.tick().await;
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut watching = true;
        let outcome = loop {
            tokio::select! {
                result = &mut work => break Some(result),
                _ = beat.tick() => {
                    let beating = std::time::Instant::now();
                    let _ = store.heartbeat(task.id, owner, options.lease).await?;
                    scheduler_time += beating.elapsed();
                }
                changed = shutdown.changed(), if deadline.is_none() && watching => {
                    match changed {
                        // The signal watcher is gone (no handlers): nobody can ask to stop.
                        Err(_) => watching = false,
                        Ok(()) if *shutdown.borrow() => {
                            deadline = Some(tokio::time::Instant::now() + options.grace_period);
                        }
                        Ok(()) => {}
                    }
                }
                () = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                    break None;
                }
            }
        };
        match outcome {
            None => {
                let released = store.release(task.id, owner).await?.into_value();
                tracing::warn!(
                    message = "Task released unfinished at shutdown.",
                    event = "task_released",
                    id = task.id.0,
                    released
                );
                summary.released += 1;
            }
            Some(Ok(counts)) => {
                let mut timings = counts.timings;
                timings.scheduler = scheduler_time;
                let completion = Completion {
                    exposures: u32::try_from(counts.exposures).unwrap_or(u32::MAX),
                    visits1: u32::try_from(counts.visits).unwrap_or(u32::MAX),
                    replica_failures: u32::try_from(counts.replica_failures).unwrap_or(u32::MAX),
                    timings: Some(timings),
                };
                let recording = std::time::Instant::now();
                let applied = store
                    .complete(task.id, owner, completion)
                    .await?
                    .into_value();
                // The log and the run's totals also count recording the result.
                timings.scheduler += recording.elapsed();
                summary.timings.add(&timings);
                if applied {
                    tracing::info!(
                        message = "Task completed.",
                        event = "task_completed",
                        id = task.id.0,
                        exposures = counts.exposures,
                        visits = counts.visits,
                        unpivoted = counts.unpivoted,
                        empty_groups = counts.empty_groups,
                        skipped_records = counts.skipped_records,
                        replica_failures = counts.replica_failures,
                        duration_s = began.elapsed().as_secs_f64(),
                        butler_s = timings.butler.as_secs_f64(),
                        efd_s = timings.efd.as_secs_f64(),
                        transform_s = timings.transform.as_secs_f64(),
                        write_s = timings.write.as_secs_f64(),
                        scheduler_s = timings.scheduler.as_secs_f64()
                    );
                    summary.completed += 1;
                    summary.exposures += counts.exposures;
                    summary.visits += counts.visits;
                    if let Some(progress) = &self.progress {
                        progress.task_finished(false, counts.exposures, counts.visits);
                    }
                } else {
                    tracing::warn!(
                        message = "Task was reclaimed by another worker; result not recorded.",
                        event = "task_result_discarded",
                        id = task.id.0
                    );
                }
            }
            Some(Err(e)) => {
                let text = e.to_string();
                tracing::error!(message = "Task processing failed.", event = "task_processing_failed", id = task.id.0, transient = e.is_transient(), error = %text);
                let _ = store.fail(task.id, owner, &text).await?;
                summary.failed += 1;
                if let Some(progress) = &self.progress {
                    progress.task_finished(true, 0, 0);
                }
            }
        }
        Ok(())
    }
}
