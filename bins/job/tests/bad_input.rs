//! `efd-job` given bad input, by flag and by variable: invalid dates, a start not before the end,
//! zero, negative or non-numeric task lengths and paddings, an unknown instrument, a missing
//! ConsDB URL, and unreachable places (an HTTP EFD and a PostgreSQL ConsDB on closed ports, a
//! Butler repository that does not exist). Each exits with code 1 and one line on stderr saying
//! what is wrong and with which flag or variable: no panic, no backtrace, no usage screen; the
//! unreachable ones within a bound that holds on a loaded machine.

use test_support::cli_cases::{Fixture, case, run_all};

#[test]
fn bad_input_exits_1_with_one_clear_line() {
    let fx = Fixture::new();
    let mut valid = fx.valid.clone();
    valid.extend([
        ("-s", "2025-10-02T03:00:00".to_owned()),
        ("-e", "2025-10-02T03:20:00".to_owned()),
    ]);
    let mut cases = vec![
        case(
            "-s not a date",
            &[("-s", Some("yesterday"))],
            &[],
            &[
                "-s/--start or DATETIME_START",
                "`yesterday`",
                "not an ISO 8601",
            ],
        ),
        case(
            "-e 30 February",
            &[("-e", Some("2025-02-30T00:00:00"))],
            &[],
            &["-e/--end or DATETIME_END", "`2025-02-30T00:00:00`"],
        ),
        case(
            "DATETIME_START not a date",
            &[("-s", None)],
            &[("DATETIME_START", "2025-10-02 25:00")],
            &["-s/--start or DATETIME_START", "not an ISO 8601"],
        ),
        case(
            "-s beyond what nanoseconds hold",
            &[("-s", Some("9999-01-01T00:00:00"))],
            &[],
            &["-s/--start or DATETIME_START", "1678 to 2261"],
        ),
        case(
            "start equal to end",
            &[("-e", Some("2025-10-02T03:00:00"))],
            &[],
            &["must be earlier than -e/--end"],
        ),
        case(
            "start after end",
            &[("-s", Some("2025-10-03T00:00:00"))],
            &[],
            &["must be earlier than -e/--end"],
        ),
    ];
    cases.extend(fx.common_cases());
    run_all(
        env!("CARGO_BIN_EXE_efd-job"),
        &valid,
        &cases,
        "efd-job",
        "efd-job bad_input::bad_input_exits_1_with_one_clear_line",
    );
}
