//! [`SchedulerStore`]: every read and write of a task table, on the primary and its replicas.
//!
//! Each status change is one statement (PostgreSQL autocommit) or one transaction (SQLite
//! `BEGIN IMMEDIATE`; multi-statement changes on both). Changes of a claimed task carry its owner
//! and apply only while that owner still holds it. The primary's resulting rows are then copied
//! whole to each replica (an upsert by `id`), so a replica that missed a change catches up with a
//! row the next time that row changes.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use db_connect::{DbAuth, DbUrl};
use tokio::sync::{Mutex, MutexGuard};
use tracing::{debug, error, info, warn};
use transform_core::UtcNanos;

use crate::clock::{Clock, SystemClock, duration_nanos};
use crate::db::Db;
use crate::error::SchedulerError;
use crate::intervals::{cron_range, interval_nanos, task_intervals};
use crate::migrate::{self, lock_key};
use crate::model::{
    Completion, PhaseTimings, ReplicaFailure, Replicated, SchedulerTable, Selection, StatusSummary,
    Task, TaskId, TaskSpec, TaskStatus,
};
use crate::sql::{Backend, Bounds, COLUMNS, MaybeTime, Sql, StatusCount, TaskRow, column_list};
use crate::timestamp::{DbTime, format_utc};

/// Rows per `INSERT` when creating tasks (5 binds each).
const CREATE_CHUNK: usize = 1_000;
/// Rows per upsert when copying to a replica (19 binds each).
const REPLICATE_CHUNK: usize = 500;
/// Ids per `IN (...)` list.
const ID_CHUNK: usize = 500;
/// Longest error text stored in `error` (characters).
const MAX_ERROR_CHARS: usize = 8_000;
/// The `error` of a task whose worker's lease ran out.
pub const LEASE_EXPIRED: &str = "lease expired";
/// The `error` of a task left `running` with neither owner nor lease (by the Python service).
pub const ABANDONED: &str = "abandoned: running with no owner or lease";
/// Statuses a claim may take a task from.
const CLAIMABLE: &str = "('idle', 'pending', 'failed')";
/// Statuses that block creating the same interval again.
const NON_TERMINAL: &str = "('idle', 'pending', 'running', 'failed')";

/// How to open a [`SchedulerStore`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The task table.
    pub table: SchedulerTable,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Apply missing migrations when opening (else only check that none is missing).
    pub migrate: bool,
    /// Credentials for URLs without a password (`db-auth.yaml`).
    pub db_auth: Option<DbAuth>,
    /// After a replica cannot be reached, how long to skip it (its writes count as failures)
    /// before trying again.
    pub replica_retry: Duration,
    /// How long a task left `running` with no owner and no lease (by the Python service) must
    /// have been running before [`SchedulerStore::recover_expired_leases`] fails it.
    pub unowned_running_grace: Duration,
}

impl StoreOptions {
    /// Defaults: the system clock, migrations on, no `db-auth.yaml`, replicas retried after
    /// 60 s, unowned running tasks failed after 24 h.
    pub fn new(table: SchedulerTable) -> StoreOptions {
        StoreOptions {
            table,
            clock: Arc::new(SystemClock),
            migrate: true,
            db_auth: None,
            replica_retry: Duration::from_secs(60),
            unowned_running_grace: Duration::from_secs(24 * 3600),
        }
    }

    /// The same options with another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> StoreOptions {
        self.clock = clock;
        self
    }
}

/// A replica and whether it is ready for writes.
#[derive(Debug)]
struct Replica {
    db: Db,
    /// Migrated (or checked) on its current server.
    ready: bool,
    /// Skipped until then after a connection failure.
    down_until: Option<UtcNanos>,
}

#[derive(Debug)]
struct Inner {
    primary: Db,
    replicas: Vec<Replica>,
}

/// The task table of one instrument on a primary database and its replicas.
///
/// Reads go to the primary. Writes go to the primary, then the changed rows to every replica; a
/// replica failure is logged with the replica's host, counted and returned in
/// [`Replicated::replica_failures`], and never fails the call. One connection per database,
/// shared by the store's calls in turn (the store is `Sync`; share it in an `Arc`, or open one
/// per worker for parallel claims).
pub struct SchedulerStore {
    table: SchedulerTable,
    /// The primary's dialect.
    backend: Backend,
    clock: Arc<dyn Clock>,
    migrate: bool,
    replica_retry: i64,
    unowned_running_grace: i64,
    databases: Vec<String>,
    replica_failures: AtomicU64,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SchedulerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerStore")
            .field("table", &self.table.to_string())
            .field("databases", &self.databases)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// How returned tasks are ordered.
#[derive(Debug, Clone, Copy)]
enum Order {
    Start,
    End,
    Created,
}

impl Order {
    fn of(selection: &Selection) -> Order {
        match selection {
            Selection::DuePending { .. } => Order::End,
            Selection::Idle { .. } => Order::Start,
            Selection::Failed { .. } => Order::Created,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Order::Start => "s.start_time, s.id",
            Order::End => "s.end_time, s.id",
            Order::Created => "(s.created_at IS NULL), s.created_at, s.id",
        }
    }

    fn sort(self, tasks: &mut [Task]) {
        match self {
            Order::Start => tasks.sort_by_key(|t| (t.start, t.id)),
            Order::End => tasks.sort_by_key(|t| (t.end, t.id)),
            Order::Created => tasks.sort_by_key(|t| (t.created_at.is_none(), t.created_at, t.id)),
        }
    }
}

/// The name a replica goes by in messages: its host and port, or its file.
fn replica_name(url: &DbUrl) -> String {
    match url {
        DbUrl::Postgres(target) => target.host_only(),
        DbUrl::Sqlite(Some(path)) => path.display().to_string(),
        DbUrl::Sqlite(None) => ":memory:".to_owned(),
    }
}

fn non_empty(what: &str, value: &str) -> Result<(), SchedulerError> {
    if value.trim().is_empty() {
        return Err(SchedulerError::Invalid(format!("{what} must not be empty")));
    }
    Ok(())
}

fn saturate(count: u32) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// `process_exec_time` from the bound end and the stored start, rounded to whole seconds.
fn exec_time(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "CAST(ROUND(EXTRACT(EPOCH FROM (? - process_start_time))) AS INTEGER)",
        Backend::Sqlite => {
            "CAST(ROUND((julianday(?) - julianday(process_start_time)) * 86400.0) AS INTEGER)"
        }
    }
}

impl SchedulerStore {
    /// Opens the store on `urls` (the first is the primary, the others replicas) and migrates
    /// (or checks) the table on each.
    ///
    /// The primary must be reachable and migrate; a replica that is not is logged, counted and
    /// tried again at its next write.
    pub async fn open(
        urls: &[DbUrl],
        options: StoreOptions,
    ) -> Result<SchedulerStore, SchedulerError> {
        let Some((first, rest)) = urls.split_first() else {
            return Err(SchedulerError::Invalid(
                "the scheduler needs at least one database URL".to_owned(),
            ));
        };
        let schema = options.table.schema();
        let primary = Db::new(
            first.clone(),
            first.redacted(),
            schema,
            options.db_auth.clone(),
        );
        let replicas: Vec<Replica> = rest
            .iter()
            .map(|url| Replica {
                db: Db::new(
                    url.clone(),
                    replica_name(url),
                    schema,
                    options.db_auth.clone(),
                ),
                ready: false,
                down_until: None,
            })
            .collect();
        let mut databases = vec![primary.shown().to_owned()];
        databases.extend(replicas.iter().map(|r| r.db.shown().to_owned()));
        let store = SchedulerStore {
            table: options.table,
            backend: primary.backend(),
            clock: options.clock,
            migrate: options.migrate,
            replica_retry: duration_nanos(options.replica_retry),
            unowned_running_grace: duration_nanos(options.unowned_running_grace),
            databases,
            replica_failures: AtomicU64::new(0),
            inner: Mutex::new(Inner { primary, replicas }),
        };
        let mut inner = store.lock().await;
        store.prepare(&mut inner.primary).await?;
        let mut failures = Vec::new();
        for replica in &mut inner.replicas {
            if let Err(e) = store.prepare_replica(replica).await {
                failures.push(store.replica_failed(replica, "open", &e));
            }
        }
        drop(inner);
        store.count_failures(&failures);
        Ok(store)
    }

    /// The task table.
    pub fn table(&self) -> &SchedulerTable {
        &self.table
    }

    /// The store's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Replica writes that failed since the store was opened.
    pub fn replica_failure_count(&self) -> u64 {
        self.replica_failures.load(Ordering::Relaxed)
    }

    async fn lock(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().await;
        inner.primary.start_operation();
        for replica in &mut inner.replicas {
            replica.db.start_operation();
        }
        inner
    }

    fn now(&self) -> UtcNanos {
        self.clock.now()
    }

    /// Migrates or checks the table on `db`.
    async fn prepare(&self, db: &mut Db) -> Result<(), SchedulerError> {
        if !self.migrate {
            return migrate::verify(db, &self.table).await;
        }
        let applied = migrate::migrate(db, &self.table, DbTime::floor(self.now())).await?;
        if !applied.is_empty() {
            info!(
                message = "Scheduler table migrated.",
                event = "scheduler_migrated",
                table = %self.table,
                database = %db.shown(),
                versions = ?applied
            );
        }
        Ok(())
    }

    async fn prepare_replica(&self, replica: &mut Replica) -> Result<(), SchedulerError> {
        if !replica.ready {
            self.prepare(&mut replica.db).await?;
            replica.ready = true;
        }
        Ok(())
    }

    /// Logs a replica failure (host only) and marks the replica down if it cannot be reached.
    fn replica_failed(
        &self,
        replica: &mut Replica,
        operation: &'static str,
        e: &SchedulerError,
    ) -> ReplicaFailure {
        let unreachable = matches!(e, SchedulerError::Connect { .. }) || !replica.db.is_connected();
        if unreachable {
            replica.ready = false;
            replica.down_until = Some(self.now().offset(self.replica_retry));
        }
        error!(
            message = "Scheduler replica write failed.",
            event = "scheduler_replica_write_failed",
            replica = %replica.db.shown(),
            operation,
            error = %e
        );
        ReplicaFailure {
            replica: replica.db.shown().to_owned(),
            error: e.to_string(),
        }
    }

    fn count_failures(&self, failures: &[ReplicaFailure]) {
        self.replica_failures
            .fetch_add(failures.len() as u64, Ordering::Relaxed);
    }

    // ---------------------------------------------------------------- creation

    /// Creates the tasks covering `[start, end]` (BEHAVIOUR.md §2.2 intervals; the last task may
    /// end after `end`) and returns the new ones, by start time.
    ///
    /// An interval is skipped when the repository already has a task with exactly the same bounds
    /// that is not finished (`idle`, `pending`, `running` or `failed`). Creation runs in one
    /// transaction holding a per-table lock (a PostgreSQL advisory lock; SQLite's write lock),
    /// so concurrent creators never insert the same interval twice.
    ///
    /// Errors: `start >= end`, `interval_minutes <= 0`, an empty repository, a status other than
    /// `idle` or `pending`.
    pub async fn create_tasks(
        &self,
        start: UtcNanos,
        end: UtcNanos,
        spec: &TaskSpec,
    ) -> Result<Replicated<Vec<Task>>, SchedulerError> {
        validate_spec(spec)?;
        let intervals = task_intervals(start, end, spec.interval_minutes)?;
        self.create(Some(intervals), spec).await
    }

    /// The cron job's creation: from the end of this repository's last task (any status), or
    /// one interval before now when it has none, to now, stretched to one interval when shorter
    /// (BEHAVIOUR.md §2.2, per repository instead of global: §11 C6). Creates nothing when the
    /// repository's last task already ends at or after now.
    pub async fn create_cron_tasks(
        &self,
        spec: &TaskSpec,
    ) -> Result<Replicated<Vec<Task>>, SchedulerError> {
        validate_spec(spec)?;
        self.create(None, spec).await
    }

    async fn create(
        &self,
        planned: Option<Vec<(UtcNanos, UtcNanos)>>,
        spec: &TaskSpec,
    ) -> Result<Replicated<Vec<Task>>, SchedulerError> {
        const OP: &str = "create tasks";
        let now = self.now();
        let mut inner = self.lock().await;
        let key = lock_key(&format!("transformed-efd:create:{}", self.table));
        inner.primary.begin(OP, Some(key)).await?;
        let result = self
            .insert_new(&mut inner.primary, planned, spec, now)
            .await;
        let rows = inner.primary.finish(OP, result).await?;
        let replicated = self.replicate(&mut inner, OP, &rows, true).await;
        let mut tasks = self.to_tasks(&inner.primary, rows)?;
        drop(inner);
        Order::Start.sort(&mut tasks);
        if tasks.is_empty() {
            debug!(message = "Tasks created.", event = "tasks_created", count = 0, butler_repo = %spec.butler_repo);
        } else {
            info!(
                message = "Tasks created.",
                event = "tasks_created",
                count = tasks.len(),
                butler_repo = %spec.butler_repo,
                status = %spec.status,
                first_start = %format_utc(tasks[0].start),
                last_end = %format_utc(tasks[tasks.len() - 1].end)
            );
        }
        Ok(Replicated {
            value: tasks,
            replica_failures: replicated,
        })
    }

    /// Inside the creation transaction: works out the intervals (cron) and inserts those that
    /// have no unfinished twin.
    async fn insert_new(
        &self,
        db: &mut Db,
        planned: Option<Vec<(UtcNanos, UtcNanos)>>,
        spec: &TaskSpec,
        now: UtcNanos,
    ) -> Result<Vec<TaskRow>, SchedulerError> {
        const OP: &str = "create tasks";
        let t = self.table.qualified();
        let intervals = match planned {
            Some(intervals) => intervals,
            None => {
                let interval = interval_nanos(spec.interval_minutes)?;
                let mut sql = Sql::new(format!(
                    "SELECT MAX(end_time) AS t FROM {t} WHERE butler_repo = ?"
                ));
                sql.text(spec.butler_repo.clone());
                let last: Vec<MaybeTime> = db.load(OP, &sql).await?;
                let last_end = last.first().and_then(|r| r.t).map(DbTime::nanos);
                match cron_range(last_end, now, interval) {
                    Some((start, end)) => task_intervals(start, end, spec.interval_minutes)?,
                    None => {
                        debug!(
                            message = "Cron tasks already scheduled past now.",
                            event = "cron_tasks_ahead",
                            butler_repo = %spec.butler_repo,
                            last_end = ?last_end.map(format_utc)
                        );
                        return Ok(Vec::new());
                    }
                }
            }
        };
        let (Some(first), Some(last)) = (intervals.first(), intervals.last()) else {
            return Ok(Vec::new());
        };
        let mut sql = Sql::new(format!(
            "SELECT start_time, end_time FROM {t} WHERE butler_repo = ? AND status IN {NON_TERMINAL} \
             AND start_time >= ? AND start_time <= ?"
        ));
        sql.text(spec.butler_repo.clone())
            .time(DbTime::rounded(first.0))
            .time(DbTime::rounded(last.0));
        let existing: HashSet<(Option<DbTime>, Option<DbTime>)> = db
            .load::<Bounds>(OP, &sql)
            .await?
            .into_iter()
            .map(|b| (b.start_time, b.end_time))
            .collect();
        let fresh: Vec<(DbTime, DbTime)> = intervals
            .iter()
            .map(|(s, e)| (DbTime::rounded(*s), DbTime::rounded(*e)))
            .filter(|(s, e)| !existing.contains(&(Some(*s), Some(*e))))
            .collect();
        if fresh.len() < intervals.len() {
            debug!(
                message = "Skipped intervals that already have an unfinished task.",
                event = "task_creation_skipped_existing_idle",
                skipped = intervals.len() - fresh.len(),
                butler_repo = %spec.butler_repo
            );
        }
        let created_at = DbTime::floor(now);
        let mut rows = Vec::with_capacity(fresh.len());
        for chunk in fresh.chunks(CREATE_CHUNK) {
            let mut sql = Sql::new(format!(
                "INSERT INTO {t} (start_time, end_time, timewindow, status, butler_repo, created_at, \
                 process_exec_time, exposures, visits1, retries) VALUES "
            ));
            for (i, (start, end)) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "" } else { ", " });
                sql.push(&format!("(?, ?, ?, '{}', ?, ?, 0, 0, 0, 0)", spec.status));
                sql.time(*start)
                    .time(*end)
                    .int(spec.timewindow)
                    .text(spec.butler_repo.clone())
                    .time(created_at);
            }
            sql.push(&format!(" RETURNING {}", column_list()));
            rows.extend(db.load::<TaskRow>(OP, &sql).await?);
        }
        Ok(rows)
    }

    // ---------------------------------------------------------------- reads

    /// The task with this id.
    pub async fn task(&self, id: TaskId) -> Result<Option<Task>, SchedulerError> {
        let mut sql = Sql::new(format!(
            "SELECT {} FROM {} WHERE id = ?",
            column_list(),
            self.table.qualified()
        ));
        sql.int(id.0);
        let mut inner = self.lock().await;
        let rows: Vec<TaskRow> = inner.primary.load("read a task", &sql).await?;
        Ok(self.to_tasks(&inner.primary, rows)?.pop())
    }

    /// The waiting tasks `selection` names, in its order, without claiming them.
    pub async fn select(&self, selection: &Selection) -> Result<Vec<Task>, SchedulerError> {
        let mut sql = Sql::new(format!(
            "SELECT {} FROM {} s WHERE ",
            column_list(),
            self.table.qualified()
        ));
        self.selection_filter(selection, &mut sql);
        sql.push(&format!(" ORDER BY {}", Order::of(selection).sql()));
        let mut inner = self.lock().await;
        let rows: Vec<TaskRow> = inner.primary.load("select tasks", &sql).await?;
        let mut tasks = self.to_tasks(&inner.primary, rows)?;
        Order::of(selection).sort(&mut tasks);
        Ok(tasks)
    }

    /// `pending` tasks of `repo` that ended at least `margin` ago, oldest first.
    pub async fn due_pending(
        &self,
        repo: &str,
        margin: Duration,
    ) -> Result<Vec<Task>, SchedulerError> {
        self.select(&Selection::DuePending {
            repo: repo.to_owned(),
            margin,
        })
        .await
    }

    /// `idle` tasks of `repo` by start time, optionally only those starting in `[start, end)`.
    pub async fn idle_tasks(
        &self,
        repo: &str,
        range: Option<(UtcNanos, UtcNanos)>,
    ) -> Result<Vec<Task>, SchedulerError> {
        self.select(&Selection::Idle {
            repo: repo.to_owned(),
            range,
        })
        .await
    }

    /// `failed` tasks of `repo` with `retries <= max_retries`, by `created_at` then `id`.
    pub async fn failed_tasks(
        &self,
        repo: &str,
        max_retries: i32,
    ) -> Result<Vec<Task>, SchedulerError> {
        self.select(&Selection::Failed {
            repo: repo.to_owned(),
            max_retries,
        })
        .await
    }

    /// Every task of `repo` (any status) whose interval `[start, end)` overlaps `[from, to)`, by
    /// start then id (coverage reports).
    pub async fn tasks_overlapping(
        &self,
        repo: &str,
        from: UtcNanos,
        to: UtcNanos,
    ) -> Result<Vec<Task>, SchedulerError> {
        let mut sql = Sql::new(format!(
            "SELECT {} FROM {} WHERE butler_repo = ? AND start_time IS NOT NULL \
             AND end_time IS NOT NULL AND start_time < ? AND end_time > ? ORDER BY start_time, id",
            column_list(),
            self.table.qualified()
        ));
        sql.text(repo.to_owned())
            .time(DbTime::rounded(to))
            .time(DbTime::rounded(from));
        let mut inner = self.lock().await;
        let rows: Vec<TaskRow> = inner.primary.load("read tasks in a range", &sql).await?;
        self.to_tasks(&inner.primary, rows)
    }

    /// The task of `repo` with the latest end.
    pub async fn last_task(&self, repo: &str) -> Result<Option<Task>, SchedulerError> {
        let mut sql = Sql::new(format!(
            "SELECT {} FROM {} WHERE butler_repo = ? AND start_time IS NOT NULL \
             AND end_time IS NOT NULL ORDER BY end_time DESC, id DESC LIMIT 1",
            column_list(),
            self.table.qualified()
        ));
        sql.text(repo.to_owned());
        let mut inner = self.lock().await;
        let rows: Vec<TaskRow> = inner.primary.load("read the last task", &sql).await?;
        Ok(self.to_tasks(&inner.primary, rows)?.pop())
    }

    /// Counts per status, the oldest pending task, the running tasks, and the `recent_failures`
    /// latest failures and as many latest completions, for `repo` or for the whole table.
    pub async fn status_summary(
        &self,
        repo: Option<&str>,
        recent_failures: usize,
    ) -> Result<StatusSummary, SchedulerError> {
        const OP: &str = "summarise task statuses";
        let t = self.table.qualified();
        let cols = column_list();
        let repo_filter = |sql: &mut Sql| {
            if let Some(repo) = repo {
                sql.push(" AND butler_repo = ?").text(repo.to_owned());
            }
        };
        let mut counts = Sql::new(format!("SELECT status, COUNT(*) AS n FROM {t} WHERE 1 = 1"));
        repo_filter(&mut counts);
        counts.push(" GROUP BY status");
        let with_bounds = "start_time IS NOT NULL AND end_time IS NOT NULL";
        let mut pending = Sql::new(format!(
            "SELECT {cols} FROM {t} WHERE status = 'pending' AND {with_bounds}"
        ));
        repo_filter(&mut pending);
        pending.push(" ORDER BY end_time, id LIMIT 1");
        let mut running = Sql::new(format!(
            "SELECT {cols} FROM {t} WHERE status = 'running' AND {with_bounds}"
        ));
        repo_filter(&mut running);
        running.push(" ORDER BY (lease_expires_at IS NULL), lease_expires_at, id");
        let mut failures = Sql::new(format!(
            "SELECT {cols} FROM {t} WHERE status = 'failed' AND {with_bounds}"
        ));
        repo_filter(&mut failures);
        let latest = "COALESCE(last_error_at, process_end_time, created_at)";
        failures
            .push(&format!(
                " ORDER BY ({latest} IS NULL), {latest} DESC, id DESC LIMIT ?"
            ))
            .bigint(i64::try_from(recent_failures).unwrap_or(i64::MAX));

        let mut completed = Sql::new(format!(
            "SELECT {cols} FROM {t} WHERE status = 'completed' AND {with_bounds}"
        ));
        repo_filter(&mut completed);
        completed
            .push(" ORDER BY (process_end_time IS NULL), process_end_time DESC, id DESC LIMIT ?")
            .bigint(i64::try_from(recent_failures).unwrap_or(i64::MAX));

        let mut inner = self.lock().await;
        let db = &mut inner.primary;
        let mut summary = StatusSummary::default();
        for row in db.load::<StatusCount>(OP, &counts).await? {
            let status = row.status.as_deref().unwrap_or("").trim().to_owned();
            *summary.counts.entry(status).or_insert(0) += row.n;
        }
        let rows = db.load::<TaskRow>(OP, &pending).await?;
        summary.oldest_pending = self.to_tasks(db, rows)?.pop();
        let rows = db.load::<TaskRow>(OP, &running).await?;
        summary.running = self.to_tasks(db, rows)?;
        if recent_failures > 0 {
            let rows = db.load::<TaskRow>(OP, &failures).await?;
            summary.recent_failures = self.to_tasks(db, rows)?;
            let rows = db.load::<TaskRow>(OP, &completed).await?;
            summary.recent_completed = self.to_tasks(db, rows)?;
        }
        Ok(summary)
    }

    /// Appends the `WHERE` conditions of `selection` on alias `s`.
    fn selection_filter(&self, selection: &Selection, sql: &mut Sql) {
        sql.push("s.start_time IS NOT NULL AND s.end_time IS NOT NULL AND s.butler_repo = ?")
            .text(selection.repo().to_owned());
        match selection {
            Selection::DuePending { margin, .. } => {
                let due = self.now().offset(-duration_nanos(*margin));
                sql.push(" AND s.status = 'pending' AND s.end_time <= ?")
                    .time(DbTime::floor(due));
            }
            Selection::Idle { range, .. } => {
                sql.push(" AND s.status = 'idle'");
                if let Some((start, end)) = range {
                    sql.push(" AND s.start_time >= ? AND s.start_time < ?")
                        .time(DbTime::rounded(*start))
                        .time(DbTime::rounded(*end));
                }
            }
            Selection::Failed { max_retries, .. } => {
                sql.push(" AND s.status = 'failed' AND COALESCE(s.retries, 0) <= ?")
                    .int(*max_retries);
            }
        }
    }

    // ---------------------------------------------------------------- claims

    /// Claims up to `limit` tasks of `selection` for `owner`, in the selection's order: each
    /// becomes `running`, owned by `owner` until `now + lease`, with its previous status kept
    /// for [`SchedulerStore::release`]; a `failed` task's `retries` goes up by one in the same
    /// statement. A task is returned to exactly one claimer.
    ///
    /// PostgreSQL: one `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) AND status IN
    /// (claimable) RETURNING`, so concurrent claimers skip each other's rows. SQLite: the same
    /// statement (without the row locks) in a `BEGIN IMMEDIATE` transaction.
    pub async fn claim(
        &self,
        selection: &Selection,
        owner: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Replicated<Vec<Task>>, SchedulerError> {
        non_empty("the claim owner", owner)?;
        if limit == 0 {
            return Ok(Replicated {
                value: Vec::new(),
                replica_failures: Vec::new(),
            });
        }
        let mut sql = self.claim_head(owner, lease);
        sql.push(&format!(
            "id IN (SELECT s.id FROM {} s WHERE ",
            self.table.qualified()
        ));
        self.selection_filter(selection, &mut sql);
        let order = Order::of(selection);
        sql.push(&format!(" ORDER BY {} LIMIT ?", order.sql()))
            .bigint(i64::try_from(limit).unwrap_or(i64::MAX));
        if self.backend == Backend::Postgres {
            sql.push(" FOR UPDATE SKIP LOCKED");
        }
        sql.push(&format!(
            ") AND status IN {CLAIMABLE} RETURNING {}",
            column_list()
        ));
        let mut inner = self.lock().await;
        let rows = self.write(&mut inner, "claim tasks", &[sql]).await?;
        self.finish_claim(inner, owner, rows, order).await
    }

    /// Claims the first task of `selection` (see [`SchedulerStore::claim`]).
    pub async fn claim_next(
        &self,
        selection: &Selection,
        owner: &str,
        lease: Duration,
    ) -> Result<Replicated<Option<Task>>, SchedulerError> {
        let claimed = self.claim(selection, owner, lease, 1).await?;
        Ok(Replicated {
            value: claimed.value.into_iter().next(),
            replica_failures: claimed.replica_failures,
        })
    }

    /// Claims these tasks for `owner` (see [`SchedulerStore::claim`]); ids that are unknown,
    /// running or finished are left out of the result. Returned by id.
    pub async fn claim_ids(
        &self,
        ids: &[TaskId],
        owner: &str,
        lease: Duration,
    ) -> Result<Replicated<Vec<Task>>, SchedulerError> {
        non_empty("the claim owner", owner)?;
        let ids: Vec<i32> = ids.iter().map(|id| id.0).collect();
        let statements: Vec<Sql> = ids
            .chunks(ID_CHUNK)
            .map(|chunk| {
                let mut sql = self.claim_head(owner, lease);
                sql.push("id IN ").id_list(chunk);
                sql.push(&format!(
                    " AND status IN {CLAIMABLE} RETURNING {}",
                    column_list()
                ));
                sql
            })
            .collect();
        let mut inner = self.lock().await;
        let rows = self.write(&mut inner, "claim tasks", &statements).await?;
        let mut claimed = self.finish_claim(inner, owner, rows, Order::Start).await?;
        claimed.value.sort_by_key(|t| t.id);
        Ok(claimed)
    }

    /// `UPDATE <table> SET <claim> WHERE ` with the owner, lease and now bound.
    fn claim_head(&self, owner: &str, lease: Duration) -> Sql {
        let now = self.now();
        let mut sql = Sql::new(format!(
            "UPDATE {} SET previous_status = status, status = 'running', claimed_by = ?, \
             lease_expires_at = ?, process_start_time = ?, process_end_time = NULL, \
             process_exec_time = 0, exposures = 0, visits1 = 0, error = NULL, \
             retries = CASE WHEN status = 'failed' THEN COALESCE(retries, 0) + 1 ELSE retries END \
             WHERE ",
            self.table.qualified()
        ));
        sql.text(owner.to_owned())
            .time(DbTime::floor(now.offset(duration_nanos(lease))))
            .time(DbTime::floor(now));
        sql
    }

    async fn finish_claim(
        &self,
        mut inner: MutexGuard<'_, Inner>,
        owner: &str,
        rows: Vec<TaskRow>,
        order: Order,
    ) -> Result<Replicated<Vec<Task>>, SchedulerError> {
        let replica_failures = self
            .replicate(&mut inner, "claim tasks", &rows, false)
            .await;
        let mut tasks = self.to_tasks(&inner.primary, rows)?;
        drop(inner);
        order.sort(&mut tasks);
        for task in &tasks {
            debug!(
                message = "Task claimed.",
                event = "task_claimed",
                task_id = task.id.0,
                owner,
                retries = task.retries
            );
        }
        Ok(Replicated {
            value: tasks,
            replica_failures,
        })
    }

    // ---------------------------------------------------------------- owner's changes

    /// Extends `owner`'s lease on task `id` to `now + lease`. `false` when `owner` no longer
    /// holds the task (its lease was recovered, or it was reclaimed).
    pub async fn heartbeat(
        &self,
        id: TaskId,
        owner: &str,
        lease: Duration,
    ) -> Result<Replicated<bool>, SchedulerError> {
        let until = DbTime::floor(self.now().offset(duration_nanos(lease)));
        let mut sql = Sql::new(format!(
            "UPDATE {} SET lease_expires_at = ? WHERE ",
            self.table.qualified()
        ));
        sql.time(until);
        self.owned_change("extend a lease", sql, id, owner).await
    }

    /// Records a successful attempt in one statement: `completed`, the counts, the end time and
    /// duration, no error. Applies only while `owner` holds the task; `false` otherwise. The
    /// status goes straight from `running` to `completed` (BEHAVIOUR.md §11 C3).
    pub async fn complete(
        &self,
        id: TaskId,
        owner: &str,
        completion: Completion,
    ) -> Result<Replicated<bool>, SchedulerError> {
        let now = DbTime::floor(self.now());
        let backend = self.backend;
        let mut sql = Sql::new(format!(
            "UPDATE {} SET status = 'completed', exposures = ?, visits1 = ?, replica_failures = ?, \
             butler_ms = ?, efd_ms = ?, transform_ms = ?, write_ms = ?, scheduler_ms = ?, \
             process_end_time = ?, process_exec_time = {}, error = NULL, lease_expires_at = NULL, \
             previous_status = NULL WHERE ",
            self.table.qualified(),
            exec_time(backend)
        ));
        sql.int(saturate(completion.exposures))
            .int(saturate(completion.visits1))
            .int(saturate(completion.replica_failures));
        let millis = completion.timings.map(|t| t.millis());
        for k in 0..5 {
            sql.int(millis.map(|m| m[k]));
        }
        sql.time(now).time(now);
        self.owned_change("complete a task", sql, id, owner).await
    }

    /// Records a failed attempt in one statement: `failed`, the error text (at most 8,000
    /// characters), `last_error_at`, the end time and duration. Applies only while `owner` holds
    /// the task; `false` otherwise.
    pub async fn fail(
        &self,
        id: TaskId,
        owner: &str,
        error: &str,
    ) -> Result<Replicated<bool>, SchedulerError> {
        let now = DbTime::floor(self.now());
        let backend = self.backend;
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let mut sql = Sql::new(format!(
            "UPDATE {} SET status = 'failed', error = ?, last_error_at = ?, process_end_time = ?, \
             process_exec_time = {}, lease_expires_at = NULL, previous_status = NULL WHERE ",
            self.table.qualified(),
            exec_time(backend)
        ));
        sql.text(error).time(now).time(now).time(now);
        self.owned_change("fail a task", sql, id, owner).await
    }

    /// Gives the task back unprocessed (graceful shutdown): its status before the claim
    /// returns, the retry that claim counted is taken back, and the claim is cleared. Applies
    /// only while `owner` holds the task; `false` otherwise.
    pub async fn release(
        &self,
        id: TaskId,
        owner: &str,
    ) -> Result<Replicated<bool>, SchedulerError> {
        let sql = Sql::new(format!(
            "UPDATE {} SET status = COALESCE(previous_status, 'idle'), \
             retries = CASE WHEN previous_status = 'failed' AND COALESCE(retries, 0) > 0 \
             THEN retries - 1 ELSE retries END, \
             claimed_by = NULL, lease_expires_at = NULL, previous_status = NULL, \
             process_start_time = NULL WHERE ",
            self.table.qualified()
        ));
        self.owned_change("release a task", sql, id, owner).await
    }

    /// Finishes `head` (an `UPDATE ... SET ... WHERE `) with the ownership condition, runs it and
    /// replicates the row.
    async fn owned_change(
        &self,
        operation: &'static str,
        mut sql: Sql,
        id: TaskId,
        owner: &str,
    ) -> Result<Replicated<bool>, SchedulerError> {
        non_empty("the task owner", owner)?;
        sql.push("id = ? AND claimed_by = ? AND status = 'running'")
            .int(id.0)
            .text(owner.to_owned());
        sql.push(&format!(" RETURNING {}", column_list()));
        let mut inner = self.lock().await;
        let rows = self.write(&mut inner, operation, &[sql]).await?;
        let applied = !rows.is_empty();
        let replica_failures = self.replicate(&mut inner, operation, &rows, false).await;
        drop(inner);
        if applied {
            debug!(
                message = "Task updated.",
                event = "task_updated",
                operation,
                task_id = id.0,
                owner
            );
        } else {
            warn!(
                message = "Task change refused: the owner no longer holds the task.",
                event = "task_update_refused",
                operation,
                task_id = id.0,
                owner
            );
        }
        Ok(Replicated {
            value: applied,
            replica_failures,
        })
    }

    // ---------------------------------------------------------------- recovery and staleness

    /// Fails the tasks whose worker stopped renewing its lease: `running` with
    /// `lease_expires_at < now` become `failed` with error `lease expired`. Tasks left `running`
    /// with no owner and no lease (by the Python service) are failed too once they started more
    /// than [`StoreOptions::unowned_running_grace`] ago. Tasks of live workers are never touched
    /// (BEHAVIOUR.md §11 C2).
    pub async fn recover_expired_leases(&self) -> Result<Replicated<Vec<Task>>, SchedulerError> {
        const OP: &str = "recover expired leases";
        let now = self.now();
        let backend = self.backend;
        let at = DbTime::floor(now);
        let mut sql = Sql::new(format!(
            "UPDATE {} SET status = 'failed', \
             error = CASE WHEN lease_expires_at IS NULL THEN '{ABANDONED}' ELSE '{LEASE_EXPIRED}' END, \
             last_error_at = ?, process_end_time = ?, process_exec_time = {}, \
             lease_expires_at = NULL, previous_status = NULL \
             WHERE status = 'running' AND ((lease_expires_at IS NOT NULL AND lease_expires_at < ?) \
             OR (lease_expires_at IS NULL AND claimed_by IS NULL \
             AND (process_start_time IS NULL OR process_start_time < ?))) RETURNING {}",
            self.table.qualified(),
            exec_time(backend),
            column_list()
        ));
        sql.time(at)
            .time(at)
            .time(at)
            .time(at)
            .time(DbTime::floor(now.offset(-self.unowned_running_grace)));
        let mut inner = self.lock().await;
        let rows = self.write(&mut inner, OP, &[sql]).await?;
        let replica_failures = self.replicate(&mut inner, OP, &rows, false).await;
        let mut tasks = self.to_tasks(&inner.primary, rows)?;
        drop(inner);
        tasks.sort_by_key(|t| t.id);
        for task in &tasks {
            warn!(
                message = "Task failed: its worker's lease expired.",
                event = "task_lease_expired",
                task_id = task.id.0,
                owner = task.claimed_by.as_deref().unwrap_or(""),
                error = task.error.as_deref().unwrap_or("")
            );
        }
        Ok(Replicated {
            value: tasks,
            replica_failures,
        })
    }

    /// Makes these `failed` tasks `stale` (other statuses are left alone); returns those
    /// changed, by id.
    pub async fn mark_stale(
        &self,
        ids: &[TaskId],
    ) -> Result<Replicated<Vec<Task>>, SchedulerError> {
        let ids: Vec<i32> = ids.iter().map(|id| id.0).collect();
        let statements: Vec<Sql> = ids
            .chunks(ID_CHUNK)
            .map(|chunk| {
                let mut sql = Sql::new(format!(
                    "UPDATE {} SET status = 'stale' WHERE status = 'failed' AND id IN ",
                    self.table.qualified()
                ));
                sql.id_list(chunk);
                sql.push(&format!(" RETURNING {}", column_list()));
                sql
            })
            .collect();
        self.stale(statements).await
    }

    /// Makes `stale` the `failed` tasks of `repo` created at least `max_age` ago, and those that
    /// already had more than `max_retries` retries, which the reference left `failed` forever
    /// (BEHAVIOUR.md §11 E5). Returns them, by id.
    pub async fn stale_failed(
        &self,
        repo: &str,
        max_age: Duration,
        max_retries: i32,
    ) -> Result<Replicated<Vec<Task>>, SchedulerError> {
        let oldest = self.now().offset(-duration_nanos(max_age));
        let mut sql = Sql::new(format!(
            "UPDATE {} SET status = 'stale' WHERE status = 'failed' AND butler_repo = ? \
             AND ((created_at IS NOT NULL AND created_at <= ?) OR COALESCE(retries, 0) > ?) \
             RETURNING {}",
            self.table.qualified(),
            column_list()
        ));
        sql.text(repo.to_owned())
            .time(DbTime::floor(oldest))
            .int(max_retries);
        self.stale(vec![sql]).await
    }

    async fn stale(&self, statements: Vec<Sql>) -> Result<Replicated<Vec<Task>>, SchedulerError> {
        const OP: &str = "mark tasks stale";
        let mut inner = self.lock().await;
        let rows = self.write(&mut inner, OP, &statements).await?;
        let replica_failures = self.replicate(&mut inner, OP, &rows, false).await;
        let mut tasks = self.to_tasks(&inner.primary, rows)?;
        drop(inner);
        tasks.sort_by_key(|t| t.id);
        if !tasks.is_empty() {
            info!(message = "Tasks marked stale.", event = "tasks_marked_stale", count = tasks.len(), table = %self.table);
        }
        Ok(Replicated {
            value: tasks,
            replica_failures,
        })
    }

    // ---------------------------------------------------------------- plumbing

    /// Runs `statements` (each `... RETURNING` the task columns) on the primary as one change:
    /// a single PostgreSQL statement runs alone; several, or any on SQLite, run in one
    /// transaction (`BEGIN IMMEDIATE` on SQLite).
    async fn write(
        &self,
        inner: &mut Inner,
        operation: &'static str,
        statements: &[Sql],
    ) -> Result<Vec<TaskRow>, SchedulerError> {
        let db = &mut inner.primary;
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        if let [single] = statements
            && db.backend() == Backend::Postgres
        {
            return db.load(operation, single).await;
        }
        db.begin(operation, None).await?;
        let mut result = Ok(Vec::new());
        for sql in statements {
            match db.load::<TaskRow>(operation, sql).await {
                Ok(rows) => {
                    if let Ok(all) = result.as_mut() {
                        all.extend(rows);
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        db.finish(operation, result).await
    }

    /// Copies `rows` as the primary has them to every replica (upsert by id; after inserts, a
    /// PostgreSQL replica's id sequence is moved past them). Returns the replicas that failed.
    async fn replicate(
        &self,
        inner: &mut Inner,
        operation: &'static str,
        rows: &[TaskRow],
        inserted: bool,
    ) -> Vec<ReplicaFailure> {
        if rows.is_empty() || inner.replicas.is_empty() {
            return Vec::new();
        }
        let now = self.now();
        let mut failures = Vec::new();
        for replica in &mut inner.replicas {
            if let Some(until) = replica.down_until {
                if now < until {
                    failures.push(ReplicaFailure {
                        replica: replica.db.shown().to_owned(),
                        error: format!(
                            "skipped: unreachable, next attempt after {}",
                            format_utc(until)
                        ),
                    });
                    continue;
                }
                replica.down_until = None;
            }
            let result = match self.prepare_replica(replica).await {
                Ok(()) => self.copy_rows(&mut replica.db, rows, inserted).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => debug!(
                    message = "Scheduler replica updated.",
                    event = "scheduler_replica_updated",
                    replica = %replica.db.shown(),
                    operation,
                    rows = rows.len()
                ),
                Err(e) => failures.push(self.replica_failed(replica, operation, &e)),
            }
        }
        self.count_failures(&failures);
        failures
    }

    async fn copy_rows(
        &self,
        db: &mut Db,
        rows: &[TaskRow],
        inserted: bool,
    ) -> Result<(), SchedulerError> {
        const OP: &str = "copy tasks to a replica";
        let t = self.table.qualified();
        let updates: Vec<String> = COLUMNS[1..]
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        let placeholders = format!("({})", vec!["?"; COLUMNS.len()].join(", "));
        db.begin(OP, None).await?;
        let mut result = Ok(());
        for chunk in rows.chunks(REPLICATE_CHUNK) {
            let mut sql = Sql::new(format!("INSERT INTO {t} ({}) VALUES ", column_list()));
            for (i, row) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "" } else { ", " });
                sql.push(&placeholders);
                row.bind_all(&mut sql);
            }
            sql.push(&format!(
                " ON CONFLICT (id) DO UPDATE SET {}",
                updates.join(", ")
            ));
            if let Err(e) = db.execute(OP, &sql).await {
                result = Err(e);
                break;
            }
        }
        if result.is_ok() && inserted && db.backend() == Backend::Postgres {
            // The primary chose the ids; keep the replica's sequence ahead of them (never back),
            // so the replica can take over as a primary.
            let mut sql = Sql::new(format!(
                "SELECT setval(pg_get_serial_sequence(?, 'id'), \
                 GREATEST((SELECT MAX(id) FROM {t}), nextval(pg_get_serial_sequence(?, 'id')) - 1, 1))"
            ));
            sql.text(t.clone()).text(t.clone());
            result = db.execute(OP, &sql).await.map(|_| ());
        }
        db.finish(OP, result).await
    }

    fn to_tasks(&self, db: &Db, rows: Vec<TaskRow>) -> Result<Vec<Task>, SchedulerError> {
        rows.into_iter()
            .map(|row| to_task(db.shown(), row))
            .collect()
    }
}

fn validate_spec(spec: &TaskSpec) -> Result<(), SchedulerError> {
    non_empty("the Butler repository", &spec.butler_repo)?;
    interval_nanos(spec.interval_minutes)?;
    if !matches!(spec.status, TaskStatus::Idle | TaskStatus::Pending) {
        return Err(SchedulerError::Invalid(format!(
            "tasks are created idle or pending, not {}",
            spec.status
        )));
    }
    Ok(())
}

fn to_task(shown: &str, row: TaskRow) -> Result<Task, SchedulerError> {
    let corrupt = |message: String| SchedulerError::Corrupt {
        target: shown.to_owned(),
        id: row.id,
        message,
    };
    let status = match row.status.as_deref() {
        Some(s) => s.parse().map_err(corrupt)?,
        None => return Err(corrupt("no status".to_owned())),
    };
    let previous_status = match row.previous_status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(s.parse().map_err(corrupt)?),
    };
    let (Some(start), Some(end)) = (row.start_time, row.end_time) else {
        return Err(corrupt("no start_time or end_time".to_owned()));
    };
    Ok(Task {
        id: TaskId(row.id),
        start: start.nanos(),
        end: end.nanos(),
        timewindow: row.timewindow,
        status,
        process_start: row.process_start_time.map(DbTime::nanos),
        process_end: row.process_end_time.map(DbTime::nanos),
        process_exec_time: row.process_exec_time,
        exposures: row.exposures,
        visits1: row.visits1,
        retries: row.retries.unwrap_or(0),
        error: row.error,
        butler_repo: row.butler_repo,
        created_at: row.created_at.map(DbTime::nanos),
        claimed_by: row.claimed_by,
        lease_expires_at: row.lease_expires_at.map(DbTime::nanos),
        previous_status,
        last_error_at: row.last_error_at.map(DbTime::nanos),
        replica_failures: row.replica_failures,
        timings: match (
            row.butler_ms,
            row.efd_ms,
            row.transform_ms,
            row.write_ms,
            row.scheduler_ms,
        ) {
            (None, None, None, None, None) => None,
            (b, e, t, w, s) => Some(PhaseTimings::from_millis(
                [b, e, t, w, s].map(|v| v.unwrap_or(0)),
            )),
        },
    })
}
