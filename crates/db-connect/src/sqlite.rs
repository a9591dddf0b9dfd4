//! SQLite connections through diesel-async's `SyncConnectionWrapper`.

use std::path::Path;

use diesel::SqliteConnection;
use diesel::connection::Connection as _;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;

use crate::error::DbError;

/// An SQLite connection usable from async code.
pub type AsyncSqliteConnection = SyncConnectionWrapper<SqliteConnection>;

/// Opens an SQLite database (`None`: in memory). With `read_only` the file is opened read-only and
/// must exist; otherwise it is created if missing.
pub fn connect_sqlite(
    path: Option<&Path>,
    read_only: bool,
) -> Result<AsyncSqliteConnection, DbError> {
    let shown = path.map_or_else(|| ":memory:".to_owned(), |p| p.display().to_string());
    let uri = match path {
        None => ":memory:".to_owned(),
        Some(p) => {
            if read_only && !p.is_file() {
                return Err(DbError::Connect {
                    target: shown,
                    message: "no such SQLite file".to_owned(),
                    transient: false,
                });
            }
            let mode = if read_only { "ro" } else { "rwc" };
            format!("file:{}?mode={mode}", uri_escape(&p.to_string_lossy()))
        }
    };
    let mut conn = SqliteConnection::establish(&uri).map_err(|e| DbError::Connect {
        target: shown.clone(),
        message: e.to_string(),
        transient: false,
    })?;
    // Wait for a writer instead of failing at once when several workers share the file.
    diesel::RunQueryDsl::execute(diesel::sql_query("PRAGMA busy_timeout = 30000"), &mut conn)
        .map_err(|e| DbError::Connect {
            target: shown,
            message: e.to_string(),
            transient: false,
        })?;
    Ok(SyncConnectionWrapper::new(conn))
}

/// Escapes the characters SQLite URI filenames reserve.
fn uri_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' | '?' | '#' | ' ' => out.push_str(&format!("%{:02X}", u32::from(c))),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use diesel_async::RunQueryDsl as _;

    #[tokio::test]
    async fn read_only_files_must_exist_and_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a b?.db");
        assert!(connect_sqlite(Some(&path), true).is_err());
        let mut rw = connect_sqlite(Some(&path), false).unwrap();
        diesel::sql_query("CREATE TABLE t (x INTEGER)")
            .execute(&mut rw)
            .await
            .unwrap();
        drop(rw);
        let mut ro = connect_sqlite(Some(&path), true).unwrap();
        let err = diesel::sql_query("INSERT INTO t VALUES (1)")
            .execute(&mut ro)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
    }
}
