//! Filling in who connects, as the LSST stack and libpq do.
//!
//! For PostgreSQL, in this order: what the URL says; the libpq variables `PGHOST`, `PGPORT`,
//! `PGUSER`, `PGDATABASE` for parts the URL leaves out; then the password from the URL, else the
//! first matching entry of the LSST `db-auth.yaml` (as `lsst.utils.db_auth.DbAuth.getAuth` matches:
//! dialect, glob patterns on host and database, optional user and port), else `PGPASSWORD`.
//! `db-auth.yaml` is found through `LSST_DB_AUTH_CREDENTIALS` (JSON, in the variable itself),
//! `LSST_DB_AUTH` (a path), or `~/.lsst/db-auth.yaml`; a file readable by group or others is refused,
//! as the LSST stack refuses it; a missing file is no error.

use std::path::PathBuf;

use serde::Deserialize;
use transform_core::Secret;

use crate::error::DbError;
use crate::url::PgTarget;

/// One entry of `db-auth.yaml`.
#[derive(Debug, Clone, Deserialize)]
struct RawEntry {
    url: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// A loaded `db-auth.yaml`.
#[derive(Debug, Clone)]
pub struct DbAuth {
    origin: String,
    entries: Vec<(String, Option<String>, Secret)>,
}

/// Where environment variables come from (tests pass their own).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl DbAuth {
    /// Loads the credentials the LSST stack would use; `Ok(None)` when there are none.
    pub fn load(env: Env<'_>) -> Result<Option<DbAuth>, DbError> {
        if let Some(json) = env("LSST_DB_AUTH_CREDENTIALS").filter(|v| !v.is_empty()) {
            let raw: Vec<RawEntry> = serde_json::from_str(&json).map_err(|e| DbError::Auth {
                message: format!(
                    "LSST_DB_AUTH_CREDENTIALS is not a JSON list of {{url, password}} entries (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            })?;
            return DbAuth::from_raw("LSST_DB_AUTH_CREDENTIALS", raw).map(Some);
        }
        let path = match env("LSST_DB_AUTH").filter(|v| !v.is_empty()) {
            Some(p) => expand_home(&p, env),
            None => match env("HOME") {
                Some(home) => PathBuf::from(home).join(".lsst/db-auth.yaml"),
                None => return Ok(None),
            },
        };
        if !path.is_file() {
            return Ok(None);
        }
        let shown = path.display().to_string();
        check_permissions(&path, &shown)?;
        let text = std::fs::read_to_string(&path).map_err(|e| DbError::Auth {
            message: format!("cannot read {shown}: {e}"),
        })?;
        let raw: Vec<RawEntry> = serde_norway::from_str(&text).map_err(|e| DbError::Auth {
            // serde_norway messages quote no values for type errors, but keep only the location.
            message: format!(
                "{shown} is not a YAML list of {{url, password}} entries{}",
                e.location()
                    .map(|l| format!(" (line {})", l.line()))
                    .unwrap_or_default()
            ),
        })?;
        DbAuth::from_raw(&shown, raw).map(Some)
    }

    /// Credentials from entries already in memory (tests, or other sources).
    pub fn from_entries(
        origin: &str,
        entries: impl IntoIterator<Item = (String, Option<String>, Secret)>,
    ) -> DbAuth {
        DbAuth {
            origin: origin.to_owned(),
            entries: entries.into_iter().collect(),
        }
    }

    fn from_raw(origin: &str, raw: Vec<RawEntry>) -> Result<DbAuth, DbError> {
        let mut entries = Vec::with_capacity(raw.len());
        for (i, e) in raw.into_iter().enumerate() {
            let (Some(url), Some(password)) = (e.url, e.password) else {
                return Err(DbError::Auth {
                    message: format!("{origin}: entry {} lacks `url` or `password`", i + 1),
                });
            };
            entries.push((url, e.username, Secret::new(password)));
        }
        Ok(DbAuth {
            origin: origin.to_owned(),
            entries,
        })
    }

    /// Where the entries came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The user and password of the first matching entry, as `DbAuth.getAuth` finds it.
    pub fn lookup(
        &self,
        dialect: &str,
        username: Option<&str>,
        host: &str,
        port: Option<u16>,
        database: &str,
    ) -> Result<Option<(Option<String>, Secret)>, DbError> {
        let dialect = dialect.split('+').next().unwrap_or(dialect);
        for (url, entry_user, password) in &self.entries {
            let Some((scheme, rest)) = url.split_once("://") else {
                return Err(DbError::Auth {
                    message: format!("{}: an entry's url has no dialect", self.origin),
                });
            };
            if scheme.contains('+') {
                return Err(DbError::Auth {
                    message: format!(
                        "{}: entry urls name a dialect only, not `{scheme}`",
                        self.origin
                    ),
                });
            }
            if scheme != dialect {
                continue;
            }
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            if !path.is_empty() && !glob(path, database) {
                continue;
            }
            let (pattern_user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u.split(':').next().unwrap_or(u)), h),
                None => (None, authority),
            };
            if let Some(pu) = pattern_user {
                match username {
                    Some(u) if !u.is_empty() && u == pu => {}
                    _ => continue,
                }
            }
            let (pattern_host, pattern_port) = match hostport.rsplit_once(':') {
                Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => {
                    (h, p.parse::<u16>().ok())
                }
                _ => (hostport, None),
            };
            if pattern_host.is_empty() {
                return Err(DbError::Auth {
                    message: format!("{}: an entry's url has no host", self.origin),
                });
            }
            if !glob(
                &pattern_host.to_ascii_lowercase(),
                &host.to_ascii_lowercase(),
            ) {
                continue;
            }
            if pattern_port.is_some() && pattern_port != port {
                continue;
            }
            let user = match username {
                Some(u) if !u.is_empty() => Some(u.to_owned()),
                _ => entry_user.clone(),
            };
            return Ok(Some((user, password.clone())));
        }
        Ok(None)
    }
}

fn expand_home(path: &str, env: Env<'_>) -> PathBuf {
    match (path.strip_prefix("~/"), env("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

#[cfg(unix)]
fn check_permissions(path: &std::path::Path, shown: &str) -> Result<(), DbError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(|e| DbError::Auth {
            message: format!("cannot stat {shown}: {e}"),
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(DbError::Auth {
            message: format!(
                "{shown} is readable by group or others (mode {:o}); chmod 600 it",
                mode & 0o777
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &std::path::Path, _: &str) -> Result<(), DbError> {
    Ok(())
}

/// Python's `fnmatch.fnmatchcase`: `*`, `?`, `[seq]`, `[!seq]`.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, length of the class including ']').
        let (negate, start) = if p.first() == Some(&'!') {
            (true, 1)
        } else {
            (false, 0)
        };
        let mut i = start;
        let mut matched = false;
        while i < p.len() {
            if p[i] == ']' && i > start {
                return Some((matched != negate, i + 1));
            }
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                if p[i] <= c && c <= p[i + 2] {
                    matched = true;
                }
                i += 3;
            } else {
                if p[i] == c {
                    matched = true;
                }
                i += 1;
            }
        }
        None
    }
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|k| go(&p[1..], &t[k..])),
            Some('?') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some('[') => match (t.first(), class(&p[1..], *t.first().unwrap_or(&'\0'))) {
                (Some(_), Some((true, len))) => go(&p[1 + len..], &t[1..]),
                (Some(_), Some((false, _))) | (None, _) => false,
                // An unclosed '[' is a literal.
                (Some(&c), None) => c == '[' && go(&p[1..], &t[1..]),
            },
            Some(&c) => t.first() == Some(&c) && go(&p[1..], &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

/// Fills a PostgreSQL target's missing parts: libpq variables (when `libpq_env`), then the password
/// from `db-auth` or `PGPASSWORD`.
pub fn resolve_postgres(
    mut target: PgTarget,
    env: Env<'_>,
    db_auth: Option<&DbAuth>,
    libpq_env: bool,
) -> Result<PgTarget, DbError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    if libpq_env {
        if target.host.is_none() {
            target.host = var("PGHOST");
        }
        if target.port.is_none() {
            target.port = var("PGPORT").and_then(|p| p.parse().ok());
        }
        if target.user.is_none() {
            target.user = var("PGUSER");
        }
        if target.database.is_none() {
            target.database = var("PGDATABASE");
        }
    }
    if target.password.is_none()
        && let (Some(auth), Some(host), Some(database)) =
            (db_auth, target.host.clone(), target.database.clone())
        && let Some((user, password)) = auth.lookup(
            "postgresql",
            target.user.as_deref(),
            &host,
            target.port,
            &database,
        )?
    {
        tracing::debug!(message = "Database password from db-auth.", event = "db_auth_password_used", origin = auth.origin(), target = %target.redacted());
        if target.user.is_none() {
            target.user = user;
        }
        target.password = Some(password);
    }
    if target.password.is_none() && libpq_env {
        target.password = var("PGPASSWORD").map(Secret::new);
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn auth(entries: &[(&str, Option<&str>, &str)]) -> DbAuth {
        DbAuth::from_entries(
            "test",
            entries
                .iter()
                .map(|(u, n, p)| ((*u).to_owned(), n.map(str::to_owned), Secret::new(*p))),
        )
    }

    #[test]
    fn glob_matches_like_fnmatch() {
        assert!(glob("*.example.com", "host.example.com"));
        assert!(!glob("*.example.com", "example.org"));
        assert!(glob("my_*", "my_database"));
        assert!(glob("db?", "db1"));
        assert!(glob("db[0-9]", "db7") && !glob("db[!0-9]", "db7"));
        assert!(glob("*", ""));
    }

    #[test]
    fn lookup_follows_db_auth_rules() {
        // The examples of lsst.utils.db_auth: all match user@host.example.com:5432/my_database.
        for pattern in [
            "postgresql://*",
            "postgresql://*.example.com",
            "postgresql://*.example.com/my_*",
            "postgresql://host.example.com/my_database",
            "postgresql://host.example.com:5432/my_database",
            "postgresql://user@host.example.com/my_database",
        ] {
            let a = auth(&[(pattern, None, "pw")]);
            let got = a
                .lookup(
                    "postgresql+psycopg2",
                    Some("user"),
                    "host.example.com",
                    Some(5432),
                    "my_database",
                )
                .unwrap();
            assert_eq!(
                got.map(|(u, p)| (u, p.expose().to_owned())),
                Some((Some("user".into()), "pw".into())),
                "{pattern}"
            );
        }
        let a = auth(&[("postgresql://host.example.com:5432", None, "pw")]);
        assert!(
            a.lookup("postgresql", Some("u"), "host.example.com", None, "d")
                .unwrap()
                .is_none(),
            "no port in the URL does not match a port in the pattern"
        );
        let a = auth(&[
            ("sqlite://*", None, "x"),
            ("postgresql://other@*", None, "no"),
            ("postgresql://*", Some("rubin"), "yes"),
        ]);
        let (user, pw) = a
            .lookup("postgresql", None, "h", None, "d")
            .unwrap()
            .unwrap();
        assert_eq!((user.as_deref(), pw.expose()), (Some("rubin"), "yes"));
        assert!(
            auth(&[("postgresql+psycopg2://*", None, "x")])
                .lookup("postgresql", None, "h", None, "d")
                .is_err()
        );
    }

    #[test]
    fn resolution_order_url_then_db_auth_then_pgpassword() {
        let env: HashMap<&str, &str> = [
            ("PGHOST", "pghost"),
            ("PGUSER", "pguser"),
            ("PGPASSWORD", "pgpw"),
            ("PGDATABASE", "lsstdb1"),
        ]
        .into();
        let env = move |k: &str| env.get(k).map(|v| (*v).to_owned());
        let bare = PgTarget {
            host: None,
            port: None,
            user: None,
            password: None,
            database: None,
            sslmode: Default::default(),
        };
        let t = resolve_postgres(bare.clone(), &env, None, true).unwrap();
        assert_eq!(
            (t.host.as_deref(), t.user.as_deref(), t.database.as_deref()),
            (Some("pghost"), Some("pguser"), Some("lsstdb1"))
        );
        assert_eq!(t.password.unwrap().expose(), "pgpw");
        let a = auth(&[("postgresql://pghost/lsstdb1", None, "from-db-auth")]);
        let t = resolve_postgres(bare.clone(), &env, Some(&a), true).unwrap();
        assert_eq!(t.password.unwrap().expose(), "from-db-auth");
        let mut with_pw = bare.clone();
        with_pw.password = Some(Secret::new("from-url"));
        let t = resolve_postgres(with_pw, &env, Some(&a), true).unwrap();
        assert_eq!(t.password.unwrap().expose(), "from-url");
        let t = resolve_postgres(bare, &env, None, false).unwrap();
        assert!(
            t.host.is_none() && t.password.is_none(),
            "no libpq variables for ConsDB URLs"
        );
    }

    #[test]
    fn db_auth_files_are_found_and_must_be_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db-auth.yaml");
        std::fs::write(&file, "- url: postgresql://*\n  password: s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = file.to_str().unwrap().to_owned();
        let env = move |k: &str| (k == "LSST_DB_AUTH").then(|| path.clone());
        let err = DbAuth::load(&env).unwrap_err().to_string();
        assert!(
            err.contains("chmod 600") && !err.contains("s3cret"),
            "{err}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let a = DbAuth::load(&env).unwrap().unwrap();
        assert_eq!(
            a.lookup("postgresql", Some("u"), "h", None, "d")
                .unwrap()
                .unwrap()
                .1
                .expose(),
            "s3cret"
        );
        let none = |k: &str| (k == "HOME").then(|| "/nonexistent".to_owned());
        assert!(
            DbAuth::load(&none).unwrap().is_none(),
            "a missing file is no error"
        );
        let json = |k: &str| {
            (k == "LSST_DB_AUTH_CREDENTIALS")
                .then(|| r#"[{"url": "postgresql://h", "password": "j"}]"#.to_owned())
        };
        assert_eq!(
            DbAuth::load(&json).unwrap().unwrap().origin(),
            "LSST_DB_AUTH_CREDENTIALS"
        );
    }
}
