//! Owns the ConsDB `efd_<instrument>` schemas: DDL and additive migrations from the column config,
//! Felis YAML, and wide and unpivoted upserts to a primary and its replicas.
//!
//! Only this crate knows the ConsDB DDL and writes its tables. The principal types and how they
//! connect:
//!
//! - [`EfdSchema`] is the layout a [`transform_core::Config`] implies for one instrument: four
//!   [`TableSpec`]s (`exposure_efd`, `visit1_efd` and their `_unpivoted` twins) of [`ColumnSpec`]s
//!   typed by [`SqlType`], with the same names, types and keys as the Python service's tables, so
//!   the tool runs against the existing ConsDB unchanged. Every name in it is an [`Ident`]
//!   (`[a-z_][a-z0-9_]*`, checked again here even though the config loader checked it, and always
//!   double-quoted in SQL).
//! - [`FelisSchema`] is the Felis document of a schema (`schema/efd_<instrument>.yaml`), built from
//!   serde structs; [`EfdSchema::create_statements`] is its DDL.
//! - [`ConsDb`] holds the connections: the first URL is the primary, the others replicas.
//!   [`ConsDb::missing`] and [`ConsDb::plan_migration`] compare the primary with the schema without
//!   side effects ([`MigrationPlan`]: [`Missing`] items, [`Extra`] items, the SQL that adds what is
//!   missing); [`ConsDb::migrate`] creates what is missing on every database, or only returns the
//!   SQL in [`MigrateMode::DryRun`].
//! - [`WideBatch`] and [`UnpivotedBatch`] carry rows to [`ConsDb::upsert_wide`] and
//!   [`ConsDb::upsert_unpivoted`], which return a [`WriteOutcome`] (rows written on the primary,
//!   absent columns, replica failures). A wide batch names the columns it carries: those are written
//!   (`None` as NULL), the others are absent and left untouched.
//! - [`ConsDb::ids_for_day_obs`] and [`ConsDb::select_rows`] read back what is stored.
//! - [`WriterError`] is the one error type; [`WriterError::is_transient`] separates retryable
//!   failures (connection lost, deadlock, serialization) from permanent ones. No message holds a
//!   password: databases are named by host (and port) or SQLite file.
//!
//! Upserts bind values at run time (`diesel::sql_query(..).into_boxed()`): on PostgreSQL one
//! `unnest` array per column, so a batch of any size is one statement; on SQLite multi-row
//! `VALUES` batches under its bind limit ([`SQLITE_MAX_BINDS`] ÷ columns rows per statement). A
//! batch runs in one transaction per database.
//!
//! SQLite mapping: SQLite has no schemas, so `efd_<instrument>` is a second database file beside
//! the main one, `<main file stem>.<schema>.sqlite3` in the main file's directory
//! ([`sqlite_schema_path`]), attached under the schema's name. The SQL then names
//! `"efd_latiss"."exposure_efd"` on both backends. The scheduler store uses the same file naming.
//!
//! ```no_run
//! # async fn demo(config: &transform_core::Config) -> Result<(), consdb_writer::WriterError> {
//! use consdb_writer::{ConsDb, EfdSchema, ItemKey, MigrateMode, WideBatch};
//! use transform_core::{Instrument, Table, UtcNanos};
//!
//! let schema = EfdSchema::new(config, Instrument::Latiss)?;
//! let urls = [db_connect::DbUrl::parse("sqlite:////tmp/consdb.db")?];
//! let mut db = ConsDb::connect(schema, &urls, None).await?;
//! db.migrate(MigrateMode::Apply).await?;
//! let mut batch = WideBatch::new(Table::ExposureEfd, ["at_mount_jitter_azimuth"]);
//! batch.push(ItemKey { day_obs: 20240101, seq_num: 1, id: 2024010100001 }, vec![Some(0.1)]);
//! let outcome = db.upsert_wide(&batch, UtcNanos(1_704_067_200_000_000_000)).await?;
//! assert_eq!(outcome.rows, 1);
//! # Ok(()) }
//! ```

mod connection;
mod ddl;
mod error;
mod felis;
mod ident;
mod migrate;
mod read;
mod rows;
mod schema;
mod upsert;
mod writer;

pub use connection::sqlite_schema_path;
pub use error::WriterError;
pub use felis::{FelisColumn, FelisConstraint, FelisSchema, FelisTable, FelisVersion};
pub use ident::{Ident, MAX_IDENTIFIER_BYTES};
pub use migrate::{Extra, MigrationPlan, Missing};
pub use read::{Presence, PresenceRow, Row, Value};
pub use rows::{ItemKey, UnpivotedBatch, UnpivotedRow, WideBatch, WideRow};
pub use schema::{
    Backend, ColumnDefault, ColumnRole, ColumnSpec, EfdSchema, SqlType, TableSpec, UniqueSpec,
};
pub use upsert::{PG_MAX_ROWS, SQLITE_MAX_BINDS};
pub use writer::{ConsDb, MigrateMode, MigrationReport, ReplicaFailure, WriteOutcome};
