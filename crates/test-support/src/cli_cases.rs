//! The bad-input harness of the binaries' tests: a valid command line ([`Fixture`]), cases that
//! change its flags or variables (the options every binary shares in [`Fixture::common_cases`]),
//! and [`run_all`], which checks that each case exits with code 1 and one stderr line naming what is
//! wrong, with no panic, backtrace or usage screen, within [`BOUND`], and records the outcome.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::butler::{ExpectedRegistry, make_registry};

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

/// A valid command line for any binary (the demo config, a registry made by lsst-daf-butler, an
/// empty line-protocol EFD, an SQLite ConsDB), and places that cannot be reached.
#[derive(Debug)]
pub struct Fixture {
    /// Holds the registry and files until the fixture is dropped.
    _dir: tempfile::TempDir,
    /// `-c`, `-i`, `-r`, `-d` and `-E` of a run that would work.
    pub valid: Vec<(&'static str, String)>,
    /// An HTTP EFD URL on a closed port.
    pub closed_efd: String,
    /// A PostgreSQL ConsDB URL on a closed port.
    pub closed_db: String,
    /// `127.0.0.1:<port>` of [`Fixture::closed_db`], as error messages name it.
    pub db_at: String,
    /// A Butler repository path that does not exist.
    pub missing_repo: String,
}

impl Fixture {
    /// Makes the registry and the files in a temporary directory.
    ///
    /// # Panics
    ///
    /// If the registry or the files cannot be made.
    #[allow(clippy::new_without_default)] // Making a registry and files is no default value.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let registry = ExpectedRegistry::from_json(&make_registry(&dir.path().join("repo"), None));
        let config =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/demo-config.yaml");
        let efd = dir.path().join("efd.lp");
        std::fs::write(&efd, "").expect("an empty EFD file");
        let valid = vec![
            ("-c", config.display().to_string()),
            ("-i", "latiss".to_owned()),
            ("-r", registry.repo.display().to_string()),
            (
                "-d",
                format!("sqlite:///{}", dir.path().join("consdb.db").display()),
            ),
            ("-E", format!("file://{}", efd.display())),
        ];
        let db_port = closed_port();
        Fixture {
            valid,
            closed_efd: format!("http://127.0.0.1:{}", closed_port()),
            closed_db: format!("postgresql://postgres@127.0.0.1:{db_port}/consdb"),
            db_at: format!("127.0.0.1:{db_port}"),
            missing_repo: dir.path().join("no-such-repo").display().to_string(),
            _dir: dir,
        }
    }

    /// The bad inputs of the options every binary takes: task length and padding, instrument,
    /// ConsDB URL, and unreachable EFD, ConsDB and Butler repository, by flag and by variable.
    pub fn common_cases(&self) -> Vec<Case> {
        let (closed_efd, closed_db, db_at) = (&self.closed_efd, &self.closed_db, &self.db_at);
        let missing_repo = self.missing_repo.as_str();
        vec![
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
                &[("-E", Some(closed_efd))],
                &[],
                &["-E/--efd or EFD_URL", "unreachable", closed_efd],
            ),
            case(
                "EFD_URL on a closed port",
                &[("-E", None)],
                &[("EFD_URL", closed_efd)],
                &["-E/--efd or EFD_URL", "unreachable", closed_efd],
            ),
            case(
                "-d PostgreSQL on a closed port",
                &[("-d", Some(closed_db))],
                &[],
                &["-d/--db or CONSDB_URL", db_at],
            ),
            case(
                "CONSDB_URL PostgreSQL on a closed port",
                &[("-d", None)],
                &[("CONSDB_URL", closed_db)],
                &["-d/--db or CONSDB_URL", db_at],
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
        ]
    }
}

/// Runs every case against `program` and fails with each wrong outcome; then records them for
/// `docs/reliability.md` as `"<binary> options"` under `test`.
///
/// # Panics
///
/// When a case does not exit 1 with one clear stderr line within [`BOUND`].
pub fn run_all(
    program: &str,
    valid: &[(&'static str, String)],
    cases: &[Case],
    binary: &str,
    test: &str,
) {
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    for case in cases {
        let (failure, took) = run(program, valid, case);
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
    crate::report::record(
        "bad input",
        &format!("{binary} options"),
        &names.join("; "),
        u64::try_from(cases.len()).unwrap_or(u64::MAX),
        &format!(
            "every case exits 1 with one stderr line naming the flag or variable, no panic or \
             usage screen; slowest (unreachable URLs included) {:.1} s",
            slowest.as_secs_f64()
        ),
        test,
    );
}
