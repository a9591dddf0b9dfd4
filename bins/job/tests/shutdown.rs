//! `efd-job` stopped in the middle of a task that waits on a slow EFD (a real `influxd` behind
//! test-support's `SlowProxy`): SIGTERM releases the task after the grace period, or lets it finish
//! when the grace period is long enough; kill -9 leaves the task `running` on a lease that runs out,
//! after which another run fails it as orphaned and retries it. The task table and ConsDB are SQLite
//! files, the Butler registry is made by lsst-daf-butler.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{CONFIG, S, efd_lines};
use consdb_writer::{ConsDb, EfdSchema};
use db_connect::DbUrl;
use scheduler_store::{
    Clock, SchedulerStore, SchedulerTable, StoreOptions, SystemClock, Task, TaskId, TaskStatus,
};
use test_support::butler::{ExpectedRegistry, make_registry};
use test_support::{Influxd, SlowProxy};
use transform_core::{Config, Instrument, Table};

/// Far longer than any test: a held response is only let through by `set_delay`.
const FOREVER: Duration = Duration::from_secs(600);
/// How long the process may take to reach the slow EFD (startup, migrations, the Butler query).
const STARTUP: Duration = Duration::from_secs(60);
/// Slack on top of the grace period for releasing the task and exiting.
const EXIT_MARGIN: Duration = Duration::from_secs(10);

fn block_on<F: Future>(work: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(work)
}

/// A Butler registry, an EFD in influxd behind a slow proxy, a config and an SQLite ConsDB.
struct Setup {
    dir: tempfile::TempDir,
    registry: ExpectedRegistry,
    config: PathBuf,
    db: String,
    proxy: SlowProxy,
    _influx: Influxd,
    runs: usize,
}

impl Setup {
    fn new(delay: Duration) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let registry = ExpectedRegistry::from_json(&make_registry(&dir.path().join("repo"), None));
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, CONFIG).unwrap();
        let influx = Influxd::start();
        influx.create_database("efd");
        influx.write("efd", &efd_lines());
        let proxy = SlowProxy::start(([127, 0, 0, 1], influx.port()).into(), delay);
        let db = format!("sqlite:///{}", dir.path().join("consdb.db").display());
        Setup {
            dir,
            registry,
            config,
            db,
            proxy,
            _influx: influx,
            runs: 0,
        }
    }

    /// Starts `efd-job --migrate` over `[start, end)` through the proxy, with `extra` flags; its
    /// output goes to a file of the temporary directory.
    fn spawn(&mut self, start: &str, end: &str, extra: &[&str]) -> Run {
        self.runs += 1;
        let log = self.dir.path().join(format!("run-{}.log", self.runs));
        let file = std::fs::File::create(&log).unwrap();
        let mut c = test_support::service_command(env!("CARGO_BIN_EXE_efd-job"));
        c.env("LOG_LEVEL", "info,pipeline=debug,scheduler_store=debug")
            .args(["-c", self.config.to_str().unwrap(), "-i", "latiss"])
            .args(["-r", self.registry.repo.to_str().unwrap(), "-d", &self.db])
            .args(["-E", &self.proxy.url(), "-s", start, "-e", end, "--migrate"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let child = c.spawn().unwrap();
        Run { child, log }
    }

    /// Runs `efd-job` to the end and returns its exit code.
    fn run(&mut self, start: &str, end: &str) -> (Option<i32>, String) {
        let mut run = self.spawn(start, end, &[]);
        let status = run.wait(STARTUP);
        (status.code(), run.output())
    }

    /// Opens the task table (inside the runtime that uses it: its SQLite connection runs there).
    async fn store(&self) -> SchedulerStore {
        let mut options = StoreOptions::new(SchedulerTable::for_instrument(Instrument::Latiss));
        // Only read: the running process owns the migrations.
        options.migrate = false;
        SchedulerStore::open(&[DbUrl::parse(&self.db).unwrap()], options)
            .await
            .unwrap()
    }

    /// Every task of the table, by id.
    fn tasks(&self) -> Vec<Task> {
        block_on(async {
            let store = self.store().await;
            let total: i64 = store
                .status_summary(None, 0)
                .await
                .unwrap()
                .counts
                .values()
                .sum();
            let mut tasks = Vec::new();
            for id in 1..=i32::try_from(total).unwrap() {
                tasks.push(store.task(TaskId(id)).await.unwrap().unwrap());
            }
            tasks
        })
    }

    /// The exposure ids ConsDB has for night 20251001.
    fn consdb_exposures(&self) -> Vec<i64> {
        block_on(async {
            let schema = EfdSchema::new(
                &Config::parse(CONFIG, "test.yaml").unwrap(),
                Instrument::Latiss,
            )
            .unwrap();
            let mut consdb = ConsDb::connect(schema, &[DbUrl::parse(&self.db).unwrap()], None)
                .await
                .unwrap();
            consdb
                .ids_for_day_obs(Table::ExposureEfd, 20_251_001..=20_251_001)
                .await
                .unwrap()
        })
    }

    /// Waits until the process is waiting on a held EFD response; panics with its output if it
    /// never gets there.
    fn wait_for_slow_efd(&self, run: &mut Run) {
        if !self.proxy.wait_until_held(STARTUP) {
            let _ = run.child.kill();
            let _ = run.child.wait();
            panic!("efd-job never queried the EFD:\n{}", run.output());
        }
    }
}

/// A running `efd-job`.
struct Run {
    child: Child,
    log: PathBuf,
}

impl Run {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM (kill(1): the workspace forbids the `unsafe` that `libc::kill` needs).
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `timeout` for the exit; panics with the output if it does not come.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "efd-job did not exit within {timeout:?}:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn sigterm_releases_a_task_stuck_on_the_efd_and_the_next_run_completes_it() {
    let mut setup = Setup::new(FOREVER);
    let (start, end) = ("2025-10-02T03:00:00", "2025-10-02T03:05:00");
    let grace = Duration::from_secs(1);
    let mut run = setup.spawn(start, end, &["--grace-period", "1"]);
    setup.wait_for_slow_efd(&mut run);
    let tasks = setup.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].status, TaskStatus::Running, "{}", run.output());

    let signalled = Instant::now();
    run.terminate();
    let status = run.wait(grace + EXIT_MARGIN);
    let exited_after = signalled.elapsed();
    let output = run.output();
    assert_eq!(status.code(), Some(143), "{output}");
    // Back to idle, as before the claim: not failed, no owner or lease left, no retry counted.
    let task = &setup.tasks()[0];
    assert_eq!(task.status, TaskStatus::Idle, "{task:?}\n{output}");
    assert_eq!(
        (
            &task.claimed_by,
            task.lease_expires_at,
            task.previous_status,
            task.retries
        ),
        (&None, None, None, 0),
        "{task:?}"
    );
    assert_eq!((&task.error, task.process_start), (&None, None), "{task:?}");
    assert!(setup.consdb_exposures().is_empty());

    // The next run, with a fast EFD, completes the same task.
    setup.proxy.set_delay(Duration::ZERO);
    let (code, output) = setup.run(start, end);
    assert_eq!(code, Some(0), "{output}");
    let tasks = setup.tasks();
    assert_eq!(tasks.len(), 1, "no second task for the interval");
    let task = &tasks[0];
    assert_eq!(
        (task.status, task.retries),
        (TaskStatus::Completed, 0),
        "{task:?}"
    );
    let rows = setup.consdb_exposures();
    assert!(!rows.is_empty());
    assert_eq!(task.exposures, Some(i32::try_from(rows.len()).unwrap()));
    test_support::report::record(
        "fault",
        "SIGTERM mid-task",
        "SIGTERM to efd-job while its task waits on an EFD answer held forever; --grace-period 1",
        1,
        &format!(
            "exit 143 after {:.1} s (grace 1 s); the task back to idle, no owner, lease or retry \
             left, nothing written; the next run completed it",
            exited_after.as_secs_f64()
        ),
        "shutdown::sigterm_releases_a_task_stuck_on_the_efd_and_the_next_run_completes_it",
    );
}

#[test]
fn sigterm_with_a_long_grace_period_lets_the_task_finish_and_claims_no_other() {
    // Each EFD response takes 2 s: the task in flight needs a few more seconds after the signal.
    let mut setup = Setup::new(Duration::from_secs(2));
    let grace = Duration::from_secs(60);
    let mut run = setup.spawn(
        "2025-10-02T03:00:00",
        "2025-10-02T03:10:00",
        &["--grace-period", "60"],
    );
    setup.wait_for_slow_efd(&mut run);
    let responses_before = setup.proxy.responses();
    run.terminate();
    let status = run.wait(grace + EXIT_MARGIN);
    let output = run.output();
    // signals::exit_code: 128 + the signal whenever one arrived, even when every task completed.
    assert_eq!(status.code(), Some(143), "{output}");
    assert!(
        setup.proxy.responses() > responses_before,
        "the task went on querying the EFD after the signal:\n{output}"
    );
    let tasks = setup.tasks();
    assert_eq!(tasks.len(), 2);
    assert_eq!(
        tasks[0].status,
        TaskStatus::Completed,
        "{:?}\n{output}",
        tasks[0]
    );
    assert_eq!(tasks[0].error, None);
    let rows = setup.consdb_exposures();
    assert!(!rows.is_empty());
    assert_eq!(tasks[0].exposures, Some(i32::try_from(rows.len()).unwrap()));
    // The second task was never claimed.
    assert_eq!(
        (
            tasks[1].status,
            tasks[1].process_start,
            &tasks[1].claimed_by
        ),
        (TaskStatus::Idle, None, &None),
        "{:?}",
        tasks[1]
    );
}

#[test]
fn kill_9_leaves_a_lease_that_expires_and_another_run_completes_the_task() {
    let mut setup = Setup::new(FOREVER);
    let (start, end) = ("2025-10-02T03:00:00", "2025-10-02T03:05:00");
    let mut run = setup.spawn(start, end, &["--lease", "3"]);
    setup.wait_for_slow_efd(&mut run);
    let pid = run.child.id();
    run.child.kill().unwrap();
    let status = run.child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal");

    // The row still says running, owned by the dead process, on a lease.
    let task = setup.tasks().remove(0);
    assert_eq!(
        task.status,
        TaskStatus::Running,
        "{task:?}\n{}",
        run.output()
    );
    let owner = task.claimed_by.clone().unwrap_or_default();
    assert!(owner.contains(&format!(":{pid}/")), "{owner}");
    let lease = task.lease_expires_at.expect("a lease");
    assert!(
        lease <= SystemClock.now().offset(3 * S),
        "a 3 s lease: {task:?}"
    );
    // Wait out the lease (the dead process renews it no more).
    while SystemClock.now() <= lease.offset(S / 2) {
        std::thread::sleep(Duration::from_millis(100));
    }

    // Another process, over the same range: the orphan is failed, then retried and completed.
    setup.proxy.set_delay(Duration::ZERO);
    let (code, output) = setup.run(start, end);
    assert_eq!(code, Some(0), "{output}");
    let tasks = setup.tasks();
    assert_eq!(tasks.len(), 1, "no second task for the interval");
    let task = &tasks[0];
    assert_eq!(task.status, TaskStatus::Completed, "{task:?}\n{output}");
    assert_eq!(task.retries, 1, "the orphan was retried once: {task:?}");
    assert_eq!((&task.error, task.lease_expires_at), (&None, None));
    assert_ne!(task.claimed_by.as_deref(), Some(owner.as_str()));
    let rows = setup.consdb_exposures();
    assert!(!rows.is_empty());
    assert_eq!(task.exposures, Some(i32::try_from(rows.len()).unwrap()));
}
