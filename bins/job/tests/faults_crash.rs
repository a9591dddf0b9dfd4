//! Crash anywhere: three `efd-job --resume` processes share 200 one-minute tasks in PostgreSQL
//! while a supervisor kills a random one with SIGKILL every 1–2.5 s and starts it again, 20
//! times. The EFD (a real influxd) answers through a proxy that slows every response, so the kills
//! land in the middle of tasks: during EFD queries, ConsDB writes and claims.
//!
//! At the end every task is `completed`; no task was processed by two processes at once (from the
//! processes' own logs: a task's start-to-end span in one process never overlaps another's, a
//! killed process's span ending when it was killed); and the ConsDB rows equal, cell for cell,
//! those of a clean run of one worker into another database.

mod faults_common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use db_connect::DbUrl;
use faults_common::{World, assert_same_rows, now_ns, read_log};
use scheduler_store::{SchedulerStore, SchedulerTable, StoreOptions, TaskSpec, TaskStatus};
use test_support::{Rng, SlowProxy};
use transform_core::Instrument;

const TASKS: i64 = 200;
const WORKERS: usize = 3;
const KILLS: usize = 20;
/// Lease of a claim: a killed worker's task is free for another this long after its last beat.
const LEASE_S: u64 = 3;
/// Every EFD response is held back this long.
const EFD_DELAY: Duration = Duration::from_millis(100);

/// One process of one worker slot, from spawn to exit or kill.
struct Incarnation {
    slot: usize,
    child: Child,
    log: PathBuf,
    /// When the supervisor saw it dead after SIGKILL.
    killed_ns: Option<i64>,
}

fn spawn(world: &World, db: &str, efd: &str, slot: usize, n: usize) -> Incarnation {
    let log = world.dir.path().join(format!("worker-{slot}-{n}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let child = test_support::service_command(env!("CARGO_BIN_EXE_efd-job"))
        .env("LOG_LEVEL", "info,pipeline=debug")
        .args(world.common_args(db, efd))
        .args(world.range_args(1))
        .args([
            "--resume",
            "--lease",
            &LEASE_S.to_string(),
            "--efd-concurrency",
            "1",
        ])
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    Incarnation {
        slot,
        child,
        log,
        killed_ns: None,
    }
}

/// Creates the night's one-minute tasks in `db` as `efd-job -t 1 -w 1` would, without running any.
fn create_tasks(world: &World, db: &str) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let options = StoreOptions::new(SchedulerTable::for_instrument(Instrument::Latiss));
            let store = SchedulerStore::open(&[DbUrl::parse(db).unwrap()], options)
                .await
                .unwrap();
            let spec = TaskSpec {
                butler_repo: world.repo.display().to_string(),
                interval_minutes: 1,
                timewindow: 1,
                status: TaskStatus::Idle,
            };
            let created = store
                .create_tasks(world.start, world.end, &spec)
                .await
                .unwrap()
                .into_value();
            assert_eq!(i64::try_from(created.len()).unwrap(), TASKS);
        });
}

/// Runs one `efd-job` to its end; panics with its log unless it exits 0.
fn run_to_end(world: &World, db: &str, efd: &str, name: &str, extra: &[&str]) {
    let log = world.dir.path().join(format!("{name}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let status = test_support::service_command(env!("CARGO_BIN_EXE_efd-job"))
        .env("LOG_LEVEL", "info")
        .args(world.common_args(db, efd))
        .args(world.range_args(1))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{name} failed:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Per task, the spans `(start, end, incarnation)` in which a process worked on it.
fn spans(incarnations: &[Incarnation]) -> BTreeMap<i64, Vec<(i64, i64, usize)>> {
    let mut spans: BTreeMap<i64, Vec<(i64, i64, usize)>> = BTreeMap::new();
    for (i, inc) in incarnations.iter().enumerate() {
        let (events, other) = read_log(&inc.log);
        assert!(
            !other.iter().any(|l| l.contains("panicked")),
            "worker {} panicked:\n{}",
            inc.slot,
            other.join("\n")
        );
        let mut open: BTreeMap<i64, i64> = BTreeMap::new();
        for e in &events {
            let Some(id) = e.task_id() else {
                continue;
            };
            match e.event.as_str() {
                "task_processing_start" => {
                    open.insert(id, e.ts_ns);
                }
                "task_completed"
                | "task_processing_failed"
                | "task_released"
                | "task_result_discarded" => {
                    if let Some(start) = open.remove(&id) {
                        spans.entry(id).or_default().push((start, e.ts_ns, i));
                    }
                }
                _ => {}
            }
        }
        // Tasks a killed process was in the middle of: their span ends at the kill.
        for (id, start) in open {
            let end = inc.killed_ns.unwrap_or(i64::MAX);
            spans.entry(id).or_default().push((start, end, i));
        }
    }
    spans
}

#[test]
fn sigkill_of_random_workers_loses_nothing_and_never_doubles_a_task() {
    let world = World::new(u32::try_from(TASKS).unwrap(), 200, 0.5, 11);
    let proxy = SlowProxy::start(([127, 0, 0, 1], world.influx.port()).into(), EFD_DELAY);

    // The reference: one worker, nothing injected.
    let clean = world.database("clean");
    run_to_end(&world, &clean, &world.influx.url(), "clean", &[]);
    assert_eq!(
        world.task_statuses("clean"),
        BTreeMap::from([("completed".to_owned(), TASKS)])
    );

    // The backfill's 200 tasks, created beforehand as the documented alternative to every worker
    // creating them (kubernetes/README.md, "Backfills"): a worker started again after some tasks
    // completed would otherwise queue those intervals once more. Then three workers, started at
    // once with `--resume` (each migrating the empty ConsDB), killed at random.
    let db = world.database("crash");
    create_tasks(&world, &db);
    let seed = u64::try_from(now_ns()).unwrap();
    let mut rng = Rng(seed);
    let mut incarnations: Vec<Incarnation> = Vec::new();
    let mut live: Vec<usize> = (0..WORKERS)
        .map(|slot| {
            incarnations.push(spawn(&world, &db, &proxy.url(), slot, 0));
            incarnations.len() - 1
        })
        .collect();
    let began = Instant::now();
    let mut kills = 0;
    while kills < KILLS {
        std::thread::sleep(Duration::from_millis(rng.between(1000, 2500)));
        let running: Vec<usize> = (0..WORKERS)
            .filter(|&s| incarnations[live[s]].child.try_wait().unwrap().is_none())
            .collect();
        assert!(
            !running.is_empty(),
            "every worker finished after {kills} kills in {:?} (seed {seed}): the work must outlast \
             the kills; slow the EFD further",
            began.elapsed()
        );
        let slot = running[usize::try_from(rng.next()).unwrap() % running.len()];
        let victim = &mut incarnations[live[slot]];
        victim.child.kill().unwrap();
        victim.child.wait().unwrap();
        victim.killed_ns = Some(now_ns());
        kills += 1;
        incarnations.push(spawn(&world, &db, &proxy.url(), slot, kills));
        live[slot] = incarnations.len() - 1;
    }
    let kills_took = began.elapsed();
    for &i in &live {
        let deadline = Instant::now() + Duration::from_secs(300);
        while incarnations[i].child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "worker {} never finished",
                incarnations[i].slot
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // Orphans of the last kills: their leases run out, and a later run fails and retries them.
    std::thread::sleep(Duration::from_secs(LEASE_S + 1));
    proxy.set_delay(Duration::ZERO);
    run_to_end(&world, &db, &proxy.url(), "later", &["--resume"]);
    let statuses = world.task_statuses("crash");
    assert_eq!(
        statuses,
        BTreeMap::from([("completed".to_owned(), TASKS)]),
        "seed {seed}"
    );
    let retried: i64 = world
        .pg
        .psql(
            "crash",
            &format!("SELECT sum(retries) FROM {}", faults_common::TASK_TABLE),
        )
        .trim()
        .parse()
        .unwrap_or(0);

    // Never two processes on one task at once.
    let spans = spans(&incarnations);
    let mut interrupted = 0;
    for (id, mut list) in spans {
        list.sort_unstable();
        interrupted += list.len() - 1;
        for pair in list.windows(2) {
            let ((_, end_a, a), (start_b, _, b)) = (pair[0], pair[1]);
            assert!(
                end_a <= start_b,
                "task {id} was processed by incarnations {a} and {b} at once (seed {seed}): \
                 {} ms of overlap",
                (end_a - start_b) / 1_000_000
            );
        }
    }
    assert!(
        interrupted > 0,
        "no kill interrupted a task (seed {seed}): the test proved nothing"
    );

    // The rows, cell for cell.
    assert_same_rows(
        &world.consdb_rows("clean"),
        &world.consdb_rows("crash"),
        &format!("seed {seed}"),
    );
    test_support::report::record(
        "fault",
        "crash anywhere",
        &format!(
            "SIGKILL of a random one of {WORKERS} efd-job processes every 1-2.5 s, restarted at \
             once; {TASKS} one-minute tasks in PostgreSQL; EFD responses held {} ms",
            EFD_DELAY.as_millis()
        ),
        KILLS as u64,
        &format!(
            "{TASKS}/{TASKS} tasks completed ({retried} retries of orphaned tasks, {interrupted} \
             tasks interrupted mid-way, kills over {:.0} s); no task in two processes at once; \
             ConsDB rows equal a clean single-worker run, cell for cell",
            kills_took.as_secs_f64()
        ),
        "faults_crash::sigkill_of_random_workers_loses_nothing_and_never_doubles_a_task",
    );
}
