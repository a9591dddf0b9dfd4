//! Owns the `efd_scheduler.<instrument>` task tables: creation, atomic claims with an owner and a
//! lease, heartbeats, completion, failure, release, lease recovery, retries and staleness.
//!
//! Only this crate mutates task rows, and every change of a claimed task carries its owner.
//!
//! # Principal types
//!
//! - [`SchedulerStore`] is one task table ([`SchedulerTable`], `efd_scheduler.latiss`) on a primary
//!   database and its replicas, opened from [`db_connect::DbUrl`]s with [`StoreOptions`]. Opening
//!   migrates the table ([`SCHEMA_VERSION`]). Reads go to the primary; every write returns
//!   [`Replicated`]: the primary's result and the replicas that missed the change.
//! - [`Task`] is one row, with its [`TaskId`] and [`TaskStatus`]. [`TaskSpec`] describes tasks to
//!   create, [`Selection`] names waiting tasks to read or claim (due `pending`, `idle`, retryable
//!   `failed`, always of one Butler repository), [`Completion`] holds the counts of a success, and
//!   [`StatusSummary`] is the monitor's overview.
//! - [`Clock`] is where "now" comes from ([`SystemClock`], or [`ManualClock`] in tests): every
//!   time comparison is computed in the application and bound, never the server's `now()`.
//! - [`SchedulerError`] says whether a failure is transient ([`SchedulerError::is_transient`]).
//!
//! # A task's life
//!
//! ```text
//! create_tasks / create_cron_tasks ──► idle | pending
//! claim / claim_next / claim_ids ────► running (claimed_by, lease_expires_at, previous_status;
//!                                               retries + 1 when it was failed)
//! heartbeat ─────────────────────────► running, lease extended        (only by the owner)
//! complete ──────────────────────────► completed, counts, no error     (only by the owner)
//! fail ──────────────────────────────► failed, error, last_error_at    (only by the owner)
//! release ───────────────────────────► previous status, claim cleared  (only by the owner)
//! recover_expired_leases ────────────► failed 'lease expired'          (running, lease < now)
//! mark_stale / stale_failed ─────────► stale                           (failed only)
//! ```
//!
//! # Schema
//!
//! The table keeps the Python service's 14 columns and types (BEHAVIOUR.md §3.1; `status` is
//! `CHAR(20)`, read back trimmed; times are naive UTC `TIMESTAMP`s) and gains, by additive
//! migrations recorded in `<schema>.transformed_efd_migrations`, `claimed_by TEXT`,
//! `lease_expires_at TIMESTAMP`, `previous_status CHAR(20)`, `last_error_at TIMESTAMP`,
//! `replica_failures INTEGER` and three indexes. Timestamps cross the PostgreSQL wire as binary
//! microseconds, so the session's and the server's `TimeZone` never shift them, and `created_at`
//! is written from the clock rather than left to `CURRENT_TIMESTAMP` (§11 E10).
//!
//! # SQLite: the schema is an attached file
//!
//! SQLite has no schemas. The task tables live in their own database file beside the main one,
//! `<main file stem>.<schema>.sqlite3` (`consdb.db` → `consdb.efd_scheduler.sqlite3`, see
//! [`sqlite_schema_file`]), attached to every connection under the schema's name, so every
//! statement says `"efd_scheduler"."latiss"` on both backends and the main file's own tables
//! (ConsDB's) are untouched. The alternatives were worse: a `efd_scheduler_latiss` table in the
//! main file needs different SQL per backend and mixes the scheduler into ConsDB's namespace;
//! the main file attached to itself is not allowed. An in-memory main database (`sqlite://`)
//! attaches an in-memory schema, private to its one connection.
//!
//! # Concurrency
//!
//! - Claims: on PostgreSQL one `UPDATE ... WHERE id IN (SELECT ... ORDER BY ... LIMIT n FOR UPDATE
//!   SKIP LOCKED) AND status IN ('idle', 'pending', 'failed') RETURNING ...`; the outer status
//!   condition is re-checked on the row's newest version, so a task is claimed once even if two
//!   plans met it. On SQLite the same statement in a `BEGIN IMMEDIATE` transaction.
//! - Creation: one transaction holding a per-table lock (`pg_advisory_xact_lock`; SQLite's
//!   `BEGIN IMMEDIATE`) reads the repository's unfinished intervals and inserts the others. A
//!   partial unique index would be stronger against foreign writers, but the Python service's
//!   tables already hold duplicate unfinished tasks (§11 C5), on which creating the index fails.
//! - Owner's changes (`heartbeat`, `complete`, `fail`, `release`): one `UPDATE ... WHERE id = ?
//!   AND claimed_by = ? AND status = 'running'`, so a worker whose lease was recovered and whose
//!   task was claimed again changes nothing (the call returns `false`).
//! - Migrations: one transaction under a per-schema advisory lock (SQLite: `BEGIN IMMEDIATE`).
//! - Replicas receive each changed row whole, by id (`INSERT ... ON CONFLICT (id) DO UPDATE`),
//!   ids as the primary chose them; a replica that cannot be reached is skipped for
//!   [`StoreOptions::replica_retry`] and named by host only.

mod clock;
mod db;
mod error;
mod intervals;
mod migrate;
mod model;
mod sql;
mod store;
mod timestamp;

pub use clock::{Clock, ManualClock, SystemClock};
pub use db::sqlite_schema_file;
pub use error::SchedulerError;
pub use intervals::{MAX_TASKS_PER_CREATION, task_intervals};
pub use migrate::{MIGRATIONS_TABLE, SCHEMA_VERSION};
pub use model::{
    Completion, DEFAULT_SCHEMA, PhaseTimings, ReplicaFailure, Replicated, SchedulerTable,
    Selection, StatusSummary, Task, TaskId, TaskSpec, TaskStatus,
};
pub use store::{ABANDONED, LEASE_EXPIRED, SchedulerStore, StoreOptions};
pub use timestamp::format_utc;
