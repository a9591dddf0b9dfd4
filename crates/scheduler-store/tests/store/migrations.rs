//! Migrations: a table created by the Python service (its DDL written out here as Felis and
//! alembic create it) keeps its columns and rows and gains only the new columns; migrating is
//! idempotent, safe from two processes at once, recorded per table, and can be required instead
//! of run.

use scheduler_store::{SchedulerError, SchedulerStore, SchedulerTable, TaskStatus};

use crate::common::{Fixture, Kind, REPO, both_backends, secs};

both_backends!(
    migrating_a_python_service_table_adds_only_columns,
    migrations_can_be_required_instead_of_run,
);

/// `felis create` / alembic `25e0b617aab8` on PostgreSQL (SQLAlchemy's DDL for
/// `efd_scheduler.yaml`).
const PYTHON_DDL_POSTGRES: &str = "
CREATE SCHEMA efd_scheduler;
CREATE TABLE efd_scheduler.latiss (
    id SERIAL NOT NULL,
    start_time TIMESTAMP WITHOUT TIME ZONE,
    end_time TIMESTAMP WITHOUT TIME ZONE,
    timewindow INTEGER,
    status CHAR(20) DEFAULT 'pending',
    process_start_time TIMESTAMP WITHOUT TIME ZONE,
    process_end_time TIMESTAMP WITHOUT TIME ZONE,
    process_exec_time INTEGER DEFAULT 0,
    exposures INTEGER DEFAULT 0,
    visits1 INTEGER DEFAULT 0,
    retries INTEGER DEFAULT 0,
    error TEXT,
    butler_repo TEXT,
    created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id)
);
COMMENT ON TABLE efd_scheduler.latiss IS 'Scheduler for latiss.';
COMMENT ON COLUMN efd_scheduler.latiss.id IS 'Unique ID, auto-incremented';
COMMENT ON COLUMN efd_scheduler.latiss.status IS 'Process status, default ''pending''';
";

/// The same through SQLAlchemy's SQLite dialect (in the attached scheduler file).
const PYTHON_DDL_SQLITE: &str = "
CREATE TABLE efd_scheduler.latiss (
    id INTEGER NOT NULL,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    timewindow INTEGER,
    status CHAR(20) DEFAULT 'pending',
    process_start_time TIMESTAMP,
    process_end_time TIMESTAMP,
    process_exec_time INTEGER DEFAULT 0,
    exposures INTEGER DEFAULT 0,
    visits1 INTEGER DEFAULT 0,
    retries INTEGER DEFAULT 0,
    error TEXT,
    butler_repo TEXT,
    created_at TIMESTAMP DEFAULT (CURRENT_TIMESTAMP),
    PRIMARY KEY (id)
);
";

/// Rows as the Python service leaves them (server-side defaults for the rest).
const PYTHON_ROWS: &str = "
INSERT INTO efd_scheduler.latiss (start_time, end_time, timewindow, status, butler_repo)
    VALUES ('2025-05-01 00:00:00', '2025-05-01 00:05:00', 1, 'pending', 'REPO');
INSERT INTO efd_scheduler.latiss (start_time, end_time, timewindow, status, butler_repo,
    process_start_time, process_end_time, process_exec_time, exposures, visits1)
    VALUES ('2025-05-01 00:05:00', '2025-05-01 00:10:00', 1, 'completed', 'REPO',
    '2025-05-01 00:16:00', '2025-05-01 00:16:09', 9, 12, 7);
INSERT INTO efd_scheduler.latiss (start_time, end_time, timewindow, status, butler_repo,
    retries, error, created_at)
    VALUES ('2025-05-01 00:10:00', '2025-05-01 00:15:00', 1, 'failed', 'REPO', 2,
    'Task interrupted', '2025-05-31 23:00:00');
";

const NEW_COLUMNS: [&str; 10] = [
    "claimed_by",
    "lease_expires_at",
    "previous_status",
    "last_error_at",
    "replica_failures",
    "butler_ms",
    "efd_ms",
    "transform_ms",
    "write_ms",
    "scheduler_ms",
];

fn columns_sql(kind: Kind, table: &str) -> String {
    match kind {
        Kind::Postgres => format!(
            "SELECT column_name || '|' || data_type || '|' || coalesce(column_default, '') AS line \
             FROM information_schema.columns WHERE table_schema = 'efd_scheduler' \
             AND table_name = '{table}' ORDER BY ordinal_position"
        ),
        Kind::Sqlite => format!(
            "SELECT name || '|' || type || '|' || coalesce(dflt_value, '') AS line \
             FROM pragma_table_info('{table}', 'efd_scheduler') ORDER BY cid"
        ),
    }
}

const ROWS_SQL: &str = "SELECT CAST(id AS TEXT) || '|' || CAST(start_time AS TEXT) || '|' || \
    CAST(end_time AS TEXT) || '|' || status || '|' || CAST(retries AS TEXT) || '|' || \
    coalesce(error, '') || '|' || butler_repo || '|' || CAST(created_at AS TEXT) || '|' || \
    coalesce(CAST(exposures AS TEXT), '') AS line FROM efd_scheduler.latiss ORDER BY id";

const VERSIONS_SQL: &str = "SELECT table_name || '|' || CAST(version AS TEXT) AS line \
    FROM efd_scheduler.transformed_efd_migrations ORDER BY table_name, version";

async fn migrating_a_python_service_table_adds_only_columns(f: &Fixture) {
    let url = f.database();
    let ddl = match f.kind {
        Kind::Postgres => PYTHON_DDL_POSTGRES,
        Kind::Sqlite => PYTHON_DDL_SQLITE,
    };
    f.exec(&url, ddl);
    f.exec(&url, &PYTHON_ROWS.replace("'REPO'", &format!("'{REPO}'")));
    let columns_before = f.lines(&url, &columns_sql(f.kind, "latiss"));
    let rows_before = f.lines(&url, ROWS_SQL);
    assert_eq!(columns_before.len(), 14);
    assert_eq!(rows_before.len(), 3);

    // Two processes migrate at once.
    let (a, b) = tokio::join!(
        SchedulerStore::open(std::slice::from_ref(&url), f.options()),
        SchedulerStore::open(std::slice::from_ref(&url), f.options()),
    );
    let (store, _other) = (a.unwrap(), b.unwrap());

    let columns_after = f.lines(&url, &columns_sql(f.kind, "latiss"));
    assert_eq!(
        columns_after[..14],
        columns_before[..],
        "existing columns untouched"
    );
    let added: Vec<&str> = columns_after[14..]
        .iter()
        .map(|l| l.split('|').next().unwrap())
        .collect();
    assert_eq!(added, NEW_COLUMNS);
    if f.kind == Kind::Postgres {
        let types: Vec<&str> = columns_after[14..]
            .iter()
            .map(|l| l.split('|').nth(1).unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "text",
                "timestamp without time zone",
                "character",
                "timestamp without time zone",
                "integer",
                "integer",
                "integer",
                "integer",
                "integer",
                "integer"
            ]
        );
    }
    assert_eq!(f.lines(&url, ROWS_SQL), rows_before, "rows kept");
    assert_eq!(
        f.lines(&url, VERSIONS_SQL),
        ["latiss|1", "latiss|2", "latiss|3", "latiss|4"]
    );

    // Idempotent: opening again changes nothing.
    drop(f.store(&url).await);
    assert_eq!(
        f.lines(&url, columns_sql(f.kind, "latiss").as_str()),
        columns_after
    );
    assert_eq!(f.lines(&url, VERSIONS_SQL).len(), 4);

    // The old rows work: trimmed statuses, the failed task retried, the pending one claimed.
    let old = store
        .task(scheduler_store::TaskId(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (old.status, old.claimed_by.clone()),
        (TaskStatus::Pending, None)
    );
    let failed = store.failed_tasks(REPO, 3).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (failed[0].retries, failed[0].error.as_deref()),
        (2, Some("Task interrupted"))
    );
    let claimed = store
        .claim_ids(&[old.id, failed[0].id], "pod", secs(60))
        .await
        .unwrap()
        .into_value();
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[1].retries, 3);
    // New tasks continue the existing ids.
    let new = store
        .create_tasks(
            crate::common::at(0),
            crate::common::at(5),
            &crate::common::spec(5, TaskStatus::Idle),
        )
        .await
        .unwrap()
        .into_value();
    assert_eq!(new[0].id.0, 4);

    // Another instrument's table in the same schema has its own versions.
    let lsstcam = f.options();
    let lsstcam = scheduler_store::StoreOptions {
        table: SchedulerTable::new("efd_scheduler", "lsstcam").unwrap(),
        ..lsstcam
    };
    SchedulerStore::open(std::slice::from_ref(&url), lsstcam)
        .await
        .unwrap();
    assert_eq!(
        f.lines(&url, VERSIONS_SQL),
        [
            "latiss|1",
            "latiss|2",
            "latiss|3",
            "latiss|4",
            "lsstcam|1",
            "lsstcam|2",
            "lsstcam|3",
            "lsstcam|4"
        ]
    );
    assert_eq!(f.lines(&url, &columns_sql(f.kind, "lsstcam")).len(), 24);
}

async fn migrations_can_be_required_instead_of_run(f: &Fixture) {
    let url = f.database();
    let mut no_migrations = f.options();
    no_migrations.migrate = false;
    let err = SchedulerStore::open(std::slice::from_ref(&url), no_migrations.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, SchedulerError::Schema { .. }), "{err:?}");
    assert!(
        err.to_string().contains("lacks migrations [1, 2, 3, 4]"),
        "{err}"
    );
    assert!(!err.is_transient());

    f.store(&url).await;
    SchedulerStore::open(std::slice::from_ref(&url), no_migrations)
        .await
        .unwrap();

    // A table by that name that is not a scheduler table is refused, and nothing is recorded.
    f.exec(
        &url,
        "CREATE TABLE efd_scheduler.lsstcam (id INTEGER PRIMARY KEY, start_time TIMESTAMP)",
    );
    let lsstcam = scheduler_store::StoreOptions {
        table: SchedulerTable::new("efd_scheduler", "lsstcam").unwrap(),
        ..f.options()
    };
    let err = SchedulerStore::open(std::slice::from_ref(&url), lsstcam)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("lacks the scheduler columns"),
        "{err}"
    );
    assert_eq!(
        f.lines(&url, VERSIONS_SQL),
        ["latiss|1", "latiss|2", "latiss|3", "latiss|4"]
    );
    assert!(
        SchedulerStore::open(&[], f.options()).await.is_err(),
        "at least one URL"
    );
}
