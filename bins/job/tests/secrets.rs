//! No secret of any server shows anywhere `efd-job` writes. It runs at `LOG_LEVEL=DEBUG` with a
//! log file against a password-protected EFD, ConsDB, Butler registry (PostgreSQL) and S3 (its
//! `butler.yaml`): successfully, then with a wrong password, a closed port and a malformed URL or
//! credentials file for each server in turn, and with an EFD that hangs up on every request; with
//! the secrets in URLs and files or in variables, in text and JSON logs (and once at
//! `LOG_LEVEL=TRACE`), each time also with `--dry-run`. Stdout, stderr, the log file and every row
//! of every ConsDB table (the task table's `error` column included) are scanned for every form of
//! every secret (`test_support::secrets`), and so is `--help` with the secrets in the variables
//! the options read.

use test_support::secrets::{
    Fault, Findings, Format, Scenario, SecretServers, Style, TASK_END, TASK_START,
    assert_help_shows_no_secret, assert_no_leaks,
};

const JOB: &str = env!("CARGO_BIN_EXE_efd-job");

#[test]
fn efd_job_shows_no_secret_in_any_scenario() {
    let servers = SecretServers::start();
    let scanner = servers.scanner();
    // The scanner finds what it looks for (every form of every secret, planted in log lines).
    let forms = scanner.self_check();

    let mut findings = Findings::default();
    let mut evidence = Vec::new();
    let mut scenarios = Scenario::all();
    scenarios.push(Scenario {
        log_level: "TRACE",
        ..Scenario::new(Fault::None, Style::Variables, Format::Json)
    });
    let mut runs = 0u64;
    for scenario in &scenarios {
        servers.reset_tasks();
        let run = servers.run(JOB, scenario, &["-s", TASK_START, "-e", TASK_END]);
        runs += 1;
        let tasks = servers.tasks();
        evidence.push(format!(
            "[{}] {:.1} s: {}",
            scenario.name(),
            run.elapsed.as_secs_f64(),
            servers.assert_fault_seen(scenario, &run, &tasks)
        ));
        if scenario.fault == Fault::None {
            assert!(
                !tasks.is_empty() && tasks.iter().all(|t| t.status == "completed"),
                "[{}] {tasks:?}\n{}",
                scenario.name(),
                run.all_text()
            );
        }
        run.scan(&scanner, &mut findings);

        // `--dry-run` connects to the ConsDB primary only and prints SQL.
        let label = format!("{} --dry-run", scenario.name());
        let dry = servers.run_labelled(
            JOB,
            scenario,
            &label,
            &["-s", TASK_START, "-e", TASK_END, "--dry-run"],
        );
        runs += 1;
        assert!(
            dry.code == Some(1) || (dry.code == Some(0) && dry.stdout.contains("-- ConsDB ")),
            "{}",
            dry.all_text()
        );
        dry.scan(&scanner, &mut findings);
        servers.scan_database(&scanner, &mut findings, &scenario.name());
    }
    assert_no_leaks(&findings, &evidence);

    test_support::report::record(
        "secrets",
        "efd-job at LOG_LEVEL=DEBUG",
        &format!(
            "password-protected EFD, ConsDB, registry and S3; {} scenarios (ok; per server a \
             wrong password, a closed port, a malformed URL or credentials file; an EFD hanging \
             up; secrets in URLs/files or in variables; text and JSON logs; log file on; one at \
             TRACE), each a \
             run and a --dry-run",
            scenarios.len()
        ),
        runs,
        &format!(
            "{} (stdout, stderr, log file, every ConsDB table's rows after each scenario; {forms} \
             forms of 9 secrets)",
            findings.report()
        ),
        "secrets::efd_job_shows_no_secret_in_any_scenario",
    );
}

/// Help prints the value of every variable an option reads (clap's `[env: NAME=value]`) unless
/// told not to: with the deployment's secrets in the environment, none may show.
#[test]
fn efd_job_help_shows_no_secret_from_the_environment() {
    assert_help_shows_no_secret(
        JOB,
        &[&["--help"], &["-h"]],
        "secrets::efd_job_help_shows_no_secret_from_the_environment",
    );
}
