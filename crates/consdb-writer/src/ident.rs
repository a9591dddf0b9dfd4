//! SQL identifiers: checked once, always quoted.
//!
//! The config loader already refuses column names that are not `[a-z_][a-z0-9_]*`; [`Ident`] checks
//! again (a `Column` can be built by hand, bypassing the loader), so every schema, table and column
//! name that reaches SQL in this crate has passed this check, and is double-quoted anyway.

use std::fmt;

use crate::error::WriterError;

/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN − 1).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// A lower-case SQL identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes), safe to quote into SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    /// Checks `name`; anything but a plain lower-case identifier is an error.
    pub fn new(name: &str) -> Result<Ident, WriterError> {
        let refuse = |reason| {
            Err(WriterError::InvalidIdentifier {
                name: name.to_owned(),
                reason,
            })
        };
        let mut bytes = name.bytes();
        match bytes.next() {
            None => return refuse("empty"),
            Some(b) if !(b.is_ascii_lowercase() || b == b'_') => {
                return refuse("must start with a-z or `_`");
            }
            Some(_) => {}
        }
        if !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return refuse("only a-z, 0-9 and `_` are allowed");
        }
        if name.len() > MAX_IDENTIFIER_BYTES {
            return refuse("longer than 63 bytes (PostgreSQL would truncate it)");
        }
        Ok(Ident(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name double-quoted for SQL (`"name"`); any `"` would be doubled, though none can occur.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0.replace('"', "\"\""))
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An SQL string literal: `'text'` with `'` doubled (standard-conforming strings, the default since
/// PostgreSQL 9.1, and SQLite's only form). NUL characters, which neither database stores in text,
/// are dropped.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\0', "").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_only() {
        for ok in ["day_obs", "_x", "mt_salindex110_wind_speed_0_mean", "a1"] {
            assert_eq!(Ident::new(ok).unwrap().quoted(), format!("\"{ok}\""));
        }
        for bad in [
            "",
            "1a",
            "A",
            "x\"; DROP TABLE t; --",
            "a b",
            "a-b",
            "é",
            &"a".repeat(64),
        ] {
            let err = Ident::new(bad).unwrap_err();
            assert!(
                matches!(err, WriterError::InvalidIdentifier { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn literals_escape_quotes() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\0b"), "'ab'");
    }
}
