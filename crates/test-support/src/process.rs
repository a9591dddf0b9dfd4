//! Process plumbing shared by the servers: signals, waits with timeouts, log files and their tails.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to become ready before the harness gives up.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful shutdown may take before the harness escalates to SIGKILL.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How many lines of a server log a panic message quotes.
const TAIL_LINES: usize = 40;

/// Whether this process runs as root (effective uid 0).
pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self") {
        Ok(meta) => meta.uid() == 0,
        Err(_) => command_output("id", &["-u"]).trim() == "0",
    }
}

/// Runs a small helper command and returns its stdout; panics if it cannot run or fails.
pub(crate) fn command_output(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("test-support: cannot run `{program}`: {e}"));
    if !output.status.success() {
        panic!(
            "test-support: `{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Sends `signal` (a name such as `TERM`) to `pid`. A process that is already gone is not an error.
pub(crate) fn send_signal(pid: u32, signal: &str) {
    // std has no portable way to send anything but SIGKILL without `unsafe`, which the workspace
    // forbids, so use kill(1).
    let _ = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Waits up to `timeout` for `child` to exit.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("test-support: cannot wait for a server process: {e}"),
        }
    }
}

/// Sends `signal` to `child`, waits up to `timeout` for it to exit, then SIGKILLs it if needed.
pub(crate) fn shut_down(child: &mut Child, signal: &str, timeout: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if signal == "KILL" {
        let _ = child.kill();
    } else {
        send_signal(child.id(), signal);
    }
    if wait_timeout(child, timeout).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Opens `path` for appending, creating it, and writes a marker line; returns the file and the
/// offset where this run's output starts.
pub(crate) fn open_log(path: &Path, marker: &str) -> (File, u64) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("test-support: cannot open log {}: {e}", path.display()));
    let _ = writeln!(file, "=== test-support: {marker} ===");
    let offset = file.metadata().map(|m| m.len()).unwrap_or(0);
    (file, offset)
}

/// The text a log file gained since `offset`.
pub(crate) fn log_since(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.seek(SeekFrom::Start(offset));
        let _ = file.read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The last lines a log file gained since `offset`, formatted for a panic message.
pub(crate) fn log_tail(path: &Path, offset: u64) -> String {
    let text = log_since(path, offset);
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
    format!(
        "--- last {} lines of {} ---\n{}\n--- end of log ---",
        tail.len(),
        path.display(),
        tail.join("\n")
    )
}

/// Variables the service's binaries (or the libraries they use) read, by exact name.
const SERVICE_VARIABLES: [&str; 17] = [
    "CONFIG_FILE",
    "INSTRUMENT",
    "BUTLER_REPO",
    "CONSDB_URL",
    "DATETIME_START",
    "DATETIME_END",
    "TIMEDELTA",
    "TIMEWINDOW",
    "LOG_FILE",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "WORKERS",
    "GRACE_PERIOD",
    "LEASE_SECONDS",
    "MONITOR_WINDOW_DAYS",
    "S3_ENDPOINT_URL",
    "DAF_BUTLER_REPOSITORY_INDEX",
];

/// Prefixes of the variables they read (`EFD_URL`, `EFD_PASSWORD`, `EFD_CONCURRENCY`, libpq's
/// `PG*`, `LSST_DB_AUTH`, `LSST_RESOURCES_S3_PROFILE_*`, `AWS_*`).
const SERVICE_PREFIXES: [&str; 4] = ["EFD_", "PG", "LSST_", "AWS_"];

/// A command for one of the service's binaries (`efd-job`, ...) that sees none of the variables
/// they read from the environment running the tests, so a test passes exactly what it means to.
pub fn service_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if SERVICE_VARIABLES.contains(&text.as_ref())
            || SERVICE_PREFIXES.iter().any(|p| text.starts_with(p))
        {
            command.env_remove(&name);
        }
    }
    command
}
