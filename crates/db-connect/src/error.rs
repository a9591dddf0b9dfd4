//! The crate's one error type: bad URLs and credentials (permanent) and connection failures
//! (transient or permanent, as the server's answer says). No message ever holds a password.

/// What can go wrong finding or reaching a database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL cannot be used.
    #[error("database URL: {message}")]
    Url {
        /// What is wrong (never the URL itself, which may hold a password).
        message: String,
    },
    /// Credentials could not be found or read.
    #[error("database credentials: {message}")]
    Auth {
        /// What is wrong.
        message: String,
    },
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to {target}: {message}")]
    Connect {
        /// The database, without password.
        target: String,
        /// Why, redacted.
        message: String,
        /// Whether trying again later may work (unreachable, timeout, too many connections).
        transient: bool,
    },
}

impl DbError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DbError::Connect {
                transient: true,
                ..
            }
        )
    }
}
