//! `efd-job` as operators run it: flags, exit codes, and rows in an embedded ConsDB (SQLite) from a
//! Butler registry made by lsst-daf-butler and a line-protocol EFD file.

mod common;

use std::process::Command;

use common::{CONFIG, efd_lines};
use test_support::butler::{ExpectedRegistry, make_registry};

fn job() -> Command {
    // Only what the test passes: no variables from the environment that runs the tests.
    test_support::service_command(env!("CARGO_BIN_EXE_efd-job"))
}

#[test]
fn a_job_over_a_range_completes_its_tasks_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let registry = ExpectedRegistry::from_json(&make_registry(&dir.path().join("repo"), None));
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let efd = dir.path().join("efd.lp");
    std::fs::write(&efd, efd_lines()).unwrap();
    let db = format!("sqlite:///{}", dir.path().join("consdb.db").display());
    let common = |c: &mut Command| {
        c.args([
            "-c",
            config.to_str().unwrap(),
            "-i",
            "LATISS",
            "-r",
            registry.repo.to_str().unwrap(),
        ])
        .args(["-E", &format!("file://{}", efd.display())])
        .args(["-s", "2025-10-02T03:00:00", "-e", "2025-10-02T03:20:00"]);
    };
    // Without --migrate an empty ConsDB is a startup error naming what is missing.
    let mut c = job();
    common(&mut c);
    let out = c.args(["-d", &db]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("--migrate"));
    // --dry-run prints the SQL --migrate would run, and runs none of it.
    let mut c = job();
    common(&mut c);
    let out = c.args(["-d", &db, "--dry-run"]).output().unwrap();
    let sql = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{sql}");
    assert!(sql.starts_with("-- ConsDB "), "{sql}");
    assert!(
        sql.contains("CREATE TABLE") && sql.contains("\"temp_mean\""),
        "{sql}"
    );
    let mut c = job();
    common(&mut c);
    let out = c.args(["-d", &db]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "the dry run created nothing");

    let mut c = job();
    common(&mut c);
    // CONSDB_URL as the manifests set it (space-separated list); LOG_FILE gets the lines too.
    let logfile = dir.path().join("logs/job.log");
    let out = c
        .arg("--migrate")
        .env("CONSDB_URL", &db)
        .env("LOG_FILE", &logfile)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("event=task_processing_summary tasks=4 completed=4 failed=0"),
        "four 5-minute tasks: {stdout}"
    );
    // The reference's line format: `YYYY-MM-DDTHH:MM:SSZ [LEVEL] event=name key=value ...`.
    for line in stdout.lines() {
        let (stamp, rest) = line.split_at(20);
        assert!(
            stamp.len() == 20
                && stamp.as_bytes()[10] == b'T'
                && stamp.ends_with('Z')
                && stamp[..10].bytes().filter(|b| *b == b'-').count() == 2,
            "timestamp of {line}"
        );
        assert!(
            rest.starts_with(" [INFO] event=") || rest.starts_with(" [WARNING] event="),
            "level and event of {line}"
        );
    }
    for event in [
        "execution_config mode=job instrument=latiss",
        "tasks_created count=4 ",
        "task_impact_scope ",
        "task_completed id=",
        "runtime mode=job",
    ] {
        assert!(
            stdout.contains(&format!("event={event}")),
            "{event}: {stdout}"
        );
    }
    // Not on a terminal: progress lines, the last one complete.
    assert!(
        stdout.contains("event=job_progress tasks_done=4 tasks_total=4 failed=0"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&logfile).unwrap(), stdout);

    // --resume with nothing idle left, in JSON: one object per line, the same events.
    let mut c = job();
    common(&mut c);
    let out = c
        .args(["-d", &db, "--resume", "--log-format", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let events: Vec<String> = stdout
        .lines()
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
            value["fields"]["event"].as_str().unwrap_or("").to_owned()
        })
        .collect();
    for event in [
        "execution_config",
        "job_resume_idle_tasks",
        "task_processing_summary",
    ] {
        assert!(events.iter().any(|e| e == event), "{event}: {stdout}");
    }
    assert!(
        stdout.contains(r#""tasks":0"#),
        "nothing left to resume: {stdout}"
    );
}

#[test]
fn bad_options_exit_1_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let out = job()
        .args([
            "-c",
            missing.to_str().unwrap(),
            "-i",
            "latiss",
            "-r",
            "/nowhere",
            "-d",
            "sqlite:////tmp/x.db",
        ])
        .args(["-s", "2025-10-02T03:00:00", "-e", "2025-10-02T03:20:00"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing.yaml"));
    let out = job()
        .args([
            "-c",
            "x",
            "-i",
            "hsc",
            "-r",
            "r",
            "-d",
            "sqlite://",
            "-s",
            "2025-10-02",
            "-e",
            "2025-10-03",
        ])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown instrument `hsc`"));
    let out = job()
        .args([
            "-c",
            "x",
            "-i",
            "latiss",
            "-r",
            "r",
            "-d",
            "sqlite://",
            "-s",
            "yesterday",
            "-e",
            "2025-10-03",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an ISO 8601"));
}

#[test]
fn check_config_validates_and_plans_without_connecting() {
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/data/demo-config.yaml"
    );
    let out = job()
        .args(["--check-config", "-c", config, "-i", "latiss"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("9 columns, valid"), "{stdout}");
    assert!(stdout.contains("5 query groups over 5 topics"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, CONFIG.replace("function: mean", "function: median")).unwrap();
    let out = job()
        .args([
            "--check-config",
            "-c",
            bad.to_str().unwrap(),
            "-i",
            "latiss",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bad.yaml:6") && stdout.contains("unknown function `median`"),
        "{stdout}"
    );
}
