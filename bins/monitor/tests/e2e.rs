//! `efd-monitor` end to end over a synthetic night for the real LATISS config: a Butler registry
//! made by lsst-daf-butler from the night's manifest, the line-protocol EFD file and a SQLite
//! ConsDB. The monitor's reconciliation finds the night's exposures and visits missing from ConsDB,
//! creates tasks for them and processes them; `efd-monitor status --json` then reports every task
//! completed, and a second run finds nothing missing and creates nothing.

use std::path::Path;

use diesel::sql_types::BigInt;
use diesel::{Connection as _, QueryableByName, RunQueryDsl as _, SqliteConnection};
use test_support::butler::{ExpectedRegistry, make_registry_from_manifest};
use transform_core::Instrument;
use transformed_efd_examples::synth::{NANOS_PER_MINUTE, Night, Rates, SynthOptions};

/// Nights the reconciliation looks back over: enough to reach the synthetic night (2025-10-01)
/// from any date this test runs on for years.
const WINDOW_DAYS: &str = "3650";

#[derive(QueryableByName, Debug, PartialEq)]
struct Key {
    #[diesel(sql_type = BigInt)]
    day_obs: i64,
    #[diesel(sql_type = BigInt)]
    seq_num: i64,
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// `(day_obs, seq_num, id)` of every row of `table` in the ConsDB's `efd_latiss` file.
fn keys(schema_file: &Path, table: &str, id: &str) -> Vec<(i64, i64, i64)> {
    let mut conn =
        SqliteConnection::establish(&format!("file:{}?mode=ro", schema_file.display())).unwrap();
    diesel::sql_query(format!(
        "SELECT day_obs, seq_num, {id} AS id FROM {table} ORDER BY day_obs, seq_num"
    ))
    .load::<Key>(&mut conn)
    .unwrap()
    .into_iter()
    .map(|k| (k.day_obs, k.seq_num, k.id))
    .collect()
}

#[test]
fn the_monitor_fills_a_missing_night_and_reports_every_task_completed() {
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/consdb/config/config_latiss.yaml");
    assert!(config.is_file(), "missing {}", config.display());
    let night = Night::generate(&SynthOptions {
        instrument: Instrument::Latiss,
        config: config.clone(),
        minutes: 15,
        exposures: 6,
        rates: Rates::Uniform(1.0),
        max_values_per_second: 8.0,
        lookback_hours: 0,
        seed: 5,
        ..SynthOptions::new(dir.path().join("night"))
    })
    .unwrap();
    let m = &night.manifest;
    let repo = dir.path().join("repo");
    let registry = ExpectedRegistry::from_json(&make_registry_from_manifest(
        &repo,
        &night.manifest_path,
        None,
    ));
    assert_eq!(registry.registry, "sqlite");
    let consdb = dir.path().join("consdb.db");
    let monitor = || {
        let mut c = test_support::service_command(env!("CARGO_BIN_EXE_efd-monitor"));
        c.arg("-c")
            .arg(&config)
            .args(["-i", "latiss", "-r"])
            .arg(&repo)
            .args(["-d", &format!("sqlite:///{}", consdb.display())])
            .args(["-E", &format!("file://{}", night.efd.display())])
            .args(["--migrate", "--workers", "2"])
            .args(["--monitor-window-days", WINDOW_DAYS]);
        c
    };
    let status = || {
        let out = monitor().args(["status", "--json"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        let line = stdout
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON line: {stdout}"));
        serde_json::from_str::<serde_json::Value>(line).unwrap()
    };

    let out = monitor().output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = status();
    let counts = report["counts"].as_object().unwrap();
    let completed = counts
        .get("completed")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    // One run of consecutive seq_nums: one interval from the first begin to the last end, cut into
    // 5-minute tasks.
    let begin = m.items.iter().map(|i| i.begin_utc_ns).min().unwrap();
    let end = m.items.iter().map(|i| i.end_utc_ns).max().unwrap();
    let step = 5 * NANOS_PER_MINUTE;
    let tasks = (end - begin + step - 1) / step;
    assert_eq!(completed, tasks as u64, "completed tasks: {report}");
    assert_eq!(counts.len(), 1, "tasks other than completed ones: {report}");
    assert_eq!(report["running"], serde_json::json!([]), "{report}");
    assert_eq!(report["recent_failures"], serde_json::json!([]), "{report}");
    assert!(report["oldest_pending"].is_null(), "{report}");

    // Every exposure and visit of the night now has its row.
    let schema_file = dir.path().join("consdb.efd_latiss.sqlite3");
    for (is_visit, table, id) in [
        (false, "exposure_efd", "exposure_id"),
        (true, "visit1_efd", "visit_id"),
    ] {
        let want: Vec<(i64, i64, i64)> = m
            .items
            .iter()
            .filter(|i| i.is_visit == is_visit)
            .map(|i| (i.day_obs, i.seq_num, i.id))
            .collect();
        assert_eq!(keys(&schema_file, table, id), want, "{table}");
    }

    // Nothing is missing any more: a second run creates no task.
    let out = monitor().output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(status()["counts"], report["counts"]);
}
