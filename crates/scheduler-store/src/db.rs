//! One database (the primary or a replica): its connection, opened lazily and replaced when lost,
//! explicit transactions, and statements with error mapping.
//!
//! SQLite has no schemas. The task tables live in a separate database file beside the main one,
//! `<main file stem>.<schema>.sqlite3`, attached to every connection under the schema's name, so
//! statements say `"efd_scheduler"."latiss"` on both backends (see the crate docs).
//!
//! Transactions are plain `BEGIN` / `COMMIT` statements: `BEGIN ISOLATION LEVEL READ COMMITTED`
//! (plus a transaction-scoped advisory lock when asked) on PostgreSQL, `BEGIN IMMEDIATE` on SQLite,
//! which takes the write lock at once. If an operation is cancelled inside a transaction, the next
//! operation finds the marker still set and replaces the connection, which ends the transaction.

use std::path::{Path, PathBuf};

use db_connect::{AnyConnection, DbAuth, DbUrl, connect_any};
use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel::sqlite::Sqlite;
use diesel_async::{RunQueryDsl as _, SimpleAsyncConnection as _};

use crate::error::{Failure, SchedulerError, classify};
use crate::sql::{Backend, Sql};

/// A database and its (lazily opened) connection.
pub(crate) struct Db {
    url: DbUrl,
    /// How messages name the database: the redacted URL, or the host only for replicas.
    shown: String,
    /// The schema attached on SQLite.
    schema: String,
    db_auth: Option<DbAuth>,
    conn: Option<AnyConnection>,
    /// A transaction was begun and not yet finished.
    in_transaction: bool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("database", &self.shown)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl Db {
    /// A database named `shown` in messages; nothing is opened yet.
    pub(crate) fn new(url: DbUrl, shown: String, schema: &str, db_auth: Option<DbAuth>) -> Db {
        Db {
            url,
            shown,
            schema: schema.to_owned(),
            db_auth,
            conn: None,
            in_transaction: false,
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self.url {
            DbUrl::Postgres(_) => Backend::Postgres,
            DbUrl::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The database as messages show it.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Drops a connection left inside a transaction by a cancelled operation. Call before each
    /// operation.
    pub(crate) fn start_operation(&mut self) {
        if self.in_transaction {
            tracing::warn!(
                message = "Dropping a connection left in a transaction by a cancelled operation.",
                event = "connection_dropped",
                database = %self.shown
            );
            self.conn = None;
            self.in_transaction = false;
        }
    }

    /// Whether a connection is open.
    pub(crate) fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Forgets the connection, so the next statement opens a new one.
    pub(crate) fn disconnect(&mut self) {
        self.conn = None;
        self.in_transaction = false;
    }

    /// Opens the connection if there is none.
    pub(crate) async fn connection(&mut self) -> Result<&mut AnyConnection, SchedulerError> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.open().await?,
        };
        Ok(self.conn.insert(conn))
    }

    async fn open(&self) -> Result<AnyConnection, SchedulerError> {
        let mut conn = connect_any(&self.url, self.db_auth.as_ref(), false)
            .await
            .map_err(|e| SchedulerError::from_db(&self.shown, e))?;
        if let (AnyConnection::Sqlite(sqlite), DbUrl::Sqlite(main)) = (&mut conn, &self.url) {
            let file = sqlite_schema_file(main.as_deref(), &self.schema);
            let mut attach = Sql::new(format!("ATTACH DATABASE ? AS \"{}\"", self.schema));
            attach.text(file.to_string_lossy().into_owned());
            attach
                .boxed::<Sqlite>(Backend::Sqlite)
                .execute(sqlite.as_mut())
                .await
                .map_err(|e| SchedulerError::Connect {
                    target: self.shown.clone(),
                    message: format!("cannot attach {}: {e}", file.display()),
                    transient: classify(&e) != Failure::Permanent,
                })?;
        }
        Ok(conn)
    }

    /// Runs a query and reads its rows.
    pub(crate) async fn load<R>(
        &mut self,
        operation: &'static str,
        sql: &Sql,
    ) -> Result<Vec<R>, SchedulerError>
    where
        R: QueryableByName<Pg> + QueryableByName<Sqlite> + Send + 'static,
    {
        let backend = self.backend();
        let result = match self.connection().await? {
            AnyConnection::Postgres(conn) => {
                sql.boxed::<Pg>(backend).load::<R>(conn.as_mut()).await
            }
            AnyConnection::Sqlite(conn) => {
                sql.boxed::<Sqlite>(backend).load::<R>(conn.as_mut()).await
            }
        };
        result.map_err(|e| self.query_error(operation, &e))
    }

    /// Runs a statement and returns the number of rows it touched.
    pub(crate) async fn execute(
        &mut self,
        operation: &'static str,
        sql: &Sql,
    ) -> Result<usize, SchedulerError> {
        let backend = self.backend();
        let result = match self.connection().await? {
            AnyConnection::Postgres(conn) => sql.boxed::<Pg>(backend).execute(conn.as_mut()).await,
            AnyConnection::Sqlite(conn) => {
                sql.boxed::<Sqlite>(backend).execute(conn.as_mut()).await
            }
        };
        result.map_err(|e| self.query_error(operation, &e))
    }

    /// Runs statements without binds.
    pub(crate) async fn batch(
        &mut self,
        operation: &'static str,
        text: &str,
    ) -> Result<(), SchedulerError> {
        let result = match self.connection().await? {
            AnyConnection::Postgres(conn) => conn.batch_execute(text).await,
            AnyConnection::Sqlite(conn) => conn.batch_execute(text).await,
        };
        result.map_err(|e| self.query_error(operation, &e))
    }

    /// Begins a write transaction; on PostgreSQL, takes the advisory lock `lock` (held until the
    /// transaction ends). SQLite's `BEGIN IMMEDIATE` serialises all writers already.
    pub(crate) async fn begin(
        &mut self,
        operation: &'static str,
        lock: Option<i64>,
    ) -> Result<(), SchedulerError> {
        self.start_operation();
        match self.backend() {
            Backend::Postgres => {
                self.batch(operation, "BEGIN ISOLATION LEVEL READ COMMITTED")
                    .await?;
                self.in_transaction = true;
                if let Some(key) = lock {
                    let mut sql = Sql::new("SELECT pg_advisory_xact_lock(?)");
                    sql.bigint(key);
                    if let Err(e) = self.execute(operation, &sql).await {
                        return self.finish(operation, Err(e)).await;
                    }
                }
            }
            Backend::Sqlite => {
                self.batch(operation, "BEGIN IMMEDIATE").await?;
                self.in_transaction = true;
            }
        }
        Ok(())
    }

    /// Commits when `result` is `Ok`, else rolls back; returns `result` (or the commit's error).
    pub(crate) async fn finish<T>(
        &mut self,
        operation: &'static str,
        result: Result<T, SchedulerError>,
    ) -> Result<T, SchedulerError> {
        if !self.in_transaction || self.conn.is_none() {
            // The connection was lost: the server ended the transaction.
            self.in_transaction = false;
            return result;
        }
        let outcome = match result {
            Ok(value) => match self.batch(operation, "COMMIT").await {
                Ok(()) => Ok(value),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if outcome.is_err() && self.conn.is_some() {
            // After a failed statement, or a COMMIT that SQLite refused (busy), end the
            // transaction; if even that fails, drop the connection.
            if self.batch(operation, "ROLLBACK").await.is_err() {
                self.conn = None;
            }
        }
        self.in_transaction = false;
        outcome
    }

    fn query_error(
        &mut self,
        operation: &'static str,
        e: &diesel::result::Error,
    ) -> SchedulerError {
        let failure = classify(e);
        if failure == Failure::Broken {
            self.disconnect();
        }
        SchedulerError::Query {
            target: self.shown.clone(),
            operation,
            message: e.to_string(),
            transient: failure != Failure::Permanent,
        }
    }
}

/// The SQLite file holding `schema`: `<dir>/<stem>.<schema>.sqlite3` beside the main file, or an
/// in-memory database when the main one is in memory.
pub fn sqlite_schema_file(main: Option<&Path>, schema: &str) -> PathBuf {
    match main {
        None => PathBuf::from(":memory:"),
        Some(main) => {
            let stem = main
                .file_stem()
                .map_or_else(|| "consdb".into(), |s| s.to_string_lossy().into_owned());
            main.with_file_name(format!("{stem}.{schema}.sqlite3"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_schema_files_sit_beside_the_main_file() {
        assert_eq!(
            sqlite_schema_file(Some(Path::new("/data/consdb.db")), "efd_scheduler"),
            PathBuf::from("/data/consdb.efd_scheduler.sqlite3")
        );
        assert_eq!(
            sqlite_schema_file(Some(Path::new("rel/x")), "s"),
            PathBuf::from("rel/x.s.sqlite3")
        );
        assert_eq!(sqlite_schema_file(None, "s"), PathBuf::from(":memory:"));
    }
}
