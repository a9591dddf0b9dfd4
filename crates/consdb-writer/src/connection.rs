//! One open ConsDB connection, with its backend, its display label and, on SQLite, the schema's
//! attached database file.
//!
//! SQLite has no schemas. So that the same `"efd_<instrument>"."<table>"` names work on both
//! backends, the schema is a second database file beside the main one,
//! `<main file stem>.<schema>.sqlite3` in the main file's directory ([`sqlite_schema_path`]),
//! attached under the schema's name (`ATTACH DATABASE '…' AS "efd_latiss"`). An in-memory main
//! database gets an in-memory schema. The file is attached when the connection opens if it exists;
//! otherwise the migration's first step attaches (and so creates) it, so checking for what is
//! missing creates nothing.

use std::path::{Path, PathBuf};

use db_connect::{AnyConnection, DbAuth, DbUrl, connect_any};
use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sqlite::Sqlite;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::ddl;
use crate::error::WriterError;
use crate::ident::Ident;
use crate::schema::Backend;

/// The file that holds schema `schema` of the SQLite database `main`:
/// `<dir>/<stem>.<schema>.sqlite3` (`consdb.db` → `consdb.efd_latiss.sqlite3`).
pub fn sqlite_schema_path(main: &Path, schema: &str) -> PathBuf {
    let stem = main
        .file_stem()
        .map_or_else(|| "consdb".into(), |s| s.to_string_lossy().into_owned());
    main.with_file_name(format!("{stem}.{schema}.sqlite3"))
}

/// Statements of one backend, executed together in one transaction.
pub(crate) enum Statements {
    /// PostgreSQL statements.
    Pg(Vec<BoxedSqlQuery<'static, Pg, SqlQuery>>),
    /// SQLite statements.
    Sqlite(Vec<BoxedSqlQuery<'static, Sqlite, SqlQuery>>),
}

/// An open connection to one ConsDB database.
pub(crate) struct Connection {
    inner: AnyConnection,
    label: String,
    schema: Ident,
    /// SQLite: the schema's file (`None` in memory), and whether it is attached.
    sqlite: Option<(Option<PathBuf>, bool)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("database", &self.label)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// How a database is named in logs and errors: the host (and port) for PostgreSQL, never the user
/// or password; the file for SQLite.
pub(crate) fn label(url: &DbUrl) -> String {
    match url {
        DbUrl::Postgres(target) => target.host_only(),
        DbUrl::Sqlite(None) => "sqlite (in memory)".to_owned(),
        DbUrl::Sqlite(Some(path)) => format!("sqlite {}", path.display()),
    }
}

impl Connection {
    /// Connects (no libpq variables; `db_auth` for passwords) and, on SQLite, attaches the schema's
    /// file if it exists.
    pub(crate) async fn open(
        url: &DbUrl,
        db_auth: Option<&DbAuth>,
        schema: &Ident,
    ) -> Result<Connection, WriterError> {
        let inner = connect_any(url, db_auth, false).await?;
        let sqlite = match url {
            DbUrl::Postgres(_) => None,
            DbUrl::Sqlite(main) => Some((
                main.as_deref()
                    .map(|m| sqlite_schema_path(m, schema.as_str())),
                false,
            )),
        };
        let mut conn = Connection {
            inner,
            label: label(url),
            schema: schema.clone(),
            sqlite,
        };
        if let Some((file, _)) = &conn.sqlite
            && file.as_deref().is_none_or(Path::is_file)
        {
            conn.attach().await?;
        }
        Ok(conn)
    }

    /// The backend.
    pub(crate) fn backend(&self) -> Backend {
        match self.inner {
            AnyConnection::Postgres(_) => Backend::Postgres,
            AnyConnection::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The database as shown in logs and errors.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Whether the schema exists as far as the connection can tell without changing anything: on
    /// SQLite, whether its file is attached (PostgreSQL asks the catalog instead).
    pub(crate) fn sqlite_attached(&self) -> Option<bool> {
        self.sqlite.as_ref().map(|(_, attached)| *attached)
    }

    /// The `ATTACH` statement for the schema's file (SQLite).
    pub(crate) fn attach_statement(&self) -> Option<String> {
        self.sqlite.as_ref().map(|(file, _)| {
            let path = file.as_deref().map(|p| {
                let text = p.to_string_lossy().into_owned();
                // A name starting with `file:` would be read as a URI.
                if text.starts_with("file:") {
                    format!("./{text}")
                } else {
                    text
                }
            });
            ddl::create_schema(Backend::Sqlite, &self.schema, path.as_deref())
        })
    }

    /// Attaches the schema's file (creating it), once.
    pub(crate) async fn attach(&mut self) -> Result<(), WriterError> {
        let Some(sql) = self.attach_statement() else {
            return Ok(());
        };
        if self.sqlite_attached() == Some(true) {
            return Ok(());
        }
        self.batch_execute(&sql, "attaching the schema").await?;
        if let Some((_, attached)) = &mut self.sqlite {
            *attached = true;
        }
        Ok(())
    }

    /// Runs SQL text without binds (DDL).
    pub(crate) async fn batch_execute(
        &mut self,
        sql: &str,
        operation: &str,
    ) -> Result<(), WriterError> {
        let result = match &mut self.inner {
            AnyConnection::Postgres(c) => c.batch_execute(sql).await,
            AnyConnection::Sqlite(c) => c.batch_execute(sql).await,
        };
        result.map_err(|e| WriterError::database(operation, &self.label, &e))
    }

    /// Executes statements in one transaction and returns the sum of their row counts.
    pub(crate) async fn execute_all(
        &mut self,
        statements: Statements,
        operation: &str,
    ) -> Result<usize, WriterError> {
        let result: QueryResult<usize> = match (&mut self.inner, statements) {
            (AnyConnection::Postgres(c), Statements::Pg(stmts)) => {
                c.transaction(async move |c| {
                    let mut n = 0;
                    for s in stmts {
                        n += s.execute(c).await?;
                    }
                    Ok(n)
                })
                .await
            }
            (AnyConnection::Sqlite(c), Statements::Sqlite(stmts)) => {
                c.transaction(async move |c| {
                    let mut n = 0;
                    for s in stmts {
                        n += s.execute(c).await?;
                    }
                    Ok(n)
                })
                .await
            }
            _ => {
                return Err(WriterError::Usage {
                    message: "statements built for the other backend".into(),
                });
            }
        };
        result.map_err(|e| WriterError::database(operation, &self.label, &e))
    }

    /// The underlying connection, for reads.
    pub(crate) fn inner(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}
