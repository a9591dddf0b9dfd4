//! The crate's one error type, split into transient (retry later) and permanent failures.
//!
//! Databases are named by `DbUrl::redacted` (the primary) or by host only (replicas); no variant
//! ever holds a password.

use db_connect::DbError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What can go wrong with the task tables.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The request is wrong (bad interval, bad names, no database URL): permanent.
    #[error("invalid scheduler request: {0}")]
    Invalid(String),
    /// A database URL or its credentials cannot be used: permanent.
    #[error("scheduler database {target}: {message}")]
    Config {
        /// The database, without credentials.
        target: String,
        /// What is wrong.
        message: String,
    },
    /// A database could not be reached.
    #[error("cannot connect to scheduler database {target}: {message}")]
    Connect {
        /// The database, without credentials.
        target: String,
        /// Why, redacted.
        message: String,
        /// Whether trying again later may work.
        transient: bool,
    },
    /// A statement failed.
    #[error("{operation} on {target} failed: {message}")]
    Query {
        /// The database, without credentials.
        target: String,
        /// What the store was doing ("claim tasks", "migrate", ...).
        operation: &'static str,
        /// What the database said.
        message: String,
        /// Whether trying again later may work (lost connection, serialization failure,
        /// deadlock, a locked SQLite file).
        transient: bool,
    },
    /// The table is not in the shape this program needs (and migrations are disabled, or a
    /// migration cannot be applied): permanent.
    #[error("scheduler table on {target}: {message}")]
    Schema {
        /// The database, without credentials.
        target: String,
        /// What is wrong.
        message: String,
    },
    /// A stored row cannot be understood (unknown status, no interval bounds): permanent.
    #[error("task {id} on {target}: {message}")]
    Corrupt {
        /// The database, without credentials.
        target: String,
        /// The task.
        id: i32,
        /// What is wrong.
        message: String,
    },
}

impl SchedulerError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SchedulerError::Connect { transient, .. } | SchedulerError::Query { transient, .. } => {
                *transient
            }
            SchedulerError::Invalid(_)
            | SchedulerError::Config { .. }
            | SchedulerError::Schema { .. }
            | SchedulerError::Corrupt { .. } => false,
        }
    }

    /// A connection error, naming the database as `target` (the db-connect message already
    /// leaves the password out; its own target is replaced so a replica shows its host only).
    pub(crate) fn from_db(target: &str, e: DbError) -> SchedulerError {
        let transient = e.is_transient();
        match e {
            DbError::Connect { message, .. } => SchedulerError::Connect {
                target: target.to_owned(),
                message,
                transient,
            },
            DbError::Url { message } | DbError::Auth { message } => SchedulerError::Config {
                target: target.to_owned(),
                message,
            },
        }
    }
}

/// How a diesel error should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Retry may work; the connection is still usable.
    Transient,
    /// Retry may work on a new connection: this one is gone.
    Broken,
    /// Retrying will not help.
    Permanent,
}

/// Classifies a diesel error. Serialization failures, deadlocks and a busy SQLite file are
/// transient; errors with no SQLSTATE (the socket went away), closed connections and server
/// shutdowns mean the connection must be replaced.
pub(crate) fn classify(e: &DieselError) -> Failure {
    match e {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::SerializationFailure => Failure::Transient,
            DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection => {
                Failure::Broken
            }
            _ => {
                let message = info.message().to_ascii_lowercase();
                if [
                    "terminating connection",
                    "server closed the connection",
                    "connection reset",
                    "broken pipe",
                ]
                .iter()
                .any(|m| message.contains(m))
                {
                    Failure::Broken
                } else if [
                    "deadlock detected",
                    "could not serialize",
                    "database is locked",
                    "database table is locked",
                    "database schema has changed",
                    "canceling statement due to lock timeout",
                    "the database system is",
                    "too many connections",
                ]
                .iter()
                .any(|m| message.contains(m))
                {
                    Failure::Transient
                } else {
                    Failure::Permanent
                }
            }
        },
        DieselError::BrokenTransactionManager => Failure::Broken,
        _ => Failure::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn classification() {
        use DatabaseErrorKind::*;
        assert_eq!(
            classify(&db_error(SerializationFailure, "x")),
            Failure::Transient
        );
        assert_eq!(
            classify(&db_error(Unknown, "deadlock detected")),
            Failure::Transient
        );
        assert_eq!(
            classify(&db_error(Unknown, "database is locked")),
            Failure::Transient
        );
        assert_eq!(
            classify(&db_error(
                Unknown,
                "terminating connection due to administrator command"
            )),
            Failure::Broken
        );
        assert_eq!(
            classify(&db_error(UnableToSendCommand, "io")),
            Failure::Broken
        );
        assert_eq!(
            classify(&db_error(UniqueViolation, "dup")),
            Failure::Permanent
        );
        assert_eq!(
            classify(&db_error(Unknown, "relation \"x\" does not exist")),
            Failure::Permanent
        );
        assert_eq!(classify(&DieselError::NotFound), Failure::Permanent);
    }

    #[test]
    fn transient_split() {
        let e = SchedulerError::from_db(
            "h:5432",
            DbError::Connect {
                target: "postgresql://u@h:5432/d".into(),
                message: "refused".into(),
                transient: true,
            },
        );
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            "cannot connect to scheduler database h:5432: refused"
        );
        assert!(!SchedulerError::Invalid("x".into()).is_transient());
    }
}
