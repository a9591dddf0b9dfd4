//! `efd-monitor` as the hourly CronJob runs it, and `efd-monitor status`.

use test_support::butler::{ExpectedRegistry, make_registry};

#[test]
fn a_monitor_run_and_the_status_report() {
    let dir = tempfile::tempdir().unwrap();
    let registry = ExpectedRegistry::from_json(&make_registry(&dir.path().join("repo"), None));
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/data/demo-config.yaml"
    );
    let efd = dir.path().join("efd.lp");
    std::fs::write(&efd, "").unwrap();
    let monitor = || {
        let mut c = test_support::service_command(env!("CARGO_BIN_EXE_efd-monitor"));
        c.args([
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
        .args(["-E", &format!("file://{}", efd.display()), "--migrate"]);
        c
    };
    let out = monitor().output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("failure_monitor_selected_tasks"),
        "{stdout}"
    );
    let out = monitor().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Quiet: the report is the whole of stdout, one JSON document.
    let value: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: stdout is not one JSON document:\n{stdout}"));
    assert!(
        value["counts"].is_object()
            && value["running"].is_array()
            && value["recent_completed"].is_array(),
        "{value}"
    );
    assert_eq!(
        value["phases"]["tasks"], 0,
        "nothing completed yet: {value}"
    );
    let out = monitor().arg("status").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("last failures"));
}
