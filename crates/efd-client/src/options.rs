//! Connection options: where the EFD is, how to authenticate, and how patient to be.
//!
//! The URL comes from `--efd`/`EFD_URL` (`http(s)://[user[:password]@]host[:port][/path]` or
//! `file:///path/export.lp[.gz]`); without one it is built as the Python service builds it, from
//! `EFD_HOST`, `EFD_PORT` and `EFD_PATH`, always over HTTPS, but without its doubled slash. The
//! password (`EFD_PASSWORD`, else the file named by `EFD_PASSWORD_FILE`) is held in a [`Secret`]
//! whose `Debug` and `Display` never show it. Environment variables are read through a lookup
//! function so callers (and tests) decide where they come from.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use transform_core::Secret;
use url::Url;

use crate::error::EfdError;

/// The Python service's default EFD host.
pub(crate) const DEFAULT_HOST: &str = "usdf-rsp.slac.stanford.edu";
/// The Python service's default EFD port.
pub(crate) const DEFAULT_PORT: &str = "443";
/// The Python service's default EFD path.
pub(crate) const DEFAULT_PATH: &str = "/influxdb-enterprise-data/";
/// The Python service's default EFD user.
pub(crate) const DEFAULT_USERNAME: &str = "efdreader";

/// Where telemetry comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EfdLocation {
    /// An InfluxDB serving InfluxQL; the base URL has no credentials and no trailing slash.
    Http(Url),
    /// A line-protocol file (optionally gzip-compressed).
    File(PathBuf),
}

impl fmt::Display for EfdLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EfdLocation::Http(url) => f.write_str(url.as_str()),
            EfdLocation::File(path) => write!(f, "file://{}", path.display()),
        }
    }
}

/// How to reach the EFD and how patient to be.
#[derive(Debug, Clone)]
pub struct EfdOptions {
    /// The server or file.
    pub location: EfdLocation,
    /// InfluxDB database (`efd`).
    pub database: String,
    /// Retention policy (`autogen`).
    pub retention_policy: String,
    /// Basic-auth user; auth is sent only when both user and password are non-empty.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<Secret>,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one whole request, body included.
    pub request_timeout: Duration,
    /// Attempts per request (1 = no retry) on connection errors, timeouts, HTTP 429 and 5xx.
    pub max_attempts: u32,
    /// First retry delay; doubled each attempt, with full jitter, up to `backoff_max`.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Points per chunk of a streamed (`chunked=true`) response.
    pub chunk_size: usize,
    /// The encoding asked for in the streamed selects (answers are parsed by their
    /// `Content-Type`, so a server or proxy that ignores the request still works).
    pub response_format: ResponseFormat,
}

/// The encoding of `/query` answers asked for with `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseFormat {
    /// MessagePack (InfluxDB ≥ 1.4): cheaper for influxd to encode and for us to parse.
    #[default]
    Msgpack,
    /// JSON, InfluxDB's default.
    Json,
}

impl std::str::FromStr for ResponseFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<ResponseFormat, String> {
        match s {
            "msgpack" => Ok(ResponseFormat::Msgpack),
            "json" => Ok(ResponseFormat::Json),
            other => Err(format!(
                "unknown EFD response format {other:?}: msgpack or json"
            )),
        }
    }
}

impl EfdOptions {
    /// Options for `location` with the defaults: database `efd`, retention policy `autogen`, 10 s
    /// connect and 120 s request timeouts, 4 attempts backing off from 0.5 s to 10 s, 4 requests in
    /// flight, 10,000 points per chunk, MessagePack answers, no credentials.
    pub fn new(location: EfdLocation) -> EfdOptions {
        EfdOptions {
            location,
            database: "efd".to_owned(),
            retention_policy: "autogen".to_owned(),
            username: None,
            password: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            max_attempts: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            concurrency: 4,
            chunk_size: 10_000,
            response_format: ResponseFormat::Msgpack,
        }
    }

    /// Options from an explicit URL (`--efd`/`EFD_URL`) or, without one, from the `EFD_*`
    /// variables as the Python service reads them. `env` looks a variable up.
    ///
    /// Credentials: userinfo in the URL wins; else `EFD_USERNAME` (default `efdreader`) and
    /// `EFD_PASSWORD`, else the contents of `EFD_PASSWORD_FILE` (trailing newline removed).
    /// Patience: `EFD_TIMEOUT` (seconds per request, default 120), `EFD_CONNECT_TIMEOUT` (10) and
    /// `EFD_MAX_ATTEMPTS` (4).
    pub fn from_env(
        url: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<EfdOptions, EfdError> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let url = url
            .map(str::to_owned)
            .filter(|u| !u.is_empty())
            .or_else(|| var("EFD_URL"));
        let (location, url_user, url_password) = match url {
            Some(url) => parse_url(&url)?,
            None => {
                let host = var("EFD_HOST").unwrap_or_else(|| DEFAULT_HOST.to_owned());
                let port = var("EFD_PORT").unwrap_or_else(|| DEFAULT_PORT.to_owned());
                let path = var("EFD_PATH").unwrap_or_else(|| DEFAULT_PATH.to_owned());
                let root = Url::parse(&format!("https://{host}:{port}/")).map_err(|e| {
                    EfdError::Config {
                        message: format!("EFD_HOST/EFD_PORT do not form a URL: {e}"),
                    }
                })?;
                // urljoin semantics, as the Python service: a relative path is appended to the root,
                // an absolute one replaces the path, a full URL replaces everything.
                let joined = root.join(&path).map_err(|e| EfdError::Config {
                    message: format!("EFD_PATH `{path}` does not join onto {root}: {e}"),
                })?;
                parse_url(joined.as_str())?
            }
        };
        let mut options = EfdOptions::new(location);
        let seconds = |name: &str, min: u64| -> Result<Option<u64>, EfdError> {
            var(name)
                .map(|v| match v.trim().parse::<u64>() {
                    Ok(n) if n >= min => Ok(n),
                    _ => Err(EfdError::Config {
                        message: format!("{name}={v:?}: expected a whole number of at least {min}"),
                    }),
                })
                .transpose()
        };
        if let Some(s) = seconds("EFD_TIMEOUT", 1)? {
            options.request_timeout = Duration::from_secs(s);
        }
        if let Some(s) = seconds("EFD_CONNECT_TIMEOUT", 1)? {
            options.connect_timeout = Duration::from_secs(s);
        }
        if let Some(n) = seconds("EFD_MAX_ATTEMPTS", 1)? {
            options.max_attempts = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let EfdLocation::Http(_) = options.location {
            options.username = url_user
                .or_else(|| var("EFD_USERNAME"))
                .or_else(|| Some(DEFAULT_USERNAME.to_owned()));
            options.password = match url_password {
                Some(p) => Some(p),
                None => match (var("EFD_PASSWORD"), var("EFD_PASSWORD_FILE")) {
                    (Some(p), _) => Some(Secret::new(p)),
                    (None, Some(file)) => Some(read_password_file(&file)?),
                    (None, None) => None,
                },
            };
        }
        Ok(options)
    }

    /// The credentials to send, if both parts are non-empty.
    pub fn credentials(&self) -> Option<(&str, &Secret)> {
        match (&self.username, &self.password) {
            (Some(u), Some(p)) if !u.is_empty() && !p.expose().is_empty() => Some((u, p)),
            _ => None,
        }
    }

    /// Why no authentication will be sent although some was configured, for a startup warning.
    pub fn auth_warning(&self) -> Option<String> {
        match (&self.location, self.credentials(), &self.username) {
            (EfdLocation::Http(_), None, Some(u)) if !u.is_empty() => Some(format!(
                "EFD user `{u}` has no password (set EFD_PASSWORD or EFD_PASSWORD_FILE): queries are sent unauthenticated"
            )),
            _ => None,
        }
    }
}

fn read_password_file(path: &str) -> Result<Secret, EfdError> {
    let text = std::fs::read_to_string(path).map_err(|e| EfdError::Config {
        message: format!("cannot read EFD_PASSWORD_FILE {path}: {e}"),
    })?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

type ParsedUrl = (EfdLocation, Option<String>, Option<Secret>);

/// Parses an EFD URL, taking any userinfo out of it.
fn parse_url(text: &str) -> Result<ParsedUrl, EfdError> {
    let mut url = Url::parse(text).map_err(|e| EfdError::Config {
        // The text may hold a password: show only what the parser objected to.
        message: format!("the EFD URL is not a valid URL ({e})"),
    })?;
    match url.scheme() {
        "file" => {
            let path = url.to_file_path().map_err(|()| EfdError::Config {
                message: "a file:// EFD URL must hold an absolute local path".to_owned(),
            })?;
            Ok((EfdLocation::File(path), None, None))
        }
        "http" | "https" => {
            // A `/` in an unencoded password ends the host early and leaves the password's rest,
            // with the real `@host`, in the path, which messages show: refuse it.
            if url.path().contains('@') {
                return Err(EfdError::Config {
                    message: "the EFD URL has an `@` after its host: percent-encode `@`, `:`, \
                              `/`, `?` and `#` in the user and password (%40, %3A, %2F, %3F, %23)"
                        .to_owned(),
                });
            }
            let user = decode(url.username());
            let password = url.password().map(decode).map(Secret::new);
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            let trimmed = url.path().trim_end_matches('/').to_owned();
            url.set_path(&trimmed);
            Ok((
                EfdLocation::Http(url),
                Some(user).filter(|u| !u.is_empty()),
                password,
            ))
        }
        other => Err(EfdError::Config {
            message: format!("unsupported EFD URL scheme `{other}` (use http, https or file)"),
        }),
    }
}

/// Decodes `%XX` escapes (userinfo in URLs is percent-encoded).
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn default_url_is_the_reference_one_without_the_double_slash() {
        let o = EfdOptions::from_env(None, &env(&[])).unwrap();
        assert_eq!(
            o.location.to_string(),
            "https://usdf-rsp.slac.stanford.edu/influxdb-enterprise-data"
        );
        assert_eq!(o.username.as_deref(), Some("efdreader"));
        assert!(o.password.is_none());
        assert!(o.auth_warning().unwrap().contains("no password"));
        let dev = EfdOptions::from_env(
            None,
            &env(&[
                ("EFD_PATH", "influxdb-enterprise-standby-data"),
                ("EFD_PORT", "8443"),
            ]),
        )
        .unwrap();
        assert_eq!(
            dev.location.to_string(),
            "https://usdf-rsp.slac.stanford.edu:8443/influxdb-enterprise-standby-data"
        );
    }

    #[test]
    fn timeouts_and_attempts_from_variables_and_bad_values_named() {
        let o = EfdOptions::from_env(
            Some("http://127.0.0.1:8086/"),
            &env(&[
                ("EFD_TIMEOUT", "7"),
                ("EFD_CONNECT_TIMEOUT", " 2 "),
                ("EFD_MAX_ATTEMPTS", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(o.request_timeout, Duration::from_secs(7));
        assert_eq!(o.connect_timeout, Duration::from_secs(2));
        assert_eq!(o.max_attempts, 1);
        let d = EfdOptions::from_env(Some("http://127.0.0.1:8086/"), &env(&[])).unwrap();
        assert_eq!(
            (d.request_timeout, d.connect_timeout, d.max_attempts),
            (Duration::from_secs(120), Duration::from_secs(10), 4)
        );
        for (name, value) in [
            ("EFD_TIMEOUT", "0"),
            ("EFD_TIMEOUT", "1.5"),
            ("EFD_MAX_ATTEMPTS", "-1"),
            ("EFD_CONNECT_TIMEOUT", "soon"),
        ] {
            let err = EfdOptions::from_env(Some("http://127.0.0.1:8086/"), &env(&[(name, value)]))
                .unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
            assert!(!err.is_transient());
        }
    }

    #[test]
    fn url_credentials_are_taken_out_and_hidden() {
        let o =
            EfdOptions::from_env(Some("http://reader:p%40ss@127.0.0.1:8086/"), &env(&[])).unwrap();
        assert_eq!(o.location.to_string(), "http://127.0.0.1:8086/");
        assert_eq!(o.username.as_deref(), Some("reader"));
        assert_eq!(o.password.as_ref().unwrap().expose(), "p@ss");
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("p@ss") && !shown.contains("p%40ss"),
            "{shown}"
        );
        assert!(o.auth_warning().is_none());
    }

    #[test]
    fn password_from_variable_or_file() {
        let dir = std::env::temp_dir().join(format!("efd-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let o = EfdOptions::from_env(
            Some("https://efd.example/"),
            &env(&[("EFD_PASSWORD_FILE", file.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(o.password.unwrap().expose(), "s3cret");
        let o = EfdOptions::from_env(Some("https://efd.example/"), &env(&[("EFD_PASSWORD", "x")]))
            .unwrap();
        assert_eq!(o.password.unwrap().expose(), "x");
        let err = EfdOptions::from_env(
            Some("https://efd.example/"),
            &env(&[("EFD_PASSWORD_FILE", "/nonexistent/pw")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pw"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn file_urls_and_bad_urls() {
        let o = EfdOptions::from_env(Some("file:///data/efd.lp.gz"), &env(&[])).unwrap();
        assert_eq!(
            o.location,
            EfdLocation::File(PathBuf::from("/data/efd.lp.gz"))
        );
        assert!(o.username.is_none());
        let err = EfdOptions::from_env(Some("ftp://u:hunter2@h/"), &env(&[])).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        let err = EfdOptions::from_env(Some("not a url hunter2"), &env(&[])).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        // An unencoded `/` in the password: its rest would be the URL's path.
        let err =
            EfdOptions::from_env(Some("http://u:8086/hunter2@h:8086"), &env(&[])).unwrap_err();
        assert!(
            !err.to_string().contains("hunter2") && err.to_string().contains("percent-encode"),
            "{err}"
        );
    }
}
