//! Fixtures shared by the pipeline's integration tests: a column config, a line-protocol EFD file
//! with a known signal, a Butler registry made by the real lsst-daf-butler, a ConsDB (SQLite or
//! PostgreSQL), the pipeline over them, and scheduler stores on injectable clocks.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use butler_reader::{ButlerReader, Element};
use consdb_writer::{ConsDb, EfdSchema, MigrateMode, Value};
use db_connect::DbUrl;
use efd_client::{EfdClient, EfdLocation, EfdOptions};
use pipeline::{Pipeline, RunOptions};
use scheduler_store::{
    Clock, Completion, ManualClock, SchedulerStore, SchedulerTable, StoreOptions, Task, TaskId,
    TaskSpec, TaskStatus,
};
use test_support::butler::{ExpectedRegistry, make_registry};
use transform_core::{Config, Instrument, Semantics, TimeRange, UtcNanos};

pub(crate) const CONFIG: &str = r#"
version: "test"
columns:
- name: temp_mean
  tables: [exposure_efd, visit1_efd]
  function: mean
  datatype: float
  description: Mean of sensor 301.
  subset_field: salIndex
  subset_value: 301
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: temperatureItem0}, {name: salIndex}]
- name: temp_max
  tables: [exposure_efd]
  function: max
  datatype: float
  description: Max over both sensors.
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: temperatureItem0}]
- name: forces_mean
  tables: [exposure_efd_unpivoted, visit1_efd_unpivoted]
  store_unpivoted: true
  function: mean
  datatype: float
  description: Mean forces.
  topics:
  - name: lsst.sal.MTM1M3.appliedForces
    fields: [{name: zForces0}, {name: zForces1}]
- name: silent_mean
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: A topic with no data.
  topics:
  - name: lsst.sal.Nothing.here
    fields: [{name: value}]
"#;

pub(crate) const S: i64 = 1_000_000_000;
/// 2025-10-02T02:50:00Z: the EFD file covers 40 minutes from here at 1 Hz.
pub(crate) const T0: i64 = 1_759_373_400 * S;

/// Temperature at second `k`: sensor 301 on even seconds reads `k`, sensor 302 on odd ones `k + 1000`.
pub(crate) fn temperature(k: i64) -> (i64, f64) {
    if k % 2 == 0 {
        (301, k as f64)
    } else {
        (302, k as f64 + 1000.0)
    }
}

pub(crate) fn efd_file() -> String {
    let mut s = String::new();
    for k in 0..2400i64 {
        let t = T0 + k * S;
        let (sal, v) = temperature(k);
        let _ = writeln!(
            s,
            "lsst.sal.ESS.temperature temperatureItem0={v},salIndex={sal}i {t}"
        );
        let _ = writeln!(
            s,
            "lsst.sal.MTM1M3.appliedForces zForces0={},zForces1={} {t}",
            k as f64,
            2.0 * k as f64
        );
    }
    s
}

/// The samples (second indexes) inside `[begin, end]`.
pub(crate) fn seconds_in(begin: i64, end: i64) -> impl Iterator<Item = i64> {
    (0..2400i64).filter(move |k| (begin..=end).contains(&(T0 + k * S)))
}

pub(crate) fn float(v: Option<&Value>) -> Option<f64> {
    match v {
        Some(Value::Float(f)) => Some(*f),
        Some(Value::Int(i)) => Some(*i as f64),
        _ => None,
    }
}

/// The pipeline's parts over the fixtures in `dir`: the EFD file written there, ConsDB at
/// `consdb_url` (migrated), the registry's Butler.
pub(crate) async fn pipeline_in(
    dir: &std::path::Path,
    registry: &ExpectedRegistry,
    consdb_url: &DbUrl,
) -> Pipeline {
    let efd_path = dir.join("efd.lp");
    std::fs::write(&efd_path, efd_file()).unwrap();
    let config = Arc::new(Config::parse(CONFIG, "test.yaml").unwrap());
    let mut consdb = ConsDb::connect(
        EfdSchema::new(&config, Instrument::Latiss).unwrap(),
        std::slice::from_ref(consdb_url),
        None,
    )
    .await
    .unwrap();
    consdb.migrate(MigrateMode::Apply).await.unwrap();
    let efd = EfdClient::open(EfdOptions::new(EfdLocation::File(efd_path)))
        .await
        .unwrap();
    let butler = ButlerReader::open(registry.repo.to_str().unwrap(), &|_| None)
        .await
        .unwrap();
    Pipeline::new(
        Instrument::Latiss,
        config,
        Semantics::Default,
        efd,
        butler,
        consdb,
    )
}

/// A registry, an EFD file and a ConsDB URL in a temporary directory.
pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) registry: ExpectedRegistry,
    pub(crate) consdb_url: DbUrl,
    /// The Butler repository as the tasks record it.
    pub(crate) repo: String,
}

impl Fixture {
    /// An SQLite ConsDB (and task tables) in the fixture's directory.
    pub(crate) fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:///{}", dir.path().join("consdb.db").display());
        Fixture::with(dir, &url)
    }

    /// ConsDB (and task tables) at `url`.
    pub(crate) fn with_consdb(url: &str) -> Fixture {
        Fixture::with(tempfile::tempdir().unwrap(), url)
    }

    fn with(dir: tempfile::TempDir, url: &str) -> Fixture {
        let registry = ExpectedRegistry::from_json(&make_registry(&dir.path().join("repo"), None));
        let repo = registry.repo.to_str().unwrap().to_owned();
        Fixture {
            dir,
            registry,
            consdb_url: DbUrl::parse(url).unwrap(),
            repo,
        }
    }

    pub(crate) async fn pipeline(&self) -> Pipeline {
        pipeline_in(self.dir.path(), &self.registry, &self.consdb_url).await
    }

    /// The task table on ConsDB's database, reading "now" from `clock`.
    pub(crate) async fn store(&self, clock: Arc<dyn Clock>) -> SchedulerStore {
        SchedulerStore::open(
            std::slice::from_ref(&self.consdb_url),
            StoreOptions::new(SchedulerTable::for_instrument(Instrument::Latiss)).with_clock(clock),
        )
        .await
        .unwrap()
    }

    /// The ConsDB the pipeline writes, for reading it back.
    pub(crate) async fn consdb(&self) -> ConsDb {
        ConsDb::connect(
            EfdSchema::new(
                &Config::parse(CONFIG, "test.yaml").unwrap(),
                Instrument::Latiss,
            )
            .unwrap(),
            std::slice::from_ref(&self.consdb_url),
            None,
        )
        .await
        .unwrap()
    }

    /// What the Butler says overlaps a task padded by its window: (exposures, visits).
    pub(crate) async fn items_of(&self, task: &Task) -> (usize, usize) {
        let pad = i64::from(task.timewindow.unwrap_or(1)) * 60 * S;
        let mut butler = ButlerReader::open(&self.repo, &|_| None).await.unwrap();
        let range = TimeRange::new(task.start.offset(-pad), task.end.offset(pad)).unwrap();
        let exposures = butler
            .overlapping(Element::Exposure, Instrument::Latiss, range)
            .await
            .unwrap();
        let visits = butler
            .overlapping(Element::Visit, Instrument::Latiss, range)
            .await
            .unwrap();
        let (exposures, visits) = (exposures.records.len(), visits.records.len());
        (exposures, visits)
    }

    /// A task spec of this fixture's repository: 5-minute tasks, 1-minute window.
    pub(crate) fn spec(&self, status: TaskStatus) -> TaskSpec {
        TaskSpec {
            butler_repo: self.repo.clone(),
            interval_minutes: 5,
            timewindow: 1,
            status,
        }
    }
}

/// An ISO 8601 UTC instant.
pub(crate) fn utc(text: &str) -> UtcNanos {
    transform_core::time::parse_timestamp(text).unwrap()
}

/// Run options of one worker named `owner`, with a 60 s lease.
pub(crate) fn run_options(owner: &str) -> RunOptions {
    RunOptions {
        workers: 1,
        owner: owner.into(),
        lease: Duration::from_secs(60),
        default_timewindow_minutes: 1,
        grace_period: Duration::from_secs(5),
    }
}

/// A [`ManualClock`] that also moves forward 1 µs each time it is read, so the instants the store
/// writes (claim times in `process_start_time`, whole microseconds) are strictly increasing and
/// show the order of the claims; the drift is negligible against the minutes the tests set.
#[derive(Debug)]
pub(crate) struct SteppingClock(pub(crate) ManualClock);

impl SteppingClock {
    pub(crate) fn new(start: UtcNanos) -> Arc<SteppingClock> {
        Arc::new(SteppingClock(ManualClock::new(start)))
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> UtcNanos {
        let now = self.0.now();
        self.0.advance(Duration::from_micros(1));
        now
    }
}

/// Every task of the table, by id (ids run from 1 without gaps: nothing is ever deleted).
pub(crate) async fn all_tasks(store: &SchedulerStore) -> Vec<Task> {
    let total: i64 = store
        .status_summary(None, 0)
        .await
        .unwrap()
        .counts
        .values()
        .sum();
    let mut tasks = Vec::new();
    for id in 1..=i32::try_from(total).unwrap() {
        tasks.push(
            store
                .task(TaskId(id))
                .await
                .unwrap()
                .expect("ids without gaps"),
        );
    }
    tasks
}

/// Claims task `id` as `owner` and records a failure; returns the task.
pub(crate) async fn fail_once(store: &SchedulerStore, id: TaskId, owner: &str) -> Task {
    let claimed = store
        .claim_ids(&[id], owner, Duration::from_secs(60))
        .await
        .unwrap()
        .into_value();
    assert_eq!(claimed.len(), 1, "task {id:?} is claimable");
    assert!(store.fail(id, owner, "boom").await.unwrap().into_value());
    store.task(id).await.unwrap().unwrap()
}

/// Creates the task `[start, start + 5 min)` and fails it until it has `retries` retries (the
/// first failure counts none; each later claim of the failed task counts one).
pub(crate) async fn failed_task(
    store: &SchedulerStore,
    spec: &TaskSpec,
    start: UtcNanos,
    retries: i32,
) -> Task {
    let created = store
        .create_tasks(start, start.offset(300 * S), spec)
        .await
        .unwrap()
        .into_value();
    assert_eq!(created.len(), 1);
    let mut task = fail_once(store, created[0].id, "setup").await;
    for _ in 0..retries {
        task = fail_once(store, task.id, "setup").await;
    }
    assert_eq!((task.status, task.retries), (TaskStatus::Failed, retries));
    task
}

/// Claims task `id` as `owner` and completes it with made-up counts.
pub(crate) async fn complete_with(store: &SchedulerStore, id: TaskId, exposures: u32) -> Task {
    let owner = "setup";
    let claimed = store
        .claim_ids(&[id], owner, Duration::from_secs(60))
        .await
        .unwrap()
        .into_value();
    assert_eq!(claimed.len(), 1);
    let completion = Completion {
        exposures,
        visits1: exposures,
        replica_failures: 0,
        timings: None,
    };
    assert!(
        store
            .complete(id, owner, completion)
            .await
            .unwrap()
            .into_value()
    );
    store.task(id).await.unwrap().unwrap()
}
