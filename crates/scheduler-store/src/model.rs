//! The values the store takes and returns: table names, tasks, statuses, selections, outcomes.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use transform_core::{Instrument, UtcNanos};

use crate::error::SchedulerError;

/// The schema that holds the task tables, as the Python service names it.
pub const DEFAULT_SCHEMA: &str = "efd_scheduler";

/// Longest schema or table name accepted: index names add up to 17 characters to the table's, and
/// PostgreSQL truncates identifiers at 63.
const MAX_NAME_LEN: usize = 40;

/// A task table, `<schema>.<table>` (`efd_scheduler.latiss`). Both names are validated lower-case
/// SQL identifiers, so they are safe to put into statements.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchedulerTable {
    schema: String,
    table: String,
}

impl SchedulerTable {
    /// `schema.table`, both `[a-z_][a-z0-9_]*`, at most 40 characters.
    pub fn new(schema: &str, table: &str) -> Result<SchedulerTable, SchedulerError> {
        for (what, name) in [("schema", schema), ("table", table)] {
            let mut chars = name.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && name.len() <= MAX_NAME_LEN;
            if !valid {
                return Err(SchedulerError::Invalid(format!(
                    "scheduler {what} name `{name}` must be a lower-case identifier ([a-z_][a-z0-9_]*, at most {MAX_NAME_LEN} characters)"
                )));
            }
        }
        Ok(SchedulerTable {
            schema: schema.to_owned(),
            table: table.to_owned(),
        })
    }

    /// The instrument's table in the default schema: `efd_scheduler.<instrument>`.
    pub fn for_instrument(instrument: Instrument) -> SchedulerTable {
        SchedulerTable {
            schema: DEFAULT_SCHEMA.to_owned(),
            table: instrument.as_str().to_owned(),
        }
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// `"schema"."table"`, for statements.
    pub(crate) fn qualified(&self) -> String {
        format!("\"{}\".\"{}\"", self.schema, self.table)
    }
}

impl fmt::Display for SchedulerTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// A task's primary key (`id`, an `INTEGER` serial).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub i32);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A task's `status` (a `CHAR(20)` column, read back trimmed).
///
/// `idle` (job, reconciliation) and `pending` (cron) tasks wait; a claim makes them `running`;
/// the owner then makes them `completed` or `failed`; `failed` tasks are retried (claimed again)
/// or made `stale`. `completed` and `stale` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskStatus {
    /// Created by a job or by reconciliation; processed by a job.
    Idle,
    /// Created by the cron job; processed once due.
    Pending,
    /// Claimed by a worker, which holds a lease.
    Running,
    /// Done (terminal).
    Completed,
    /// The last attempt failed; may be retried.
    Failed,
    /// Given up (terminal).
    Stale,
}

impl TaskStatus {
    /// Every status.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Idle,
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Stale,
    ];

    /// The value stored in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Idle => "idle",
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Stale => "stale",
        }
    }

    /// Whether nothing happens to the task any more (`completed`, `stale`).
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Stale)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;

    /// Parses a stored status; surrounding blanks (`CHAR(20)` padding) are ignored.
    fn from_str(s: &str) -> Result<TaskStatus, String> {
        let s = s.trim();
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown task status `{s}`"))
    }
}

/// One row of a task table.
///
/// Times are naive UTC in the table (whole microseconds) and [`UtcNanos`] here. Columns that the
/// Python service may have left `NULL` are `Option`s; rows without `start_time` or `end_time` are
/// never selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Primary key.
    pub id: TaskId,
    /// Interval start (`start_time`).
    pub start: UtcNanos,
    /// Interval end (`end_time`).
    pub end: UtcNanos,
    /// Minutes the processing window is padded by on each side, as recorded at creation.
    pub timewindow: Option<i32>,
    /// Current status.
    pub status: TaskStatus,
    /// When the current or last attempt started.
    pub process_start: Option<UtcNanos>,
    /// When the last attempt ended.
    pub process_end: Option<UtcNanos>,
    /// Seconds the last attempt took.
    pub process_exec_time: Option<i32>,
    /// `exposure_efd` rows written by the last successful attempt.
    pub exposures: Option<i32>,
    /// `visit1_efd` rows written by the last successful attempt.
    pub visits1: Option<i32>,
    /// Attempts after the first (incremented by every claim of a `failed` task).
    pub retries: i32,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The Butler repository the task reads.
    pub butler_repo: Option<String>,
    /// When the task was created (written from the application's clock).
    pub created_at: Option<UtcNanos>,
    /// The worker that holds (while `running`) or last held the task.
    pub claimed_by: Option<String>,
    /// Until when the worker's claim holds; `None` when not running.
    pub lease_expires_at: Option<UtcNanos>,
    /// The status the task had before the current claim, restored by a release.
    pub previous_status: Option<TaskStatus>,
    /// When the task last failed.
    pub last_error_at: Option<UtcNanos>,
    /// ConsDB replicas that failed during the last successful attempt.
    pub replica_failures: Option<i32>,
    /// Where the last successful attempt spent its time (to the millisecond), when recorded.
    pub timings: Option<PhaseTimings>,
}

impl Task {
    /// Whether the task is running on a lease that ended before `now`.
    pub fn lease_expired(&self, now: UtcNanos) -> bool {
        self.status == TaskStatus::Running && self.lease_expires_at.is_some_and(|t| t < now)
    }
}

/// Which waiting tasks to select or claim. Every kind is restricted to one Butler repository
/// (the reference's cron selection was not: BEHAVIOUR.md §11 C6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// `pending` tasks whose end is at least `margin` in the past, oldest (by end) first.
    DuePending {
        /// Butler repository.
        repo: String,
        /// How long after its end a task becomes due (the reference: 5 minutes).
        margin: Duration,
    },
    /// `idle` tasks, by start time; with `range`, only those that start in `[start, end)`, which
    /// are exactly the tasks `create_tasks(start, end, ..)` makes (unlike the reference's resume,
    /// this includes a last task that ends after `end`).
    Idle {
        /// Butler repository.
        repo: String,
        /// Optional `(start, end)` filter on the task start.
        range: Option<(UtcNanos, UtcNanos)>,
    },
    /// `failed` tasks with `retries <= max_retries`, by `created_at` then `id`.
    Failed {
        /// Butler repository.
        repo: String,
        /// Most retries a selected task may already have had.
        max_retries: i32,
    },
}

impl Selection {
    /// The Butler repository selected.
    pub fn repo(&self) -> &str {
        match self {
            Selection::DuePending { repo, .. }
            | Selection::Idle { repo, .. }
            | Selection::Failed { repo, .. } => repo,
        }
    }
}

/// What the created tasks look like, for [`crate::SchedulerStore::create_tasks`] and
/// [`crate::SchedulerStore::create_cron_tasks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    /// The Butler repository (`-r`); must not be empty.
    pub butler_repo: String,
    /// Length of each task in minutes (`-t`); must be positive.
    pub interval_minutes: i64,
    /// Window padding in minutes (`-w`), stored in `timewindow`.
    pub timewindow: i32,
    /// Status of the new tasks: [`TaskStatus::Idle`] or [`TaskStatus::Pending`].
    pub status: TaskStatus,
}

/// The counts a successful attempt records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Completion {
    /// `exposure_efd` rows written.
    pub exposures: u32,
    /// `visit1_efd` rows written.
    pub visits1: u32,
    /// ConsDB replicas that failed (stored in `replica_failures`).
    pub replica_failures: u32,
    /// Where the attempt spent its time (stored in milliseconds), when measured.
    pub timings: Option<PhaseTimings>,
}

/// Time spent per phase of a task (or summed over tasks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseTimings {
    /// Reading exposures and visits from the Butler registry.
    pub butler: Duration,
    /// Waiting for the EFD's answers (a task's queries run concurrently: wall time).
    pub efd: Duration,
    /// Preparing columns and computing values.
    pub transform: Duration,
    /// Upserting rows into ConsDB (primary and replicas).
    pub write: Duration,
    /// Claiming, renewing the lease and recording the result in the task table.
    pub scheduler: Duration,
}

impl PhaseTimings {
    /// Adds `other`'s times.
    pub fn add(&mut self, other: &PhaseTimings) {
        self.butler += other.butler;
        self.efd += other.efd;
        self.transform += other.transform;
        self.write += other.write;
        self.scheduler += other.scheduler;
    }

    /// The sum of the phases.
    pub fn total(&self) -> Duration {
        self.butler + self.efd + self.transform + self.write + self.scheduler
    }

    /// The phases in whole milliseconds (saturating), in column order: Butler, EFD, transform,
    /// write, scheduler.
    pub fn millis(&self) -> [i32; 5] {
        [
            self.butler,
            self.efd,
            self.transform,
            self.write,
            self.scheduler,
        ]
        .map(|d| i32::try_from(d.as_millis()).unwrap_or(i32::MAX))
    }

    /// From milliseconds in column order (negative values count as 0).
    pub fn from_millis(ms: [i32; 5]) -> PhaseTimings {
        let d = |v: i32| Duration::from_millis(u64::try_from(v).unwrap_or(0));
        PhaseTimings {
            butler: d(ms[0]),
            efd: d(ms[1]),
            transform: d(ms[2]),
            write: d(ms[3]),
            scheduler: d(ms[4]),
        }
    }
}

/// A replica that did not receive a change. The primary has it; nothing is retried later, but the
/// next change of the same rows copies them whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaFailure {
    /// The replica's host (and port), or its file: never a user, password or database name.
    pub replica: String,
    /// What went wrong, without credentials.
    pub error: String,
}

impl fmt::Display for ReplicaFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "replica {}: {}", self.replica, self.error)
    }
}

/// The result of a change made on the primary, with the replicas that missed it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Replicated<T> {
    /// What the primary returned.
    pub value: T,
    /// Replicas that failed to apply the change (they never fail the call).
    pub replica_failures: Vec<ReplicaFailure>,
}

impl<T> Replicated<T> {
    /// The primary's result, ignoring replica failures (already logged).
    pub fn into_value(self) -> T {
        self.value
    }
}

/// An overview of a task table for `efd-monitor status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusSummary {
    /// Number of tasks per stored status (trimmed; a `NULL` status counts as `""`).
    pub counts: BTreeMap<String, i64>,
    /// The `pending` task with the earliest end.
    pub oldest_pending: Option<Task>,
    /// Every `running` task, with its owner and lease, earliest lease first.
    pub running: Vec<Task>,
    /// The most recent `failed` tasks with their errors, newest first.
    pub recent_failures: Vec<Task>,
    /// The most recently completed tasks with their counts and timings, newest first (as many
    /// as failures are asked for).
    pub recent_completed: Vec<Task>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_padded_and_reject_unknown() {
        assert_eq!("running             ".parse(), Ok(TaskStatus::Running));
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        assert!("done".parse::<TaskStatus>().is_err());
        assert!(TaskStatus::Stale.is_terminal() && !TaskStatus::Failed.is_terminal());
    }

    #[test]
    fn table_names_are_identifiers() {
        let t = SchedulerTable::new("efd_scheduler", "latiss").unwrap();
        assert_eq!(t.to_string(), "efd_scheduler.latiss");
        assert_eq!(t.qualified(), "\"efd_scheduler\".\"latiss\"");
        assert_eq!(
            SchedulerTable::for_instrument(Instrument::LsstCam),
            SchedulerTable::new("efd_scheduler", "lsstcam").unwrap()
        );
        for bad in ["", "Latiss", "1x", "a;b", "a\"b", &"x".repeat(41)] {
            assert!(SchedulerTable::new("s", bad).is_err(), "{bad}");
            assert!(SchedulerTable::new(bad, "t").is_err(), "{bad}");
        }
    }
}
