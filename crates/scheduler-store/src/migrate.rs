//! Embedded, versioned, additive migrations of a task table, per backend.
//!
//! | version | change |
//! |---|---|
//! | 1 | the table as the Python service creates it (Felis `efd_scheduler.yaml`, alembic `25e0b617aab8`); skipped when it exists |
//! | 2 | lease columns: `claimed_by`, `lease_expires_at`, `previous_status`, `last_error_at`, `replica_failures` |
//! | 3 | indexes for the store's selections (`(butler_repo, start_time, end_time)`, `(butler_repo, end_time)`, `(status, lease_expires_at)`) |
//! | 4 | phase timings of the last successful attempt, in milliseconds: `butler_ms`, `efd_ms`, `transform_ms`, `write_ms`, `scheduler_ms` |
//!
//! Applied versions are recorded per table in `<schema>.transformed_efd_migrations`. A migration
//! runs in one transaction, under a PostgreSQL advisory lock per schema (or SQLite's
//! `BEGIN IMMEDIATE`), so two processes migrating at once apply each version once. Every step
//! checks the catalog before changing anything (existing schema, table, columns), so a database
//! that is already up to date needs no privilege beyond reading, and a table created by the
//! Python service gains only the new columns and indexes: its columns, defaults and rows are left
//! alone.

use crate::db::Db;
use crate::error::SchedulerError;
use crate::model::SchedulerTable;
use crate::sql::{Backend, Count, Name, Sql, Version};
use crate::timestamp::DbTime;

/// The name of the table recording applied versions, in the task table's schema.
pub const MIGRATIONS_TABLE: &str = "transformed_efd_migrations";

/// The newest migration this build knows.
pub const SCHEMA_VERSION: i32 = 4;

const DESCRIPTIONS: [&str; 4] = [
    "task table as created by the Python service",
    "lease columns: claimed_by, lease_expires_at, previous_status, last_error_at, replica_failures",
    "indexes for selections by repository, time and lease",
    "phase timings: butler_ms, efd_ms, transform_ms, write_ms, scheduler_ms",
];

/// The reference's columns (BEHAVIOUR.md §3.1) with their PostgreSQL and SQLite definitions and
/// Felis descriptions.
const BASE_COLUMNS: [(&str, &str, &str, &str); 14] = [
    (
        "id",
        "SERIAL NOT NULL",
        "INTEGER NOT NULL",
        "Unique ID, auto-incremented",
    ),
    (
        "start_time",
        "TIMESTAMP WITHOUT TIME ZONE",
        "TIMESTAMP",
        "Start time of transformation interval, must be provided",
    ),
    (
        "end_time",
        "TIMESTAMP WITHOUT TIME ZONE",
        "TIMESTAMP",
        "End time of transformation interval, must be provided",
    ),
    (
        "timewindow",
        "INTEGER",
        "INTEGER",
        "Time window to expand start/end times by (minutes)",
    ),
    (
        "status",
        "CHAR(20) DEFAULT 'pending'",
        "CHAR(20) DEFAULT 'pending'",
        "Process status, default 'pending'",
    ),
    (
        "process_start_time",
        "TIMESTAMP WITHOUT TIME ZONE",
        "TIMESTAMP",
        "Timestamp when process started",
    ),
    (
        "process_end_time",
        "TIMESTAMP WITHOUT TIME ZONE",
        "TIMESTAMP",
        "Timestamp when process ended",
    ),
    (
        "process_exec_time",
        "INTEGER DEFAULT 0",
        "INTEGER DEFAULT 0",
        "Execution time in seconds, default 0",
    ),
    (
        "exposures",
        "INTEGER DEFAULT 0",
        "INTEGER DEFAULT 0",
        "Number of exposures processed, default 0",
    ),
    (
        "visits1",
        "INTEGER DEFAULT 0",
        "INTEGER DEFAULT 0",
        "Number of visits recorded, default 0",
    ),
    (
        "retries",
        "INTEGER DEFAULT 0",
        "INTEGER DEFAULT 0",
        "Number of retries attempted, default 0",
    ),
    ("error", "TEXT", "TEXT", "Error message, if any"),
    (
        "butler_repo",
        "TEXT",
        "TEXT",
        "Butler repository the task reads",
    ),
    // The Python DDL says CURRENT_TIMESTAMP, which PostgreSQL evaluates in the session's zone
    // (BEHAVIOUR.md §11 E10). This store always writes created_at itself; tables it creates get a
    // default that is UTC for other writers too. SQLite's CURRENT_TIMESTAMP is UTC already.
    (
        "created_at",
        "TIMESTAMP WITHOUT TIME ZONE DEFAULT (CURRENT_TIMESTAMP AT TIME ZONE 'UTC')",
        "TIMESTAMP DEFAULT CURRENT_TIMESTAMP",
        "Timestamp when record was created (UTC)",
    ),
];

/// The columns version 2 adds.
const LEASE_COLUMNS: [(&str, &str, &str, &str); 5] = [
    (
        "claimed_by",
        "TEXT",
        "TEXT",
        "Worker that holds (while running) or last held the task",
    ),
    (
        "lease_expires_at",
        "TIMESTAMP WITHOUT TIME ZONE",
        "TIMESTAMP",
        "End of the running worker's lease (UTC)",
    ),
    (
        "previous_status",
        "CHAR(20)",
        "CHAR(20)",
        "Status before the current claim, restored on release",
    ),
    (
        "last_error_at",
        "TIMESTAMP WITHOUT TIME ZONE",
        "TIMESTAMP",
        "When the task last failed (UTC)",
    ),
    (
        "replica_failures",
        "INTEGER",
        "INTEGER",
        "ConsDB replicas that failed during the last successful attempt",
    ),
];

/// The columns version 4 adds.
const TIMING_COLUMNS: [(&str, &str, &str, &str); 5] = [
    (
        "butler_ms",
        "INTEGER",
        "INTEGER",
        "Milliseconds the last successful attempt read the Butler registry",
    ),
    (
        "efd_ms",
        "INTEGER",
        "INTEGER",
        "Milliseconds the last successful attempt waited for the EFD",
    ),
    (
        "transform_ms",
        "INTEGER",
        "INTEGER",
        "Milliseconds the last successful attempt computed values",
    ),
    (
        "write_ms",
        "INTEGER",
        "INTEGER",
        "Milliseconds the last successful attempt wrote ConsDB rows",
    ),
    (
        "scheduler_ms",
        "INTEGER",
        "INTEGER",
        "Milliseconds the last successful attempt spent claiming and renewing its lease",
    ),
];

/// The indexes version 3 adds: name suffix and columns.
const INDEXES: [(&str, &str); 3] = [
    ("repo_start_idx", "butler_repo, start_time, end_time"),
    ("repo_end_idx", "butler_repo, end_time"),
    ("status_lease_idx", "status, lease_expires_at"),
];

/// 64-bit FNV-1a, for advisory lock keys that are the same in every process and build.
pub(crate) fn lock_key(text: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Brings `table` on `db` to [`SCHEMA_VERSION`]; returns the versions applied (empty when it was
/// up to date).
pub(crate) async fn migrate(
    db: &mut Db,
    table: &SchedulerTable,
    now: DbTime,
) -> Result<Vec<i32>, SchedulerError> {
    const OP: &str = "migrate the scheduler table";
    let key = lock_key(&format!("transformed-efd:migrate:{}", table.schema()));
    db.begin(OP, Some(key)).await?;
    let result = apply(db, table, now).await;
    db.finish(OP, result).await
}

async fn apply(
    db: &mut Db,
    table: &SchedulerTable,
    now: DbTime,
) -> Result<Vec<i32>, SchedulerError> {
    const OP: &str = "migrate the scheduler table";
    let backend = db.backend();
    let schema = table.schema();
    if backend == Backend::Postgres {
        let mut sql =
            Sql::new("SELECT COUNT(*) AS n FROM pg_catalog.pg_namespace WHERE nspname = ?");
        sql.text(schema.to_owned());
        if count(db, OP, &sql).await? == 0 {
            db.batch(OP, &format!("CREATE SCHEMA \"{schema}\"")).await?;
        }
    }
    let versions_table = SchedulerTable::new(schema, MIGRATIONS_TABLE)?;
    if !table_exists(db, &versions_table).await? {
        let time = timestamp_type(backend);
        db.batch(
            OP,
            &format!(
                "CREATE TABLE {} (table_name TEXT NOT NULL, version INTEGER NOT NULL, \
                 description TEXT NOT NULL, applied_at {time} NOT NULL, \
                 PRIMARY KEY (table_name, version))",
                versions_table.qualified()
            ),
        )
        .await?;
    }
    let applied = applied_versions(db, table).await?;
    let mut done = Vec::new();
    for version in 1..=SCHEMA_VERSION {
        if applied.contains(&version) {
            continue;
        }
        match version {
            1 => create_table(db, table).await?,
            2 => add_columns(db, table, &LEASE_COLUMNS, "add the lease columns").await?,
            3 => add_indexes(db, table).await?,
            _ => add_columns(db, table, &TIMING_COLUMNS, "add the timing columns").await?,
        }
        let mut record = Sql::new(format!(
            "INSERT INTO {} (table_name, version, description, applied_at) VALUES (?, ?, ?, ?)",
            versions_table.qualified()
        ));
        record
            .text(table.table().to_owned())
            .int(version)
            .text(DESCRIPTIONS[(version - 1) as usize].to_owned())
            .time(now);
        db.execute(OP, &record).await?;
        done.push(version);
    }
    Ok(done)
}

/// Checks, without changing anything, that `table` is at [`SCHEMA_VERSION`].
pub(crate) async fn verify(db: &mut Db, table: &SchedulerTable) -> Result<(), SchedulerError> {
    let versions_table = SchedulerTable::new(table.schema(), MIGRATIONS_TABLE)?;
    let applied = if table_exists(db, &versions_table).await? {
        applied_versions(db, table).await?
    } else {
        Vec::new()
    };
    let missing: Vec<i32> = (1..=SCHEMA_VERSION)
        .filter(|v| !applied.contains(v))
        .collect();
    if missing.is_empty() && table_exists(db, table).await? {
        return Ok(());
    }
    Err(SchedulerError::Schema {
        target: db.shown().to_owned(),
        message: format!(
            "{table} lacks migrations {missing:?} (of {SCHEMA_VERSION}); open the store with migrations enabled"
        ),
    })
}

async fn applied_versions(db: &mut Db, table: &SchedulerTable) -> Result<Vec<i32>, SchedulerError> {
    let versions_table = SchedulerTable::new(table.schema(), MIGRATIONS_TABLE)?;
    let mut sql = Sql::new(format!(
        "SELECT version FROM {} WHERE table_name = ?",
        versions_table.qualified()
    ));
    sql.text(table.table().to_owned());
    let rows: Vec<Version> = db.load("read applied migrations", &sql).await?;
    Ok(rows.into_iter().map(|r| r.version).collect())
}

fn timestamp_type(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "TIMESTAMP WITHOUT TIME ZONE",
        Backend::Sqlite => "TIMESTAMP",
    }
}

async fn count(db: &mut Db, operation: &'static str, sql: &Sql) -> Result<i64, SchedulerError> {
    let rows: Vec<Count> = db.load(operation, sql).await?;
    Ok(rows.first().map_or(0, |r| r.n))
}

async fn table_exists(db: &mut Db, table: &SchedulerTable) -> Result<bool, SchedulerError> {
    let sql = match db.backend() {
        Backend::Postgres => {
            let mut sql = Sql::new(
                "SELECT COUNT(*) AS n FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace \
                 WHERE s.nspname = ? AND c.relname = ? AND c.relkind IN ('r', 'p')",
            );
            sql.text(table.schema().to_owned())
                .text(table.table().to_owned());
            sql
        }
        Backend::Sqlite => {
            let mut sql = Sql::new(format!(
                "SELECT COUNT(*) AS n FROM \"{}\".sqlite_master WHERE type = 'table' AND name = ?",
                table.schema()
            ));
            sql.text(table.table().to_owned());
            sql
        }
    };
    Ok(count(db, "look up a table", &sql).await? > 0)
}

/// The table's column names.
pub(crate) async fn columns(
    db: &mut Db,
    table: &SchedulerTable,
) -> Result<Vec<String>, SchedulerError> {
    let sql = match db.backend() {
        Backend::Postgres => {
            let mut sql = Sql::new(
                "SELECT a.attname::text AS name FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                 JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace \
                 WHERE s.nspname = ? AND c.relname = ? AND a.attnum > 0 AND NOT a.attisdropped",
            );
            sql.text(table.schema().to_owned())
                .text(table.table().to_owned());
            sql
        }
        Backend::Sqlite => {
            let mut sql = Sql::new("SELECT name FROM pragma_table_info(?, ?)");
            sql.text(table.table().to_owned())
                .text(table.schema().to_owned());
            sql
        }
    };
    let rows: Vec<Name> = db.load("read the table's columns", &sql).await?;
    Ok(rows.into_iter().filter_map(|r| r.name).collect())
}

/// Version 1: the Python service's table, unless it exists (then its columns are checked).
async fn create_table(db: &mut Db, table: &SchedulerTable) -> Result<(), SchedulerError> {
    const OP: &str = "create the scheduler table";
    let backend = db.backend();
    if table_exists(db, table).await? {
        let present = columns(db, table).await?;
        let missing: Vec<&str> = BASE_COLUMNS
            .iter()
            .map(|c| c.0)
            .filter(|c| !present.iter().any(|p| p == c))
            .collect();
        if !missing.is_empty() {
            return Err(SchedulerError::Schema {
                target: db.shown().to_owned(),
                message: format!("{table} exists but lacks the scheduler columns {missing:?}"),
            });
        }
        return Ok(());
    }
    let columns: Vec<String> = BASE_COLUMNS
        .iter()
        .map(|(name, pg, sqlite, _)| match backend {
            Backend::Postgres => format!("{name} {pg}"),
            Backend::Sqlite => format!("{name} {sqlite}"),
        })
        .collect();
    let mut ddl = format!(
        "CREATE TABLE {} ({}, PRIMARY KEY (id));",
        table.qualified(),
        columns.join(", ")
    );
    if backend == Backend::Postgres {
        ddl.push_str(&format!(
            "COMMENT ON TABLE {} IS 'Scheduler for {}.';",
            table.qualified(),
            table.table()
        ));
        for (name, _, _, description) in BASE_COLUMNS {
            ddl.push_str(&comment(table, name, description));
        }
    }
    db.batch(OP, &ddl).await
}

fn comment(table: &SchedulerTable, column: &str, description: &str) -> String {
    format!(
        "COMMENT ON COLUMN {}.{column} IS '{}';",
        table.qualified(),
        description.replace('\'', "''")
    )
}

/// Versions 2 and 4: the `added` columns that are not there yet (with their comments on PostgreSQL).
async fn add_columns(
    db: &mut Db,
    table: &SchedulerTable,
    added: &[(&str, &str, &str, &str)],
    operation: &'static str,
) -> Result<(), SchedulerError> {
    let backend = db.backend();
    let present = columns(db, table).await?;
    let mut ddl = String::new();
    for &(name, pg, sqlite, description) in added {
        if present.iter().any(|p| p == name) {
            continue;
        }
        let definition = match backend {
            Backend::Postgres => pg,
            Backend::Sqlite => sqlite,
        };
        ddl.push_str(&format!(
            "ALTER TABLE {} ADD COLUMN {name} {definition};",
            table.qualified()
        ));
        if backend == Backend::Postgres {
            ddl.push_str(&comment(table, name, description));
        }
    }
    if ddl.is_empty() {
        return Ok(());
    }
    db.batch(operation, &ddl).await
}

/// Version 3: the indexes.
async fn add_indexes(db: &mut Db, table: &SchedulerTable) -> Result<(), SchedulerError> {
    const OP: &str = "add the indexes";
    let mut ddl = String::new();
    for (suffix, columns) in INDEXES {
        let name = format!("{}_{suffix}", table.table());
        ddl.push_str(&match db.backend() {
            Backend::Postgres => format!(
                "CREATE INDEX IF NOT EXISTS \"{name}\" ON {} ({columns});",
                table.qualified()
            ),
            Backend::Sqlite => format!(
                "CREATE INDEX IF NOT EXISTS \"{}\".\"{name}\" ON \"{}\" ({columns});",
                table.schema(),
                table.table()
            ),
        });
    }
    db.batch(OP, &ddl).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_fnv1a() {
        // FNV-1a 64 of "" and "a" (reference values).
        assert_eq!(lock_key("") as u64, 0xcbf2_9ce4_8422_2325);
        assert_eq!(lock_key("a") as u64, 0xaf63_dc4c_8601_ec8c);
        assert_ne!(
            lock_key("transformed-efd:migrate:a"),
            lock_key("transformed-efd:migrate:b")
        );
    }

    #[test]
    fn every_version_has_a_description() {
        assert_eq!(DESCRIPTIONS.len(), SCHEMA_VERSION as usize);
        assert!(INDEXES.iter().all(|(s, _)| s.len() + 1 + 40 <= 63));
    }
}
