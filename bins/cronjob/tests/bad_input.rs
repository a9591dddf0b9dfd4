//! `efd-cronjob` given bad input, by flag and by variable: zero, negative or non-numeric task
//! lengths and paddings, an unknown instrument, a missing ConsDB URL, and unreachable places (an HTTP EFD and a PostgreSQL ConsDB on closed ports, a
//! Butler repository that does not exist). Each exits with code 1 and one line on stderr saying
//! what is wrong and with which flag or variable: no panic, no backtrace, no usage screen; the
//! unreachable ones within a bound that holds on a loaded machine.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use test_support::butler::{ExpectedRegistry, make_registry};

/// How long any case may take, unreachable URLs included (they fail in seconds when idle).
const BOUND: Duration = Duration::from_secs(60);
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
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One bad input: flags changed from a valid run (`None` removes the flag), variables set, and
/// what the stderr line must say.
struct Case {
    name: String,
    flags: Vec<(&'static str, Option<String>)>,
    env: Vec<(&'static str, String)>,
    expect: Vec<String>,
}

fn case(
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
        expect: expect.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// Runs `program` with `valid` flags changed by `case`; returns a description of what is wrong
/// with the outcome, if anything, and how long it took.
fn run(program: &str, valid: &[(&'static str, String)], case: &Case) -> (Option<String>, Duration) {
    let mut flags: Vec<(&str, Option<String>)> =
        valid.iter().map(|(f, v)| (*f, Some(v.clone()))).collect();
    for &(flag, ref value) in &case.flags {
        match flags.iter_mut().find(|(f, _)| *f == flag) {
            Some(slot) => slot.1.clone_from(value),
            None => flags.push((flag, value.clone())),
        }
    }
    let mut command = test_support::service_command(program);
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

#[test]
fn bad_input_exits_1_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let registry = ExpectedRegistry::from_json(&make_registry(&dir.path().join("repo"), None));
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/data/demo-config.yaml"
    );
    let efd = dir.path().join("efd.lp");
    std::fs::write(&efd, "").unwrap();
    let valid: Vec<(&'static str, String)> = vec![
        ("-c", config.to_owned()),
        ("-i", "latiss".to_owned()),
        ("-r", registry.repo.to_str().unwrap().to_owned()),
        (
            "-d",
            format!("sqlite:///{}", dir.path().join("consdb.db").display()),
        ),
        ("-E", format!("file://{}", efd.display())),
    ];
    let efd_port = closed_port();
    let closed_efd = format!("http://127.0.0.1:{efd_port}");
    let db_port = closed_port();
    let closed_db = format!("postgresql://postgres@127.0.0.1:{db_port}/consdb");
    let missing_repo = dir.path().join("no-such-repo");
    let missing_repo = missing_repo.to_str().unwrap();
    let cases = [
        case(
            "-t 0",
            &[("-t", Some("0"))],
            &[],
            &["-t/--timedelta or TIMEDELTA", "not 0"],
        ),
        case(
            "-t -5",
            &[("-t", Some("-5"))],
            &[],
            &["-t/--timedelta or TIMEDELTA", "not -5"],
        ),
        case(
            "TIMEDELTA=-1",
            &[],
            &[("TIMEDELTA", "-1")],
            &["-t/--timedelta or TIMEDELTA", "not -1"],
        ),
        case(
            "-t five",
            &[("-t", Some("five"))],
            &[],
            &["-t/--timedelta or TIMEDELTA", "'five'"],
        ),
        case(
            "-w 0",
            &[("-w", Some("0"))],
            &[],
            &["-w/--timewindow or TIMEWINDOW", "not 0"],
        ),
        case(
            "-w -3",
            &[("-w", Some("-3"))],
            &[],
            &["-w/--timewindow or TIMEWINDOW", "not -3"],
        ),
        case(
            "TIMEWINDOW=-2",
            &[],
            &[("TIMEWINDOW", "-2")],
            &["-w/--timewindow or TIMEWINDOW", "not -2"],
        ),
        case(
            "-i hsc",
            &[("-i", Some("hsc"))],
            &[],
            &["-i/--instrument or INSTRUMENT", "unknown instrument `hsc`"],
        ),
        case(
            "INSTRUMENT=decam",
            &[("-i", None)],
            &[("INSTRUMENT", "decam")],
            &[
                "-i/--instrument or INSTRUMENT",
                "unknown instrument `decam`",
            ],
        ),
        case(
            "no ConsDB URL",
            &[("-d", None)],
            &[],
            &["missing", "-d/--db or CONSDB_URL"],
        ),
        case(
            "-E on a closed port",
            &[("-E", Some(&closed_efd))],
            &[],
            &["-E/--efd or EFD_URL", "unreachable", &closed_efd],
        ),
        case(
            "EFD_URL on a closed port",
            &[("-E", None)],
            &[("EFD_URL", &closed_efd)],
            &["-E/--efd or EFD_URL", "unreachable", &closed_efd],
        ),
        case(
            "-d PostgreSQL on a closed port",
            &[("-d", Some(&closed_db))],
            &[],
            &["-d/--db or CONSDB_URL", &format!("127.0.0.1:{db_port}")],
        ),
        case(
            "CONSDB_URL PostgreSQL on a closed port",
            &[("-d", None)],
            &[("CONSDB_URL", &closed_db)],
            &["-d/--db or CONSDB_URL", &format!("127.0.0.1:{db_port}")],
        ),
        case(
            "-r a repository that does not exist",
            &[("-r", Some(missing_repo))],
            &[],
            &["-r/--repo or BUTLER_REPO", missing_repo],
        ),
        case(
            "BUTLER_REPO a repository that does not exist",
            &[("-r", None)],
            &[("BUTLER_REPO", missing_repo)],
            &["-r/--repo or BUTLER_REPO", missing_repo],
        ),
    ];
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    for case in &cases {
        let (failure, took) = run(env!("CARGO_BIN_EXE_efd-cronjob"), &valid, case);
        failures.extend(failure);
        slowest = slowest.max(took);
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    test_support::report::record(
        "bad input",
        "efd-cronjob options",
        &names.join("; "),
        u64::try_from(cases.len()).unwrap(),
        &format!(
            "every case exits 1 with one stderr line naming the flag or variable, no panic or \
             usage screen; slowest (unreachable URLs included) {:.1} s",
            slowest.as_secs_f64()
        ),
        "bad_input::bad_input_exits_1_with_one_clear_line",
    );
}
