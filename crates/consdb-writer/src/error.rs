//! The crate's one error type, [`WriterError`], and how database errors are classified.
//!
//! Databases are named in messages by [`db_connect::PgTarget::host_only`] (replicas) or
//! [`db_connect::PgTarget::redacted`] (connections), never by a URL that could hold a password; the
//! server's own messages (which quote values such as keys, never credentials) are kept.

use db_connect::DbError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What can go wrong building, migrating or writing a ConsDB schema.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// A name that would reach SQL is not a plain lower-case identifier.
    #[error("refusing identifier {name:?}: {reason}")]
    InvalidIdentifier {
        /// The name, as given (shown with escapes).
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A batch names a column that the config does not write to this table.
    #[error("column `{column}` is not a column of {table} in the config")]
    UnknownColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// A batch does not fit its table or is inconsistent (row widths, duplicate columns, wrong
    /// kind of table, values too long or out of range for the column type).
    #[error("invalid batch for {table}: {message}")]
    InvalidBatch {
        /// The table.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// No database URL was given, or the schema cannot be used as asked.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
    },
    /// The database lacks tables or columns the config needs (run with `--migrate`).
    #[error(
        "{database} lacks {} schema item(s) the config needs, first: {first} (migrate to add them)",
        count
    )]
    SchemaIncomplete {
        /// The database, without password.
        database: String,
        /// How many items are missing.
        count: usize,
        /// The first missing item, described.
        first: String,
    },
    /// A connection could not be opened.
    #[error(transparent)]
    Connect(#[from] DbError),
    /// A statement failed.
    #[error("{operation} on {database} failed: {message}")]
    Database {
        /// What was being done (`upsert into efd_latiss.exposure_efd`, `migration`, ...).
        operation: String,
        /// The database, without password.
        database: String,
        /// The server's message (and detail), which never holds credentials.
        message: String,
        /// Whether retrying later may succeed (connection lost, deadlock, serialization failure,
        /// server shutting down, SQLite busy).
        transient: bool,
    },
}

impl WriterError {
    /// Whether retrying later may succeed; everything else is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            WriterError::Connect(e) => e.is_transient(),
            WriterError::Database { transient, .. } => *transient,
            WriterError::InvalidIdentifier { .. }
            | WriterError::UnknownColumn { .. }
            | WriterError::InvalidBatch { .. }
            | WriterError::Usage { .. }
            | WriterError::SchemaIncomplete { .. } => false,
        }
    }

    /// A [`WriterError::Database`] from a diesel error.
    pub(crate) fn database(operation: &str, database: &str, error: &DieselError) -> WriterError {
        let (message, transient) = describe(error);
        WriterError::Database {
            operation: operation.to_owned(),
            database: database.to_owned(),
            message,
            transient,
        }
    }

    pub(crate) fn batch(table: impl ToString, message: impl Into<String>) -> WriterError {
        WriterError::InvalidBatch {
            table: table.to_string(),
            message: message.into(),
        }
    }
}

/// The message of a diesel error and whether it is transient.
fn describe(error: &DieselError) -> (String, bool) {
    match error {
        DieselError::DatabaseError(kind, info) => {
            let mut message = info.message().to_owned();
            if let Some(detail) = info.details() {
                message.push_str(" (");
                message.push_str(detail);
                message.push(')');
            }
            let transient = match kind {
                DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::SerializationFailure => true,
                _ => transient_message(&message),
            };
            (message, transient)
        }
        DieselError::BrokenTransactionManager => (error.to_string(), true),
        other => {
            let message = other.to_string();
            let transient = transient_message(&message);
            (message, transient)
        }
    }
}

/// Server messages that say "try again later": PostgreSQL deadlocks, shutdowns, restarts and lost
/// connections; SQLite's busy and locked databases.
fn transient_message(message: &str) -> bool {
    const TRANSIENT: [&str; 10] = [
        "deadlock detected",
        "could not serialize access",
        "terminating connection",
        "the database system is",
        "connection closed",
        "connection reset",
        "server closed the connection",
        "canceling statement due to conflict with recovery",
        "database is locked",
        "database table is locked",
    ];
    let lower = message.to_ascii_lowercase();
    TRANSIENT.iter().any(|t| lower.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_database_errors() {
        let err = |kind, msg: &str| {
            WriterError::database(
                "upsert",
                "h:5432",
                &DieselError::DatabaseError(kind, Box::new(msg.to_owned())),
            )
        };
        assert!(err(DatabaseErrorKind::ClosedConnection, "gone").is_transient());
        assert!(err(DatabaseErrorKind::SerializationFailure, "x").is_transient());
        assert!(err(DatabaseErrorKind::Unknown, "deadlock detected").is_transient());
        assert!(err(DatabaseErrorKind::Unknown, "database is locked").is_transient());
        assert!(!err(DatabaseErrorKind::UniqueViolation, "duplicate key").is_transient());
        assert!(!err(DatabaseErrorKind::Unknown, "column \"x\" does not exist").is_transient());
        let shown = err(DatabaseErrorKind::Unknown, "boom").to_string();
        assert_eq!(shown, "upsert on h:5432 failed: boom");
    }
}
