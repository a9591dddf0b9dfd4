//! EFD faults under `efd-monitor`, the process that must mend what they break.
//!
//! - Outage: influxd is stopped for 12 s in the middle of a run, then started again. The tasks it
//!   hits end `failed` with a transient error (none `completed` with topics missing: the rows end
//!   equal to a clean run's), and a later monitor run, once their retry backoff has passed,
//!   completes them.
//! - Slow and truncated answers: a proxy holds responses beyond the request timeout, then cuts
//!   them short. Timeouts fire, retries back off, every task fails transiently within the limits
//!   the options set (no hang), and a later run against a healthy EFD completes them.

#[path = "../../job/tests/faults_common/mod.rs"]
mod faults_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use faults_common::{TASK_TABLE, World, assert_same_rows, read_log};
use test_support::SlowProxy;

fn monitor(world: &World, db: &str, efd: &str, log: &Path) -> Command {
    faults_common::monitor_command(env!("CARGO_BIN_EXE_efd-monitor"), world, db, efd, log, &[])
}

fn wait(child: &mut Child, limit: Duration, log: &Path) -> Option<i32> {
    faults_common::wait_for(child, limit, log)
}

/// A clean monitor run into database `clean`, for reference rows.
fn clean_run(world: &World) -> BTreeMap<&'static str, Vec<String>> {
    let db = world.database("clean");
    let log = world.dir.path().join("clean.log");
    let mut child = monitor(world, &db, &world.influx.url(), &log)
        .spawn()
        .unwrap();
    assert_eq!(wait(&mut child, Duration::from_secs(300), &log), Some(0));
    let statuses = world.task_statuses("clean");
    assert_eq!(
        statuses.keys().collect::<Vec<_>>(),
        ["completed"],
        "{statuses:?}"
    );
    world.consdb_rows("clean")
}

/// Ages every failed task by `hours`, as if that much time had passed: the monitor retries a
/// failed task only after its backoff (2.8^(retries+1) hours since creation, as the reference).
fn age_failed_tasks(world: &World, db: &str, hours: u32) {
    world.pg.psql(
        db,
        &format!(
            "UPDATE {TASK_TABLE} SET created_at = created_at - interval '{hours} hours' \
             WHERE status = 'failed'"
        ),
    );
}

/// `task_processing_failed` events of a log: `(transient, error)`.
fn failures(log: &Path) -> Vec<(bool, String)> {
    read_log(log)
        .0
        .into_iter()
        .filter(|e| e.event == "task_processing_failed")
        .map(|e| {
            (
                e.fields
                    .get("transient")
                    .and_then(serde_json::Value::as_bool)
                    == Some(true),
                e.fields
                    .get("error")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn an_efd_outage_fails_tasks_transiently_and_a_later_monitor_run_completes_them() {
    let mut world = World::new(60, 40, 0.5, 21);
    let reference = clean_run(&world);
    let tasks = world.task_statuses("clean")["completed"];

    // Slow answers stretch the run so that the outage falls in its middle.
    let proxy = SlowProxy::start(
        ([127, 0, 0, 1], world.influx.port()).into(),
        Duration::from_millis(150),
    );
    let db = world.database("outage");
    let log = world.dir.path().join("outage.log");
    let mut child = monitor(&world, &db, &proxy.url(), &log)
        .env("EFD_MAX_ATTEMPTS", "3")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while world
        .task_statuses("outage")
        .get("completed")
        .copied()
        .unwrap_or(0)
        < 2
    {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "the run never completed two tasks:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    world.influx.stop();
    std::thread::sleep(Duration::from_secs(12));
    world.influx.restart();
    let code = wait(&mut child, Duration::from_secs(300), &log);
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(code.is_some(), "killed by a signal:\n{output}");
    assert!(!output.contains("panicked"), "{output}");

    let statuses = world.task_statuses("outage");
    let failed = statuses.get("failed").copied().unwrap_or(0);
    assert!(
        failed > 0,
        "the outage failed no task: {statuses:?}\n{output}"
    );
    assert_eq!(
        statuses.get("completed").copied().unwrap_or(0) + failed,
        tasks,
        "{statuses:?}"
    );
    let failures = failures(&log);
    assert_eq!(i64::try_from(failures.len()).unwrap(), failed, "{output}");
    for (transient, error) in &failures {
        assert!(*transient, "a permanent error for an outage: {error}");
        assert!(
            error.contains("EFD"),
            "the error says the EFD failed: {error}"
        );
    }
    let errors = world.pg.psql(
        "outage",
        &format!("SELECT DISTINCT error FROM {TASK_TABLE} WHERE status = 'failed'"),
    );
    assert!(!errors.trim().is_empty(), "failed tasks keep their error");

    // Hours later, the hourly monitor retries them against the EFD that is back.
    age_failed_tasks(&world, "outage", 3);
    let later = world.dir.path().join("later.log");
    let mut child = monitor(&world, &db, &proxy.url(), &later).spawn().unwrap();
    proxy.set_delay(Duration::ZERO);
    assert_eq!(wait(&mut child, Duration::from_secs(300), &later), Some(0));
    assert_eq!(
        world.task_statuses("outage"),
        BTreeMap::from([("completed".to_owned(), tasks)])
    );
    assert_same_rows(&reference, &world.consdb_rows("outage"), "after the outage");
    test_support::report::record(
        "fault",
        "EFD outage",
        "influxd stopped for 12 s in the middle of an efd-monitor run (EFD responses held 150 ms, \
         3 attempts per request), then restarted",
        1,
        &format!(
            "{failed}/{tasks} tasks failed, every one with a transient EFD error, none completed \
             with data missing; the next monitor run (after the retry backoff) completed all \
             {tasks}; ConsDB rows equal a clean run's"
        ),
        "faults_efd::an_efd_outage_fails_tasks_transiently_and_a_later_monitor_run_completes_them",
    );
}

#[test]
fn slow_and_truncated_answers_time_out_back_off_and_never_hang() {
    let world = World::new(15, 8, 0.5, 22);
    let reference = clean_run(&world);
    let tasks = world.task_statuses("clean")["completed"];

    // Every answer held 3 s against a 1 s request timeout: each request times out.
    let proxy = SlowProxy::start(
        ([127, 0, 0, 1], world.influx.port()).into(),
        Duration::from_secs(3),
    );
    let db = world.database("slow");
    let log = world.dir.path().join("slow.log");
    let began = Instant::now();
    let mut child = monitor(&world, &db, &proxy.url(), &log)
        .env("EFD_TIMEOUT", "1")
        .env("EFD_MAX_ATTEMPTS", "3")
        .spawn()
        .unwrap();
    // Per task at most: 3 attempts of 1 s, backoffs of at most 0.5 + 1 s, per query group, one
    // group at a time (`--efd-concurrency 1`); the first failure ends the task. Bound the run by
    // that per task plus startup, with room for a loaded machine.
    let limit = Duration::from_secs(30 + 10 * u64::try_from(tasks).unwrap());
    let code = wait(&mut child, limit, &log);
    let took = began.elapsed();
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(code.is_some(), "{output}");
    let statuses = world.task_statuses("slow");
    assert_eq!(
        statuses,
        BTreeMap::from([("failed".to_owned(), tasks)]),
        "{output}"
    );
    let slow_failures = failures(&log);
    assert!(!slow_failures.is_empty());
    for (transient, error) in &slow_failures {
        assert!(*transient, "{error}");
        assert!(
            error.contains("timed out") || error.contains("timeout"),
            "{error}"
        );
    }
    // Retries happened, and backed off: the delays logged grow within each request's sequence.
    let retries: Vec<u64> = read_log(&log)
        .0
        .iter()
        .filter(|e| e.event == "influx_request_retry")
        .filter_map(|e| e.fields.get("delay_ms").and_then(serde_json::Value::as_u64))
        .collect();
    assert!(
        retries.len() >= 2 * usize::try_from(tasks).unwrap(),
        "two retries per failed task: {retries:?}"
    );
    assert!(
        retries.iter().all(|d| (250..=1000).contains(d)),
        "{retries:?}"
    );
    assert!(
        retries.iter().any(|d| *d >= 500),
        "a second retry waits longer: {retries:?}"
    );

    // Truncated answers: the proxy now lets answers through at once but cuts each after 200
    // bytes. Each is a transient failure (a stream cut short), never a wrong value.
    age_failed_tasks(&world, "slow", 3);
    proxy.set_delay(Duration::ZERO);
    proxy.set_truncate(Some(200));
    let cut = world.dir.path().join("truncated.log");
    let mut child = monitor(&world, &db, &proxy.url(), &cut)
        .env("EFD_MAX_ATTEMPTS", "2")
        .spawn()
        .unwrap();
    let code = wait(&mut child, limit, &cut);
    assert!(code.is_some());
    let statuses = world.task_statuses("slow");
    assert_eq!(statuses, BTreeMap::from([("failed".to_owned(), tasks)]));
    let cut_failures = failures(&cut);
    assert!(!cut_failures.is_empty());
    for (transient, error) in &cut_failures {
        assert!(*transient, "{error}");
    }
    // Nothing was written from the cut answers.
    assert!(
        world.consdb_rows("slow").values().all(Vec::is_empty),
        "rows were written from truncated answers"
    );

    // A healthy EFD again: the next run completes every task, rows as the clean run's.
    proxy.set_truncate(None);
    age_failed_tasks(&world, "slow", 10);
    let later = world.dir.path().join("later.log");
    let mut child = monitor(&world, &db, &proxy.url(), &later).spawn().unwrap();
    assert_eq!(wait(&mut child, Duration::from_secs(300), &later), Some(0));
    assert_eq!(
        world.task_statuses("slow"),
        BTreeMap::from([("completed".to_owned(), tasks)])
    );
    assert_same_rows(&reference, &world.consdb_rows("slow"), "after slow answers");
    test_support::report::record(
        "fault",
        "slow and truncated EFD",
        "every EFD answer held 3 s against a 1 s request timeout (3 attempts); then every answer \
         cut after 200 bytes (2 attempts)",
        u64::try_from(retries.len() + cut_failures.len()).unwrap(),
        &format!(
            "every task failed transiently ({} timeouts retried with backoff 0.25-1 s; the run \
             ended in {:.0} s, under its {} s bound); truncated streams failed, nothing written; \
             a healthy run then completed all {tasks}, rows equal a clean run's",
            retries.len(),
            took.as_secs_f64(),
            limit.as_secs()
        ),
        "faults_efd::slow_and_truncated_answers_time_out_back_off_and_never_hang",
    );
}
