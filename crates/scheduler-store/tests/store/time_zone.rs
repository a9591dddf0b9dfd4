//! Time: every stored timestamp is naive UTC from the application's clock, whatever the
//! PostgreSQL server's or database's `TimeZone`; SQLite stores SQLAlchemy's text form.

use db_connect::DbUrl;
use scheduler_store::{Selection, TaskStatus};
use transform_core::UtcNanos;

use crate::common::{Fixture, Kind, MINUTE, REPO, T0, at, secs, spec};

/// 2029-01-01T00:00:00Z: after the server's wall clock, before the fake clock's 2030.
const Y2029: UtcNanos = UtcNanos(1_861_920_000_000_000_000);
/// 2030-01-01T00:00:00Z.
const Y2030: UtcNanos = UtcNanos(1_893_456_000_000_000_000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_timestamps_are_utc_whatever_the_server_zone() {
    let f = Fixture::new(Kind::Postgres);
    let pg = f.pg.as_ref().unwrap();
    pg.psql("postgres", "ALTER SYSTEM SET timezone = 'Asia/Tokyo'");
    pg.psql("postgres", "SELECT pg_reload_conf()");
    pg.create_database("santiago");
    pg.psql(
        "postgres",
        "ALTER DATABASE santiago SET TIME ZONE 'America/Santiago'",
    );
    assert_eq!(
        pg.psql("santiago", "SHOW TimeZone").trim(),
        "America/Santiago"
    );
    let url = DbUrl::parse(&pg.url("santiago")).unwrap();
    let store = f.store(&url).await;

    let tasks = store
        .create_tasks(at(0), at(10), &spec(5, TaskStatus::Pending))
        .await
        .unwrap()
        .into_value();
    assert_eq!(tasks[0].created_at, Some(T0));
    // Read by a session in Santiago time, the stored values are the UTC ones.
    let stored = f.lines(
        &url,
        "SELECT start_time::text || '|' || end_time::text || '|' || created_at::text AS line \
         FROM efd_scheduler.latiss ORDER BY id",
    );
    assert_eq!(
        stored,
        [
            "2025-06-01 00:00:00|2025-06-01 00:05:00|2025-06-01 00:00:00",
            "2025-06-01 00:05:00|2025-06-01 00:10:00|2025-06-01 00:00:00",
        ]
    );

    // Claims and leases, too.
    f.clock.set(at(30));
    let due = Selection::DuePending {
        repo: REPO.into(),
        margin: secs(300),
    };
    let claimed = store
        .claim_next(&due, "w", secs(60))
        .await
        .unwrap()
        .value
        .unwrap();
    assert_eq!(claimed.process_start, Some(at(30)));
    let stored = f.lines(
        &url,
        &format!(
            "SELECT process_start_time::text || '|' || lease_expires_at::text AS line \
             FROM efd_scheduler.latiss WHERE id = {}",
            claimed.id
        ),
    );
    assert_eq!(stored, ["2025-06-01 00:30:00|2025-06-01 00:31:00"]);

    // "Now" is the application's clock, never the server's: with the clock in 2030, tasks of
    // 2029 are due (the server's now() is years earlier), and leases run out on the clock.
    store
        .create_tasks(
            Y2029,
            Y2029.offset(5 * MINUTE),
            &spec(5, TaskStatus::Pending),
        )
        .await
        .unwrap()
        .into_value();
    assert_eq!(store.due_pending(REPO, secs(300)).await.unwrap().len(), 1);
    f.clock.set(Y2030);
    assert_eq!(store.due_pending(REPO, secs(300)).await.unwrap().len(), 2);
    assert_eq!(store.recover_expired_leases().await.unwrap().value.len(), 1);

    // Tables this store creates default created_at to UTC for other writers too (the Python
    // DDL's CURRENT_TIMESTAMP would give Santiago's wall time here).
    pg.psql(
        "santiago",
        "INSERT INTO efd_scheduler.latiss (start_time, end_time, status, butler_repo) \
         VALUES ('2025-01-01', '2025-01-01 00:05', 'idle', 'x')",
    );
    let skew = f.lines(
        &url,
        "SELECT (abs(extract(epoch FROM created_at - (now() AT TIME ZONE 'UTC'))) < 600)::text \
         || '|' || (CURRENT_TIMESTAMP::timestamp = (now() AT TIME ZONE 'UTC'))::text AS line \
         FROM efd_scheduler.latiss WHERE butler_repo = 'x'",
    );
    assert_eq!(skew, ["true|false"]);
}

#[tokio::test]
async fn sqlite_stores_sqlalchemy_text_in_utc() {
    let f = Fixture::new(Kind::Sqlite);
    let (url, store) = f.fresh().await;
    let start = T0.offset(1_234_000);
    store
        .create_tasks(start, start.offset(5 * MINUTE), &spec(5, TaskStatus::Idle))
        .await
        .unwrap()
        .into_value();
    let stored = f.lines(
        &url,
        "SELECT start_time || '|' || end_time || '|' || created_at AS line FROM efd_scheduler.latiss",
    );
    assert_eq!(
        stored,
        ["2025-06-01 00:00:00.001234|2025-06-01 00:05:00.001234|2025-06-01 00:00:00.000000"]
    );
    // The scheduler tables are in their own file beside the main one.
    let DbUrl::Sqlite(Some(main)) = &url else {
        unreachable!()
    };
    assert!(scheduler_store::sqlite_schema_file(Some(main), "efd_scheduler").is_file());
    assert_eq!(
        scheduler_store::sqlite_schema_file(Some(main), "efd_scheduler")
            .file_name()
            .unwrap(),
        "db0.efd_scheduler.sqlite3"
    );
}
