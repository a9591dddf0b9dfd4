//! The modes of BEHAVIOUR.md §2 as scenarios over real components (a daf_butler registry, the
//! line-protocol EFD, an SQLite or PostgreSQL ConsDB holding the task table) with the store's
//! injectable clock: job, job --resume, the cronjob's catch-up after downtime, the monitor's retry
//! timing and staleness, and reconciliation against intervals already queued.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{
    Fixture, S, SteppingClock, all_tasks, complete_with, fail_once, failed_task, run_options, utc,
};
use pipeline::modes::{self, JobOptions, RETRY_BASE_HOURS};
use pipeline::{ReconcileOptions, RunSummary};
use scheduler_store::{LEASE_EXPIRED, ManualClock, SchedulerStore, Task, TaskId, TaskStatus};
use tokio::sync::watch;
use transform_core::UtcNanos;

const MINUTE: i64 = 60 * S;

fn no_shutdown() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    // Keep the sender alive for the whole test: a dropped sender reads as a shutdown request.
    std::mem::forget(tx);
    rx
}

/// The ids of `tasks` that have started processing, in the order they were claimed.
fn claim_order(tasks: &[Task]) -> Vec<TaskId> {
    let mut started: Vec<&Task> = tasks.iter().filter(|t| t.process_start.is_some()).collect();
    started.sort_by_key(|t| t.process_start);
    started.iter().map(|t| t.id).collect()
}

/// Checks that every task in `ids` completed with the counts the Butler implies, and that they add
/// up to the summary's.
async fn assert_counts_recorded(
    fx: &Fixture,
    store: &SchedulerStore,
    ids: &[TaskId],
    summary: &RunSummary,
) {
    let (mut exposures, mut visits) = (0, 0);
    for id in ids {
        let task = store.task(*id).await.unwrap().unwrap();
        assert_eq!(task.status, TaskStatus::Completed, "{task:?}");
        assert_eq!(task.error, None, "{task:?}");
        let (e, v) = fx.items_of(&task).await;
        assert_eq!(
            (task.exposures, task.visits1),
            (
                Some(i32::try_from(e).unwrap()),
                Some(i32::try_from(v).unwrap())
            ),
            "{task:?}"
        );
        exposures += e;
        visits += v;
    }
    assert_eq!(
        (summary.exposures, summary.visits),
        (exposures, visits),
        "{summary:?}"
    );
}

#[tokio::test]
async fn job_creates_its_range_retries_earlier_failures_first_and_processes_in_time_order() {
    let fx = Fixture::sqlite();
    let pipeline = fx.pipeline().await;
    let clock = SteppingClock::new(utc("2025-10-05T00:00:00"));
    let store = fx.store(clock.clone()).await;
    let idle = fx.spec(TaskStatus::Idle);
    // Earlier runs left, on night 2: failed tasks with 0, 3 and 4 retries (the one with 0 was
    // created first but starts later: retries go by creation), an idle task, and a failed task of
    // another repository.
    let retry0 = failed_task(&store, &idle, utc("2025-10-03T03:05:00"), 0).await;
    let retry3 = failed_task(&store, &idle, utc("2025-10-03T03:00:00"), 3).await;
    let retry4 = failed_task(&store, &idle, utc("2025-10-03T03:10:00"), 4).await;
    let earlier_idle = store
        .create_tasks(
            utc("2025-10-03T03:15:00"),
            utc("2025-10-03T03:20:00"),
            &idle,
        )
        .await
        .unwrap()
        .into_value()[0]
        .clone();
    let mut other = idle.clone();
    other.butler_repo = "/elsewhere/repo".into();
    let foreign = failed_task(&store, &other, utc("2025-10-03T03:00:00"), 0).await;
    clock.0.advance(Duration::from_secs(3600));

    let job = JobOptions {
        start: utc("2025-10-02T03:00:00"),
        end: utc("2025-10-02T03:20:00"),
        interval_minutes: 5,
        timewindow_minutes: 1,
        resume: false,
        repo: fx.repo.clone(),
    };
    let summary = modes::job(
        &pipeline,
        &store,
        &job,
        &run_options("job:1"),
        no_shutdown(),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            summary.tasks,
            summary.completed,
            summary.failed,
            summary.released
        ),
        (7, 7, 0, 0),
        "2 retries, 4 new tasks, 1 earlier idle task: {summary:?}"
    );

    let tasks = all_tasks(&store).await;
    let created: Vec<&Task> = tasks.iter().filter(|t| t.id.0 > foreign.id.0).collect();
    let bounds: Vec<(UtcNanos, UtcNanos)> = created.iter().map(|t| (t.start, t.end)).collect();
    let first = utc("2025-10-02T03:00:00");
    let want: Vec<(UtcNanos, UtcNanos)> = (0..4)
        .map(|k| {
            (
                first.offset(k * 5 * MINUTE),
                first.offset((k + 1) * 5 * MINUTE),
            )
        })
        .collect();
    assert_eq!(bounds, want, "the range's four tasks");
    assert!(created.iter().all(|t| t.retries == 0));

    // Failed tasks first (by creation), then idle ones by start time, earlier idle tasks included.
    let mut order = vec![retry0.id, retry3.id];
    order.extend(created.iter().map(|t| t.id));
    order.push(earlier_idle.id);
    let claimed: Vec<TaskId> = claim_order(&tasks)
        .into_iter()
        .filter(|id| order.contains(id))
        .collect();
    assert_eq!(claimed, order);
    assert_counts_recorded(&fx, &store, &order, &summary).await;
    assert!(summary.exposures > 0 && summary.visits > 0, "{summary:?}");

    let by_id = |id: TaskId| tasks.iter().find(|t| t.id == id).unwrap().clone();
    assert_eq!(by_id(retry0.id).retries, 1);
    assert_eq!(
        by_id(retry3.id).retries,
        4,
        "a retry counts even when it succeeds"
    );
    // Beyond the retry limit, and another repository's task: untouched.
    assert_eq!(by_id(retry4.id), retry4);
    assert_eq!(by_id(foreign.id), foreign);
}

#[tokio::test]
async fn job_resume_processes_only_the_ranges_idle_tasks_and_creates_nothing() {
    let fx = Fixture::sqlite();
    let pipeline = fx.pipeline().await;
    let clock = SteppingClock::new(utc("2025-10-05T00:00:00"));
    let store = fx.store(clock.clone()).await;
    let idle = fx.spec(TaskStatus::Idle);
    let (start, end) = (utc("2025-10-02T03:00:00"), utc("2025-10-02T03:12:00"));
    // The range's tasks as a job made them; the last one ends after the range.
    let range = store
        .create_tasks(start, end, &idle)
        .await
        .unwrap()
        .into_value();
    assert_eq!(range.len(), 3);
    assert_eq!(range[2].end, utc("2025-10-02T03:15:00"));
    let done = complete_with(&store, range[0].id, 99).await;
    let before = store
        .create_tasks(utc("2025-10-02T02:55:00"), start, &idle)
        .await
        .unwrap()
        .into_value()[0]
        .clone();
    let after = store
        .create_tasks(
            utc("2025-10-02T03:15:00"),
            utc("2025-10-02T03:20:00"),
            &idle,
        )
        .await
        .unwrap()
        .into_value()[0]
        .clone();
    clock.0.advance(Duration::from_secs(3600));

    let job = JobOptions {
        start,
        end,
        interval_minutes: 5,
        timewindow_minutes: 1,
        resume: true,
        repo: fx.repo.clone(),
    };
    let summary = modes::job(
        &pipeline,
        &store,
        &job,
        &run_options("job:2"),
        no_shutdown(),
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.tasks, summary.completed, summary.failed),
        (2, 2, 0),
        "{summary:?}"
    );
    let tasks = all_tasks(&store).await;
    assert_eq!(tasks.len(), 5, "nothing created");
    // The range's idle tasks, in time order, including the one ending after the range (the
    // reference's resume skipped it).
    let resumed = [range[1].id, range[2].id];
    let claimed: Vec<TaskId> = claim_order(&tasks)
        .into_iter()
        .filter(|id| *id != done.id)
        .collect();
    assert_eq!(claimed, resumed);
    assert_counts_recorded(&fx, &store, &resumed, &summary).await;
    // Completed and out-of-range tasks are untouched.
    assert_eq!(store.task(done.id).await.unwrap().unwrap(), done);
    assert_eq!(store.task(before.id).await.unwrap().unwrap(), before);
    assert_eq!(store.task(after.id).await.unwrap().unwrap(), after);
}

/// Counts of each status in the table.
async fn statuses(store: &SchedulerStore) -> BTreeMap<String, i64> {
    store.status_summary(None, 0).await.unwrap().counts
}

/// The cronjob after hours of downtime: one run creates every missing interval and processes the
/// due ones, oldest first; a run while tasks are pending creates nothing; time makes the rest due.
async fn cronjob_catches_up_after_downtime(fx: Fixture) {
    let pipeline = fx.pipeline().await;
    let clock = SteppingClock::new(utc("2025-10-02T00:10:00"));
    let store = fx.store(clock.clone()).await;
    let pending = fx.spec(TaskStatus::Pending);
    // The repository's last task, 00:00–00:05, finished before the cronjob stopped running.
    let last = store
        .create_tasks(
            utc("2025-10-02T00:00:00"),
            utc("2025-10-02T00:05:00"),
            &pending,
        )
        .await
        .unwrap()
        .into_value();
    complete_with(&store, last[0].id, 0).await;
    let run = run_options("cron:1");

    // Back 3 h 22 min 30 s later: 00:05 to 03:27:30 is 41 tasks, the last ending at 03:30.
    clock.0.set(utc("2025-10-02T03:27:30"));
    let summary = modes::cronjob(&pipeline, &store, &fx.repo, 5, 1, &run, no_shutdown())
        .await
        .unwrap();
    let tasks = all_tasks(&store).await;
    assert_eq!(tasks.len(), 42, "41 tasks created");
    let first_end = utc("2025-10-02T00:10:00");
    for (k, task) in tasks[1..].iter().enumerate() {
        let k = i64::try_from(k).unwrap();
        assert_eq!(task.end, first_end.offset(k * 5 * MINUTE), "{task:?}");
        assert_eq!(task.start, task.end.offset(-5 * MINUTE));
    }
    // Due: ended at least 300 s before 03:27:30, i.e. by 03:22:30: the 39 tasks ending by 03:20.
    assert_eq!(
        (summary.tasks, summary.completed, summary.failed),
        (39, 39, 0),
        "{summary:?}"
    );
    let due: Vec<TaskId> = tasks[1..40].iter().map(|t| t.id).collect();
    assert_eq!(claim_order(&tasks[1..]), due, "oldest first");
    assert!(
        tasks[40..]
            .iter()
            .all(|t| t.status == TaskStatus::Pending && t.process_start.is_none())
    );
    assert_counts_recorded(&fx, &store, &due, &summary).await;
    assert!(
        summary.exposures > 0,
        "03:00–03:15 has exposures: {summary:?}"
    );

    // A minute later: two tasks are still pending (not yet due), so nothing is created.
    clock.0.advance(Duration::from_secs(60));
    let summary = modes::cronjob(&pipeline, &store, &fx.repo, 5, 1, &run, no_shutdown())
        .await
        .unwrap();
    assert_eq!(summary.tasks, 0, "{summary:?}");
    assert_eq!(all_tasks(&store).await.len(), 42);
    assert_eq!(statuses(&store).await.get("pending"), Some(&2));

    // By 03:38:30 both are due (03:30 + 300 s <= now): processed oldest first, nothing created.
    clock.0.set(utc("2025-10-02T03:38:30"));
    let summary = modes::cronjob(&pipeline, &store, &fx.repo, 5, 1, &run, no_shutdown())
        .await
        .unwrap();
    assert_eq!((summary.tasks, summary.completed), (2, 2), "{summary:?}");
    let tasks = all_tasks(&store).await;
    assert_eq!(tasks.len(), 42);
    let late = [tasks[40].id, tasks[41].id];
    let order: Vec<TaskId> = claim_order(&tasks)
        .into_iter()
        .filter(|id| late.contains(id))
        .collect();
    assert_eq!(order, late);
    assert_eq!(statuses(&store).await.get("completed"), Some(&42));

    // With nothing pending, the next run goes on from the last end (03:30) to now: two tasks,
    // neither due yet.
    let summary = modes::cronjob(&pipeline, &store, &fx.repo, 5, 1, &run, no_shutdown())
        .await
        .unwrap();
    assert_eq!(summary.tasks, 0, "{summary:?}");
    let tasks = all_tasks(&store).await;
    assert_eq!(tasks.len(), 44);
    assert_eq!(
        (tasks[42].start, tasks[43].end),
        (utc("2025-10-02T03:30:00"), utc("2025-10-02T03:40:00"))
    );
}

#[tokio::test]
async fn cronjob_catches_up_after_downtime_on_sqlite() {
    cronjob_catches_up_after_downtime(Fixture::sqlite()).await;
}

#[tokio::test]
async fn cronjob_catches_up_after_downtime_on_postgres() {
    let pg = test_support::Postgres::start();
    pg.create_database("consdb");
    cronjob_catches_up_after_downtime(Fixture::with_consdb(&pg.url("consdb"))).await;
}

/// The wait before retry number `retries + 1`, from creation: `2.82843^(retries+1)` hours.
fn backoff(retries: i32) -> i64 {
    #[allow(clippy::cast_possible_truncation)]
    let nanos = (RETRY_BASE_HOURS.powi(retries + 1) * 3600.0 * 1e9) as i64;
    nanos
}

#[tokio::test]
async fn monitor_retries_after_the_backoff_stales_old_tasks_and_recovers_expired_leases() {
    let fx = Fixture::sqlite();
    let pipeline = fx.pipeline().await;
    let n0 = utc("2025-10-05T00:00:00");
    let clock = Arc::new(ManualClock::new(n0));
    let store = fx.store(clock.clone()).await;
    let idle = fx.spec(TaskStatus::Idle);
    let run = run_options("monitor:1");
    let hours = |h: i64| h * 3600 * S;

    // Created 73 h before n0 with 1 retry: too old. Created 10 h before n0 with 3 retries.
    clock.set(n0.offset(-hours(73)));
    let old = failed_task(&store, &idle, utc("2025-10-03T03:05:00"), 1).await;
    clock.set(n0.offset(-hours(10)));
    let r3 = failed_task(&store, &idle, utc("2025-10-02T03:10:00"), 3).await;
    // At n0: 0, 2 and 4 (beyond the limit) retries; a task whose worker died (a 60 s lease), and
    // one of a live worker (a 100 h lease).
    clock.set(n0);
    let r0 = failed_task(&store, &idle, utc("2025-10-02T03:00:00"), 0).await;
    let r2 = failed_task(&store, &idle, utc("2025-10-02T03:05:00"), 2).await;
    let r4 = failed_task(&store, &idle, utc("2025-10-03T03:10:00"), 4).await;
    let dead = store
        .create_tasks(
            utc("2025-10-03T03:00:00"),
            utc("2025-10-03T03:05:00"),
            &idle,
        )
        .await
        .unwrap()
        .into_value()[0]
        .id;
    let live = store
        .create_tasks(
            utc("2025-10-03T03:15:00"),
            utc("2025-10-03T03:20:00"),
            &idle,
        )
        .await
        .unwrap()
        .into_value()[0]
        .id;
    assert_eq!(
        store
            .claim_ids(&[dead], "dead:1", Duration::from_secs(60))
            .await
            .unwrap()
            .into_value()
            .len(),
        1
    );
    let live_task = store
        .claim_ids(&[live], "live:1", Duration::from_secs(100 * 3600))
        .await
        .unwrap()
        .into_value()
        .remove(0);

    let monitor_at = |at: UtcNanos| {
        clock.set(at);
        modes::monitor_retries(&pipeline, &store, &fx.repo, &run, no_shutdown())
    };
    let task = |id: TaskId| {
        let store = &store;
        async move { store.task(id).await.unwrap().unwrap() }
    };

    // A minute before r0's 2.83 h: nothing is retried; the old task and the one beyond the retry
    // limit become stale (nothing else changes); the dead worker's task is failed.
    let summary = monitor_at(n0.offset(backoff(0) - MINUTE)).await.unwrap();
    assert_eq!(summary.tasks, 0, "{summary:?}");
    for stale in [&old, &r4] {
        let now = task(stale.id).await;
        assert_eq!(now.status, TaskStatus::Stale);
        assert_eq!(
            Task {
                status: TaskStatus::Failed,
                ..now
            },
            *stale
        );
    }
    for waiting in [&r0, &r2, &r3] {
        assert_eq!(task(waiting.id).await, *waiting);
    }
    let recovered = task(dead).await;
    assert_eq!(
        (
            recovered.status,
            recovered.error.as_deref(),
            recovered.retries,
            recovered.lease_expires_at
        ),
        (TaskStatus::Failed, Some(LEASE_EXPIRED), 0, None)
    );
    assert_eq!(
        task(live).await,
        live_task,
        "a live worker's task is not touched"
    );

    // A minute after: r0 and the recovered task (both created at n0, no retries) are retried.
    let summary = monitor_at(n0.offset(backoff(0) + MINUTE)).await.unwrap();
    assert_eq!((summary.tasks, summary.completed), (2, 2), "{summary:?}");
    assert_counts_recorded(&fx, &store, &[r0.id, dead], &summary).await;
    assert_eq!(
        (task(r0.id).await.retries, task(dead).await.retries),
        (1, 1)
    );
    assert_eq!(task(r2.id).await, r2);

    // r2 waits 22.6 h from creation.
    let summary = monitor_at(n0.offset(backoff(2) - MINUTE)).await.unwrap();
    assert_eq!(summary.tasks, 0, "{summary:?}");
    assert_eq!(task(r2.id).await, r2);
    let summary = monitor_at(n0.offset(backoff(2) + MINUTE)).await.unwrap();
    assert_eq!((summary.tasks, summary.completed), (1, 1), "{summary:?}");
    assert_counts_recorded(&fx, &store, &[r2.id], &summary).await;
    assert_eq!(task(r2.id).await.retries, 3);

    // r3 waits 64 h from its creation, 10 h before n0 (so 54 h after n0), and is not stale yet.
    let created = n0.offset(-hours(10));
    let summary = monitor_at(created.offset(backoff(3) - MINUTE))
        .await
        .unwrap();
    assert_eq!(summary.tasks, 0, "{summary:?}");
    assert_eq!(task(r3.id).await, r3);
    let summary = monitor_at(created.offset(backoff(3) + MINUTE))
        .await
        .unwrap();
    assert_eq!((summary.tasks, summary.completed), (1, 1), "{summary:?}");
    assert_counts_recorded(&fx, &store, &[r3.id], &summary).await;
    assert_eq!(task(r3.id).await.retries, 4);

    assert_eq!(
        task(live).await,
        live_task,
        "the live worker's lease still holds"
    );
    assert_eq!(statuses(&store).await.get("failed"), None);
}

#[tokio::test]
async fn reconciliation_does_not_duplicate_intervals_already_queued() {
    let fx = Fixture::sqlite();
    let pipeline = fx.pipeline().await;
    // 2025-10-04T13:00Z: the three complete nights 20251001..=20251003 hold the fixture's two.
    let clock = Arc::new(ManualClock::new(utc("2025-10-04T13:00:00")));
    let store = fx.store(clock).await;
    let reconcile = ReconcileOptions {
        window_days: 3,
        include_current_night: false,
        interval_minutes: 5,
        timewindow_minutes: 1,
    };
    let run = run_options("monitor:2");
    // Shut down before processing: the tasks are created, none is claimed.
    let (tx, stopped) = watch::channel(true);
    let (created, summary) = pipeline
        .reconcile(&store, &fx.repo, &reconcile, &run, stopped)
        .await
        .unwrap();
    drop(tx);
    assert!(created > 2, "{created}");
    assert_eq!((summary.tasks, summary.released), (0, 0), "{summary:?}");
    let tasks = all_tasks(&store).await;
    assert_eq!(tasks.len(), created);
    assert!(
        tasks.iter().all(|t| t.status == TaskStatus::Idle),
        "{tasks:?}"
    );
    // One of them fails, another is running elsewhere: every unfinished task still counts.
    fail_once(&store, tasks[0].id, "setup").await;
    let live = store
        .claim_ids(&[tasks[1].id], "live:1", Duration::from_secs(3600))
        .await
        .unwrap()
        .into_value();
    assert_eq!(live.len(), 1);

    // ConsDB still lacks everything, but each missing interval is already queued: nothing is
    // created, and the idle tasks the first run left are processed (not the failed one, which
    // waits for its retry backoff, nor the one running elsewhere).
    let (again, summary) = pipeline
        .reconcile(&store, &fx.repo, &reconcile, &run, no_shutdown())
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert_eq!(summary.tasks, created - 2, "{summary:?}");
    assert_eq!(summary.completed, created - 2, "{summary:?}");
    let tasks = all_tasks(&store).await;
    assert_eq!(tasks.len(), created);
    assert_eq!(tasks[0].status, TaskStatus::Failed);
    assert_eq!(tasks[1].status, TaskStatus::Running);
}
