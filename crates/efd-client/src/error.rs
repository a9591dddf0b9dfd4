//! The crate's one error type, split into transient (retry later) and permanent failures.
//!
//! No variant ever holds a password or a URL with credentials: the HTTP source authenticates with a
//! header, never with URL userinfo, and every message taken from a lower layer goes through
//! `transform_core::redact` first.

/// What can go wrong fetching telemetry.
#[derive(Debug, thiserror::Error)]
pub enum EfdError {
    /// The connection options are unusable (bad URL, unreadable password file, ...).
    #[error("EFD configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// The server could not be reached (refused, reset, DNS, TLS) after every retry.
    #[error("EFD unreachable at {endpoint} for {topic} after {attempts} attempt(s): {message}")]
    Connect {
        /// The server, without credentials.
        endpoint: String,
        /// The topic being queried (or the statement kind).
        topic: String,
        /// Attempts made.
        attempts: u32,
        /// The last transport error, redacted.
        message: String,
    },
    /// The request did not complete within the configured timeout, after every retry.
    #[error(
        "EFD query for {topic} timed out after {attempts} attempt(s) of at most {timeout_secs} s"
    )]
    Timeout {
        /// The topic being queried.
        topic: String,
        /// Attempts made.
        attempts: u32,
        /// The per-request timeout.
        timeout_secs: u64,
    },
    /// The server answered with an HTTP error status.
    #[error("EFD answered HTTP {status} for {topic} after {attempts} attempt(s): {body}")]
    Http {
        /// The topic being queried.
        topic: String,
        /// The status code.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The start of the response body (or the InfluxDB error it carries).
        body: String,
    },
    /// InfluxDB rejected the statement (an `error` in the JSON body).
    #[error("InfluxQL error for {topic}: {message}")]
    InfluxQl {
        /// The topic being queried.
        topic: String,
        /// InfluxDB's message.
        message: String,
    },
    /// The response could not be understood (malformed JSON, wrong column counts, bad values).
    #[error("malformed EFD response for {topic}: {message}")]
    Response {
        /// The topic being queried.
        topic: String,
        /// What is wrong with it.
        message: String,
    },
    /// A packed series could not be unpacked.
    #[error("packed series {topic}: {message}")]
    Packed {
        /// The topic.
        topic: String,
        /// What is wrong.
        message: String,
    },
    /// A line-protocol file could not be read or parsed.
    #[error("{path}:{line}: {message}")]
    File {
        /// The file.
        path: String,
        /// 1-based line (0 when not about a line).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl EfdError {
    /// Whether retrying later may succeed: unreachable servers, timeouts, HTTP 429 and 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            EfdError::Connect { .. } | EfdError::Timeout { .. } => true,
            EfdError::Http { status, .. } => *status == 429 || *status >= 500,
            EfdError::Config { .. }
            | EfdError::InfluxQl { .. }
            | EfdError::Response { .. }
            | EfdError::Packed { .. }
            | EfdError::File { .. } => false,
        }
    }

    pub(crate) fn response(topic: &str, message: impl Into<String>) -> EfdError {
        EfdError::Response {
            topic: topic.to_owned(),
            message: message.into(),
        }
    }
}
