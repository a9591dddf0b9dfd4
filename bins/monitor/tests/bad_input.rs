//! `efd-monitor` (and `efd-monitor status`) given bad input, by flag and by variable: zero,
//! negative or non-numeric task lengths, paddings and reconciliation windows, an unknown
//! instrument, a missing ConsDB URL, and unreachable places (an HTTP EFD and a PostgreSQL ConsDB on closed ports, a
//! Butler repository that does not exist). Each exits with code 1 and one line on stderr saying
//! what is wrong and with which flag or variable: no panic, no backtrace, no usage screen; the
//! unreachable ones within a bound that holds on a loaded machine.

use test_support::cli_cases::{Fixture, case, run_all, status};

#[test]
fn bad_input_exits_1_with_one_clear_line() {
    let fx = Fixture::new();
    let mut cases = vec![
        case(
            "--monitor-window-days many",
            &[("--monitor-window-days", Some("many"))],
            &[],
            &["--monitor-window-days or MONITOR_WINDOW_DAYS", "'many'"],
        ),
        case(
            "MONITOR_WINDOW_DAYS=-1",
            &[],
            &[("MONITOR_WINDOW_DAYS", "-1")],
            &["--monitor-window-days or MONITOR_WINDOW_DAYS", "'-1'"],
        ),
        status(case(
            "-i hsc",
            &[("-i", Some("hsc"))],
            &[],
            &["-i/--instrument or INSTRUMENT", "unknown instrument `hsc`"],
        )),
        status(case(
            "-t 0",
            &[("-t", Some("0"))],
            &[],
            &["-t/--timedelta or TIMEDELTA", "not 0"],
        )),
        status(case(
            "-d PostgreSQL on a closed port",
            &[("-d", Some(&fx.closed_db))],
            &[],
            &["-d/--db or CONSDB_URL", &fx.db_at],
        )),
    ];
    cases.extend(fx.common_cases());
    run_all(
        env!("CARGO_BIN_EXE_efd-monitor"),
        &fx.valid,
        &cases,
        "efd-monitor",
        "efd-monitor bad_input::bad_input_exits_1_with_one_clear_line",
    );
}
