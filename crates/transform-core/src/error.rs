//! The crate's one error type. Only reading and validating configs, and building a frame of the wrong
//! shape, can fail here: the kernels never return errors for data reasons (missing or NaN data gives
//! `None`).

use std::fmt;

/// What can go wrong in `transform-core`. Always permanent: retrying cannot fix a file or a frame.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The path that was tried.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not YAML of the expected shape (including unknown keys and wrong types).
    #[error("{origin}:{line}:{col}: {}{message}", column_prefix(column.as_deref()))]
    Syntax {
        /// File (or label) of the config.
        origin: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        col: usize,
        /// The config column the error is in, when known.
        column: Option<String>,
        /// What the parser said.
        message: String,
    },
    /// The config parsed but breaks one or more rules; every problem found is listed.
    #[error("{origin}: {} problem{} found:{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, ProblemList(problems))]
    Invalid {
        /// File (or label) of the config.
        origin: String,
        /// The problems, in file order.
        problems: Vec<Problem>,
    },
    /// A frame was built with columns whose length differs from its timestamps.
    #[error("frame column `{column}` has {found} values for {expected} timestamps")]
    FrameShape {
        /// The offending column.
        column: String,
        /// Number of timestamps.
        expected: usize,
        /// Number of values in the column.
        found: usize,
    },
}

impl CoreError {
    /// None of these errors go away on retry.
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// One rule a config breaks, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File (or label) of the config.
    pub origin: String,
    /// 1-based line of the offending node (0 when unknown).
    pub line: usize,
    /// The config column at fault, when the problem is inside one.
    pub column: Option<String>,
    /// What is wrong and, where possible, what would be right.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}{}",
            self.origin,
            self.line,
            column_prefix(self.column.as_deref()),
            self.message
        )
    }
}

fn column_prefix(column: Option<&str>) -> String {
    column.map_or_else(String::new, |c| format!("column `{c}`: "))
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// An error and its chain of sources as one line, `outer: inner: ...` (lower layers often hide the
/// useful part, such as "connection refused", in a source).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}
