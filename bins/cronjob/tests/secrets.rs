//! No secret of any server shows anywhere `efd-cronjob` writes. It runs at `LOG_LEVEL=DEBUG` with a
//! log file against a password-protected EFD, ConsDB, Butler registry (PostgreSQL) and S3 (its
//! `butler.yaml`): successfully, then with a wrong password, a closed port and a malformed URL or
//! credentials file for each server in turn, and with an EFD that hangs up on every request; with
//! the secrets in URLs and files or in variables, in text and JSON logs (and once at
//! `LOG_LEVEL=TRACE`). Each run finds one due pending task (seeded over the registry's first
//! exposures), so the EFD is queried. Stdout, stderr, the log file and every row of every ConsDB
//! table (the task table's `error` column included) are scanned for every form of every secret
//! (`test_support::secrets`), and so is `--help` with the secrets in the variables the options
//! read.

use test_support::secrets::{
    Fault, Findings, Format, Scenario, SecretServers, Style, assert_help_shows_no_secret,
    assert_no_leaks,
};

const CRONJOB: &str = env!("CARGO_BIN_EXE_efd-cronjob");

#[test]
fn efd_cronjob_shows_no_secret_in_any_scenario() {
    let servers = SecretServers::start();
    let scanner = servers.scanner();
    // The scanner finds what it looks for (every form of every secret, planted in log lines).
    let forms = scanner.self_check();
    let mut findings = Findings::default();

    // A first run creates the tables (and the task of the current 5 minutes, not yet due).
    let ok = Scenario::new(Fault::None, Style::Urls, Format::Text);
    let first = servers.run_labelled(CRONJOB, &ok, "first run", &[]);
    assert_eq!(first.code, Some(0), "{}", first.all_text());
    first.scan(&scanner, &mut findings);
    servers.scan_database(&scanner, &mut findings, "first run");

    let mut evidence = Vec::new();
    let mut scenarios = Scenario::all();
    scenarios.push(Scenario {
        log_level: "TRACE",
        ..Scenario::new(Fault::None, Style::Variables, Format::Json)
    });
    for scenario in &scenarios {
        servers.reset_tasks();
        // Pending and due: the run creates nothing and processes it.
        servers.seed_task(scenario, "pending", 0);
        let run = servers.run(CRONJOB, scenario, &[]);
        let tasks = servers.tasks();
        evidence.push(format!(
            "[{}] {:.1} s: {}",
            scenario.name(),
            run.elapsed.as_secs_f64(),
            servers.assert_fault_seen(scenario, &run, &tasks)
        ));
        if scenario.fault == Fault::None {
            assert!(
                tasks.len() == 1 && tasks[0].status == "completed",
                "[{}] the seeded task was not processed: {tasks:?}\n{}",
                scenario.name(),
                run.all_text()
            );
        }
        run.scan(&scanner, &mut findings);
        servers.scan_database(&scanner, &mut findings, &scenario.name());
    }
    assert_no_leaks(&findings, &evidence);

    let runs = scenarios.len() as u64 + 1;
    test_support::report::record(
        "secrets",
        "efd-cronjob at LOG_LEVEL=DEBUG",
        &format!(
            "password-protected EFD, ConsDB, registry and S3; {runs} runs (ok; per server a wrong \
             password, a closed port, a malformed URL or credentials file; an EFD hanging up; \
             secrets in URLs/files or in variables; text and JSON logs; log file on; one at \
             TRACE), one due pending task each"
        ),
        runs,
        &format!(
            "{} (stdout, stderr, log file, every ConsDB table's rows after each run; {forms} forms \
             of 9 secrets)",
            findings.report()
        ),
        "secrets::efd_cronjob_shows_no_secret_in_any_scenario",
    );
}

/// Help prints the value of every variable an option reads (clap's `[env: NAME=value]`) unless
/// told not to: with the deployment's secrets in the environment, none may show.
#[test]
fn efd_cronjob_help_shows_no_secret_from_the_environment() {
    assert_help_shows_no_secret(
        CRONJOB,
        &[&["--help"], &["-h"]],
        "secrets::efd_cronjob_help_shows_no_secret_from_the_environment",
    );
}
