//! One interval end to end with embedded components: a Butler registry made by the real
//! lsst-daf-butler (SQLite), a line-protocol EFD file, and an SQLite ConsDB. The values stored for
//! each exposure are checked against values computed independently here from the generated signal.

mod common;

use std::sync::Arc;

use butler_reader::{ButlerReader, Element};
use common::{CONFIG, S, efd_file, float, pipeline_in, seconds_in, temperature};
use consdb_writer::{ConsDb, EfdSchema, MigrateMode, Value};
use db_connect::DbUrl;
use efd_client::{EfdClient, EfdLocation, EfdOptions};
use pipeline::Pipeline;
use test_support::butler::{ExpectedRegistry, make_registry};
use transform_core::{Config, Instrument, Semantics, Table, TimeRange, UtcNanos};

#[tokio::test]
async fn an_interval_lands_in_consdb_with_independently_checked_values() {
    let dir = tempfile::tempdir().unwrap();
    let registry = ExpectedRegistry::from_json(&make_registry(&dir.path().join("repo"), None));
    let efd_path = dir.path().join("efd.lp");
    std::fs::write(&efd_path, efd_file()).unwrap();
    let config = Arc::new(Config::parse(CONFIG, "test.yaml").unwrap());
    let schema = EfdSchema::new(&config, Instrument::Latiss).unwrap();
    let consdb_url = DbUrl::parse(&format!(
        "sqlite:///{}",
        dir.path().join("consdb.db").display()
    ))
    .unwrap();
    let mut consdb = ConsDb::connect(schema, std::slice::from_ref(&consdb_url), None)
        .await
        .unwrap();
    consdb.migrate(MigrateMode::Apply).await.unwrap();
    let efd = EfdClient::open(EfdOptions::new(EfdLocation::File(efd_path)))
        .await
        .unwrap();
    let butler = ButlerReader::open(registry.repo.to_str().unwrap(), &|_| None)
        .await
        .unwrap();
    let pipeline = Pipeline::new(
        Instrument::Latiss,
        Arc::clone(&config),
        Semantics::Default,
        efd,
        butler,
        consdb,
    );

    // 03:00–03:05 with a one-minute window.
    let start = UtcNanos(1_759_374_000 * S);
    let end = UtcNanos(1_759_374_300 * S);
    let counts = pipeline
        .process_interval(start, end, 60 * S, UtcNanos(1_800_000_000 * S))
        .await
        .unwrap();
    assert!(counts.exposures > 0 && counts.visits > 0, "{counts:?}");
    assert_eq!(counts.empty_groups, 1, "the silent topic");

    // The items the Butler says overlap, read independently.
    let mut butler = ButlerReader::open(registry.repo.to_str().unwrap(), &|_| None)
        .await
        .unwrap();
    let padded = TimeRange::new(start.offset(-60 * S), end.offset(60 * S)).unwrap();
    let exposures = butler
        .overlapping(Element::Exposure, Instrument::Latiss, padded)
        .await
        .unwrap();
    assert_eq!(counts.exposures, exposures.records.len());
    let ids: Vec<i64> = exposures.records.iter().map(|r| r.id).collect();

    let mut consdb = ConsDb::connect(
        EfdSchema::new(&config, Instrument::Latiss).unwrap(),
        &[consdb_url],
        None,
    )
    .await
    .unwrap();
    let rows = consdb.select_rows(Table::ExposureEfd, &ids).await.unwrap();
    assert_eq!(rows.len(), ids.len());
    for r in &exposures.records {
        let row = rows
            .iter()
            .find(|row| matches!(row.get("exposure_id"), Some(Value::Int(id)) if *id == r.id))
            .expect("a row per exposure");
        let (b, e) = (r.timespan.start().0, r.timespan.end().0);
        let even: Vec<f64> = seconds_in(b, e)
            .filter(|k| k % 2 == 0)
            .map(|k| temperature(k).1)
            .collect();
        let all: Vec<f64> = seconds_in(b, e).map(|k| temperature(k).1).collect();
        let want_mean = (!even.is_empty()).then(|| even.iter().sum::<f64>() / even.len() as f64);
        let want_max = all.iter().copied().reduce(f64::max);
        assert_eq!(float(row.get("temp_mean")), want_mean, "exposure {}", r.id);
        assert_eq!(float(row.get("temp_max")), want_max, "exposure {}", r.id);
        assert!(
            matches!(row.get("silent_mean"), Some(Value::Null)),
            "no data: NULL on insert"
        );
    }
    let unpivoted = consdb
        .select_rows(Table::ExposureEfdUnpivoted, &ids)
        .await
        .unwrap();
    let first = &exposures.records[0];
    let ks: Vec<i64> = seconds_in(first.timespan.start().0, first.timespan.end().0).collect();
    let want = ks.iter().map(|&k| 2.0 * k as f64).sum::<f64>() / ks.len() as f64;
    let got = unpivoted
        .iter()
        .find(|row| {
            matches!(row.get("exposure_id"), Some(Value::Int(id)) if *id == first.id)
                && matches!(row.get("field"), Some(Value::Text(f)) if f == "zForces1")
        })
        .expect("an unpivoted zForces1 row");
    assert_eq!(float(got.get("value")), Some(want));
}

#[tokio::test]
async fn workers_claim_process_and_complete_every_task_once() {
    use scheduler_store::{
        SchedulerStore, SchedulerTable, Selection, StoreOptions, TaskSpec, TaskStatus,
    };
    let dir = tempfile::tempdir().unwrap();
    let registry = ExpectedRegistry::from_json(&make_registry(&dir.path().join("repo"), None));
    let consdb_url = DbUrl::parse(&format!(
        "sqlite:///{}",
        dir.path().join("consdb.db").display()
    ))
    .unwrap();
    let pipeline = pipeline_in(dir.path(), &registry, &consdb_url).await;
    let store = SchedulerStore::open(
        std::slice::from_ref(&consdb_url),
        StoreOptions::new(SchedulerTable::for_instrument(Instrument::Latiss)),
    )
    .await
    .unwrap();
    let repo = registry.repo.to_str().unwrap().to_owned();
    let spec = TaskSpec {
        butler_repo: repo.clone(),
        interval_minutes: 5,
        timewindow: 1,
        status: TaskStatus::Idle,
    };
    // 03:00–03:20: four tasks.
    let created = store
        .create_tasks(
            UtcNanos(1_759_374_000 * S),
            UtcNanos(1_759_375_200 * S),
            &spec,
        )
        .await
        .unwrap()
        .into_value();
    assert_eq!(created.len(), 4);
    let options = pipeline::RunOptions {
        workers: 2,
        owner: "test-host:1".into(),
        lease: std::time::Duration::from_secs(60),
        default_timewindow_minutes: 1,
        grace_period: std::time::Duration::from_secs(5),
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let selection = Selection::Idle {
        repo: repo.clone(),
        range: None,
    };
    let summary = pipeline
        .run(&store, &selection, &options, rx)
        .await
        .unwrap();
    assert_eq!(
        (summary.tasks, summary.completed, summary.failed),
        (4, 4, 0),
        "{summary:?}"
    );
    assert!(summary.exposures > 0);
    // Where the time went, per run and per task (stored to the millisecond).
    let total = summary.timings;
    assert!(
        total.total() > std::time::Duration::ZERO && total.write > std::time::Duration::ZERO,
        "{total:?}"
    );
    // Each task with items runs every planned query exactly once (no topic queried twice).
    let mut with_items = 0;
    for task in &created {
        let t = store.task(task.id).await.unwrap().unwrap();
        with_items += usize::from(t.exposures.unwrap_or(0) + t.visits1.unwrap_or(0) > 0);
    }
    let groups = pipeline.transformer().plan().groups.len();
    let efd = pipeline.efd_stats();
    assert!(with_items > 0 && groups > 0);
    assert_eq!(
        efd.statements,
        (with_items * groups) as u64,
        "{with_items} tasks with items x {groups} query groups: {efd:?}"
    );
    for task in &created {
        let t = store.task(task.id).await.unwrap().unwrap();
        assert_eq!(t.status, TaskStatus::Completed, "{t:?}");
        let timings = t.timings.expect("a completed task records its timings");
        assert!(
            timings.total() <= total.total(),
            "{timings:?} within {total:?}"
        );
    }
    // A shutdown requested before the run claims nothing.
    let _ = store
        .create_tasks(
            UtcNanos(1_759_375_200 * S),
            UtcNanos(1_759_375_500 * S),
            &spec,
        )
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tx.send(true).unwrap();
    let summary = pipeline
        .run(&store, &selection, &options, rx)
        .await
        .unwrap();
    assert_eq!(summary.tasks, 0);
    assert_eq!(store.idle_tasks(&repo, None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn reconciliation_creates_tasks_only_for_missing_items() {
    use scheduler_store::{ManualClock, SchedulerStore, SchedulerTable, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    let registry = ExpectedRegistry::from_json(&make_registry(&dir.path().join("repo"), None));
    let consdb_url = DbUrl::parse(&format!(
        "sqlite:///{}",
        dir.path().join("consdb.db").display()
    ))
    .unwrap();
    let pipeline = pipeline_in(dir.path(), &registry, &consdb_url).await;
    // 2025-10-04T13:00Z: the night in progress is 20251004; the window of 3 complete nights is
    // 20251001..=20251003, which holds the fixture's two nights.
    let clock = Arc::new(ManualClock::new(UtcNanos(1_759_582_800 * S)));
    let store = SchedulerStore::open(
        std::slice::from_ref(&consdb_url),
        StoreOptions::new(SchedulerTable::for_instrument(Instrument::Latiss)).with_clock(clock),
    )
    .await
    .unwrap();
    let repo = registry.repo.to_str().unwrap().to_owned();
    let reconcile = pipeline::ReconcileOptions {
        window_days: 3,
        include_current_night: false,
        interval_minutes: 5,
        timewindow_minutes: 1,
    };
    let run = pipeline::RunOptions {
        workers: 1,
        owner: "test:1".into(),
        lease: std::time::Duration::from_secs(60),
        default_timewindow_minutes: 1,
        grace_period: std::time::Duration::from_secs(5),
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let (created, summary) = pipeline
        .reconcile(&store, &repo, &reconcile, &run, rx.clone())
        .await
        .unwrap();
    assert!(created > 0, "everything is missing at first");
    assert_eq!(summary.completed, created, "{summary:?}");
    // Every exposure of both nights now has a row (the fixture's NULL-timespan record excepted).
    let mut consdb = ConsDb::connect(
        EfdSchema::new(
            &Config::parse(CONFIG, "test.yaml").unwrap(),
            Instrument::Latiss,
        )
        .unwrap(),
        std::slice::from_ref(&consdb_url),
        None,
    )
    .await
    .unwrap();
    let ids = consdb
        .ids_for_day_obs(Table::ExposureEfd, 20_251_001..=20_251_002)
        .await
        .unwrap();
    let usable = registry
        .day_obs
        .iter()
        .find(|q| {
            q.instrument == "LATISS"
                && q.element == "exposure"
                && q.day_obs_start == 20_251_001
                && q.day_obs_end == 20_251_002
        })
        .unwrap()
        .records
        .iter()
        .filter(|r| r.begin_tai_ns.is_some())
        .count();
    assert_eq!(ids.len(), usable);
    // Nothing is missing any more: a second run creates nothing.
    let (created, _) = pipeline
        .reconcile(&store, &repo, &reconcile, &run, rx)
        .await
        .unwrap();
    assert_eq!(created, 0);
}
