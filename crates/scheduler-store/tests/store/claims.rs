//! Selections, claims, leases and the owner's changes: exclusive claims under concurrency, lease
//! expiry with a fake clock, stale owners refused, retries counted once, staleness and the
//! monitor's summary.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use scheduler_store::{
    ABANDONED, Completion, LEASE_EXPIRED, PhaseTimings, Selection, TaskId, TaskStatus,
};

use crate::common::{Fixture, Kind, REPO, at, both_backends, secs, spec};

both_backends!(
    selections_pick_the_right_tasks_in_order,
    claims_record_owner_lease_and_retries,
    eight_claimers_claim_each_task_once,
    a_dead_worker_loses_its_claim,
    stale_tasks_and_the_summary,
);

fn idle(range: Option<(transform_core::UtcNanos, transform_core::UtcNanos)>) -> Selection {
    Selection::Idle {
        repo: REPO.into(),
        range,
    }
}

fn failed(max_retries: i32) -> Selection {
    Selection::Failed {
        repo: REPO.into(),
        max_retries,
    }
}

async fn selections_pick_the_right_tasks_in_order(f: &Fixture) {
    let (_, store) = f.fresh().await;
    // Twelve pending tasks over the last hour; with a 5-minute margin, eleven are due.
    let pending = store
        .create_tasks(at(-60), at(0), &spec(5, TaskStatus::Pending))
        .await
        .unwrap()
        .into_value();
    let due = store.due_pending(REPO, secs(300)).await.unwrap();
    assert_eq!(due.len(), 11);
    assert_eq!(due[0].end, at(-55), "oldest first");
    assert!(due.windows(2).all(|w| w[0].end < w[1].end));
    assert_eq!(due.last().unwrap().end, at(-5));
    assert_eq!(store.due_pending(REPO, secs(0)).await.unwrap().len(), 12);
    assert!(
        store
            .due_pending("/repo/other", secs(0))
            .await
            .unwrap()
            .is_empty()
    );

    // Idle tasks by start; a range selects what create_tasks made for it, including the last
    // task that ends after the range.
    let made = store
        .create_tasks(at(1000), at(1090), &spec(60, TaskStatus::Idle))
        .await
        .unwrap()
        .into_value();
    store
        .create_tasks(at(2000), at(2060), &spec(60, TaskStatus::Idle))
        .await
        .unwrap()
        .into_value();
    let all = store.idle_tasks(REPO, None).await.unwrap();
    assert_eq!(
        all.iter().map(|t| t.start).collect::<Vec<_>>(),
        vec![at(1000), at(1060), at(2000)]
    );
    let ranged = store
        .idle_tasks(REPO, Some((at(1000), at(1090))))
        .await
        .unwrap();
    assert_eq!(ranged, made);
    let later = store
        .idle_tasks(REPO, Some((at(1030), at(1090))))
        .await
        .unwrap();
    assert_eq!(
        later.iter().map(|t| t.start).collect::<Vec<_>>(),
        vec![at(1060)]
    );

    // Failed tasks by created_at, then id, with retries <= max.
    f.clock.advance(secs(60));
    let newer = store
        .create_tasks(at(3000), at(3010), &spec(10, TaskStatus::Idle))
        .await
        .unwrap()
        .into_value();
    let ids = [newer[0].id, pending[3].id, pending[1].id];
    store
        .claim_ids(&ids, "w", secs(60))
        .await
        .unwrap()
        .into_value();
    for id in ids {
        assert!(store.fail(id, "w", "boom").await.unwrap().value);
    }
    let order: Vec<TaskId> = store
        .failed_tasks(REPO, 3)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(order, vec![pending[1].id, pending[3].id, newer[0].id]);
    // One more failure of pending[1]: retries 1, still selected with max 1, not with max 0.
    store
        .claim_next(&failed(3), "w", secs(60))
        .await
        .unwrap()
        .into_value();
    assert!(store.fail(pending[1].id, "w", "again").await.unwrap().value);
    let with_one = store.failed_tasks(REPO, 1).await.unwrap();
    assert_eq!(with_one[0].id, pending[1].id);
    assert_eq!(with_one[0].retries, 1);
    let with_none: Vec<TaskId> = store
        .failed_tasks(REPO, 0)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(with_none, vec![pending[3].id, newer[0].id]);

    // The last task of the repository has the latest end.
    assert_eq!(
        store.last_task(REPO).await.unwrap().unwrap().id,
        newer[0].id
    );
}

async fn claims_record_owner_lease_and_retries(f: &Fixture) {
    let (_, store) = f.fresh().await;
    let tasks = store
        .create_tasks(at(0), at(50), &spec(10, TaskStatus::Idle))
        .await
        .unwrap()
        .into_value();
    let lease = secs(90);
    let first = store
        .claim_next(&idle(None), "pod-a", lease)
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(first.id, tasks[0].id, "earliest start first");
    assert_eq!(first.status, TaskStatus::Running);
    assert_eq!(first.claimed_by.as_deref(), Some("pod-a"));
    assert_eq!(first.previous_status, Some(TaskStatus::Idle));
    assert_eq!(first.process_start, Some(at(0)));
    assert_eq!(first.lease_expires_at, Some(at(0).offset(90_000_000_000)));
    assert_eq!(first.retries, 0);
    assert_eq!(store.task(first.id).await.unwrap().unwrap(), first);

    // A batch claim takes the next ones in order; running tasks are not claimed again.
    let batch = store
        .claim(&idle(None), "pod-b", lease, 2)
        .await
        .unwrap()
        .into_value();
    assert_eq!(
        batch.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![tasks[1].id, tasks[2].id]
    );
    let by_id = store
        .claim_ids(&[tasks[0].id, tasks[3].id, TaskId(999_999)], "pod-c", lease)
        .await
        .unwrap()
        .into_value();
    assert_eq!(
        by_id.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![tasks[3].id]
    );
    assert!(
        store
            .claim(&idle(None), "pod-c", lease, 0)
            .await
            .unwrap()
            .value
            .is_empty()
    );

    // Failure, retry claim (retries + 1 in the claim), release (taken back), retry again.
    f.clock.advance(secs(7));
    assert!(
        store
            .fail(first.id, "pod-a", "EFD timeout")
            .await
            .unwrap()
            .value
    );
    let failed_task = store.task(first.id).await.unwrap().unwrap();
    assert_eq!(failed_task.status, TaskStatus::Failed);
    assert_eq!(failed_task.error.as_deref(), Some("EFD timeout"));
    assert_eq!(failed_task.last_error_at, Some(at(0).offset(7_000_000_000)));
    assert_eq!(failed_task.process_exec_time, Some(7));
    assert_eq!(failed_task.lease_expires_at, None);

    let retry = store
        .claim_next(&failed(3), "pod-d", lease)
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(retry.id, first.id);
    assert_eq!(retry.retries, 1);
    assert_eq!(retry.previous_status, Some(TaskStatus::Failed));
    assert_eq!(retry.error, None, "a new attempt starts clean");
    assert!(store.release(retry.id, "pod-d").await.unwrap().value);
    let released = store.task(first.id).await.unwrap().unwrap();
    assert_eq!(released.status, TaskStatus::Failed);
    assert_eq!(
        released.retries, 0,
        "a released claim does not count as a retry"
    );
    assert_eq!(
        (released.claimed_by, released.lease_expires_at),
        (None, None)
    );
    // Releasing an idle claim puts it back to idle.
    assert!(store.release(tasks[1].id, "pod-b").await.unwrap().value);
    assert_eq!(
        store.task(tasks[1].id).await.unwrap().unwrap().status,
        TaskStatus::Idle
    );
    assert!(
        !store.release(tasks[1].id, "pod-b").await.unwrap().value,
        "no longer claimed"
    );

    // Completion: counts, end, duration, no error, straight from running.
    let again = store
        .claim_next(&failed(3), "pod-e", lease)
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(again.retries, 1);
    f.clock.advance(secs(42));
    let timings = PhaseTimings {
        butler: Duration::from_millis(12),
        efd: Duration::from_micros(30_999_900),
        transform: Duration::from_millis(5),
        write: Duration::from_secs(2),
        scheduler: Duration::ZERO,
    };
    let done = Completion {
        exposures: 17,
        visits1: 9,
        replica_failures: 1,
        timings: Some(timings),
    };
    assert!(store.complete(again.id, "pod-e", done).await.unwrap().value);
    let completed = store.task(again.id).await.unwrap().unwrap();
    assert_eq!(completed.status, TaskStatus::Completed);
    assert_eq!(
        (completed.exposures, completed.visits1),
        (Some(17), Some(9))
    );
    assert_eq!(completed.replica_failures, Some(1));
    // Stored in whole milliseconds.
    assert_eq!(
        completed.timings.map(|t| t.millis()),
        Some([12, 30_999, 5, 2_000, 0])
    );
    assert_eq!(completed.process_exec_time, Some(42));
    assert_eq!(completed.process_end, Some(at(0).offset(49_000_000_000)));
    assert_eq!((completed.error, completed.lease_expires_at), (None, None));
    assert_eq!(
        completed.claimed_by.as_deref(),
        Some("pod-e"),
        "the last owner is kept"
    );
    // Finished tasks cannot be claimed, completed or failed again.
    assert!(
        store
            .claim_ids(&[again.id], "pod-f", lease)
            .await
            .unwrap()
            .value
            .is_empty()
    );
    assert!(!store.fail(again.id, "pod-e", "late").await.unwrap().value);
}

async fn eight_claimers_claim_each_task_once(f: &Fixture) {
    const TASKS: usize = 500;
    const CLAIMERS: usize = 8;
    let url = f.database();
    let setup = f.store(&url).await;
    let created = setup
        .create_tasks(at(0), at(TASKS as i64), &spec(1, TaskStatus::Idle))
        .await
        .unwrap()
        .into_value();
    assert_eq!(created.len(), TASKS);
    // Each claimer has its own store, hence its own connection; all start together.
    let mut stores = Vec::new();
    for _ in 0..CLAIMERS {
        stores.push(f.store(&url).await);
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(CLAIMERS));
    let mut claimers = tokio::task::JoinSet::new();
    for (n, store) in stores.into_iter().enumerate() {
        let start = start.clone();
        claimers.spawn(async move {
            start.wait().await;
            let owner = format!("claimer-{n}");
            let mut mine = Vec::new();
            loop {
                // Half claim one at a time, half in batches of three.
                let claimed = if n % 2 == 0 {
                    store
                        .claim_next(&idle(None), &owner, Duration::from_secs(600))
                        .await
                        .unwrap()
                        .value
                        .into_iter()
                        .collect::<Vec<_>>()
                } else {
                    store
                        .claim(&idle(None), &owner, Duration::from_secs(600), 3)
                        .await
                        .unwrap()
                        .into_value()
                };
                if claimed.is_empty() {
                    break;
                }
                for task in claimed {
                    assert_eq!(task.claimed_by.as_deref(), Some(owner.as_str()));
                    mine.push(task.id);
                }
                // Hold no lock while "working", as a worker does: without this
                // pause SQLite's unfair lock may let one claimer take every task,
                // which is correct but proves nothing about competition.
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            (owner, mine)
        });
    }
    let mut seen = HashSet::new();
    let mut owners = HashMap::new();
    let mut busy = 0;
    while let Some(result) = claimers.join_next().await {
        let (owner, mine) = result.unwrap();
        busy += usize::from(!mine.is_empty());
        for id in mine {
            assert!(seen.insert(id), "task {id} claimed twice");
            owners.insert(id, owner.clone());
        }
    }
    assert_eq!(seen.len(), TASKS, "every task claimed");
    assert!(
        busy >= 2,
        "the claimers actually competed ({busy} got tasks)"
    );
    // The table agrees with what each claimer was told.
    let summary = setup.status_summary(Some(REPO), 0).await.unwrap();
    assert_eq!(summary.counts.get("running"), Some(&(TASKS as i64)));
    assert_eq!(summary.running.len(), TASKS);
    for task in summary.running {
        assert_eq!(task.claimed_by.as_ref(), owners.get(&task.id));
    }
}

async fn a_dead_worker_loses_its_claim(f: &Fixture) {
    let url = f.database();
    let worker_a = f.store(&url).await;
    let worker_b = f.store(&url).await;
    let lease = secs(60);
    worker_a
        .create_tasks(at(0), at(5), &spec(5, TaskStatus::Pending))
        .await
        .unwrap()
        .into_value();
    f.clock.set(at(20));
    let due = Selection::DuePending {
        repo: REPO.into(),
        margin: secs(300),
    };
    let task = worker_a
        .claim_next(&due, "a", lease)
        .await
        .unwrap()
        .value
        .unwrap();
    assert!(
        worker_b
            .claim_next(&due, "b", lease)
            .await
            .unwrap()
            .value
            .is_none()
    );

    // A heartbeat at +30 s moves the lease to +90 s; at +80 s nothing has expired.
    f.clock.advance(secs(30));
    assert!(worker_a.heartbeat(task.id, "a", lease).await.unwrap().value);
    assert!(
        !worker_b.heartbeat(task.id, "b", lease).await.unwrap().value,
        "not b's task"
    );
    f.clock.advance(secs(50));
    assert!(
        worker_b
            .recover_expired_leases()
            .await
            .unwrap()
            .value
            .is_empty()
    );
    let live = worker_a.task(task.id).await.unwrap().unwrap();
    assert!(!live.lease_expired(f.clock_now()) && task.lease_expired(f.clock_now()));

    // Worker a dies. Past its lease, the task fails with `lease expired`.
    f.clock.advance(secs(11));
    let recovered = worker_b
        .recover_expired_leases()
        .await
        .unwrap()
        .into_value();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].id, task.id);
    assert_eq!(recovered[0].status, TaskStatus::Failed);
    assert_eq!(recovered[0].error.as_deref(), Some(LEASE_EXPIRED));
    assert!(
        worker_b
            .recover_expired_leases()
            .await
            .unwrap()
            .value
            .is_empty()
    );

    // Worker b retries and finishes it; worker a, back from the dead, can change nothing.
    let retry = worker_b
        .claim_next(&failed(3), "b", lease)
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!((retry.id, retry.retries), (task.id, 1));
    assert!(!worker_a.heartbeat(task.id, "a", lease).await.unwrap().value);
    assert!(
        !worker_a
            .complete(task.id, "a", Completion::default())
            .await
            .unwrap()
            .value
    );
    assert!(!worker_a.fail(task.id, "a", "late").await.unwrap().value);
    assert!(!worker_a.release(task.id, "a").await.unwrap().value);
    assert_eq!(
        worker_a
            .task(task.id)
            .await
            .unwrap()
            .unwrap()
            .claimed_by
            .as_deref(),
        Some("b")
    );
    let counts = Completion {
        exposures: 3,
        visits1: 2,
        replica_failures: 0,
        timings: None,
    };
    assert!(worker_b.complete(task.id, "b", counts).await.unwrap().value);
    let done = worker_a.task(task.id).await.unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(
        (done.exposures, done.visits1, done.retries),
        (Some(3), Some(2), 1)
    );
    assert_eq!(done.error, None);

    // A task left running by the Python service (no owner, no lease) is failed only after the
    // grace period (24 h by default).
    let now_text = scheduler_store::format_utc(f.clock_now())
        .replace('T', " ")
        .replace('Z', "");
    let legacy_sql = format!(
        "INSERT INTO efd_scheduler.latiss (start_time, end_time, status, butler_repo, \
         process_start_time, retries) VALUES ('2025-05-01 00:00:00', '2025-05-01 00:05:00', \
         'running', '{REPO}', '{now_text}', 0)"
    );
    f.exec(&url, &legacy_sql);
    assert!(
        worker_a
            .recover_expired_leases()
            .await
            .unwrap()
            .value
            .is_empty()
    );
    f.clock.advance(secs(24 * 3600 + 1));
    let abandoned = worker_a
        .recover_expired_leases()
        .await
        .unwrap()
        .into_value();
    assert_eq!(abandoned.len(), 1);
    assert_eq!(abandoned[0].error.as_deref(), Some(ABANDONED));
    assert_eq!(abandoned[0].process_exec_time, Some(24 * 3600 + 1));
}

async fn stale_tasks_and_the_summary(f: &Fixture) {
    let (url, store) = f.fresh().await;
    let tasks = store
        .create_tasks(at(0), at(60), &spec(10, TaskStatus::Idle))
        .await
        .unwrap()
        .into_value();
    let ids: Vec<TaskId> = tasks.iter().map(|t| t.id).collect();
    store
        .claim_ids(&ids[..4], "w", secs(600))
        .await
        .unwrap()
        .into_value();
    for (i, id) in ids[..3].iter().enumerate() {
        f.clock.advance(secs(1));
        assert!(
            store
                .fail(*id, "w", &format!("error {i}"))
                .await
                .unwrap()
                .value
        );
    }
    // ids[0] is retried until it has 4 retries (the reference left those failed forever).
    for _ in 0..4 {
        let again = store
            .claim_ids(&ids[..1], "w", secs(600))
            .await
            .unwrap()
            .into_value();
        assert_eq!(again.len(), 1);
        f.clock.advance(secs(1));
        assert!(
            store
                .fail(ids[0], "w", "still failing")
                .await
                .unwrap()
                .value
        );
    }
    assert_eq!(store.task(ids[0]).await.unwrap().unwrap().retries, 4);

    let summary = store.status_summary(Some(REPO), 2).await.unwrap();
    let expected: std::collections::BTreeMap<String, i64> =
        [("failed", 3), ("idle", 2), ("running", 1)]
            .into_iter()
            .map(|(s, n)| (s.to_owned(), n))
            .collect();
    assert_eq!(summary.counts, expected);
    assert_eq!(summary.oldest_pending, None);
    assert_eq!(summary.running.len(), 1);
    assert_eq!(summary.running[0].id, ids[3]);
    assert_eq!(summary.running[0].claimed_by.as_deref(), Some("w"));
    assert!(summary.running[0].lease_expires_at.is_some());
    let recent: Vec<_> = summary
        .recent_failures
        .iter()
        .map(|t| (t.id, t.error.clone().unwrap()))
        .collect();
    assert_eq!(
        recent,
        vec![
            (ids[0], "still failing".to_owned()),
            (ids[2], "error 2".to_owned())
        ],
        "newest failure first"
    );
    assert!(
        store
            .status_summary(Some("/repo/other"), 5)
            .await
            .unwrap()
            .counts
            .is_empty()
    );

    // Too many retries: stale now. Not old enough yet: stays failed.
    let stale = store
        .stale_failed(REPO, secs(72 * 3600), 3)
        .await
        .unwrap()
        .into_value();
    assert_eq!(stale.iter().map(|t| t.id).collect::<Vec<_>>(), vec![ids[0]]);
    assert!(stale.iter().all(|t| t.status == TaskStatus::Stale));
    // 72 h after creation: every failed task of the repository is stale.
    f.clock.set(at(72 * 60));
    let stale = store
        .stale_failed(REPO, secs(72 * 3600), 3)
        .await
        .unwrap()
        .into_value();
    assert_eq!(
        stale.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[1], ids[2]]
    );
    // mark_stale touches failed tasks only.
    assert!(
        store
            .mark_stale(&[ids[3], ids[4]])
            .await
            .unwrap()
            .value
            .is_empty()
    );
    assert_eq!(
        store.task(ids[3]).await.unwrap().unwrap().status,
        TaskStatus::Running
    );
    assert!(store.fail(ids[3], "w", "x").await.unwrap().value);
    let marked = store.mark_stale(&[ids[3]]).await.unwrap().into_value();
    assert_eq!(marked.len(), 1);
    let counts = store.status_summary(None, 0).await.unwrap().counts;
    assert_eq!(counts.get("stale"), Some(&4));
    assert_eq!(counts.get("idle"), Some(&2));
    if f.kind == Kind::Postgres {
        // Stored blank-padded (CHAR(20)), read back trimmed.
        let padded = f.lines(
            &url,
            &format!(
                "SELECT octet_length(status)::text AS line FROM efd_scheduler.latiss WHERE id = {}",
                ids[4]
            ),
        );
        assert_eq!(padded, vec!["20"]);
    }
}
