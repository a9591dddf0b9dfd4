//! `efd-cronjob` as the CronJob runs it: a first run creates the pending task up to now and
//! processes nothing not yet due; a second run creates nothing new.

use test_support::butler::{ExpectedRegistry, make_registry};

#[test]
fn a_cron_run_creates_the_current_task_and_waits_for_it_to_be_due() {
    let dir = tempfile::tempdir().unwrap();
    let registry = ExpectedRegistry::from_json(&make_registry(&dir.path().join("repo"), None));
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/data/demo-config.yaml"
    );
    let efd = dir.path().join("efd.lp");
    std::fs::write(&efd, "").unwrap();
    let run = || {
        test_support::service_command(env!("CARGO_BIN_EXE_efd-cronjob"))
            .args([
                "-c",
                config,
                "-i",
                "latiss",
                "-r",
                registry.repo.to_str().unwrap(),
            ])
            .args([
                "-d",
                &format!("sqlite:///{}", dir.path().join("consdb.db").display()),
            ])
            .args(["-E", &format!("file://{}", efd.display()), "--migrate"])
            .output()
            .unwrap()
    };
    let first = run();
    let out = String::from_utf8_lossy(&first.stdout).into_owned();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(out.contains("event=tasks_created count=1 "), "{out}");
    assert!(
        out.contains("event=cronjob_check_pending_tasks pending=0 created=1"),
        "{out}"
    );
    assert!(
        out.contains("tasks=0"),
        "the new task is not due for 5 minutes: {out}"
    );
    let second = run();
    let out = String::from_utf8_lossy(&second.stdout).into_owned();
    assert_eq!(second.status.code(), Some(0), "{out}");
    assert!(
        out.contains("event=cronjob_check_pending_tasks pending=1 created=0"),
        "no new task while one is pending: {out}"
    );
}
