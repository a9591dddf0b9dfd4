//! Replicas: they receive the primary's rows with the primary's ids; one that is down never stops
//! the primary, is counted and named by host only (never its URL or password), and catches up
//! with the rows that change after it returns. A primary that is down is a transient error.

use db_connect::DbUrl;
use scheduler_store::{Completion, SchedulerStore, Selection, Task, TaskId, TaskStatus};
use test_support::Postgres;

use crate::common::{Fixture, Kind, REPO, at, secs, spec};

fn idle() -> Selection {
    Selection::Idle {
        repo: REPO.into(),
        range: None,
    }
}

async fn dump(store: &SchedulerStore, ids: std::ops::RangeInclusive<i32>) -> Vec<Option<Task>> {
    let mut tasks = Vec::new();
    for id in ids {
        tasks.push(store.task(TaskId(id)).await.unwrap());
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_receive_the_primary_s_rows() {
    let f = Fixture::new(Kind::Postgres);
    let primary = f.database();
    let pg_replica = f.database();
    let sqlite_replica = DbUrl::Sqlite(Some(f.dir.path().join("replica.db")));
    let urls = [primary.clone(), pg_replica.clone(), sqlite_replica.clone()];
    let store = SchedulerStore::open(&urls, f.options()).await.unwrap();

    let created = store
        .create_tasks(at(0), at(30), &spec(5, TaskStatus::Idle))
        .await
        .unwrap();
    assert!(created.replica_failures.is_empty());
    assert_eq!(created.value.len(), 6);
    let claimed = store.claim(&idle(), "w", secs(60), 4).await.unwrap();
    assert!(claimed.replica_failures.is_empty());
    let ids: Vec<TaskId> = claimed.value.iter().map(|t| t.id).collect();
    f.clock.advance(secs(5));
    assert!(store.heartbeat(ids[0], "w", secs(120)).await.unwrap().value);
    let done = Completion {
        exposures: 4,
        visits1: 1,
        replica_failures: 0,
        timings: Some(scheduler_store::PhaseTimings {
            efd: std::time::Duration::from_millis(250),
            ..Default::default()
        }),
    };
    assert!(store.complete(ids[0], "w", done).await.unwrap().value);
    assert!(store.fail(ids[1], "w", "boom").await.unwrap().value);
    assert!(store.release(ids[2], "w").await.unwrap().value);
    assert!(store.fail(ids[3], "w", "again").await.unwrap().value);
    assert_eq!(store.mark_stale(&[ids[3]]).await.unwrap().value.len(), 1);
    f.clock.advance(secs(3600));
    store.recover_expired_leases().await.unwrap().into_value();
    assert_eq!(store.replica_failure_count(), 0);

    let expected = dump(&store, 1..=7).await;
    assert!(expected[..6].iter().all(Option::is_some) && expected[6].is_none());
    for replica in [&pg_replica, &sqlite_replica] {
        let on_replica = f.store(replica).await;
        assert_eq!(dump(&on_replica, 1..=7).await, expected, "{replica}");
        // The replica's ids continue after the primary's (its sequence was moved on).
        let next = on_replica
            .create_tasks(at(100), at(105), &spec(5, TaskStatus::Idle))
            .await
            .unwrap()
            .into_value();
        assert_eq!(next[0].id, TaskId(7), "{replica}");
    }
}

#[tokio::test]
async fn a_replica_that_is_down_never_stops_the_primary() {
    const PASSWORD: &str = "Repl1ca-S3cret-pw";
    let (logs, _guard) = test_support::capture_logs();
    let mut f = Fixture::new(Kind::Postgres);
    let primary = f.database();
    let mut replica_server = Postgres::start();
    replica_server.create_database("replica");
    let replica_text = format!(
        "postgresql://postgres:{PASSWORD}@127.0.0.1:{}/replica",
        replica_server.port()
    );
    let replica = DbUrl::parse(&replica_text).unwrap();
    let host = format!("127.0.0.1:{}", replica_server.port());
    let urls = [primary.clone(), replica.clone()];
    let store = SchedulerStore::open(&urls, f.options()).await.unwrap();
    assert_eq!(store.replica_failure_count(), 0);

    replica_server.stop();
    // The primary goes on; each change reports the replica, by host only.
    let created = store
        .create_tasks(at(0), at(10), &spec(5, TaskStatus::Idle))
        .await
        .unwrap();
    assert_eq!(created.value.len(), 2);
    assert_eq!(created.replica_failures.len(), 1);
    assert_eq!(created.replica_failures[0].replica, host);
    let claimed = store.claim_next(&idle(), "w", secs(60)).await.unwrap();
    let task = claimed.value.unwrap();
    assert_eq!(claimed.replica_failures.len(), 1, "skipped while down");
    assert!(claimed.replica_failures[0].error.contains("skipped"));
    let completed = store
        .complete(task.id, "w", Completion::default())
        .await
        .unwrap();
    assert!(completed.value);
    assert_eq!(completed.replica_failures.len(), 1);
    assert_eq!(store.replica_failure_count(), 3);
    assert_eq!(
        store.task(task.id).await.unwrap().unwrap().status,
        TaskStatus::Completed
    );
    // A second store opened while the replica is down opens, and counts it.
    let second = SchedulerStore::open(&urls, f.options()).await.unwrap();
    assert_eq!(second.replica_failure_count(), 1);
    drop(second);

    let shown: String = [
        &created.replica_failures,
        &claimed.replica_failures,
        &completed.replica_failures,
    ]
    .iter()
    .flat_map(|failures| failures.iter())
    .map(|failure| format!("{failure} {failure:?}"))
    .collect();
    let logged = logs.text();
    assert!(
        logged.contains("Scheduler replica write failed."),
        "{logged}"
    );
    assert!(logged.contains(&host), "{logged}");
    for text in [&shown, &logged] {
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(!text.contains(&replica_text), "{text}");
        assert!(!text.contains(&replica.redacted()), "{text}");
        assert!(!text.contains("/replica"), "{text}");
    }

    // Back up: after the retry delay, the next change reaches it, whole rows included.
    replica_server.restart();
    f.clock.advance(secs(61));
    let next = store.claim_next(&idle(), "w", secs(60)).await.unwrap();
    assert!(
        next.replica_failures.is_empty(),
        "{:?}",
        next.replica_failures
    );
    let next = next.value.unwrap();
    let finished = store
        .complete(next.id, "w", Completion::default())
        .await
        .unwrap();
    assert!(finished.replica_failures.is_empty());
    let on_replica = f.store(&replica).await;
    assert_eq!(
        on_replica.task(next.id).await.unwrap(),
        store.task(next.id).await.unwrap(),
        "a row created while the replica was down arrives with its next change"
    );
    assert_eq!(
        on_replica.task(task.id).await.unwrap(),
        None,
        "no back-fill of untouched rows"
    );

    // The primary down is an error, and a transient one.
    f.pg.as_mut().unwrap().stop();
    let err = store
        .create_tasks(at(20), at(30), &spec(5, TaskStatus::Idle))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains(&primary.redacted()), "{err}");
}

#[tokio::test]
async fn an_unreachable_sqlite_replica_is_counted_by_file() {
    let f = Fixture::new(Kind::Sqlite);
    let primary = f.database();
    let missing = f.dir.path().join("no-such-dir").join("replica.db");
    let urls = [primary, DbUrl::Sqlite(Some(missing.clone()))];
    let store = SchedulerStore::open(&urls, f.options()).await.unwrap();
    assert_eq!(store.replica_failure_count(), 1);
    let created = store
        .create_tasks(at(0), at(5), &spec(5, TaskStatus::Idle))
        .await
        .unwrap();
    assert_eq!(created.value.len(), 1);
    assert_eq!(created.replica_failures.len(), 1);
    assert_eq!(
        created.replica_failures[0].replica,
        missing.display().to_string()
    );
}
