//! Statements with runtime binds for both backends, and the task row as read.
//!
//! Statements are written once with `?` placeholders; [`Sql::render`] numbers them `$1, $2, ...`
//! for PostgreSQL. The SQL text never contains a `?` of its own (no string literal with one), and
//! all values go through binds; only validated table names and status constants are spliced in.

use diesel::QueryableByName;
use diesel::backend::Backend as DieselBackend;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Integer, Nullable, Text, Timestamp};

use crate::timestamp::DbTime;

/// Which SQL dialect a database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Postgres,
    Sqlite,
}

/// One bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bind {
    Int(Option<i32>),
    BigInt(i64),
    Text(Option<String>),
    Time(Option<DbTime>),
}

/// A statement and its binds, in placeholder order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            binds: Vec::new(),
        }
    }

    /// Appends text (which may hold placeholders for binds pushed next).
    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    pub(crate) fn int(&mut self, v: impl Into<Option<i32>>) -> &mut Sql {
        self.binds.push(Bind::Int(v.into()));
        self
    }

    pub(crate) fn bigint(&mut self, v: i64) -> &mut Sql {
        self.binds.push(Bind::BigInt(v));
        self
    }

    pub(crate) fn text(&mut self, v: impl Into<Option<String>>) -> &mut Sql {
        self.binds.push(Bind::Text(v.into()));
        self
    }

    pub(crate) fn time(&mut self, v: impl Into<Option<DbTime>>) -> &mut Sql {
        self.binds.push(Bind::Time(v.into()));
        self
    }

    /// `(?, ?, ...)` with one placeholder per value, binding each.
    pub(crate) fn id_list(&mut self, ids: &[i32]) -> &mut Sql {
        self.text.push('(');
        for (i, id) in ids.iter().enumerate() {
            self.text.push_str(if i == 0 { "?" } else { ", ?" });
            self.binds.push(Bind::Int(Some(*id)));
        }
        self.text.push(')');
        self
    }

    /// The text for `backend`: `?` as is for SQLite, `$n` for PostgreSQL.
    pub(crate) fn render(&self, backend: Backend) -> String {
        debug_assert_eq!(
            self.text.matches('?').count(),
            self.binds.len(),
            "placeholders and binds differ in {}",
            self.text
        );
        match backend {
            Backend::Sqlite => self.text.clone(),
            Backend::Postgres => {
                let mut out = String::with_capacity(self.text.len() + 2 * self.binds.len());
                let mut n = 0;
                for c in self.text.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }

    /// A diesel query with the binds attached.
    pub(crate) fn boxed<DB>(&self, backend: Backend) -> BoxedSqlQuery<'static, DB, SqlQuery>
    where
        DB: DieselBackend
            + HasSqlType<Integer>
            + HasSqlType<BigInt>
            + HasSqlType<Text>
            + HasSqlType<Timestamp>,
        Option<i32>: ToSql<Nullable<Integer>, DB>,
        i64: ToSql<BigInt, DB>,
        Option<String>: ToSql<Nullable<Text>, DB>,
        Option<DbTime>: ToSql<Nullable<Timestamp>, DB>,
    {
        let mut query = diesel::sql_query(self.render(backend)).into_boxed::<DB>();
        for bind in &self.binds {
            query = match bind.clone() {
                Bind::Int(v) => query.bind::<Nullable<Integer>, _>(v),
                Bind::BigInt(v) => query.bind::<BigInt, _>(v),
                Bind::Text(v) => query.bind::<Nullable<Text>, _>(v),
                Bind::Time(v) => query.bind::<Nullable<Timestamp>, _>(v),
            };
        }
        query
    }
}

/// Every column of a task row, in table order: the reference's 14, the 5 added for leases and the
/// 5 timings.
pub(crate) const COLUMNS: [&str; 24] = [
    "id",
    "start_time",
    "end_time",
    "timewindow",
    "status",
    "process_start_time",
    "process_end_time",
    "process_exec_time",
    "exposures",
    "visits1",
    "retries",
    "error",
    "butler_repo",
    "created_at",
    "claimed_by",
    "lease_expires_at",
    "previous_status",
    "last_error_at",
    "replica_failures",
    "butler_ms",
    "efd_ms",
    "transform_ms",
    "write_ms",
    "scheduler_ms",
];

/// `id, start_time, ...` for `SELECT` and `RETURNING`.
pub(crate) fn column_list() -> String {
    COLUMNS.join(", ")
}

/// A task row exactly as stored (status still padded on PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub(crate) struct TaskRow {
    #[diesel(sql_type = Integer)]
    pub(crate) id: i32,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub(crate) start_time: Option<DbTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub(crate) end_time: Option<DbTime>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) timewindow: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) status: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub(crate) process_start_time: Option<DbTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub(crate) process_end_time: Option<DbTime>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) process_exec_time: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) exposures: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) visits1: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) retries: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) butler_repo: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub(crate) created_at: Option<DbTime>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) claimed_by: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub(crate) lease_expires_at: Option<DbTime>,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) previous_status: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub(crate) last_error_at: Option<DbTime>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) replica_failures: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) butler_ms: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) efd_ms: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) transform_ms: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) write_ms: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) scheduler_ms: Option<i32>,
}

impl TaskRow {
    /// Binds every column in [`COLUMNS`] order, for copying the row to a replica.
    pub(crate) fn bind_all(&self, sql: &mut Sql) {
        let trimmed = |s: &Option<String>| s.as_deref().map(|s| s.trim_end().to_owned());
        sql.int(self.id)
            .time(self.start_time)
            .time(self.end_time)
            .int(self.timewindow)
            .text(trimmed(&self.status))
            .time(self.process_start_time)
            .time(self.process_end_time)
            .int(self.process_exec_time)
            .int(self.exposures)
            .int(self.visits1)
            .int(self.retries)
            .text(self.error.clone())
            .text(self.butler_repo.clone())
            .time(self.created_at)
            .text(self.claimed_by.clone())
            .time(self.lease_expires_at)
            .text(trimmed(&self.previous_status))
            .time(self.last_error_at)
            .int(self.replica_failures)
            .int(self.butler_ms)
            .int(self.efd_ms)
            .int(self.transform_ms)
            .int(self.write_ms)
            .int(self.scheduler_ms);
    }
}

/// The bounds of a task, for de-duplication.
#[derive(Debug, QueryableByName)]
pub(crate) struct Bounds {
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub(crate) start_time: Option<DbTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub(crate) end_time: Option<DbTime>,
}

/// One `BIGINT` result (`COUNT(*)`, ...).
#[derive(Debug, QueryableByName)]
pub(crate) struct Count {
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

/// One nullable timestamp result (`MAX(end_time)`).
#[derive(Debug, QueryableByName)]
pub(crate) struct MaybeTime {
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub(crate) t: Option<DbTime>,
}

/// One text result (a column name, a status).
#[derive(Debug, QueryableByName)]
pub(crate) struct Name {
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) name: Option<String>,
}

/// One integer result (a migration version).
#[derive(Debug, QueryableByName)]
pub(crate) struct Version {
    #[diesel(sql_type = Integer)]
    pub(crate) version: i32,
}

/// A status and its count.
#[derive(Debug, QueryableByName)]
pub(crate) struct StatusCount {
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) status: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        let mut sql = Sql::new("SELECT a FROM t WHERE b = ? AND c IN ");
        sql.text("x".to_owned()).id_list(&[1, 2]);
        sql.push(" LIMIT ?").bigint(3);
        assert_eq!(
            sql.render(Backend::Postgres),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3) LIMIT $4"
        );
        assert_eq!(
            sql.render(Backend::Sqlite),
            "SELECT a FROM t WHERE b = ? AND c IN (?, ?) LIMIT ?"
        );
    }
}
