//! `efd-cronjob` given bad input, by flag and by variable: zero, negative or non-numeric task
//! lengths and paddings, an unknown instrument, a missing ConsDB URL, and unreachable places (an HTTP EFD and a PostgreSQL ConsDB on closed ports, a
//! Butler repository that does not exist). Each exits with code 1 and one line on stderr saying
//! what is wrong and with which flag or variable: no panic, no backtrace, no usage screen; the
//! unreachable ones within a bound that holds on a loaded machine.

use std::time::Duration;

use test_support::butler::{ExpectedRegistry, make_registry};
use test_support::cli_cases::{case, closed_port, run};

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
        "efd-cronjob bad_input::bad_input_exits_1_with_one_clear_line",
    );
}
