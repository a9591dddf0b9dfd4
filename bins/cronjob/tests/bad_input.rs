//! `efd-cronjob` given bad input, by flag and by variable: zero, negative or non-numeric task
//! lengths and paddings, an unknown instrument, a missing ConsDB URL, and unreachable places (an
//! HTTP EFD and a PostgreSQL ConsDB on closed ports, a Butler repository that does not exist). Each exits with code 1 and one line on stderr saying
//! what is wrong and with which flag or variable: no panic, no backtrace, no usage screen; the
//! unreachable ones within a bound that holds on a loaded machine.

use test_support::cli_cases::{Fixture, run_all};

#[test]
fn bad_input_exits_1_with_one_clear_line() {
    let fx = Fixture::new();
    run_all(
        env!("CARGO_BIN_EXE_efd-cronjob"),
        &fx.valid,
        &fx.common_cases(),
        "efd-cronjob",
        "efd-cronjob bad_input::bad_input_exits_1_with_one_clear_line",
    );
}
