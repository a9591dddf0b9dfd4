//! No secret of any server shows anywhere `efd-monitor` writes. It runs at `LOG_LEVEL=DEBUG` with a
//! log file against a password-protected EFD, ConsDB, Butler registry (PostgreSQL) and S3 (its
//! `butler.yaml`): successfully, then with a wrong password, a closed port and a malformed URL or
//! credentials file for each server in turn, and with an EFD that hangs up on every request; with
//! the secrets in URLs and files or in variables, in text and JSON logs (and once at
//! `LOG_LEVEL=TRACE`). Each run finds one failed task due for its retry (seeded over the
//! registry's first exposures), so the EFD is queried, and is followed by `efd-monitor status`
//! (`--json` in the JSON-log scenarios), which shows the last failures' errors. Stdout, stderr,
//! the log files and every row of every ConsDB table (the task table's `error` column included)
//! are scanned for every form of every secret (`test_support::secrets`), and so is `--help` with
//! the secrets in the variables the options read.

use test_support::secrets::{
    Fault, Findings, Format, Scenario, SecretServers, Server, Style, assert_help_shows_no_secret,
    assert_no_leaks,
};

const MONITOR: &str = env!("CARGO_BIN_EXE_efd-monitor");

#[test]
fn efd_monitor_shows_no_secret_in_any_scenario() {
    let servers = SecretServers::start();
    let scanner = servers.scanner();
    // The scanner finds what it looks for (every form of every secret, planted in log lines).
    let forms = scanner.self_check();
    let mut findings = Findings::default();

    // A first run creates the tables.
    let ok = Scenario::new(Fault::None, Style::Urls, Format::Text);
    let first = servers.run_labelled(MONITOR, &ok, "first run", &[]);
    assert_eq!(first.code, Some(0), "{}", first.all_text());
    first.scan(&scanner, &mut findings);
    servers.scan_database(&scanner, &mut findings, "first run");

    let mut evidence = Vec::new();
    let mut runs = 1u64;
    let mut scenarios = Scenario::all();
    scenarios.push(Scenario {
        log_level: "TRACE",
        ..Scenario::new(Fault::None, Style::Variables, Format::Json)
    });
    for scenario in &scenarios {
        servers.reset_tasks();
        // Failed 3 h ago: past the first backoff (2.83 h), so this run retries it.
        servers.seed_task(scenario, "failed", 3);
        let run = servers.run(MONITOR, scenario, &[]);
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
                tasks.len() == 1 && tasks[0].status == "completed",
                "[{}] the seeded task was not retried: {tasks:?}\n{}",
                scenario.name(),
                run.all_text()
            );
        }
        run.scan(&scanner, &mut findings);

        // The queue report (it shows the last failures' errors) reads only the ConsDB.
        let status_args: &[&str] = match scenario.format {
            Format::Text => &["status"],
            Format::Json => &["status", "--json"],
        };
        let label = format!("{} {}", scenario.name(), status_args.join(" "));
        let status = servers.run_labelled(MONITOR, scenario, &label, status_args);
        runs += 1;
        let consdb_down = matches!(
            scenario.fault,
            Fault::WrongPassword(Server::ConsDb)
                | Fault::Unreachable(Server::ConsDb)
                | Fault::Malformed(Server::ConsDb)
        );
        if consdb_down {
            assert_eq!(status.code, Some(1), "{}", status.all_text());
        } else if status.code == Some(0) {
            let shown = match scenario.format {
                Format::Text => status.stdout.contains("last failures"),
                Format::Json => status.stdout.contains("\"counts\""),
            };
            assert!(shown, "{}", status.all_text());
        } else {
            // A malformed EFD URL or credentials file stops it too: every option is checked.
            assert!(
                matches!(scenario.fault, Fault::Malformed(_)) && status.code == Some(1),
                "{}",
                status.all_text()
            );
        }
        status.scan(&scanner, &mut findings);
        servers.scan_database(&scanner, &mut findings, &scenario.name());
    }
    assert_no_leaks(&findings, &evidence);

    test_support::report::record(
        "secrets",
        "efd-monitor and efd-monitor status at LOG_LEVEL=DEBUG",
        &format!(
            "password-protected EFD, ConsDB, registry and S3; {} scenarios (ok; per server a \
             wrong password, a closed port, a malformed URL or credentials file; an EFD hanging \
             up; secrets in URLs/files or in variables; text and JSON logs; log file on; one at \
             TRACE), each a \
             monitor run retrying one failed task, then `status` or `status --json`",
            scenarios.len()
        ),
        runs,
        &format!(
            "{} (stdout, stderr, log file, every ConsDB table's rows after each scenario; {forms} \
             forms of 9 secrets)",
            findings.report()
        ),
        "secrets::efd_monitor_shows_no_secret_in_any_scenario",
    );
}

/// Help prints the value of every variable an option reads (clap's `[env: NAME=value]`) unless
/// told not to: with the deployment's secrets in the environment, none may show.
#[test]
fn efd_monitor_help_shows_no_secret_from_the_environment() {
    assert_help_shows_no_secret(
        MONITOR,
        &[&["--help"], &["-h"], &["status", "--help"]],
        "secrets::efd_monitor_help_shows_no_secret_from_the_environment",
    );
}
