//! Secret-leak testing for the binaries: password-protected servers, the environment that hands
//! their secrets to a binary every way a deployment does, the fault scenarios, and a scanner that
//! lists every place a secret shows.
//!
//! [`SecretServers::start`] starts, on loopback, an InfluxDB 1.x EFD with authentication (a reader
//! with [`EFD_PASSWORD`]), one PostgreSQL holding the ConsDB (owned by a role with
//! [`CONSDB_PASSWORD`]) and a Butler registry made by the real daf_butler (read by a role with
//! [`REGISTRY_PASSWORD`]), password authentication required for both, and an S3 server (secret
//! key [`S3_SECRET`]) holding the repository's `butler.yaml`. It seeds 40 minutes of telemetry for
//! a one-column config over the registry's first LATISS exposures (2025-10-02T03:00Z).
//!
//! A [`Scenario`] is a [`Fault`] (none; for one server a wrong password, a closed port, or a
//! malformed URL or credentials file; an EFD that hangs up on every request), a [`Style`] (the
//! secrets in URLs and files given as flags, or in environment variables as the Kubernetes
//! manifests set them) and a log [`Format`]. [`SecretServers::run`] runs a binary in a scenario at
//! `LOG_LEVEL=DEBUG` with a log file, and returns what it wrote; [`Findings`] collects what the
//! [`Scanner`] finds in its stdout, stderr and log file and in every row of every ConsDB table
//! (the task table's `error` column included), each finding with its place, line and context.
//!
//! Each secret is looked for raw, percent-encoded, JSON-escaped, base64-encoded (alone, and as
//! `user:password` in a Basic `Authorization` header), by its marker, an alphanumeric tail that
//! survives any URL encoding (so a partly encoded copy is found too), and by its fragments, the
//! distinctive pieces between its URL-special characters (so a piece echoed by a parser that split
//! a wrongly encoded URL in the wrong place is found too).
//!
//! ```no_run
//! use test_support::secrets::{Findings, Scenario, SecretServers};
//!
//! let servers = SecretServers::start();
//! let scanner = servers.scanner();
//! let mut findings = Findings::default();
//! for scenario in Scenario::all() {
//!     servers.reset_tasks();
//!     let run = servers.run("/path/to/efd-job", &scenario, &["-s", "2025-10-02T03:00:00"]);
//!     run.scan(&scanner, &mut findings);
//!     servers.scan_database(&scanner, &mut findings, &scenario.name());
//! }
//! assert!(findings.leaks.is_empty(), "{}", findings.report());
//! ```

use std::fmt::{self, Write as _};
use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::http::{base64, percent_encode, percent_encode_keeping};
use crate::process::{send_signal, wait_timeout};
use crate::{Influxd, Postgres, S3Server};

/// The EFD reader's password.
pub const EFD_PASSWORD: &str = "s3cr3t-efd-Zq9";
/// A wrong EFD password, for the wrong-password scenario.
pub const EFD_WRONG_PASSWORD: &str = "wr0ng-efd-Hk2";
/// The ConsDB role's password (URL-special characters: it must be percent-encoded in a URL).
pub const CONSDB_PASSWORD: &str = "p@ss:Cw7Xq/rd%-consdb-Vw3";
/// A wrong ConsDB password.
pub const CONSDB_WRONG_PASSWORD: &str = "p@ss:Jk4Rw/rd%-wr0ng-consdb-Jd5";
/// The Butler registry role's password.
pub const REGISTRY_PASSWORD: &str = "Rg5Hn!stry #pw?&=registry-Pq8x";
/// A wrong registry password.
pub const REGISTRY_WRONG_PASSWORD: &str = "wr0ng-registry-Mn4";
/// The S3 secret access key.
pub const S3_SECRET: &str = "S3kQ8/Key+p@ss:Tz9Vm/rd%-s3key-Tz4Lq";
/// A wrong S3 secret access key.
pub const S3_WRONG_SECRET: &str = "Wq3Lp/s3+key-Bx6Rf";
/// The InfluxDB admin's password (the harness uses it; no binary is ever given it).
pub const INFLUX_ADMIN_PASSWORD: &str = "adm1n-influx-Kx7";

/// The EFD reader.
pub const EFD_USER: &str = "efdreader";
/// The ConsDB role.
pub const CONSDB_USER: &str = "consdb_writer";
/// The registry role.
pub const REGISTRY_USER: &str = "butler_reader";
/// The S3 access key id (not a secret: errors name it to say which key was refused).
pub const S3_KEY_ID: &str = "AKIDSECRETSTEST";
/// The S3 profile of the `s3://PROFILE@bucket/...` repository URIs.
pub const S3_PROFILE: &str = "embargo";
/// The bucket holding the repository's `butler.yaml`.
pub const S3_BUCKET: &str = "secrets-repo";
/// The registry's PostgreSQL schema.
pub const REGISTRY_NAMESPACE: &str = "secrets_registry";
/// The instrument every run uses.
pub const INSTRUMENT: &str = "latiss";
/// The task table (`efd_scheduler.<instrument>`).
pub const TASK_TABLE: &str = "efd_scheduler.latiss";
/// The start of the one 5-minute task the scenarios process (covers LATISS exposures).
pub const TASK_START: &str = "2025-10-02T03:00:00";
/// Its end.
pub const TASK_END: &str = "2025-10-02T03:05:00";
/// How long one run may take before it is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// The column config: the mean of ESS sensor 301's temperature.
const CONFIG: &str = r#"version: "secrets"
columns:
- name: temp_mean
  tables: [exposure_efd, visit1_efd]
  function: mean
  datatype: float
  description: Mean of sensor 301.
  subset_field: salIndex
  subset_value: 301
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: temperatureItem0}, {name: salIndex}]
"#;

/// 2025-10-02T02:50:00Z in nanoseconds: the telemetry starts here and lasts 40 minutes.
const TELEMETRY_START_NS: i64 = 1_759_373_400 * 1_000_000_000;

/// One secret the binaries must never show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretValue {
    /// A short name for reports (`efd password`).
    pub name: &'static str,
    /// The secret itself.
    pub value: &'static str,
    /// The user it goes with in a Basic `Authorization` header, if any.
    pub user: Option<&'static str>,
    /// An alphanumeric tail of the value that no URL or JSON encoding changes.
    pub marker: &'static str,
    /// Distinctive pieces between its URL-special characters, which a parser that splits a
    /// wrongly encoded URL in the wrong place may echo (as the port it could not read, say).
    pub fragments: &'static [&'static str],
}

/// Every secret the servers use or the scenarios hand out, right and wrong ones.
pub const SECRETS: [SecretValue; 9] = [
    SecretValue {
        name: "efd password",
        value: EFD_PASSWORD,
        user: Some(EFD_USER),
        marker: "efd-Zq9",
        fragments: &[],
    },
    SecretValue {
        name: "wrong efd password",
        value: EFD_WRONG_PASSWORD,
        user: Some(EFD_USER),
        marker: "efd-Hk2",
        fragments: &[],
    },
    SecretValue {
        name: "consdb password",
        value: CONSDB_PASSWORD,
        user: Some(CONSDB_USER),
        marker: "consdb-Vw3",
        fragments: &["Cw7Xq"],
    },
    SecretValue {
        name: "wrong consdb password",
        value: CONSDB_WRONG_PASSWORD,
        user: Some(CONSDB_USER),
        marker: "consdb-Jd5",
        fragments: &["Jk4Rw"],
    },
    SecretValue {
        name: "registry password",
        value: REGISTRY_PASSWORD,
        user: Some(REGISTRY_USER),
        marker: "registry-Pq8x",
        fragments: &["Rg5Hn"],
    },
    SecretValue {
        name: "wrong registry password",
        value: REGISTRY_WRONG_PASSWORD,
        user: Some(REGISTRY_USER),
        marker: "registry-Mn4",
        fragments: &[],
    },
    SecretValue {
        name: "s3 secret key",
        value: S3_SECRET,
        user: Some(S3_KEY_ID),
        marker: "s3key-Tz4Lq",
        fragments: &["S3kQ8", "Tz9Vm"],
    },
    SecretValue {
        name: "wrong s3 secret key",
        value: S3_WRONG_SECRET,
        user: Some(S3_KEY_ID),
        marker: "key-Bx6Rf",
        fragments: &["Wq3Lp"],
    },
    SecretValue {
        name: "influx admin password",
        value: INFLUX_ADMIN_PASSWORD,
        user: Some("admin"),
        marker: "influx-Kx7",
        fragments: &[],
    },
];

/// One string the scanner looks for: a form of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needle {
    /// The secret's name.
    pub secret: &'static str,
    /// The form: `raw`, `percent-encoded`, `base64`, `basic-auth`, `marker`, ...
    pub form: &'static str,
    /// The text looked for.
    pub text: String,
}

/// Finds every form of a set of secrets in a text.
#[derive(Debug, Clone)]
pub struct Scanner {
    needles: Vec<Needle>,
}

/// One place a secret showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    /// Where: `efd-job [scenario] stdout`, `consdb table efd_scheduler.latiss after [scenario]`.
    pub place: String,
    /// The secret's name.
    pub secret: &'static str,
    /// The forms found on that line (`raw`, `marker`, ...).
    pub forms: Vec<&'static str>,
    /// The 1-based line of the text.
    pub line: usize,
    /// The line around the first match, with every form of every secret replaced by
    /// `<<secret:form>>` (so the report itself shows no secret).
    pub context: String,
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} line {}: {} ({}): {}",
            self.place,
            self.line,
            self.secret,
            self.forms.join(", "),
            self.context
        )
    }
}

/// What the scans of a test found, and how much they looked at.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Texts scanned (one per output stream, log file, database table, status report).
    pub places: u64,
    /// Bytes scanned.
    pub bytes: u64,
    /// Every leak, in scan order.
    pub leaks: Vec<Leak>,
}

impl Findings {
    /// Scans `text`, counting it as one place, and keeps what is found.
    pub fn scan(&mut self, scanner: &Scanner, place: &str, text: &str) {
        self.places += 1;
        self.bytes += text.len() as u64;
        self.leaks.extend(scanner.scan(place, text));
    }

    /// Every leak, one per line, with a count; `no secret found in N places` when clean.
    pub fn report(&self) -> String {
        if self.leaks.is_empty() {
            return format!(
                "no secret found in {} places ({} bytes)",
                self.places, self.bytes
            );
        }
        let mut out = format!(
            "{} secret leak(s) in {} places scanned:\n",
            self.leaks.len(),
            self.places
        );
        for leak in &self.leaks {
            let _ = writeln!(out, "  {leak}");
        }
        out
    }
}

/// Percent-encodes every byte but `[A-Za-z0-9-._~]`, with lower-case hex digits.
fn percent_encode_lower(value: &str) -> String {
    percent_encode_keeping(value, b"-_.~", false)
}

/// Percent-encodes as the WHATWG URL standard encodes userinfo (what the `url` crate writes back
/// into a URL): `!$&'()*+,;=` and the unreserved characters stay, the rest is encoded.
fn percent_encode_userinfo(value: &str) -> String {
    percent_encode_keeping(value, b"-_.~!$&'()*+,;=", true)
}

impl Scanner {
    /// A scanner for `secrets`, each in every form (see the module documentation). Forms that
    /// coincide with an earlier one are looked for once.
    pub fn new(secrets: &[SecretValue]) -> Scanner {
        let mut needles: Vec<Needle> = Vec::new();
        for secret in secrets {
            let json = serde_json::to_string(secret.value).unwrap_or_default();
            let json = json
                .strip_prefix('"')
                .and_then(|j| j.strip_suffix('"'))
                .unwrap_or(&json)
                .to_owned();
            let mut forms = vec![
                ("raw", secret.value.to_owned()),
                ("percent-encoded", percent_encode(secret.value)),
                (
                    "percent-encoded (lower-case)",
                    percent_encode_lower(secret.value),
                ),
                (
                    "percent-encoded (userinfo)",
                    percent_encode_userinfo(secret.value),
                ),
                (
                    "form-encoded",
                    percent_encode(secret.value).replace("%20", "+"),
                ),
                ("json-escaped", json),
                // A `\` or `"` escaped once more, as a Debug print of an error text shows it.
                (
                    "debug-escaped",
                    secret.value.replace('\\', "\\\\").replace('"', "\\\""),
                ),
                ("base64", base64(secret.value.as_bytes(), false)),
                ("base64url", base64(secret.value.as_bytes(), true)),
            ];
            if let Some(user) = secret.user {
                let pair = format!("{user}:{}", secret.value);
                forms.push(("basic-auth", base64(pair.as_bytes(), false)));
            }
            forms.push(("marker", secret.marker.to_owned()));
            forms.extend(
                secret
                    .fragments
                    .iter()
                    .map(|f| ("fragment", (*f).to_owned())),
            );
            for (form, text) in forms {
                // A base64 form ends in padding that depends on what follows it in a header.
                let text = text.trim_end_matches('=').to_owned();
                if text.is_empty() || needles.iter().any(|n| n.text == text) {
                    continue;
                }
                needles.push(Needle {
                    secret: secret.name,
                    form,
                    text,
                });
            }
        }
        Scanner { needles }
    }

    /// A scanner for every secret of [`SECRETS`].
    pub fn all() -> Scanner {
        Scanner::new(&SECRETS)
    }

    /// The strings looked for.
    pub fn needles(&self) -> &[Needle] {
        &self.needles
    }

    /// Every line of `text` showing a secret: one [`Leak`] per line and secret, listing the forms
    /// found there.
    pub fn scan(&self, place: &str, text: &str) -> Vec<Leak> {
        let mut leaks: Vec<Leak> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            for needle in &self.needles {
                if !line.contains(&needle.text) {
                    continue;
                }
                if let Some(leak) = leaks
                    .iter_mut()
                    .find(|l| l.line == index + 1 && l.secret == needle.secret)
                {
                    if !leak.forms.contains(&needle.form) {
                        leak.forms.push(needle.form);
                    }
                    continue;
                }
                leaks.push(Leak {
                    place: place.to_owned(),
                    secret: needle.secret,
                    forms: vec![needle.form],
                    line: index + 1,
                    context: self.context(line, needle.secret),
                });
            }
        }
        leaks
    }

    /// `line` masked (see [`Scanner::mask`]), cut to 100 characters before the first mask of
    /// `secret` and 160 after its start.
    fn context(&self, line: &str, secret: &str) -> String {
        let masked = self.mask(line);
        let at = masked.find(&format!("<<{secret}:")).unwrap_or(0);
        let start = masked[..at]
            .char_indices()
            .rev()
            .nth(99)
            .map_or(0, |(i, _)| i);
        let end = masked[at..]
            .char_indices()
            .nth(160)
            .map_or(masked.len(), |(i, _)| at + i);
        let prefix = if start > 0 { "…" } else { "" };
        let suffix = if end < masked.len() { "…" } else { "" };
        format!("{prefix}{}{suffix}", &masked[start..end])
    }

    /// `text` with every needle replaced by `<<secret:form>>`, longest first (so a marker does not
    /// split a longer form it is part of).
    pub fn mask(&self, text: &str) -> String {
        let mut needles: Vec<&Needle> = self.needles.iter().collect();
        needles.sort_by_key(|n| std::cmp::Reverse(n.text.len()));
        let mut masked = text.to_owned();
        for needle in needles {
            masked = masked.replace(
                &needle.text,
                &format!("<<{}:{}>>", needle.secret, needle.form),
            );
        }
        masked
    }

    /// Panics unless the scanner finds every one of its needles planted in log-like text (one per
    /// line, inside a quoted value, a URL and a JSON string), each with the right secret and form.
    /// Returns how many needles were checked.
    pub fn self_check(&self) -> usize {
        for needle in &self.needles {
            let planted = format!(
                "2026-01-01T00:00:00Z [INFO] event=x a=1\n\
                 2026-01-01T00:00:00Z [ERROR] event=y error=\"boom {} end\"\n",
                needle.text
            );
            let found = self.scan("planted", &planted);
            assert!(
                found.iter().any(|l| l.secret == needle.secret
                    && l.line == 2
                    && l.forms.contains(&needle.form)),
                "test-support: the scanner missed {} ({}) planted in a log line: {found:?}",
                needle.secret,
                needle.form
            );
            assert!(
                found.iter().all(|l| !l.context.contains(&needle.text)),
                "test-support: a leak's context shows the secret: {found:?}"
            );
        }
        // A percent-encoded secret inside a URL and a partly encoded one are found too.
        for secret in &SECRETS {
            let url = format!(
                "{{\"url\":\"http://{}:{}@127.0.0.1:1/x\"}}",
                secret.user.unwrap_or("u"),
                percent_encode(secret.value)
            );
            let partly = format!(
                "{}{}",
                &secret.value[..1],
                percent_encode(&secret.value[1..])
            );
            for text in [url, partly] {
                if self.needles.iter().any(|n| n.secret == secret.name) {
                    assert!(
                        self.scan("planted", &text)
                            .iter()
                            .any(|l| l.secret == secret.name),
                        "test-support: the scanner missed {} in {text:?}",
                        secret.name
                    );
                }
            }
        }
        assert!(
            self.scan(
                "planted",
                "event=x url=http://127.0.0.1:8086 user=efdreader"
            )
            .is_empty(),
            "test-support: the scanner reports text without a secret"
        );
        self.needles.len()
    }
}

/// A server the binaries talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// InfluxDB (HTTP Basic authentication).
    Efd,
    /// The ConsDB PostgreSQL database (also holds the task table).
    ConsDb,
    /// The Butler registry's PostgreSQL database.
    Registry,
    /// The S3 server holding `butler.yaml`.
    S3,
}

impl Server {
    /// Every server.
    pub const ALL: [Server; 4] = [Server::Efd, Server::ConsDb, Server::Registry, Server::S3];

    /// A short name: `efd`, `consdb`, `registry`, `s3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Server::Efd => "efd",
            Server::ConsDb => "consdb",
            Server::Registry => "registry",
            Server::S3 => "s3",
        }
    }
}

/// What goes wrong in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: a successful run.
    None,
    /// The server gets a wrong password (or S3 secret key).
    WrongPassword(Server),
    /// The server's address is a closed port.
    Unreachable(Server),
    /// Its URL or credentials file is malformed: a port out of range, a password written into a
    /// URL without percent-encoding, a `db-auth.yaml` or `LSST_DB_AUTH_CREDENTIALS` cut short in
    /// the middle of the password.
    Malformed(Server),
    /// The EFD's port accepts connections and closes them at once: past the binary's startup
    /// check (a TCP connection), every request fails after its retries, so the tasks fail with
    /// the connection error recorded in the task table.
    EfdHangsUp,
}

/// How the secrets reach the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Flags (`-E`, `-d`, `-l`) with the passwords in URL userinfo (percent-encoded), the registry
    /// password in a `db-auth.yaml` (`LSST_DB_AUTH`), the S3 key in the profile's endpoint URL
    /// (`LSST_RESOURCES_S3_PROFILE_embargo=http://KEY:SECRET@host`).
    Urls,
    /// Variables only, as the Kubernetes manifests set them: `CONSDB_URL` with its password in the
    /// userinfo (percent-encoded; the Secret's `consdb-url`), `EFD_URL` + `EFD_USERNAME` +
    /// `EFD_PASSWORD`, `PGPASSWORD` for the registry, `S3_ENDPOINT_URL` + `AWS_ACCESS_KEY_ID` +
    /// `AWS_SECRET_ACCESS_KEY`, `LOG_FILE`, `LOG_FORMAT`.
    Variables,
}

/// The log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `--log-format text`.
    Text,
    /// `--log-format json`.
    Json,
}

impl Format {
    /// `text` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
        }
    }
}

/// One run's circumstances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// What goes wrong.
    pub fault: Fault,
    /// How secrets are passed.
    pub style: Style,
    /// The log format.
    pub format: Format,
    /// `LOG_LEVEL`: `DEBUG` in [`Scenario::all`].
    pub log_level: &'static str,
}

impl Scenario {
    /// A scenario at `LOG_LEVEL=DEBUG`.
    pub fn new(fault: Fault, style: Style, format: Format) -> Scenario {
        Scenario {
            fault,
            style,
            format,
            log_level: "DEBUG",
        }
    }

    /// Every fault (none; for each server a wrong password, a closed port, a malformed URL or
    /// credentials file; an EFD that hangs up) in both styles and both formats, at
    /// `LOG_LEVEL=DEBUG`: 56 scenarios.
    pub fn all() -> Vec<Scenario> {
        let mut faults = vec![Fault::None];
        faults.extend(Server::ALL.map(Fault::WrongPassword));
        faults.extend(Server::ALL.map(Fault::Unreachable));
        faults.extend(Server::ALL.map(Fault::Malformed));
        faults.push(Fault::EfdHangsUp);
        let mut all = Vec::new();
        for (style, format) in [
            (Style::Urls, Format::Text),
            (Style::Variables, Format::Json),
            (Style::Urls, Format::Json),
            (Style::Variables, Format::Text),
        ] {
            for &fault in &faults {
                all.push(Scenario::new(fault, style, format));
            }
        }
        all
    }

    /// `ok`, `wrong efd password`, `consdb unreachable`, ... with the style and format:
    /// `wrong efd password, urls, text`.
    pub fn name(&self) -> String {
        let fault = match self.fault {
            Fault::None => "ok".to_owned(),
            Fault::WrongPassword(s) => format!("wrong {} password", s.as_str()),
            Fault::Unreachable(s) => format!("{} unreachable", s.as_str()),
            Fault::Malformed(s) => format!("malformed {} url or credentials", s.as_str()),
            Fault::EfdHangsUp => "efd hangs up".to_owned(),
        };
        let style = match self.style {
            Style::Urls => "urls",
            Style::Variables => "variables",
        };
        let level = if self.log_level == "DEBUG" {
            String::new()
        } else {
            format!(", LOG_LEVEL={}", self.log_level)
        };
        format!("{fault}, {style}, {}{level}", self.format.as_str())
    }

    /// A file-name-safe form of [`Scenario::name`].
    fn slug(&self) -> String {
        self.name()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect()
    }

    fn wrong(&self, server: Server) -> bool {
        self.fault == Fault::WrongPassword(server)
    }

    fn unreachable(&self, server: Server) -> bool {
        self.fault == Fault::Unreachable(server)
    }

    fn malformed(&self, server: Server) -> bool {
        self.fault == Fault::Malformed(server)
    }
}

/// What one run of a binary wrote.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The binary's file name.
    pub program: String,
    /// The scenario's name (or the label given to [`SecretServers::run_labelled`]).
    pub label: String,
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// Its log file (`-l`/`LOG_FILE`), empty if it wrote none.
    pub log: String,
    /// How long it took.
    pub elapsed: Duration,
}

impl RunOutput {
    /// Scans stdout, stderr and the log file (three places).
    pub fn scan(&self, scanner: &Scanner, findings: &mut Findings) {
        let place = |what: &str| format!("{} [{}] {what}", self.program, self.label);
        findings.scan(scanner, &place("stdout"), &self.stdout);
        findings.scan(scanner, &place("stderr"), &self.stderr);
        findings.scan(scanner, &place("log file"), &self.log);
    }

    /// Stdout, stderr and the log file, for assertion messages, every secret masked as
    /// `<<secret:form>>`.
    pub fn all_text(&self) -> String {
        let text = format!(
            "--- {} [{}] exit {:?} after {:.1} s ---\n--- stdout ---\n{}\n--- stderr ---\n{}\n\
             --- log file ---\n{}",
            self.program,
            self.label,
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr,
            self.log
        );
        Scanner::all().mask(&text)
    }
}

/// One row of the task table, as far as the tests look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// The task id.
    pub id: i64,
    /// The status, trimmed (`completed`, `failed`, ...).
    pub status: String,
    /// The `error` column (empty when NULL).
    pub error: String,
}

/// The password-protected servers and the files the scenarios hand to the binaries.
#[derive(Debug)]
pub struct SecretServers {
    /// The EFD (authentication on; the harness itself is its admin).
    pub influx: Influxd,
    /// PostgreSQL with the ConsDB (`consdb`) and the registry (`registry`).
    pub pg: Postgres,
    /// The S3 server with the repository's `butler.yaml`.
    pub s3: S3Server,
    /// Config, db-auth files, log files and the runs' output.
    dir: TempDir,
    /// A port nothing listens on (taken when the servers started).
    closed_port: u16,
    /// A counter making each run's file names unique.
    runs: std::cell::Cell<u32>,
    /// A port that accepts connections and closes them at once.
    hang_up: HangUp,
}

/// A loopback port that accepts every connection and closes it at once, on a background thread
/// stopped on drop.
#[derive(Debug)]
struct HangUp {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HangUp {
    fn start() -> HangUp {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("test-support: cannot bind a port on 127.0.0.1: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("test-support: cannot read a bound port: {e}"))
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("hang-up-{port}"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    // Dropping the stream closes the connection before any answer.
                    drop(stream);
                }
            })
            .unwrap_or_else(|e| panic!("test-support: cannot spawn a thread: {e}"));
        HangUp {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HangUp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept call so the thread sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl SecretServers {
    /// Starts the servers and seeds them (see the module documentation). Takes a few seconds (the
    /// registry is made by daf_butler); panics as the servers' `start` do.
    pub fn start() -> SecretServers {
        let dir = tempfile::Builder::new()
            .prefix("test-support-secrets-")
            .tempdir()
            .unwrap_or_else(|e| panic!("test-support: cannot create a temp dir: {e}"));
        std::fs::write(dir.path().join("config.yaml"), CONFIG)
            .unwrap_or_else(|e| panic!("test-support: cannot write the config: {e}"));
        std::fs::create_dir_all(dir.path().join("home"))
            .unwrap_or_else(|e| panic!("test-support: cannot create a home directory: {e}"));

        let influx = Influxd::start_with_auth("admin", INFLUX_ADMIN_PASSWORD);
        influx.create_database("efd");
        influx.write("efd", &telemetry());
        influx.create_user(EFD_USER, EFD_PASSWORD, Some("efd"));

        let pg = Postgres::start();
        pg.create_database("registry");
        crate::butler::make_registry(
            &dir.path().join("registry"),
            Some((&pg.url("registry"), REGISTRY_NAMESPACE)),
        );
        pg.create_role(REGISTRY_USER, REGISTRY_PASSWORD, false);
        pg.psql(
            "registry",
            &format!(
                "GRANT USAGE ON SCHEMA {REGISTRY_NAMESPACE} TO {REGISTRY_USER}; \
                 GRANT SELECT ON ALL TABLES IN SCHEMA {REGISTRY_NAMESPACE} TO {REGISTRY_USER}"
            ),
        );
        pg.create_database("consdb");
        pg.create_role(CONSDB_USER, CONSDB_PASSWORD, false);
        pg.psql(
            "postgres",
            &format!("ALTER DATABASE consdb OWNER TO {CONSDB_USER}"),
        );
        pg.require_password_auth();

        let s3 = S3Server::start(S3_KEY_ID, S3_SECRET);
        s3.create_bucket(S3_BUCKET);
        let closed_port = crate::free_port();
        for (prefix, port) in [("main", pg.port()), ("closed", closed_port)] {
            let yaml = format!(
                "registry:\n  db: postgresql://{REGISTRY_USER}@127.0.0.1:{port}/registry\n  \
                 namespace: {REGISTRY_NAMESPACE}\n"
            );
            s3.put(S3_BUCKET, &format!("{prefix}/butler.yaml"), yaml.as_bytes());
        }

        let servers = SecretServers {
            influx,
            pg,
            s3,
            dir,
            closed_port,
            runs: std::cell::Cell::new(0),
            hang_up: HangUp::start(),
        };
        for (name, password, end) in [
            ("db-auth.yaml", REGISTRY_PASSWORD, "\""),
            ("db-auth-wrong.yaml", REGISTRY_WRONG_PASSWORD, "\""),
            // Not YAML: the quoted password never ends.
            ("db-auth-malformed.yaml", REGISTRY_PASSWORD, ""),
        ] {
            let path = servers.dir.path().join(name);
            let yaml = format!(
                "- url: postgresql://{REGISTRY_USER}@127.0.0.1/registry\n  \
                 password: \"{password}{end}\n"
            );
            std::fs::write(&path, yaml)
                .unwrap_or_else(|e| panic!("test-support: cannot write {}: {e}", path.display()));
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap_or_else(|e| panic!("test-support: cannot chmod {}: {e}", path.display()));
        }
        servers
    }

    /// A scanner for every secret of [`SECRETS`].
    pub fn scanner(&self) -> Scanner {
        Scanner::all()
    }

    /// The port nothing listens on, which the unreachable scenarios use.
    pub fn closed_port(&self) -> u16 {
        self.closed_port
    }

    /// The column config.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// The Butler repository of `scenario` (the tasks' `butler_repo`): `butler.yaml` on S3, through
    /// the profile in the URI (urls style) or not (variables style), naming the registry or, when
    /// it is to be unreachable, a closed port.
    pub fn repo(&self, scenario: &Scenario) -> String {
        let prefix = if scenario.unreachable(Server::Registry) {
            "closed"
        } else {
            "main"
        };
        match scenario.style {
            Style::Urls => format!("s3://{S3_PROFILE}@{S3_BUCKET}/{prefix}/butler.yaml"),
            Style::Variables => format!("s3://{S3_BUCKET}/{prefix}/butler.yaml"),
        }
    }

    /// The command for `program` in `scenario`, with `extra` arguments after the common ones, at
    /// `LOG_LEVEL=DEBUG`, logging to `logfile`, with `--migrate`.
    fn command(
        &self,
        program: &Path,
        scenario: &Scenario,
        logfile: &Path,
        extra: &[&str],
    ) -> Command {
        let port = |server: Server, open: u16| {
            if scenario.unreachable(server) {
                self.closed_port
            } else {
                open
            }
        };
        let pick = |server: Server, right: &'static str, wrong: &'static str| {
            if scenario.wrong(server) { wrong } else { right }
        };
        let efd_port = if scenario.fault == Fault::EfdHangsUp {
            self.hang_up.port
        } else {
            port(Server::Efd, self.influx.port())
        };
        let pg_port = port(Server::ConsDb, self.pg.port());
        let s3_port = port(Server::S3, self.s3.port());
        let efd_password = pick(Server::Efd, EFD_PASSWORD, EFD_WRONG_PASSWORD);
        let consdb_password = pick(Server::ConsDb, CONSDB_PASSWORD, CONSDB_WRONG_PASSWORD);
        let s3_secret = pick(Server::S3, S3_SECRET, S3_WRONG_SECRET);
        let registry_password = pick(Server::Registry, REGISTRY_PASSWORD, REGISTRY_WRONG_PASSWORD);

        let mut command = crate::service_command(program);
        command
            .env("LOG_LEVEL", scenario.log_level)
            .env("HOME", self.dir.path().join("home"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.dir.path().join("none"))
            .env("AWS_CONFIG_FILE", self.dir.path().join("none"))
            .env("LSST_DB_AUTH", self.dir.path().join("none"));
        match scenario.style {
            Style::Urls => {
                // Malformed: a port out of range in each URL; a db-auth.yaml that is not YAML.
                let malformed = |server: Server, port: u16| {
                    if scenario.malformed(server) {
                        "99999".to_owned()
                    } else {
                        port.to_string()
                    }
                };
                let efd = format!(
                    "http://{EFD_USER}:{}@127.0.0.1:{}",
                    percent_encode(efd_password),
                    malformed(Server::Efd, efd_port)
                );
                let consdb = format!(
                    "postgresql://{CONSDB_USER}:{}@127.0.0.1:{}/consdb",
                    percent_encode(consdb_password),
                    malformed(Server::ConsDb, pg_port)
                );
                let endpoint = format!(
                    "http://{S3_KEY_ID}:{}@127.0.0.1:{}",
                    percent_encode(s3_secret),
                    malformed(Server::S3, s3_port)
                );
                let db_auth = if scenario.malformed(Server::Registry) {
                    "db-auth-malformed.yaml"
                } else if scenario.wrong(Server::Registry) {
                    "db-auth-wrong.yaml"
                } else {
                    "db-auth.yaml"
                };
                command
                    .arg("-c")
                    .arg(self.config_path())
                    .args(["-i", INSTRUMENT, "-r", &self.repo(scenario)])
                    .args(["-d", &consdb, "-E", &efd])
                    .args(["--log-format", scenario.format.as_str()])
                    .arg("-l")
                    .arg(logfile)
                    .env(format!("LSST_RESOURCES_S3_PROFILE_{S3_PROFILE}"), endpoint)
                    .env("LSST_DB_AUTH", self.dir.path().join(db_auth));
            }
            Style::Variables => {
                // Malformed: the passwords written into URLs without percent-encoding (an easy
                // mistake with `@`, `:`, `/` and `%` in them), a port out of range in the EFD
                // URL, and LSST_DB_AUTH_CREDENTIALS cut short.
                let consdb_userinfo = if scenario.malformed(Server::ConsDb) {
                    format!("{CONSDB_USER}:{consdb_password}")
                } else {
                    format!("{CONSDB_USER}:{}", percent_encode(consdb_password))
                };
                let efd_url = if scenario.malformed(Server::Efd) {
                    format!("http://{EFD_USER}:{efd_password}@127.0.0.1:99999")
                } else {
                    format!("http://127.0.0.1:{efd_port}")
                };
                let s3_endpoint = if scenario.malformed(Server::S3) {
                    format!("http://{S3_KEY_ID}:{s3_secret}@127.0.0.1:{s3_port}")
                } else {
                    format!("http://127.0.0.1:{s3_port}")
                };
                if scenario.malformed(Server::Registry) {
                    command.env(
                        "LSST_DB_AUTH_CREDENTIALS",
                        format!(
                            "[{{\"url\": \"postgresql://{REGISTRY_USER}@127.0.0.1/registry\", \
                             \"password\": \"{registry_password}"
                        ),
                    );
                }
                command
                    .env("CONFIG_FILE", self.config_path())
                    .env("INSTRUMENT", INSTRUMENT)
                    .env("BUTLER_REPO", self.repo(scenario))
                    .env(
                        "CONSDB_URL",
                        format!("postgresql://{consdb_userinfo}@127.0.0.1:{pg_port}/consdb"),
                    )
                    .env("EFD_URL", efd_url)
                    .env("EFD_USERNAME", EFD_USER)
                    .env("EFD_PASSWORD", efd_password)
                    .env("PGPASSWORD", registry_password)
                    .env("S3_ENDPOINT_URL", s3_endpoint)
                    .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
                    .env("AWS_SECRET_ACCESS_KEY", s3_secret)
                    .env("LOG_FORMAT", scenario.format.as_str())
                    .env("LOG_FILE", logfile);
            }
        }
        command.arg("--migrate").args(extra);
        command
    }

    /// Runs `program` in `scenario` with `extra` arguments (mode flags, `status`, ...) and returns
    /// what it wrote. Panics if it runs longer than 90 s.
    pub fn run(&self, program: impl AsRef<Path>, scenario: &Scenario, extra: &[&str]) -> RunOutput {
        self.run_labelled(program, scenario, &scenario.name(), extra)
    }

    /// [`SecretServers::run`] with another label for the places its output is scanned as.
    pub fn run_labelled(
        &self,
        program: impl AsRef<Path>,
        scenario: &Scenario,
        label: &str,
        extra: &[&str],
    ) -> RunOutput {
        let program = program.as_ref();
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let runs = self.dir.path().join("runs");
        std::fs::create_dir_all(&runs)
            .unwrap_or_else(|e| panic!("test-support: cannot create {}: {e}", runs.display()));
        let base = runs.join(format!("{n:03}-{}", scenario.slug()));
        let logfile = base.with_extension("log");
        let stdout_path = base.with_extension("stdout");
        let stderr_path = base.with_extension("stderr");
        let create = |path: &Path| {
            File::create(path)
                .unwrap_or_else(|e| panic!("test-support: cannot create {}: {e}", path.display()))
        };
        let mut command = self.command(program, scenario, &logfile, extra);
        command
            .stdin(Stdio::null())
            .stdout(create(&stdout_path))
            .stderr(create(&stderr_path));
        let began = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("test-support: cannot run {}: {e}", program.display()));
        let status = match wait_timeout(&mut child, RUN_TIMEOUT) {
            Some(status) => status,
            None => {
                send_signal(child.id(), "KILL");
                let _ = child.wait();
                panic!(
                    "test-support: {} [{label}] ran longer than {} s; its stdout:\n{}",
                    program.display(),
                    RUN_TIMEOUT.as_secs(),
                    std::fs::read_to_string(&stdout_path).unwrap_or_default()
                );
            }
        };
        let read = |path: &Path| {
            std::fs::read(path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        RunOutput {
            program: program.file_name().map_or_else(
                || program.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            label: label.to_owned(),
            code: status.code(),
            stdout: read(&stdout_path),
            stderr: read(&stderr_path),
            log: read(&logfile),
            elapsed: began.elapsed(),
        }
    }

    /// Whether the task table exists yet (the first `--migrate` run creates it).
    fn task_table_exists(&self) -> bool {
        self.pg
            .psql(
                "consdb",
                &format!("SELECT to_regclass('{TASK_TABLE}') IS NOT NULL"),
            )
            .trim()
            == "t"
    }

    /// Deletes every task (a no-op before the table exists).
    pub fn reset_tasks(&self) {
        if self.task_table_exists() {
            self.pg.psql("consdb", &format!("DELETE FROM {TASK_TABLE}"));
        }
    }

    /// Inserts one task over [`TASK_START`]..[`TASK_END`] for `scenario`'s repository with
    /// `status`, created `created_hours_ago` hours ago (UTC), as the Python service would have.
    /// Panics if the task table does not exist yet.
    pub fn seed_task(&self, scenario: &Scenario, status: &str, created_hours_ago: u32) {
        let repo = self.repo(scenario).replace('\'', "''");
        self.pg.psql(
            "consdb",
            &format!(
                "INSERT INTO {TASK_TABLE} (start_time, end_time, timewindow, status, retries, \
                 butler_repo, created_at, error) VALUES ('{TASK_START}', '{TASK_END}', 1, \
                 '{status}', 0, '{repo}', (now() AT TIME ZONE 'UTC') - interval \
                 '{created_hours_ago} hours', {})",
                if status == "failed" {
                    "'seeded failure'"
                } else {
                    "NULL"
                }
            ),
        );
    }

    /// The task table's rows, by id (empty before the table exists).
    pub fn tasks(&self) -> Vec<TaskRow> {
        if !self.task_table_exists() {
            return Vec::new();
        }
        let out = self.pg.psql(
            "consdb",
            &format!(
                "SELECT json_build_object('id', id, 'status', trim(status), 'error', \
                 coalesce(error, ''))::text FROM {TASK_TABLE} ORDER BY id"
            ),
        );
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("test-support: unexpected task row {line:?}: {e}"));
                TaskRow {
                    id: value["id"].as_i64().unwrap_or_default(),
                    status: value["status"].as_str().unwrap_or_default().to_owned(),
                    error: value["error"].as_str().unwrap_or_default().to_owned(),
                }
            })
            .collect()
    }

    /// Scans every row of every table of the ConsDB database (the task table, its migrations
    /// table, the `efd_<instrument>` tables), each row as PostgreSQL's text form of the whole row,
    /// one place per table; `after` names the moment in the places. Returns how many tables.
    pub fn scan_database(&self, scanner: &Scanner, findings: &mut Findings, after: &str) -> usize {
        let tables = self.pg.psql(
            "consdb",
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) \
             FROM information_schema.tables WHERE table_type = 'BASE TABLE' \
             AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        );
        let tables: Vec<&str> = tables.lines().filter(|l| !l.trim().is_empty()).collect();
        for table in &tables {
            let rows = self
                .pg
                .psql("consdb", &format!("SELECT t::text FROM {table} t"));
            findings.scan(
                scanner,
                &format!("consdb table {table} after [{after}]"),
                &rows,
            );
        }
        tables.len()
    }

    /// Asserts what `run` of `scenario` shows that the fault really happened (and nothing else
    /// went wrong), given the task table's rows after it: a successful run exits 0; a wrong EFD
    /// password fails the task (exit 3) with the EFD's refusal in its `error`; an EFD that hangs up
    /// fails it naming the EFD's address; a closed EFD port does the same or stops the run at
    /// startup (exit 1); a wrong password, closed port or malformed URL of the others, or a
    /// malformed EFD URL, stops the run at startup (exit 1) with an `event=configuration_error`
    /// naming the refusal or the port. Returns a short description of the evidence.
    pub fn assert_fault_seen(
        &self,
        scenario: &Scenario,
        run: &RunOutput,
        tasks: &[TaskRow],
    ) -> String {
        let text = format!(
            "{}\n{}\n{}",
            run.stdout,
            run.stderr,
            tasks
                .iter()
                .map(|t| t.error.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        let closed = format!("127.0.0.1:{}", self.closed_port);
        let context = || {
            Scanner::all().mask(&format!(
                "{}\n--- task table ---\n{tasks:?}",
                run.all_text()
            ))
        };
        let failed_task = || {
            tasks
                .iter()
                .find(|t| t.status == "failed" && t.error.contains("EFD"))
                .unwrap_or_else(|| {
                    panic!(
                        "[{}] expected a failed task with an EFD error\n{}",
                        scenario.name(),
                        context()
                    )
                })
        };
        match scenario.fault {
            Fault::None => {
                assert_eq!(run.code, Some(0), "[{}]\n{}", scenario.name(), context());
                "exit 0".to_owned()
            }
            Fault::WrongPassword(Server::Efd) => {
                assert_eq!(run.code, Some(3), "[{}]\n{}", scenario.name(), context());
                let task = failed_task();
                assert!(
                    task.error.contains("401") || task.error.contains("authorization"),
                    "[{}] task {}'s error does not say the EFD refused\n{}",
                    scenario.name(),
                    task.id,
                    context()
                );
                format!(
                    "exit 3, task {} failed: {}",
                    task.id,
                    Scanner::all().mask(&task.error)
                )
            }
            Fault::EfdHangsUp => {
                assert_eq!(run.code, Some(3), "[{}]\n{}", scenario.name(), context());
                let task = failed_task();
                let port = format!("127.0.0.1:{}", self.hang_up.port);
                assert!(
                    task.error.contains(&port),
                    "[{}] task {}'s error does not name {port}\n{}",
                    scenario.name(),
                    task.id,
                    context()
                );
                format!(
                    "exit 3, task {} failed: {}",
                    task.id,
                    Scanner::all().mask(&task.error)
                )
            }
            // Caught at startup when the binary checks the EFD before its first task; else each
            // task fails after its retries.
            Fault::Unreachable(Server::Efd) if run.code != Some(1) => {
                assert_eq!(run.code, Some(3), "[{}]\n{}", scenario.name(), context());
                let task = failed_task();
                assert!(
                    task.error.contains(&closed),
                    "[{}] task {}'s error does not name {closed}\n{}",
                    scenario.name(),
                    task.id,
                    context()
                );
                format!(
                    "exit 3, task {} failed: {}",
                    task.id,
                    Scanner::all().mask(&task.error)
                )
            }
            Fault::WrongPassword(server) => {
                assert_eq!(run.code, Some(1), "[{}]\n{}", scenario.name(), context());
                let evidence = match server {
                    Server::S3 => "rejected the credentials",
                    _ => "password authentication failed",
                };
                assert!(
                    text.contains(evidence) && text.contains("configuration_error"),
                    "[{}] expected `{evidence}` in a configuration_error\n{}",
                    scenario.name(),
                    context()
                );
                format!("exit 1, {evidence}")
            }
            Fault::Malformed(_) => {
                assert_eq!(run.code, Some(1), "[{}]\n{}", scenario.name(), context());
                assert!(
                    text.contains("configuration_error"),
                    "[{}] expected a configuration_error\n{}",
                    scenario.name(),
                    context()
                );
                "exit 1, configuration_error".to_owned()
            }
            Fault::Unreachable(_) => {
                assert_eq!(run.code, Some(1), "[{}]\n{}", scenario.name(), context());
                assert!(
                    text.contains(&closed) && text.contains("configuration_error"),
                    "[{}] expected a configuration_error naming {closed}\n{}",
                    scenario.name(),
                    context()
                );
                format!("exit 1, names {closed}")
            }
        }
    }
}

/// Runs `program` with each of `argument_lists` (`["--help"]`, `["status", "--help"]`, ...) in an
/// environment holding every secret the way an operator may set them (`CONSDB_URL` and `EFD_URL`
/// with passwords in their userinfo, `EFD_PASSWORD`, `PGPASSWORD`, `AWS_SECRET_ACCESS_KEY`,
/// `LSST_RESOURCES_S3_PROFILE_embargo` with `KEY:SECRET`), and scans stdout and stderr. No server
/// is needed: help connects nowhere. Returns the runs' outputs (clap prints the value of every
/// variable an option reads unless told not to).
pub fn scan_help(
    program: impl AsRef<Path>,
    argument_lists: &[&[&str]],
    scanner: &Scanner,
    findings: &mut Findings,
) -> Vec<RunOutput> {
    let program = program.as_ref();
    let name = program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut outputs = Vec::new();
    for arguments in argument_lists {
        let began = Instant::now();
        let output = crate::service_command(program)
            .args(*arguments)
            .env(
                "CONSDB_URL",
                format!(
                    "postgresql://{CONSDB_USER}:{}@127.0.0.1:5432/consdb",
                    percent_encode(CONSDB_PASSWORD)
                ),
            )
            .env(
                "EFD_URL",
                format!(
                    "http://{EFD_USER}:{}@127.0.0.1:8086",
                    percent_encode(EFD_PASSWORD)
                ),
            )
            .env("EFD_USERNAME", EFD_USER)
            .env("EFD_PASSWORD", EFD_PASSWORD)
            .env("PGPASSWORD", REGISTRY_PASSWORD)
            .env("AWS_ACCESS_KEY_ID", S3_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
            .env(
                format!("LSST_RESOURCES_S3_PROFILE_{S3_PROFILE}"),
                format!(
                    "http://{S3_KEY_ID}:{}@127.0.0.1:9000",
                    percent_encode(S3_SECRET)
                ),
            )
            .env(
                "BUTLER_REPO",
                format!("s3://{S3_PROFILE}@{S3_BUCKET}/main/butler.yaml"),
            )
            .env("LOG_LEVEL", "DEBUG")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("test-support: cannot run {}: {e}", program.display()));
        let run = RunOutput {
            program: name.clone(),
            label: arguments.join(" "),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            log: String::new(),
            elapsed: began.elapsed(),
        };
        findings.scan(
            scanner,
            &format!("{name} {} stdout", run.label),
            &run.stdout,
        );
        findings.scan(
            scanner,
            &format!("{name} {} stderr", run.label),
            &run.stderr,
        );
        outputs.push(run);
    }
    outputs
}

/// 40 minutes of `lsst.sal.ESS.temperature` from 2025-10-02T02:50:00Z, one row a second
/// alternating between sensors 301 and 302.
fn telemetry() -> String {
    let mut lines = String::new();
    for k in 0..2400i64 {
        let sal = if k % 2 == 0 { 301 } else { 302 };
        let _ = writeln!(
            lines,
            "lsst.sal.ESS.temperature temperatureItem0={k}.5,salIndex={sal}i {}",
            TELEMETRY_START_NS + k * 1_000_000_000
        );
    }
    lines
}

/// The whole help test of one binary: [`scan_help`] over `argument_lists`, each run exiting 0
/// and printing `Usage`, no secret anywhere; then the record for `docs/reliability.md` under
/// `test` (`binary::function`).
///
/// # Panics
///
/// On a failed run or any secret shown.
pub fn assert_help_shows_no_secret(
    program: impl AsRef<Path>,
    argument_lists: &[&[&str]],
    test: &str,
) {
    let program = program.as_ref();
    let scanner = Scanner::all();
    let mut findings = Findings::default();
    let runs = scan_help(program, argument_lists, &scanner, &mut findings);
    for run in &runs {
        assert_eq!(run.code, Some(0), "{}", run.all_text());
        assert!(run.stdout.contains("Usage"), "{}", run.all_text());
    }
    assert!(findings.leaks.is_empty(), "{}", findings.report());
    let name = program
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    crate::report::record(
        "secrets",
        &format!("{name} help"),
        "every secret in the variables the options read (CONSDB_URL, EFD_URL with userinfo) and \
         beside them (EFD_PASSWORD, PGPASSWORD, AWS_SECRET_ACCESS_KEY, the S3 profile's endpoint)",
        runs.len() as u64,
        &findings.report(),
        test,
    );
}

/// Fails with every leak and the runs' evidence when `findings` holds any; prints the evidence
/// (seen with `--no-capture`) otherwise.
///
/// # Panics
///
/// When a secret was found.
pub fn assert_no_leaks(findings: &Findings, evidence: &[String]) {
    assert!(
        findings.leaks.is_empty(),
        "{}\n\nruns:\n{}",
        findings.report(),
        evidence.join("\n")
    );
    #[allow(clippy::print_stdout)] // What each scenario showed, for `--no-capture`.
    {
        println!("{}", evidence.join("\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes(), false), output);
        }
        assert_eq!(base64(&[0xfb, 0xff], false), "+/8=");
        assert_eq!(base64(&[0xfb, 0xff], true), "-_8=");
        // The Basic header of the harness's own HTTP client.
        assert_eq!(
            format!("Basic {}", base64(b"efdreader:s3cr3t-efd-Zq9", false)),
            crate::http::basic_auth("efdreader", "s3cr3t-efd-Zq9")
        );
    }

    #[test]
    fn the_scanner_finds_every_form_and_masks_it() {
        let scanner = Scanner::all();
        assert!(scanner.self_check() >= SECRETS.len() * 5);
        let text = format!(
            "line one\nevent=x url=postgresql://consdb_writer:{}@127.0.0.1/consdb\n\
             Authorization: {}\n",
            percent_encode(CONSDB_PASSWORD),
            crate::http::basic_auth(EFD_USER, EFD_PASSWORD)
        );
        let leaks = scanner.scan("here", &text);
        assert_eq!(leaks.len(), 2, "{leaks:?}");
        assert_eq!(leaks[0].line, 2);
        assert_eq!(leaks[0].secret, "consdb password");
        assert!(leaks[0].forms.contains(&"percent-encoded"), "{leaks:?}");
        assert!(leaks[0].forms.contains(&"marker"), "{leaks:?}");
        assert!(
            leaks[0]
                .context
                .contains("<<consdb password:percent-encoded>>@127.0.0.1"),
            "{}",
            leaks[0].context
        );
        assert_eq!(leaks[1].secret, "efd password");
        assert_eq!(leaks[1].forms, ["basic-auth"]);
        let mut findings = Findings::default();
        findings.scan(&scanner, "here", &text);
        findings.scan(&scanner, "there", "nothing");
        assert_eq!(findings.places, 2);
        assert!(findings.report().contains("2 secret leak(s) in 2 places"));
        assert!(!findings.report().contains(CONSDB_PASSWORD));
    }

    #[test]
    fn scenarios_cover_every_fault_style_and_format() {
        let all = Scenario::all();
        assert_eq!(all.len(), 56);
        let names: std::collections::HashSet<String> = all.iter().map(Scenario::name).collect();
        assert_eq!(names.len(), 56);
        assert!(names.contains("wrong s3 password, variables, json"));
        assert!(names.contains("registry unreachable, urls, text"));
    }
}
