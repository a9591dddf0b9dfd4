//! [`ConsDb`]: one primary and its replicas, written in order.
//!
//! The first URL is the primary: reads, schema checks and writes go there, and its failure fails
//! the call. The other URLs are replicas, written after the primary with the same statements; a
//! replica's failure is logged with its host only, reported in the result
//! ([`WriteOutcome::replica_failures`]) and does not stop the other replicas (BEHAVIOUR.md §3.4; the
//! reference forgot them, C9). Connections are opened once and kept; one that failed transiently
//! is dropped and opened again on next use.

use std::ops::RangeInclusive;

use db_connect::{DbAuth, DbUrl};
use transform_core::{Table, UtcNanos};

use crate::connection::{self, Connection};
use crate::error::WriterError;
use crate::migrate::{self, MigrationPlan, Missing};
use crate::read::{self, Presence, Row};
use crate::rows::{UnpivotedBatch, WideBatch};
use crate::schema::EfdSchema;
use crate::upsert::Upsert;

/// A replica that could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaFailure {
    /// The replica's host (and port), or its SQLite file.
    pub replica: String,
    /// Why, without credentials.
    pub error: String,
    /// Whether the failure was transient.
    pub transient: bool,
}

/// What one upsert did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteOutcome {
    /// Rows inserted or updated on the primary.
    pub rows: usize,
    /// Config columns of the table that the batch did not carry (left untouched).
    pub absent_columns: usize,
    /// Replicas that failed (the primary was written).
    pub replica_failures: Vec<ReplicaFailure>,
}

impl WriteOutcome {
    /// How many replicas failed.
    pub fn replica_failure_count(&self) -> usize {
        self.replica_failures.len()
    }
}

/// Whether a migration executes its statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateMode {
    /// Create what is missing.
    Apply,
    /// Only compute the plans and their SQL.
    DryRun,
}

/// What a migration found and did on each database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Whether the statements were executed.
    pub applied: bool,
    /// The primary's plan.
    pub primary: MigrationPlan,
    /// The plans of the replicas that could be inspected.
    pub replicas: Vec<MigrationPlan>,
    /// Replicas that could not be inspected or migrated.
    pub replica_failures: Vec<ReplicaFailure>,
}

/// One database and its connection, if open.
#[derive(Debug)]
struct Endpoint {
    url: DbUrl,
    label: String,
    conn: Option<Connection>,
}

impl Endpoint {
    fn new(url: DbUrl) -> Endpoint {
        Endpoint {
            label: connection::label(&url),
            url,
            conn: None,
        }
    }

    async fn connection(
        &mut self,
        db_auth: Option<&DbAuth>,
        schema: &EfdSchema,
    ) -> Result<&mut Connection, WriterError> {
        if self.conn.is_none() {
            self.conn = Some(Connection::open(&self.url, db_auth, schema.name()).await?);
        }
        Ok(self.conn.as_mut().expect("just opened"))
    }

    /// Runs `f` on the connection. A transient failure (connection lost, server restarting) drops
    /// the connection, so the next call reconnects; after a permanent one (a constraint, a bad
    /// value) the transaction was rolled back and the connection is kept (an in-memory SQLite
    /// database lives only as long as its connection).
    async fn run<T>(
        &mut self,
        db_auth: Option<&DbAuth>,
        schema: &EfdSchema,
        f: impl AsyncFnOnce(&mut Connection) -> Result<T, WriterError>,
    ) -> Result<T, WriterError> {
        let conn = self.connection(db_auth, schema).await?;
        let result = f(conn).await;
        if result.as_ref().is_err_and(WriterError::is_transient) {
            self.conn = None;
        }
        result
    }
}

/// The ConsDB databases of one instrument's schema: a primary and its replicas.
#[derive(Debug)]
pub struct ConsDb {
    schema: EfdSchema,
    db_auth: Option<DbAuth>,
    primary: Endpoint,
    replicas: Vec<Endpoint>,
}

impl ConsDb {
    /// Connects to the primary (`urls[0]`) at once; replicas are connected on first use. Passwords
    /// come from the URLs or `db_auth`, never from libpq variables.
    pub async fn connect(
        schema: EfdSchema,
        urls: &[DbUrl],
        db_auth: Option<DbAuth>,
    ) -> Result<ConsDb, WriterError> {
        let Some((first, rest)) = urls.split_first() else {
            return Err(WriterError::Usage {
                message: "no ConsDB URL given".into(),
            });
        };
        let mut db = ConsDb {
            schema,
            db_auth,
            primary: Endpoint::new(first.clone()),
            replicas: rest.iter().cloned().map(Endpoint::new).collect(),
        };
        db.primary
            .connection(db.db_auth.as_ref(), &db.schema)
            .await?;
        Ok(db)
    }

    /// The schema written.
    pub fn schema(&self) -> &EfdSchema {
        &self.schema
    }

    /// The databases as logs name them (primary first): host and port, or SQLite file.
    pub fn databases(&self) -> Vec<String> {
        std::iter::once(&self.primary)
            .chain(&self.replicas)
            .map(|e| e.label.clone())
            .collect()
    }

    /// Compares the primary with the config; changes nothing.
    pub async fn plan_migration(&mut self) -> Result<MigrationPlan, WriterError> {
        let schema = &self.schema;
        self.primary
            .run(self.db_auth.as_ref(), schema, async |c| {
                migrate::plan(c, schema).await
            })
            .await
    }

    /// What the primary lacks, each item with a description ([`Missing`]'s `Display`); changes
    /// nothing.
    pub async fn missing(&mut self) -> Result<Vec<Missing>, WriterError> {
        Ok(self.plan_migration().await?.missing)
    }

    /// Fails with [`WriterError::SchemaIncomplete`] when the primary lacks anything.
    pub async fn require_complete(&mut self) -> Result<(), WriterError> {
        let plan = self.plan_migration().await?;
        match plan.missing.first() {
            None => Ok(()),
            Some(first) => Err(WriterError::SchemaIncomplete {
                database: plan.database.clone(),
                count: plan.missing.len(),
                first: first.to_string(),
            }),
        }
    }

    /// Plans the migration of every database and, with [`MigrateMode::Apply`], creates what each
    /// lacks (the primary first; a replica that fails is reported, not fatal).
    pub async fn migrate(&mut self, mode: MigrateMode) -> Result<MigrationReport, WriterError> {
        let schema = &self.schema;
        let auth = self.db_auth.as_ref();
        let migrate_one = async |c: &mut Connection| {
            let mut plan = migrate::plan(c, schema).await?;
            if mode == MigrateMode::Apply {
                if let Err(first) = migrate::apply(c, &plan).await {
                    // Several workers starting at once (a backfill Job with parallelism) plan the
                    // same changes and race to apply them; the losers' transactions roll back.
                    // Plan again: what the winner created is no longer missing.
                    let again = migrate::plan(c, schema).await?;
                    tracing::debug!(
                        message = "Migration failed; planned again (another process may have migrated).",
                        event = "consdb_migration_replanned",
                        still_missing = again.missing.len(),
                        error = %first
                    );
                    if !again.missing.is_empty() {
                        migrate::apply(c, &again).await?;
                    }
                    plan = again;
                }
                if !plan.missing.is_empty() {
                    tracing::info!(
                        message = "Migrated the ConsDB schema.",
                        event = "consdb_migrated",
                        database = %plan.database,
                        schema = %schema.name(),
                        added = plan.missing.len()
                    );
                }
            }
            Ok(plan)
        };
        let primary = self.primary.run(auth, schema, migrate_one).await?;
        let mut report = MigrationReport {
            applied: mode == MigrateMode::Apply,
            primary,
            replicas: Vec::new(),
            replica_failures: Vec::new(),
        };
        for replica in &mut self.replicas {
            match replica.run(auth, schema, migrate_one).await {
                Ok(plan) => report.replicas.push(plan),
                Err(e) => {
                    report
                        .replica_failures
                        .push(replica_failed(&replica.label, "migration", &e));
                }
            }
        }
        Ok(report)
    }

    /// Upserts wide rows into `exposure_efd` or `visit1_efd`: the batch's columns are inserted or
    /// updated (`None` → NULL), the config columns it does not carry are left untouched,
    /// `created_at` is set on insert only. The batch is checked before anything is executed.
    pub async fn upsert_wide(
        &mut self,
        batch: &WideBatch,
        created_at: UtcNanos,
    ) -> Result<WriteOutcome, WriterError> {
        let (upsert, absent) = Upsert::wide(&self.schema, batch, created_at)?;
        let mut outcome = self.write(&upsert).await?;
        outcome.absent_columns = absent;
        Ok(outcome)
    }

    /// Upserts unpivoted rows into `exposure_efd_unpivoted` or `visit1_efd_unpivoted`, updating
    /// `value` on conflict. The batch is checked before anything is executed.
    pub async fn upsert_unpivoted(
        &mut self,
        batch: &UnpivotedBatch,
        created_at: UtcNanos,
    ) -> Result<WriteOutcome, WriterError> {
        let upsert = Upsert::unpivoted(&self.schema, batch, created_at)?;
        self.write(&upsert).await
    }

    async fn write(&mut self, upsert: &Upsert) -> Result<WriteOutcome, WriterError> {
        let mut outcome = WriteOutcome::default();
        if upsert.rows == 0 {
            return Ok(outcome);
        }
        let schema = &self.schema;
        let auth = self.db_auth.as_ref();
        let write_one = async |c: &mut Connection| {
            let statements = upsert.statements(c.backend());
            c.execute_all(statements, &upsert.operation).await
        };
        outcome.rows = self.primary.run(auth, schema, write_one).await?;
        tracing::debug!(
            message = "Upserted on the primary.",
            event = "db_write_succeeded",
            operation = %upsert.operation,
            database = %self.primary.label,
            rows = outcome.rows
        );
        for replica in &mut self.replicas {
            match replica.run(auth, schema, write_one).await {
                Ok(rows) => tracing::debug!(
                    message = "Upserted on a replica.",
                    event = "db_write_succeeded",
                    operation = %upsert.operation,
                    replica = %replica.label,
                    rows
                ),
                Err(e) => outcome.replica_failures.push(replica_failed(
                    &replica.label,
                    &upsert.operation,
                    &e,
                )),
            }
        }
        Ok(outcome)
    }

    /// The ids of `table` (usually `exposure_efd` or `visit1_efd`) whose `day_obs` is in the range,
    /// ascending, read from the primary.
    pub async fn ids_for_day_obs(
        &mut self,
        table: Table,
        day_obs: RangeInclusive<i32>,
    ) -> Result<Vec<i64>, WriterError> {
        let schema = &self.schema;
        self.primary
            .run(self.db_auth.as_ref(), schema, async |c| {
                read::ids_for_day_obs(c, schema, table, day_obs).await
            })
            .await
    }

    /// Which value columns of `table` (`exposure_efd` or `visit1_efd`) hold values, per row whose
    /// `day_obs` is in the range, read from the primary (coverage reports).
    pub async fn presence(
        &mut self,
        table: Table,
        day_obs: RangeInclusive<i32>,
    ) -> Result<Presence, WriterError> {
        let schema = &self.schema;
        self.primary
            .run(self.db_auth.as_ref(), schema, async |c| {
                read::presence(c, schema, table, day_obs).await
            })
            .await
    }

    /// The `(id, property)` pairs of `table` (an unpivoted one) holding at least one value, for
    /// rows whose `day_obs` is in the range, read from the primary (coverage reports).
    pub async fn unpivoted_presence(
        &mut self,
        table: Table,
        day_obs: RangeInclusive<i32>,
    ) -> Result<Vec<(i64, String)>, WriterError> {
        let schema = &self.schema;
        self.primary
            .run(self.db_auth.as_ref(), schema, async |c| {
                read::unpivoted_presence(c, schema, table, day_obs).await
            })
            .await
    }

    /// Every row of `table` with one of these ids, read from the primary.
    pub async fn select_rows(
        &mut self,
        table: Table,
        ids: &[i64],
    ) -> Result<Vec<Row>, WriterError> {
        self.select_rows_from(0, table, ids).await
    }

    /// Like [`ConsDb::select_rows`], from database `index` (0: the primary, 1..: the replicas in
    /// URL order), to check what a replica holds.
    pub async fn select_rows_from(
        &mut self,
        index: usize,
        table: Table,
        ids: &[i64],
    ) -> Result<Vec<Row>, WriterError> {
        let schema = &self.schema;
        let endpoint = match index {
            0 => &mut self.primary,
            i => self
                .replicas
                .get_mut(i - 1)
                .ok_or_else(|| WriterError::Usage {
                    message: format!("no database number {i}"),
                })?,
        };
        endpoint
            .run(self.db_auth.as_ref(), schema, async |c| {
                read::select_rows(c, schema, table, ids).await
            })
            .await
    }
}

fn replica_failed(replica: &str, operation: &str, error: &WriterError) -> ReplicaFailure {
    tracing::error!(
        message = "Replica write failed.",
        event = "db_write_failed",
        replica = %replica,
        operation = %operation,
        error = %error
    );
    ReplicaFailure {
        replica: replica.to_owned(),
        error: error.to_string(),
        transient: error.is_transient(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>(_: &T) {}

    /// The pipeline runs writes inside spawned tasks: every future here must be `Send`.
    #[allow(dead_code, clippy::needless_pass_by_value)] // Compiled, never run.
    async fn futures_are_send(mut db: ConsDb, wide: WideBatch, unpivoted: UnpivotedBatch) {
        is_send(&db.upsert_wide(&wide, UtcNanos(0)));
        is_send(&db.upsert_unpivoted(&unpivoted, UtcNanos(0)));
        is_send(&db.migrate(MigrateMode::Apply));
        is_send(&db.missing());
        is_send(&db.ids_for_day_obs(Table::ExposureEfd, 0..=1));
        is_send(&db.select_rows(Table::ExposureEfd, &[]));
        is_send(&ConsDb::connect(db.schema().clone(), &[], None));
    }

    #[test]
    fn consdb_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<ConsDb>();
    }
}
