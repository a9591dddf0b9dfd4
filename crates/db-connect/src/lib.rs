//! Database URLs, credentials and connections, shared by the crates that read or write databases.
//!
//! - [`DbUrl`] parses SQLAlchemy-style URLs (`postgresql://`, `postgresql+psycopg2://`, `sqlite:///`)
//!   into a [`PgTarget`] or an SQLite path, taking any password out into a `Secret` at once.
//! - [`credentials`] fills what a URL leaves out as the LSST stack and libpq do: `db-auth.yaml`
//!   ([`DbAuth`]) and the `PG*` variables.
//! - [`connect_postgres`] (rustls TLS per `sslmode`) and [`connect_sqlite`] open diesel-async
//!   connections, read-only when asked; [`connect_any`] picks the backend from a [`DbUrl`] as ConsDB
//!   URLs need it (no libpq variables).
//!
//! Invariant: nothing here formats a password into a string; errors name databases by
//! [`PgTarget::redacted`].

mod any;
pub mod credentials;
mod error;
mod pg;
mod sqlite;
mod url;

pub use any::{AnyConnection, connect_any};
pub use credentials::{DbAuth, resolve_postgres};
pub use error::DbError;
pub use pg::connect_postgres;
pub use sqlite::{AsyncSqliteConnection, connect_sqlite};
pub use url::{DbUrl, PgTarget, SslMode};
