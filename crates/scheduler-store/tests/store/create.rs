//! Task creation: interval maths, validation, de-duplication against unfinished tasks, concurrent
//! creators, and the cron job's per-repository creation.

use std::collections::HashSet;

use scheduler_store::{
    Completion, SchedulerError, SchedulerStore, Selection, TaskId, TaskSpec, TaskStatus,
};
use transform_core::UtcNanos;

use crate::common::{Fixture, MINUTE, REPO, T0, at, both_backends, secs, spec};

both_backends!(
    creates_the_reference_intervals,
    rejects_bad_requests,
    skips_only_unfinished_duplicates,
    concurrent_creators_make_no_duplicates,
    cron_creation_follows_the_repository,
);

pub(crate) async fn total(store: &SchedulerStore) -> i64 {
    store
        .status_summary(None, 0)
        .await
        .unwrap()
        .counts
        .values()
        .sum()
}

async fn creates_the_reference_intervals(f: &Fixture) {
    let (_, store) = f.fresh().await;
    // 2 h in 1 h tasks: 2 tasks (test_queue_manager.py).
    let tasks = store
        .create_tasks(at(0), at(120), &spec(60, TaskStatus::Idle))
        .await
        .unwrap()
        .into_value();
    let bounds: Vec<_> = tasks.iter().map(|t| (t.start, t.end)).collect();
    assert_eq!(bounds, vec![(at(0), at(60)), (at(60), at(120))]);
    for task in &tasks {
        assert_eq!(task.status, TaskStatus::Idle);
        assert_eq!(task.butler_repo.as_deref(), Some(REPO));
        assert_eq!(task.timewindow, Some(1));
        assert_eq!(task.retries, 0);
        assert_eq!((task.exposures, task.visits1), (Some(0), Some(0)));
        // Written from the application's clock, not the server's.
        assert_eq!(task.created_at, Some(T0));
        assert_eq!(task.claimed_by, None);
    }
    assert!(tasks[0].id < tasks[1].id);
    // What is stored reads back the same.
    assert_eq!(
        store.task(tasks[1].id).await.unwrap().as_ref(),
        Some(&tasks[1])
    );

    // 90 min in 1 h tasks: the last runs past the end.
    let tasks = store
        .create_tasks(at(1000), at(1090), &spec(60, TaskStatus::Pending))
        .await
        .unwrap()
        .into_value();
    let bounds: Vec<_> = tasks.iter().map(|t| (t.start, t.end)).collect();
    assert_eq!(bounds, vec![(at(1000), at(1060)), (at(1060), at(1120))]);
    assert!(tasks.iter().all(|t| t.status == TaskStatus::Pending));

    // Microseconds: a start 1.5 µs past the minute is stored 2 µs past it; 0.4 µs of extra span
    // adds no task.
    let start = UtcNanos(at(2000).0 + 1_500);
    let end = UtcNanos(start.0 + 10 * MINUTE + 400);
    let tasks = store
        .create_tasks(start, end, &spec(5, TaskStatus::Idle))
        .await
        .unwrap()
        .into_value();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].start, UtcNanos(at(2000).0 + 2_000));
    assert_eq!(tasks[1].end, UtcNanos(at(2010).0 + 2_000));
    assert_eq!(total(&store).await, 6);
}

async fn rejects_bad_requests(f: &Fixture) {
    let (_, store) = f.fresh().await;
    fn invalid<T: std::fmt::Debug>(r: Result<T, SchedulerError>) -> String {
        match r {
            Err(e @ SchedulerError::Invalid(_)) => {
                assert!(!e.is_transient());
                e.to_string()
            }
            other => panic!("expected an invalid request, got {other:?}"),
        }
    }
    let e = invalid(
        store
            .create_tasks(at(10), at(10), &spec(5, TaskStatus::Idle))
            .await,
    );
    assert!(e.contains("must be before the end"), "{e}");
    invalid(
        store
            .create_tasks(at(20), at(10), &spec(5, TaskStatus::Idle))
            .await,
    );
    for minutes in [0, -1] {
        let e = invalid(
            store
                .create_tasks(at(0), at(10), &spec(minutes, TaskStatus::Idle))
                .await,
        );
        assert!(e.contains("positive number of minutes"), "{e}");
        invalid(
            store
                .create_cron_tasks(&spec(minutes, TaskStatus::Pending))
                .await,
        );
    }
    let e = invalid(
        store
            .create_tasks(at(0), at(10), &spec(5, TaskStatus::Running))
            .await,
    );
    assert!(e.contains("idle or pending"), "{e}");
    let no_repo = TaskSpec {
        butler_repo: " ".into(),
        ..spec(5, TaskStatus::Idle)
    };
    let e = invalid(store.create_tasks(at(0), at(10), &no_repo).await);
    assert!(e.contains("Butler repository must not be empty"), "{e}");
    invalid(
        store
            .claim_next(
                &Selection::Idle {
                    repo: REPO.into(),
                    range: None,
                },
                "",
                secs(60),
            )
            .await,
    );
    assert_eq!(total(&store).await, 0);
}

async fn skips_only_unfinished_duplicates(f: &Fixture) {
    let (_, store) = f.fresh().await;
    let idle = spec(10, TaskStatus::Idle);
    let first = store
        .create_tasks(at(0), at(40), &idle)
        .await
        .unwrap()
        .into_value();
    assert_eq!(first.len(), 4);
    // Same range again: every interval has an unfinished (idle) task.
    assert!(
        store
            .create_tasks(at(0), at(40), &idle)
            .await
            .unwrap()
            .value
            .is_empty()
    );
    // Pending, running and failed tasks block too, whatever status is asked for.
    let pending = spec(10, TaskStatus::Pending);
    assert!(
        store
            .create_tasks(at(0), at(40), &pending)
            .await
            .unwrap()
            .value
            .is_empty()
    );
    let claimed = store
        .claim_ids(&[first[0].id, first[1].id, first[2].id], "w", secs(60))
        .await
        .unwrap()
        .into_value();
    assert_eq!(claimed.len(), 3);
    assert!(
        store
            .complete(first[0].id, "w", Completion::default())
            .await
            .unwrap()
            .value
    );
    assert!(store.fail(first[1].id, "w", "boom").await.unwrap().value);
    assert_eq!(
        store.mark_stale(&[first[1].id]).await.unwrap().value.len(),
        1
    );
    assert!(store.fail(first[2].id, "w", "boom").await.unwrap().value);
    // Completed and stale are finished: only those two intervals are created again.
    let again = store
        .create_tasks(at(0), at(40), &idle)
        .await
        .unwrap()
        .into_value();
    let bounds: Vec<_> = again.iter().map(|t| (t.start, t.end)).collect();
    assert_eq!(bounds, vec![(at(0), at(10)), (at(10), at(20))]);
    // A partly overlapping range with other bounds is not a duplicate.
    let shifted = store
        .create_tasks(at(5), at(15), &idle)
        .await
        .unwrap()
        .into_value();
    assert_eq!(shifted.len(), 1);
    // Another repository is independent.
    let other = TaskSpec {
        butler_repo: "/repo/other".into(),
        ..idle.clone()
    };
    assert_eq!(
        store
            .create_tasks(at(0), at(40), &other)
            .await
            .unwrap()
            .value
            .len(),
        4
    );
    assert_eq!(total(&store).await, 4 + 2 + 1 + 4);
}

async fn concurrent_creators_make_no_duplicates(f: &Fixture) {
    let url = f.database();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(std::sync::Arc::new(f.store(&url).await));
    }
    let mut creators = tokio::task::JoinSet::new();
    for store in &stores {
        let store = store.clone();
        creators.spawn(async move {
            // One day in 5-minute tasks, the same range from all four at once.
            store
                .create_tasks(at(0), at(24 * 60), &spec(5, TaskStatus::Idle))
                .await
                .unwrap()
                .into_value()
        });
    }
    let mut ids = HashSet::new();
    let mut bounds = HashSet::new();
    while let Some(created) = creators.join_next().await {
        for task in created.unwrap() {
            assert!(ids.insert(task.id), "task {} returned twice", task.id);
            assert!(
                bounds.insert((task.start, task.end)),
                "interval created twice"
            );
        }
    }
    assert_eq!(ids.len(), 288);
    assert_eq!(total(&stores[0]).await, 288);
}

async fn cron_creation_follows_the_repository(f: &Fixture) {
    let (_, store) = f.fresh().await;
    let cron = spec(5, TaskStatus::Pending);
    // Another repository's task ending in the future does not hold this one back (C6).
    let other = TaskSpec {
        butler_repo: "/repo/other".into(),
        ..spec(60, TaskStatus::Idle)
    };
    store
        .create_tasks(at(0), at(24 * 60), &other)
        .await
        .unwrap()
        .into_value();

    // Nothing yet for REPO: one interval ending now.
    let tasks = store.create_cron_tasks(&cron).await.unwrap().into_value();
    let bounds: Vec<_> = tasks.iter().map(|t| (t.start, t.end, t.status)).collect();
    assert_eq!(bounds, vec![(at(-5), at(0), TaskStatus::Pending)]);
    assert_eq!(store.last_task(REPO).await.unwrap().unwrap().end, at(0));

    // 12 minutes later: from the last end to now, in whole intervals (the last one past now).
    f.clock.advance(secs(12 * 60));
    let tasks = store.create_cron_tasks(&cron).await.unwrap().into_value();
    let bounds: Vec<_> = tasks.iter().map(|t| (t.start, t.end)).collect();
    assert_eq!(
        bounds,
        vec![(at(0), at(5)), (at(5), at(10)), (at(10), at(15))]
    );
    // Already scheduled past now: nothing.
    assert!(
        store
            .create_cron_tasks(&cron)
            .await
            .unwrap()
            .value
            .is_empty()
    );
    // 16 minutes: a short gap is stretched to one interval.
    f.clock.set(at(16));
    let tasks = store.create_cron_tasks(&cron).await.unwrap().into_value();
    let bounds: Vec<_> = tasks.iter().map(|t| (t.start, t.end)).collect();
    assert_eq!(bounds, vec![(at(15), at(20))]);
    assert_eq!(store.last_task(REPO).await.unwrap().unwrap().end, at(20));
    assert_eq!(store.last_task("/repo/none").await.unwrap(), None);
    assert_eq!(
        store.task(TaskId(i32::MAX)).await.unwrap(),
        None,
        "unknown ids read as None"
    );
}
