//! ConsDB faults under `efd-monitor`, with the ConsDB and its task table in a real PostgreSQL.
//!
//! - The primary restarts in the middle of a run (a fast shutdown, then a start on the same data):
//!   the tasks it interrupts fail or are left to their leases, none is lost, and later monitor runs
//!   complete every one with rows equal, cell for cell, to a clean run's.
//! - A replica is down for a whole run: the primary gets every row, each task counts the replica
//!   that missed its writes, and `efd-monitor status --json` shows those counts.

#[path = "../../job/tests/faults_common/mod.rs"]
mod faults_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use faults_common::{TASK_TABLE, World, assert_same_rows};
use test_support::{Postgres, SlowProxy};

const LEASE_S: u64 = 3;

fn monitor(world: &World, db: &str, efd: &str, log: &Path) -> Command {
    faults_common::monitor_command(
        env!("CARGO_BIN_EXE_efd-monitor"),
        world,
        db,
        efd,
        log,
        &["--lease", &LEASE_S.to_string()],
    )
}

fn wait(child: &mut Child, limit: Duration, log: &Path) -> Option<i32> {
    faults_common::wait_for(child, limit, log)
}

fn output(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

#[test]
fn a_primary_restart_mid_run_loses_no_task() {
    let mut world = World::new(60, 40, 0.5, 31);
    let clean = world.database("clean");
    let log = world.dir.path().join("clean.log");
    let mut child = monitor(&world, &clean, &world.influx.url(), &log)
        .spawn()
        .unwrap();
    assert_eq!(wait(&mut child, Duration::from_secs(300), &log), Some(0));
    let tasks = world.task_statuses("clean")["completed"];
    let reference = world.consdb_rows("clean");

    let proxy = SlowProxy::start(
        ([127, 0, 0, 1], world.influx.port()).into(),
        Duration::from_millis(150),
    );
    let db = world.database("restart");
    let log = world.dir.path().join("restart.log");
    let mut child = monitor(&world, &db, &proxy.url(), &log).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while world
        .task_statuses("restart")
        .get("completed")
        .copied()
        .unwrap_or(0)
        < 2
    {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "the run never completed two tasks:\n{}",
            output(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    world.pg.restart();
    let code = wait(&mut child, Duration::from_secs(300), &log);
    let first = output(&log);
    assert!(code.is_some(), "killed by a signal:\n{first}");
    assert!(!first.contains("panicked"), "{first}");
    let after_restart = world.task_statuses("restart");
    let unfinished: i64 = after_restart
        .iter()
        .filter(|(s, _)| *s != "completed")
        .map(|(_, n)| n)
        .sum();
    assert!(
        unfinished > 0 || first.contains("transient"),
        "the restart interrupted nothing: {after_restart:?}\n{first}"
    );

    // Later runs: leases of interrupted tasks run out, they are failed and, once their backoff has
    // passed (time moved on by aging every unfinished task), retried.
    std::thread::sleep(Duration::from_secs(LEASE_S + 1));
    proxy.set_delay(Duration::ZERO);
    let mut runs = 0;
    while world
        .task_statuses("restart")
        .get("completed")
        .copied()
        .unwrap_or(0)
        < tasks
    {
        runs += 1;
        assert!(
            runs <= 3,
            "three later runs left tasks unfinished: {:?}",
            world.task_statuses("restart")
        );
        world.pg.psql(
            "restart",
            &format!(
                "UPDATE {TASK_TABLE} SET created_at = created_at - interval '30 hours' \
                 WHERE status <> 'completed'"
            ),
        );
        let later = world.dir.path().join(format!("later-{runs}.log"));
        let mut child = monitor(&world, &db, &proxy.url(), &later).spawn().unwrap();
        assert_eq!(
            wait(&mut child, Duration::from_secs(300), &later),
            Some(0),
            "{}",
            output(&later)
        );
    }
    assert_eq!(
        world.task_statuses("restart"),
        BTreeMap::from([("completed".to_owned(), tasks)])
    );
    assert_same_rows(
        &reference,
        &world.consdb_rows("restart"),
        "after the restart",
    );
    test_support::report::record(
        "fault",
        "ConsDB primary restart",
        "PostgreSQL (ConsDB and task table) restarted with a fast shutdown in the middle of an \
         efd-monitor run",
        1,
        &format!(
            "{unfinished} of {tasks} tasks left failed or running by the restart (state after \
             the run: {after_restart:?}); {runs} later monitor run(s) completed all {tasks}; \
             ConsDB rows equal a clean run's"
        ),
        "faults_consdb::a_primary_restart_mid_run_loses_no_task",
    );
}

#[test]
fn a_replica_down_is_counted_per_task_and_shown_by_status() {
    let world = World::new(30, 16, 0.5, 32);
    let primary = world.database("primary");
    let mut replica_server = Postgres::start();
    replica_server.create_database("replica");
    let replica = replica_server.url("replica");
    replica_server.stop();

    let log = world.dir.path().join("replica.log");
    let mut child = monitor(
        &world,
        &format!("{primary} {replica}"),
        &world.influx.url(),
        &log,
    )
    .spawn()
    .unwrap();
    let code = wait(&mut child, Duration::from_secs(300), &log);
    let out = output(&log);
    assert_eq!(code, Some(0), "{out}");
    let statuses = world.task_statuses("primary");
    assert_eq!(
        statuses.keys().collect::<Vec<_>>(),
        ["completed"],
        "{statuses:?}"
    );
    let tasks = statuses["completed"];
    let counts = world.pg.psql(
        "primary",
        &format!("SELECT replica_failures FROM {TASK_TABLE} ORDER BY id"),
    );
    let counts: Vec<i64> = counts.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(i64::try_from(counts.len()).unwrap(), tasks);
    assert!(
        counts.iter().all(|&n| n >= 1),
        "every task counts the replica that missed it: {counts:?}"
    );
    assert!(
        world
            .consdb_rows("primary")
            .values()
            .any(|rows| !rows.is_empty()),
        "the primary has the rows"
    );

    let status = test_support::service_command(env!("CARGO_BIN_EXE_efd-monitor"))
        .args(world.common_args(&primary, &world.influx.url()))
        .args(["status", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(0), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON: {stdout}"));
    let report: serde_json::Value = serde_json::from_str(line).unwrap();
    let recent = report["recent_completed"].as_array().unwrap();
    assert!(!recent.is_empty(), "{report}");
    assert!(
        recent
            .iter()
            .all(|t| t["replica_failures"].as_i64().unwrap_or(0) >= 1),
        "status shows the replica failures: {report}"
    );
    test_support::report::record(
        "fault",
        "ConsDB replica down",
        "the second of two ConsDB URLs (a PostgreSQL server) stopped for a whole efd-monitor run",
        u64::try_from(tasks).unwrap(),
        &format!(
            "{tasks}/{tasks} tasks completed on the primary; each counts 1 replica failure in \
             the task table, and `efd-monitor status --json` shows them"
        ),
        "faults_consdb::a_replica_down_is_counted_per_task_and_shown_by_status",
    );
}
