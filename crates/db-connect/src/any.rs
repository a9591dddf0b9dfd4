//! One connection type for both backends, chosen by the URL.

use diesel_async::AsyncPgConnection;

use crate::error::DbError;
use crate::sqlite::{AsyncSqliteConnection, connect_sqlite};
use crate::url::DbUrl;
use crate::{connect_postgres, credentials};

/// A connection to PostgreSQL or SQLite.
pub enum AnyConnection {
    /// PostgreSQL.
    Postgres(Box<AsyncPgConnection>),
    /// SQLite.
    Sqlite(Box<AsyncSqliteConnection>),
}

impl std::fmt::Debug for AnyConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnyConnection::Postgres(_) => "AnyConnection::Postgres",
            AnyConnection::Sqlite(_) => "AnyConnection::Sqlite",
        })
    }
}

/// Opens a connection for a ConsDB-style URL: the URL's own parts only, no libpq variables (so the
/// Butler's `PG*` settings are never applied to ConsDB), and `db-auth.yaml` when `db_auth` is given.
pub async fn connect_any(
    url: &DbUrl,
    db_auth: Option<&credentials::DbAuth>,
    read_only: bool,
) -> Result<AnyConnection, DbError> {
    match url {
        DbUrl::Postgres(target) => {
            let target = credentials::resolve_postgres(target.clone(), &|_| None, db_auth, false)?;
            Ok(AnyConnection::Postgres(Box::new(
                connect_postgres(&target, read_only).await?,
            )))
        }
        DbUrl::Sqlite(path) => Ok(AnyConnection::Sqlite(Box::new(connect_sqlite(
            path.as_deref(),
            read_only,
        )?))),
    }
}
