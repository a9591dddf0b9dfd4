//! The bad-input harness of the binaries' tests: a valid command line, cases that change its flags
//! or variables, and [`run`], which checks that each case exits with code 1 and one stderr line
//! naming what is wrong, with no panic, backtrace or usage screen, within [`BOUND`].

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// How long any case may take, unreachable URLs included (they fail in seconds when idle).
pub const BOUND: Duration = Duration::from_secs(60);
/// Variables that would send EFD requests to a proxy (and so skip the EFD connection check).
const PROXY_VARIABLES: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A port nothing listens on: bound, then released.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One bad input: flags changed from a valid run (`None` removes the flag), variables set,
/// arguments after the flags (a subcommand), and what the stderr line must say.
#[derive(Debug, Clone)]
pub struct Case {
    /// What the case is, for the failure report.
    pub name: String,
    /// Flags changed from the valid run: a new value, or `None` to remove the flag.
    pub flags: Vec<(&'static str, Option<String>)>,
    /// Variables set.
    pub env: Vec<(&'static str, String)>,
    /// Arguments after the flags (a subcommand).
    pub extra: Vec<String>,
    /// What the stderr line must contain.
    pub expect: Vec<String>,
}

/// A [`Case`] from borrowed parts, with no subcommand.
pub fn case(
    name: &str,
    flags: &[(&'static str, Option<&str>)],
    env: &[(&'static str, &str)],
    expect: &[&str],
) -> Case {
    Case {
        name: name.to_owned(),
        flags: flags
            .iter()
            .map(|(f, v)| (*f, v.map(str::to_owned)))
            .collect(),
        env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        extra: Vec::new(),
        expect: expect.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// `case` with the subcommand `status` after the flags (`efd-monitor status`).
pub fn status(mut case: Case) -> Case {
    case.name = format!("status: {}", case.name);
    case.extra.push("status".to_owned());
    case
}

/// Runs `program` with `valid` flags changed by `case`; returns a description of what is wrong
/// with the outcome, if anything, and how long it took.
pub fn run(
    program: &str,
    valid: &[(&'static str, String)],
    case: &Case,
) -> (Option<String>, Duration) {
    let mut flags: Vec<(&str, Option<String>)> =
        valid.iter().map(|(f, v)| (*f, Some(v.clone()))).collect();
    for &(flag, ref value) in &case.flags {
        match flags.iter_mut().find(|(f, _)| *f == flag) {
            Some(slot) => slot.1.clone_from(value),
            None => flags.push((flag, value.clone())),
        }
    }
    let mut command = crate::service_command(program);
    for variable in PROXY_VARIABLES {
        command.env_remove(variable);
    }
    for (flag, value) in &flags {
        if let Some(value) = value {
            command.args([*flag, value.as_str()]);
        }
    }
    command
        .arg("--migrate")
        .args(&case.extra)
        .envs(case.env.iter().map(|(k, v)| (*k, v)));
    let began = Instant::now();
    let out = command.output().unwrap();
    let took = began.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut wrong = Vec::new();
    if out.status.code() != Some(1) {
        wrong.push(format!("exit status {}", out.status));
    }
    let lines: Vec<&str> = stderr.lines().collect();
    if lines.len() != 1 {
        wrong.push(format!("{} stderr lines", lines.len()));
    }
    for part in &case.expect {
        if !stderr.contains(part.as_str()) {
            wrong.push(format!("no `{part}`"));
        }
    }
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE", "Usage:"] {
        if stderr.contains(bad) || stdout.contains(bad) {
            wrong.push(format!("`{bad}` shown"));
        }
    }
    if took > BOUND {
        wrong.push(format!("took {took:?}"));
    }
    let report = (!wrong.is_empty()).then(|| {
        format!(
            "{}: {}\n--- stderr ---\n{stderr}--- stdout ---\n{stdout}",
            case.name,
            wrong.join(", ")
        )
    });
    (report, took)
}
