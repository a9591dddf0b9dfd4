//! The crate's one error type, split into transient (retry later) and permanent failures. No
//! variant holds a password, a secret key or a URL with credentials.

use db_connect::DbError;

use crate::s3::S3Error;

/// What can go wrong reading a Butler repository.
#[derive(Debug, thiserror::Error)]
pub enum ButlerError {
    /// The repository string names nothing usable.
    #[error("Butler repository `{repo}`: {message}")]
    Location {
        /// The repository as given (a path, URI or label; never with credentials).
        repo: String,
        /// What is wrong.
        message: String,
    },
    /// A configuration file (`butler.yaml`, the repository index) is missing or malformed.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Reading from S3 failed.
    #[error(transparent)]
    S3(#[from] S3Error),
    /// The registry database could not be reached.
    #[error("Butler registry: {0}")]
    Db(#[from] DbError),
    /// A registry query failed.
    #[error("Butler registry query on {registry} failed: {message}")]
    Query {
        /// The registry, redacted.
        registry: String,
        /// What the database said.
        message: String,
        /// Whether retrying later may work (lost connection, server shutting down).
        transient: bool,
    },
}

impl ButlerError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ButlerError::S3(e) => e.is_transient(),
            ButlerError::Db(e) => e.is_transient(),
            ButlerError::Query { transient, .. } => *transient,
            ButlerError::Location { .. } | ButlerError::Config { .. } => false,
        }
    }
}
