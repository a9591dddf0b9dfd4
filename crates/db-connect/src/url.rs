//! Database URLs as SQLAlchemy spells them, and as the deployment writes them today.
//!
//! - `postgresql://[user[:password]@][host][:port][/database][?sslmode=...&...]`, also with a driver
//!   (`postgresql+psycopg2://`) or the libpq scheme `postgres://`;
//! - `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, and `sqlite://` (in memory).
//!
//! Passwords are taken out of the URL into a [`Secret`] at once; [`DbUrl::redacted`] is the only
//! form that is ever displayed.

use std::fmt;
use std::path::PathBuf;

use transform_core::Secret;

use crate::error::DbError;

/// TLS policy for PostgreSQL, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it (libpq's default).
    #[default]
    Prefer,
    /// TLS, without verifying the certificate.
    Require,
    /// TLS with a certificate signed by a trusted CA.
    VerifyCa,
    /// TLS with a trusted certificate for this host name.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, DbError> {
        Ok(match value {
            "disable" | "allow" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(DbError::Url {
                    message: format!(
                        "unknown sslmode `{other}` (use disable, prefer, require, verify-ca or verify-full)"
                    ),
                });
            }
        })
    }
}

/// Where a PostgreSQL database is and who connects; missing parts are filled from the environment
/// the way libpq does (see `credentials.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// Host name, IP address, or a directory holding the Unix socket.
    pub host: Option<String>,
    /// TCP port.
    pub port: Option<u16>,
    /// Role to connect as.
    pub user: Option<String>,
    /// Its password.
    pub password: Option<Secret>,
    /// Database name.
    pub database: Option<String>,
    /// TLS policy.
    pub sslmode: SslMode,
}

impl PgTarget {
    /// `postgresql://user@host:port/database`, without the password.
    pub fn redacted(&self) -> String {
        let mut s = String::from("postgresql://");
        if let Some(u) = &self.user {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(self.host.as_deref().unwrap_or(""));
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        s.push('/');
        s.push_str(self.database.as_deref().unwrap_or(""));
        s
    }

    /// Just the host (and port), for logging which replica failed.
    pub fn host_only(&self) -> String {
        match (self.host.as_deref(), self.port) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => "localhost".to_owned(),
        }
    }
}

/// A database URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// A PostgreSQL database.
    Postgres(PgTarget),
    /// An SQLite file (`None`: in memory).
    Sqlite(Option<PathBuf>),
}

impl DbUrl {
    /// Parses a SQLAlchemy-style URL.
    pub fn parse(text: &str) -> Result<DbUrl, DbError> {
        let text = text.trim();
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(DbError::Url {
                message: "a database URL needs a scheme, e.g. postgresql:// or sqlite:///".into(),
            });
        };
        let dialect = scheme.split('+').next().unwrap_or(scheme);
        match dialect {
            "postgresql" | "postgres" => parse_postgres(rest).map(DbUrl::Postgres),
            "sqlite" => Ok(DbUrl::Sqlite(parse_sqlite(rest)?)),
            other => Err(DbError::Url {
                message: format!(
                    "unsupported database dialect `{other}` (use postgresql or sqlite)"
                ),
            }),
        }
    }

    /// The URL without its password.
    pub fn redacted(&self) -> String {
        match self {
            DbUrl::Postgres(t) => t.redacted(),
            DbUrl::Sqlite(None) => "sqlite://".to_owned(),
            DbUrl::Sqlite(Some(p)) => format!("sqlite:///{}", p.display()),
        }
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn parse_sqlite(rest: &str) -> Result<Option<PathBuf>, DbError> {
    // sqlite:// → memory; sqlite:///rel → "rel"; sqlite:////abs → "/abs".
    let path = rest.strip_prefix('/').unwrap_or(rest);
    let path = path.split('?').next().unwrap_or(path);
    if rest.is_empty() || path.is_empty() || path == ":memory:" {
        return Ok(None);
    }
    if !rest.starts_with('/') {
        return Err(DbError::Url {
            message: "SQLite URLs have three slashes before a relative path (sqlite:///file.db) and four before an absolute one (sqlite:////abs/file.db)".into(),
        });
    }
    Ok(Some(PathBuf::from(percent_decode(path))))
}

fn parse_postgres(rest: &str) -> Result<PgTarget, DbError> {
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, database) = match main.split_once('/') {
        Some((a, d)) => (a, Some(d)),
        None => (main, None),
    };
    // A `/` in an unencoded password ends the authority early and leaves the password's rest, with
    // the real `@host`, in the database name: refuse it rather than connect to a piece of the
    // password as a host, or show one as a database.
    if database.is_some_and(|d| d.contains('@')) {
        return Err(DbError::Url {
            message: format!("an `@` after the host; {ENCODE_HINT}"),
        });
    }
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((name, pw)) => (
                Some(percent_decode(name)),
                Some(Secret::new(percent_decode(pw))),
            ),
            None => (Some(percent_decode(u)), None),
        },
    };
    let (host, port) = split_host_port(hostport)?;
    let mut target = PgTarget {
        host: host.filter(|h| !h.is_empty()),
        port,
        user: user.filter(|u| !u.is_empty()),
        password,
        database: database.map(percent_decode).filter(|d| !d.is_empty()),
        sslmode: SslMode::default(),
    };
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "sslmode" => target.sslmode = SslMode::parse(&v)?,
            "host" => target.host = Some(v),
            "port" => target.port = Some(parse_port(&v)?),
            "user" => target.user = Some(v),
            "password" => target.password = Some(Secret::new(v)),
            "dbname" => target.database = Some(v),
            // Options that change nothing here (application_name, connect_timeout, ...) are ignored.
            _ => {}
        }
    }
    Ok(target)
}

fn split_host_port(hostport: &str) -> Result<(Option<String>, Option<u16>), DbError> {
    if let Some(rest) = hostport.strip_prefix('[') {
        // [ipv6]:port
        let Some((host, after)) = rest.split_once(']') else {
            return Err(DbError::Url {
                message: "unclosed `[` in the host".into(),
            });
        };
        let port = after.strip_prefix(':').map(parse_port).transpose()?;
        return Ok((Some(host.to_owned()), port));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => Ok((Some(percent_decode(h)), Some(parse_port(p)?))),
        None => Ok((Some(percent_decode(hostport)), None)),
    }
}

/// How to write reserved characters in a URL's user and password.
const ENCODE_HINT: &str = "percent-encode `@`, `:`, `/`, `?` and `#` in the user and password \
                           (%40, %3A, %2F, %3F, %23)";

fn parse_port(p: &str) -> Result<u16, DbError> {
    // Not quoted: with an unencoded `:`, `/`, `?` or `#` in the password, what stands where the
    // port should is a piece of the password.
    p.parse().map_err(|_| DbError::Url {
        message: format!("the port is not a number from 0 to 65535; {ENCODE_HINT}"),
    })
}

/// Decodes `%XX` escapes (URLs percent-encode reserved characters in user, password and names).
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(url: &str) -> PgTarget {
        match DbUrl::parse(url).unwrap() {
            DbUrl::Postgres(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn postgres_urls_with_and_without_driver() {
        let t = pg("postgresql+psycopg2://rubin:p%40ss%3Aw@db.example:5433/consdb?sslmode=require");
        assert_eq!(t.host.as_deref(), Some("db.example"));
        assert_eq!(t.port, Some(5433));
        assert_eq!(t.user.as_deref(), Some("rubin"));
        assert_eq!(t.password.as_ref().unwrap().expose(), "p@ss:w");
        assert_eq!(t.database.as_deref(), Some("consdb"));
        assert_eq!(t.sslmode, SslMode::Require);
        assert_eq!(t.redacted(), "postgresql://rubin@db.example:5433/consdb");
        assert!(!format!("{t:?}").contains("p@ss"));
        let bare = pg("postgresql:///lsstdb1");
        assert_eq!(bare.host, None);
        assert_eq!(bare.database.as_deref(), Some("lsstdb1"));
        let v6 = pg("postgres://u@[::1]:5432/d");
        assert_eq!(v6.host.as_deref(), Some("::1"));
    }

    #[test]
    fn sqlite_urls_as_sqlalchemy_spells_them() {
        assert_eq!(
            DbUrl::parse("sqlite:///rel/a.db").unwrap(),
            DbUrl::Sqlite(Some("rel/a.db".into()))
        );
        assert_eq!(
            DbUrl::parse("sqlite:////abs/a.db").unwrap(),
            DbUrl::Sqlite(Some("/abs/a.db".into()))
        );
        assert_eq!(DbUrl::parse("sqlite://").unwrap(), DbUrl::Sqlite(None));
        assert!(DbUrl::parse("sqlite://a.db").is_err());
    }

    #[test]
    fn bad_urls_never_echo_passwords() {
        for bad in [
            "mysql://u:hunter2@h/d",
            "postgresql://u:hunter2@h:notaport/d",
            "hunter2",
            // Unencoded `:`, `/`, `?` in the password: pieces of it where the port, the host or
            // the database name should be.
            "postgresql://u:p@ss:hunter2/rd@h:5432/d",
            "postgresql://u:p@ss:5432/hunter2@h:5432/d",
            "postgresql://u:hunter2 #pw?&=x@h:5432/d",
        ] {
            let err = DbUrl::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{bad}: {err}");
        }
    }
}
