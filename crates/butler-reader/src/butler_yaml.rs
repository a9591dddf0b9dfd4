//! The registry section of `butler.yaml`: where the registry database is and in which schema.
//!
//! `registry.db` is a SQLAlchemy URL in which `<butlerRoot>` stands for the repository root (the
//! config's `root` key, else the directory holding the config) and `$VAR`/`${VAR}` for environment
//! variables (unknown ones are left as written, as `os.path.expandvars` leaves them).
//! `registry.username`, `password`, `host`, `port` and `database`, when present, fill the parts the
//! URL leaves out, as daf_butler's `ConnectionStringFactory` does. `registry.namespace` is the
//! PostgreSQL schema of the registry tables (absent: the connection's current schema).

use serde_norway::Value;

use crate::error::ButlerError;

/// What the reader needs from `butler.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegistrySection {
    /// The database URL, expanded.
    pub(crate) db: String,
    /// PostgreSQL schema of the registry tables.
    pub(crate) namespace: Option<String>,
    /// Extra connection keys (`username`, `password`, `host`, `port`, `database`).
    pub(crate) extras: Vec<(String, String)>,
}

/// Reads the registry section of a config whose directory is `config_dir`.
pub(crate) fn parse(
    text: &str,
    shown: &str,
    config_dir: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RegistrySection, ButlerError> {
    let err = |message: String| ButlerError::Config {
        path: shown.to_owned(),
        message,
    };
    let doc: Value = serde_norway::from_str(text).map_err(|e| err(format!("not YAML: {e}")))?;
    let root = doc
        .get("root")
        .and_then(Value::as_str)
        .map_or_else(|| config_dir.to_owned(), |r| expand_vars(r, env));
    let registry = doc
        .get("registry")
        .ok_or_else(|| err("no `registry` section".to_owned()))?;
    let db = registry
        .get("db")
        .and_then(Value::as_str)
        .ok_or_else(|| err("no `registry.db` URL".to_owned()))?;
    let db = expand_vars(&db.replace("<butlerRoot>", root.trim_end_matches('/')), env);
    let namespace = match registry.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(expand_vars(s, env)),
        Some(_) => return Err(err("`registry.namespace` is not a string".to_owned())),
    };
    let mut extras = Vec::new();
    for key in ["username", "password", "host", "port", "database"] {
        match registry.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => extras.push((key.to_owned(), expand_vars(s, env))),
            Some(Value::Number(n)) => extras.push((key.to_owned(), n.to_string())),
            Some(_) => return Err(err(format!("`registry.{key}` is not a string"))),
        }
    }
    Ok(RegistrySection {
        db,
        namespace,
        extras,
    })
}

/// `os.path.expandvars`: `$NAME` and `${NAME}` replaced when set, left as written otherwise.
pub(crate) fn expand_vars(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let len = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            (&after[..len], len)
        };
        match (name.is_empty(), env(name)) {
            (false, Some(value)) => out.push_str(&value),
            _ => out.push_str(&rest[pos..pos + 1 + consumed]),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn butler_root_and_variables_are_expanded() {
        let env = |k: &str| (k == "DB_HOST").then(|| "db.example".to_owned());
        let s = parse(
            "registry:\n  db: postgresql://rubin@${DB_HOST}/lsstdb1\n  namespace: embargo_$UNSET\n  port: 5433\n",
            "butler.yaml",
            "/repo",
            &env,
        )
        .unwrap();
        assert_eq!(s.db, "postgresql://rubin@db.example/lsstdb1");
        assert_eq!(s.namespace.as_deref(), Some("embargo_$UNSET"));
        assert_eq!(s.extras, vec![("port".to_owned(), "5433".to_owned())]);
        let s = parse(
            "registry:\n  db: sqlite:///<butlerRoot>/gen3.sqlite3\n",
            "b",
            "/repo/dir",
            &|_| None,
        )
        .unwrap();
        assert_eq!(s.db, "sqlite:////repo/dir/gen3.sqlite3");
        let s = parse(
            "root: /elsewhere\nregistry:\n  db: sqlite:///<butlerRoot>/g.sqlite3\n",
            "b",
            "/repo",
            &|_| None,
        )
        .unwrap();
        assert_eq!(s.db, "sqlite:////elsewhere/g.sqlite3");
        assert!(
            parse("datastore: {}\n", "b.yaml", "/", &|_| None)
                .unwrap_err()
                .to_string()
                .contains("no `registry` section")
        );
    }
}
