//! End-to-end runs of `efd-job` with real servers over a synthetic night, for the real LSSTCam and
//! LATISS configs (`../shared/reference/consdb/config/`).
//!
//! For each instrument a small night is generated (`transformed_efd_examples::synth`), and `efd-job`
//! runs over it twice with `--migrate`, 5-minute tasks and two workers:
//!
//! 1. EFD in a real `influxd` seeded with the night's line protocol, Butler registry made by
//!    lsst-daf-butler in a PostgreSQL namespace from the night's manifest, ConsDB in PostgreSQL;
//! 2. the same night from the line-protocol file (`-E file://`), a SQLite Butler registry made by
//!    daf_butler, and a SQLite ConsDB.
//!
//! Each run must exit 0 with every task `completed` in `efd_scheduler.<instrument>` and the task's
//! exposure and visit counts those of the manifest; `exposure_efd` and `visit1_efd` must hold one row
//! per exposure and visit of the manifest (day_obs, seq_num, id). For chosen columns of every kind
//! (mean, stddev, max, min, residual RMS of a polynomial fit, most recent value with a look-back,
//! subsets, packed series, 1 s pre-aggregation, unpivoted rows) the stored value of every exposure
//! and visit is compared, to 1e-9 relative, with a value computed here from the raw line protocol
//! and the item's timespan as BEHAVIOUR.md §5 describes with the default semantics (timespans
//! inclusive at ns, `start_offset` widening the window, the topic interval the union of the task's
//! items, packed samples spaced by the gap to the next row, buckets keyed by their start), without
//! the project's kernels. Finally both ConsDBs must agree on every cell of `exposure_efd`,
//! `visit1_efd` and the unpivoted tables (floats to 1e-12 relative).
//!
//! An item can lie in two tasks whose EFD queries end at different times (each covers the union of
//! its own items). Every task holding an item must compute the same value for it: the pipeline
//! widens a query's end to complete the last pre-aggregation bucket and to reach the packed row
//! written after the last samples, and the expected values here are computed per task to check it.

#![allow(clippy::print_stderr)] // Progress and timings of the stages, shown with --no-capture.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use diesel::connection::SimpleConnection as _;
use diesel::sql_types::Text;
use diesel::{Connection as _, QueryableByName, RunQueryDsl as _, SqliteConnection};
use serde_json::{Map, Value};
use test_support::butler::{ExpectedRegistry, make_registry_from_manifest};
use test_support::{Influxd, Postgres};
use transform_core::Instrument;
use transformed_efd_examples::synth::{
    Manifest, ManifestItem, NANOS_PER_MINUTE, NANOS_PER_SECOND, Night, NightFiles, Rates,
    SynthOptions,
};

/// Task length (`-t`), minutes.
const TASK_MINUTES: i64 = 5;
/// The default `--timewindow`: padding of each task on both sides, minutes.
const WINDOW_MINUTES: i64 = 1;
/// TAI − UTC for the night (2025), ns.
const TAI_MINUS_UTC: i64 = 37 * NANOS_PER_SECOND;
/// Relative tolerance of a stored value against the independent computation.
const VALUE_TOLERANCE: f64 = 1e-9;
/// Relative tolerance between the two ConsDBs.
const CELL_TOLERANCE: f64 = 1e-12;

/// The aggregation of a checked column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Mean,
    /// ddof = 1.
    Stddev,
    Max,
    Min,
    /// `rms_from_polynomial_fit`, degree 4, index basis: the residual RMS (default semantics).
    Rms4,
    /// `most_recent_value`: the last sample of the window (first field).
    Last,
}

/// How a column's samples come from the topic.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    /// Plain rows.
    Raw,
    /// Packed rows: `<field>0..9` and `cRIO_timestamp`.
    Packed,
    /// 1 s buckets of the field's mean (`pre_aggregate_interval: 1s`, function mean).
    Mean1s,
}

/// A column of the real config whose values are checked (its definition copied from the YAML).
#[derive(Debug, Clone)]
struct Col {
    /// The column name (pivoted) or `property` (unpivoted).
    name: &'static str,
    topic: &'static str,
    /// The value field (unpivoted: the `field` checked).
    field: &'static str,
    func: Func,
    source: Source,
    /// `subset_field: salIndex`, `subset_value`.
    subset: Option<i64>,
    /// `start_offset`, hours.
    offset_hours: f64,
    /// Whether the column writes `visit1_efd` (or `visit1_efd_unpivoted`) too.
    visits: bool,
    /// Whether it writes the unpivoted tables.
    unpivoted: bool,
}

impl Col {
    fn new(name: &'static str, topic: &'static str, field: &'static str, func: Func) -> Col {
        Col {
            name,
            topic,
            field,
            func,
            source: Source::Raw,
            subset: None,
            offset_hours: 0.0,
            visits: true,
            unpivoted: false,
        }
    }

    fn subset(self, value: i64) -> Col {
        Col {
            subset: Some(value),
            ..self
        }
    }

    fn offset(self, hours: f64) -> Col {
        Col {
            offset_hours: hours,
            ..self
        }
    }

    fn source(self, source: Source) -> Col {
        Col { source, ..self }
    }

    fn exposures_only(self) -> Col {
        Col {
            visits: false,
            ..self
        }
    }

    fn unpivoted(self) -> Col {
        Col {
            unpivoted: true,
            ..self
        }
    }

    fn offset_nanos(&self) -> i64 {
        (self.offset_hours * 3600.0 * 1e9).round() as i64
    }
}

/// One instrument's run.
#[derive(Debug)]
struct Case {
    instrument: Instrument,
    /// `-i` and the scheduler table's name.
    name: &'static str,
    config: &'static str,
    minutes: u32,
    exposures: u32,
    max_values_per_second: f64,
    columns: Vec<Col>,
}

impl Case {
    fn schema(&self) -> String {
        format!("efd_{}", self.name)
    }
}

fn lsstcam() -> Case {
    use Func::*;
    let psd = "lsst.sal.MTVMS.psd";
    let forces = "lsst.sal.MTM1M3.appliedForces";
    let m2 = "lsst.sal.MTAOS.logevent_m2Correction";
    Case {
        instrument: Instrument::LsstCam,
        name: "lsstcam",
        config: "config_lsstcam.yaml",
        minutes: 20,
        exposures: 8,
        max_values_per_second: 8.0,
        columns: vec![
            Col::new(
                "mt_azimuth_encoder_absolute_position_0_mean",
                "lsst.sal.MTMount.encoder",
                "azimuthEncoderAbsolutePosition0",
                Mean,
            ),
            Col::new(
                "mt_azimuth_encoder_absolute_position_0_rms_jitter",
                "lsst.sal.MTMount.encoder",
                "azimuthEncoderAbsolutePosition0",
                Rms4,
            )
            .exposures_only(),
            Col::new(
                "mt_salindex104_m1m3_accelerometer_0_stddev",
                "lsst.sal.MTM1M3.accelerometerData",
                "accelerometer0",
                Stddev,
            ),
            Col::new(
                "mt_salindex104_m1m3_accelerometer_0_max",
                "lsst.sal.MTM1M3.accelerometerData",
                "accelerometer0",
                Max,
            ),
            Col::new(
                "mt_salindex1_temperature_0_mean",
                "lsst.sal.ESS.temperature",
                "temperatureItem0",
                Mean,
            )
            .subset(1),
            Col::new(
                "mt_salindex110_wind_speed_0_min",
                "lsst.sal.ESS.airTurbulence",
                "speed0",
                Min,
            )
            .subset(110),
            Col::new(
                "m2_stress",
                "lsst.sal.MTAOS.logevent_mirrorStresses",
                "stressM2",
                Last,
            )
            .offset(-1.0),
            Col::new(
                "camera_hexapod_compensation_offset_u",
                "lsst.sal.MTHexapod.logevent_compensationOffset",
                "u",
                Last,
            )
            .subset(1)
            .offset(-0.5),
            Col::new(
                "mt_m2_temperature_ring0",
                "lsst.sal.MTM2.temperature",
                "ring0",
                Mean,
            )
            .source(Source::Mean1s),
            Col::new("mt_vibration_data_max", psd, "accelerationPSDX0", Max).unpivoted(),
            Col::new(
                "mt_vibration_data_stddev",
                psd,
                "accelerationPSDZ100",
                Stddev,
            )
            .unpivoted(),
            Col::new("mt_m1m3_applied_forces_mean", forces, "zForces0", Mean)
                .source(Source::Mean1s)
                .unpivoted(),
            Col::new("mt_logevent_m2_correction", m2, "zForces71", Last)
                .offset(-1.0)
                .unpivoted(),
        ],
    }
}

fn latiss() -> Case {
    use Func::*;
    let encoders = "lsst.sal.ATMCS.mount_AzEl_Encoders";
    Case {
        instrument: Instrument::Latiss,
        name: "latiss",
        config: "config_latiss.yaml",
        minutes: 20,
        exposures: 8,
        max_values_per_second: 8.0,
        columns: vec![
            Col::new(
                "at_mount_jitter_azimuth",
                encoders,
                "azimuthCalculatedAngle",
                Rms4,
            )
            .source(Source::Packed)
            .exposures_only(),
            Col::new(
                "at_azimuth_calculated_angle",
                encoders,
                "azimuthCalculatedAngle",
                Mean,
            )
            .source(Source::Packed),
            Col::new(
                "at_salindex201_sonic_temperature_mean",
                "lsst.sal.ESS.airTurbulence",
                "sonicTemperature",
                Mean,
            )
            .subset(201),
            Col::new(
                "at_salindex201_sonic_temperature_stddev",
                "lsst.sal.ESS.airTurbulence",
                "sonicTemperature",
                Stddev,
            )
            .subset(201),
            Col::new(
                "at_salindex201_temperature_0_max",
                "lsst.sal.ESS.temperature",
                "temperatureItem0",
                Max,
            )
            .subset(201),
            Col::new(
                "at_hexapod_reported_position_x_min",
                "lsst.sal.ATHexapod.positionStatus",
                "reportedPosition0",
                Min,
            ),
            Col::new(
                "at_pointing_mount_position_ra_mean",
                "lsst.sal.ATPtg.mountPositions",
                "ra",
                Mean,
            ),
        ],
    }
}

#[test]
fn lsstcam_night_through_influxd_and_postgres_then_file_and_sqlite() {
    run_case(&lsstcam());
}

#[test]
fn latiss_night_through_influxd_and_postgres_then_file_and_sqlite() {
    run_case(&latiss());
}

fn run_case(case: &Case) {
    let clock = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/consdb/config")
        .join(case.config);
    assert!(config.is_file(), "missing {}", config.display());
    let night = Night::generate(&SynthOptions {
        instrument: case.instrument,
        config: config.clone(),
        minutes: case.minutes,
        exposures: case.exposures,
        rates: Rates::Uniform(1.0),
        max_values_per_second: case.max_values_per_second,
        lookback_hours: 1,
        seed: 11,
        ..SynthOptions::new(dir.path().join("night"))
    })
    .unwrap();
    let m = &night.manifest;
    let exposures: Vec<&ManifestItem> = m.items.iter().filter(|i| !i.is_visit).collect();
    let visits: Vec<&ManifestItem> = m.items.iter().filter(|i| i.is_visit).collect();
    assert_eq!(exposures.len(), case.exposures as usize);
    assert!(!visits.is_empty());
    let tasks = tasks(m);
    eprintln!(
        "{}: {} MB of line protocol, {} exposures, {} visits, {} tasks ({:.1} s)",
        case.name,
        m.efd_bytes / 1_000_000,
        exposures.len(),
        visits.len(),
        tasks.len(),
        clock.elapsed().as_secs_f64()
    );
    let topics: HashSet<&str> = case.columns.iter().map(|c| c.topic).collect();
    let lp = LineProtocol::read(&night.efd, &topics);
    for topic in &topics {
        // Event topics have a row every 10 minutes, the others many.
        assert!(lp.rows(topic).len() >= 3, "{topic}: no data in efd.lp");
    }

    // 1. influxd, a daf_butler registry in a PostgreSQL namespace, a PostgreSQL ConsDB.
    let influx = Influxd::start();
    influx.create_database("efd");
    influx.write("efd", &std::fs::read_to_string(&night.efd).unwrap());
    let pg = Postgres::start();
    pg.create_database("butler");
    pg.create_database("consdb");
    let butler_url = pg.url("butler");
    let pg_repo = dir.path().join("pg-repo");
    let registry = ExpectedRegistry::from_json(&make_registry_from_manifest(
        &pg_repo,
        &night.manifest_path,
        Some((&butler_url, "night_registry")),
    ));
    check_registry(&registry, m);
    eprintln!(
        "{}: influxd seeded, registry made ({:.1} s)",
        case.name,
        clock.elapsed().as_secs_f64()
    );
    run_job(
        case,
        &night,
        &config,
        &pg_repo,
        &pg.url("consdb"),
        &influx.url(),
    );
    eprintln!(
        "{}: efd-job over influxd into PostgreSQL ({:.1} s)",
        case.name,
        clock.elapsed().as_secs_f64()
    );
    let pg_db = Db::Postgres {
        server: &pg,
        database: "consdb",
    };
    let from_pg = check_consdb(case, &pg_db, m, &tasks, &lp);

    // 2. The line-protocol file, a daf_butler SQLite registry, a SQLite ConsDB.
    let sqlite_repo = dir.path().join("sqlite-repo");
    let registry = ExpectedRegistry::from_json(&make_registry_from_manifest(
        &sqlite_repo,
        &night.manifest_path,
        None,
    ));
    check_registry(&registry, m);
    let consdb = dir.path().join("consdb.db");
    let efd = format!("file://{}", night.efd.display());
    run_job(
        case,
        &night,
        &config,
        &sqlite_repo,
        &format!("sqlite:///{}", consdb.display()),
        &efd,
    );
    eprintln!(
        "{}: efd-job over the file into SQLite ({:.1} s)",
        case.name,
        clock.elapsed().as_secs_f64()
    );
    let sqlite_db = Db::Sqlite { main: &consdb };
    let from_sqlite = check_consdb(case, &sqlite_db, m, &tasks, &lp);

    // 3. The two ConsDBs agree cell for cell.
    for (table, pg_rows) in &from_pg.tables {
        let sqlite_rows = &from_sqlite.tables[table];
        assert_eq!(
            pg_rows.len(),
            sqlite_rows.len(),
            "{table}: rows in PostgreSQL and SQLite"
        );
        let mut cells = 0;
        for (key, a) in pg_rows {
            let b = sqlite_rows
                .get(key)
                .unwrap_or_else(|| panic!("{table} {key}: only in PostgreSQL"));
            assert!(
                a.keys().eq(b.keys()),
                "{table} {key}: the columns differ between PostgreSQL and SQLite"
            );
            for (column, x) in a {
                let y = &b[column.as_str()];
                cells += 1;
                assert!(
                    same_cell(x, y),
                    "{table} {key} {column}: PostgreSQL {x}, SQLite {y}"
                );
            }
        }
        assert!(
            cells > 0 || table.ends_with("_unpivoted"),
            "{table}: no cells"
        );
    }
    eprintln!(
        "{}: done ({:.1} s)",
        case.name,
        clock.elapsed().as_secs_f64()
    );
}

/// daf_butler answers with exactly the manifest's items.
fn check_registry(registry: &ExpectedRegistry, m: &Manifest) {
    for (element, is_visit) in [("exposure", false), ("visit", true)] {
        let query = registry
            .overlaps
            .iter()
            .find(|q| q.element == element)
            .unwrap();
        let got: Vec<(i64, i64, Option<i64>, Option<i64>)> = query
            .records
            .iter()
            .map(|r| (r.id, r.day_obs, r.seq_num, r.begin_tai_ns))
            .collect();
        let want: Vec<_> = m
            .items
            .iter()
            .filter(|i| i.is_visit == is_visit)
            .map(|i| {
                (
                    i.id,
                    i.day_obs,
                    Some(i.seq_num),
                    Some(i.begin_utc_ns + TAI_MINUS_UTC),
                )
            })
            .collect();
        assert_eq!(got, want, "{element} records of the registry");
    }
}

/// `efd-job` with only the options given here (nothing from the environment running the tests).
fn run_job(case: &Case, night: &NightFiles, config: &Path, repo: &Path, db: &str, efd: &str) {
    let m = &night.manifest;
    let mut command = test_support::service_command(env!("CARGO_BIN_EXE_efd-job"));
    let out = command
        .arg("-c")
        .arg(config)
        .args(["-i", case.name])
        .arg("-r")
        .arg(repo)
        .args(["-d", db, "-E", efd])
        .args([
            "-s",
            &iso(m.night_start_utc_ns),
            "-e",
            &iso(m.night_end_utc_ns),
        ])
        .args([
            "-t",
            &TASK_MINUTES.to_string(),
            "--migrate",
            "--workers",
            "2",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "efd-job into {db} from {efd}:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("task_processing_summary"), "{stdout}");
}

/// A task of the job: its interval and the items the Butler returns for it, padded.
#[derive(Debug)]
struct Task<'a> {
    start: i64,
    end: i64,
    exposures: Vec<&'a ManifestItem>,
    visits: Vec<&'a ManifestItem>,
}

impl Task<'_> {
    /// The topic interval: the union of the task's exposures and visits.
    fn union(&self) -> (i64, i64) {
        let items = self.exposures.iter().chain(&self.visits);
        let begin = items.clone().map(|i| i.begin_utc_ns).min().unwrap();
        let end = items.map(|i| i.end_utc_ns).max().unwrap();
        (begin, end)
    }

    fn holds(&self, item: &ManifestItem) -> bool {
        self.exposures
            .iter()
            .chain(&self.visits)
            .any(|i| i.id == item.id && i.is_visit == item.is_visit)
    }
}

/// The job's tasks over the night (BEHAVIOUR.md §2.2: `ceil(span / interval)` intervals from the
/// start) with the items overlapping each padded interval (half-open timespans, as daf_butler's
/// OVERLAPS).
fn tasks(m: &Manifest) -> Vec<Task<'_>> {
    let step = TASK_MINUTES * NANOS_PER_MINUTE;
    let pad = WINDOW_MINUTES * NANOS_PER_MINUTE;
    let span = m.night_end_utc_ns - m.night_start_utc_ns;
    let n = (span + step - 1) / step;
    (0..n)
        .map(|k| {
            let start = m.night_start_utc_ns + k * step;
            let end = start + step;
            let (lo, hi) = (start - pad, end + pad);
            let inside = |i: &&ManifestItem| i.begin_utc_ns < hi && lo < i.end_utc_ns;
            Task {
                start,
                end,
                exposures: m
                    .items
                    .iter()
                    .filter(|i| !i.is_visit)
                    .filter(inside)
                    .collect(),
                visits: m
                    .items
                    .iter()
                    .filter(|i| i.is_visit)
                    .filter(inside)
                    .collect(),
            }
        })
        .collect()
}

/// What a ConsDB run left, for the comparison of the two.
#[derive(Debug, Default)]
struct Stored {
    /// Rows of each output table by key (`day_obs/seq_num[/property/field]`), without `created_at`.
    tables: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
}

/// Checks the task table, the rows and the chosen values of one ConsDB; returns its rows.
fn check_consdb(
    case: &Case,
    db: &Db<'_>,
    m: &Manifest,
    tasks: &[Task<'_>],
    lp: &LineProtocol,
) -> Stored {
    // Tasks: all completed, with the counts of their items.
    let rows = db.rows("efd_scheduler", case.name, "start_time");
    assert_eq!(rows.len(), tasks.len(), "tasks: {rows:?}");
    for (row, task) in rows.iter().zip(tasks) {
        assert_eq!(
            row["status"].as_str().map(str::trim),
            Some("completed"),
            "{row:?}"
        );
        assert_eq!(
            row["exposures"].as_i64(),
            Some(task.exposures.len() as i64),
            "exposures of the task {}..{}: {row:?}",
            iso(task.start),
            iso(task.end)
        );
        assert_eq!(
            row["visits1"].as_i64(),
            Some(task.visits.len() as i64),
            "visits of the task {}..{}: {row:?}",
            iso(task.start),
            iso(task.end)
        );
        assert!(row["error"].is_null(), "{row:?}");
    }
    assert!(tasks.iter().all(|t| !t.exposures.is_empty()));

    let schema = case.schema();
    let mut stored = Stored::default();
    let mut checked = 0;
    for (is_visit, table, id) in [
        (false, "exposure_efd", "exposure_id"),
        (true, "visit1_efd", "visit_id"),
    ] {
        // One row per item, with its keys.
        let rows = db.rows(&schema, table, "day_obs, seq_num");
        let items: Vec<&ManifestItem> = m.items.iter().filter(|i| i.is_visit == is_visit).collect();
        let keys: Vec<(i64, i64, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r["day_obs"].as_i64().unwrap(),
                    r["seq_num"].as_i64().unwrap(),
                    r[id].as_i64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(i64, i64, i64)> =
            items.iter().map(|i| (i.day_obs, i.seq_num, i.id)).collect();
        assert_eq!(keys, want, "{table}: keys");
        let by_key: BTreeMap<String, Map<String, Value>> = rows
            .into_iter()
            .map(|mut r| {
                r.remove("created_at");
                (format!("{}/{}", r["day_obs"], r["seq_num"]), r)
            })
            .collect();

        // Values of the chosen pivoted columns.
        for col in case
            .columns
            .iter()
            .filter(|c| !c.unpivoted && (!is_visit || c.visits))
        {
            let mut values = 0;
            for item in &items {
                let key = format!("{}/{}", item.day_obs, item.seq_num);
                let row = &by_key[&key];
                let got = row
                    .get(col.name)
                    .unwrap_or_else(|| panic!("{table} has no column {}", col.name));
                let expected = expect(lp, col, item, tasks);
                expected.check(got.as_f64(), &format!("{table} {key} {}", col.name));
                values += usize::from(!got.is_null());
                checked += 1;
            }
            assert!(values > 0, "{table}.{}: never a value", col.name);
        }
        stored.tables.insert(table.to_owned(), by_key);
    }
    for (is_visit, table, id) in [
        (false, "exposure_efd_unpivoted", "exposure_id"),
        (true, "visit1_efd_unpivoted", "visit_id"),
    ] {
        let rows = db.rows(&schema, table, "day_obs, seq_num, property, field");
        let by_key: BTreeMap<String, Map<String, Value>> = rows
            .into_iter()
            .map(|mut r| {
                r.remove("created_at");
                let key = format!(
                    "{}/{}/{}/{}",
                    r["day_obs"],
                    r["seq_num"],
                    r["property"].as_str().unwrap(),
                    r["field"].as_str().unwrap()
                );
                (key, r)
            })
            .collect();
        for col in case
            .columns
            .iter()
            .filter(|c| c.unpivoted && (!is_visit || c.visits))
        {
            let mut values = 0;
            for item in m.items.iter().filter(|i| i.is_visit == is_visit) {
                let key = format!(
                    "{}/{}/{}/{}",
                    item.day_obs, item.seq_num, col.name, col.field
                );
                let expected = expect(lp, col, item, tasks);
                // Values that are None are not stored at all.
                let got = by_key.get(&key).map(|r| {
                    assert_eq!(r[id].as_i64(), Some(item.id), "{table} {key}");
                    r["value"].as_f64().unwrap()
                });
                expected.check(got, &format!("{table} {key}"));
                values += usize::from(got.is_some());
                checked += 1;
            }
            assert!(values > 0, "{table} {}: never a value", col.name);
        }
        if case.columns.iter().any(|c| c.unpivoted) {
            assert!(!by_key.is_empty(), "{table}: no rows");
        }
        stored.tables.insert(table.to_owned(), by_key);
    }
    eprintln!(
        "{}: {checked} values checked in {}",
        case.name,
        db.describe()
    );
    stored
}

/// Whether two cells of the two ConsDBs agree (numbers to [`CELL_TOLERANCE`]).
fn same_cell(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            close(x.as_f64().unwrap(), y.as_f64().unwrap(), CELL_TOLERANCE)
        }
        _ => a == b,
    }
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    a == b || (a - b).abs() <= tolerance * a.abs().max(b.abs())
}

/// The expected value of a cell: every task holding the item computes the same (the pipeline
/// completes the last pre-aggregation bucket and packed row past a task's end, so an item's value
/// does not depend on the other items of its task).
#[derive(Debug)]
struct Expected(Option<f64>);

impl Expected {
    /// Asserts that `got` is as expected.
    fn check(&self, got: Option<f64>, what: &str) {
        let matches = match (self.0, got) {
            (None, None) => true,
            (Some(w), Some(g)) => close(w, g, VALUE_TOLERANCE),
            _ => false,
        };
        assert!(matches, "{what}: stored {got:?}, computed {:?}", self.0);
    }
}

/// The value of `col` for `item` as each task holding the item computes it.
fn expect(lp: &LineProtocol, col: &Col, item: &ManifestItem, tasks: &[Task<'_>]) -> Expected {
    let mut values: Vec<Option<f64>> = Vec::new();
    for task in tasks.iter().filter(|t| t.holds(item)) {
        let v = value(lp, col, item, task.union());
        let known = values.iter().any(|w| match (w, &v) {
            (None, None) => true,
            (Some(a), Some(b)) => close(*a, *b, CELL_TOLERANCE),
            _ => false,
        });
        if !known {
            values.push(v);
        }
    }
    assert!(!values.is_empty(), "item {} is in no task", item.id);
    assert!(
        values.len() == 1,
        "{} of item {}: the tasks holding it would compute different values {values:?}",
        col.name,
        item.id
    );
    Expected(values[0])
}

/// BEHAVIOUR.md §5 (default semantics), from the raw samples: the topic is queried over `union`
/// (its start moved by the column's `start_offset`), inclusive; the item's window is
/// `[begin + start_offset, end]`, inclusive, in ns.
fn value(lp: &LineProtocol, col: &Col, item: &ManifestItem, union: (i64, i64)) -> Option<f64> {
    let offset = col.offset_nanos();
    // The query is widened as the pipeline does (default semantics): its end to the end of the 1 s
    // bucket holding it; for packed rows, whose time is not their samples', by 10 s on both sides.
    let q1 = match col.source {
        Source::Raw => union.1,
        Source::Packed => union.1 + 10 * NANOS_PER_SECOND,
        Source::Mean1s => {
            union.1.div_euclid(NANOS_PER_SECOND) * NANOS_PER_SECOND + NANOS_PER_SECOND - 1
        }
    };
    let q0 = match col.source {
        Source::Packed => union.0 + offset - 10 * NANOS_PER_SECOND,
        Source::Raw | Source::Mean1s => union.0 + offset,
    };
    let (w0, w1) = (item.begin_utc_ns + offset, item.end_utc_ns);
    let in_query = |t: i64| q0 <= t && t <= q1;
    let in_window = |t: i64| w0 <= t && t <= w1;
    let rows: Vec<&Row> = lp
        .rows(col.topic)
        .iter()
        .filter(|r| in_query(r.t))
        .collect();
    let samples: Vec<f64> = match col.source {
        Source::Raw => rows
            .iter()
            .filter(|r| {
                col.subset
                    .is_none_or(|s| r.fields.get("salIndex") == Some(&(s as f64)))
            })
            .filter(|r| in_window(r.t))
            .filter_map(|r| r.fields.get(col.field).copied())
            .collect(),
        Source::Packed => {
            // Each row: 10 samples from its cRIO_timestamp (TAI s), spaced by a tenth of the gap to
            // the next row's (the last row reuses the previous gap; gaps over twice the median fall
            // back to the median).
            let starts: Vec<i64> = rows
                .iter()
                .map(|r| (r.fields["cRIO_timestamp"] * 1e9).round() as i64)
                .collect();
            let gaps: Vec<i64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
            let mut sorted = gaps.clone();
            sorted.sort_unstable();
            let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
            let mut out = Vec::new();
            for (k, row) in rows.iter().enumerate() {
                let gap = match (gaps.get(k), gaps.last()) {
                    (Some(&g), _) | (None, Some(&g)) => g,
                    (None, None) => 0,
                };
                let gap = if gap > 0 && gap <= 2 * median {
                    gap
                } else {
                    median
                };
                let dt = gap as f64 / 10.0;
                for j in 0..10 {
                    let t = starts[k] + (dt * f64::from(j)).round() as i64 - TAI_MINUS_UTC;
                    if in_window(t) {
                        out.push(row.fields[&format!("{}{j}", col.field)]);
                    }
                }
            }
            out
        }
        Source::Mean1s => {
            // Epoch-aligned 1 s buckets of the samples in the query range, kept when the bucket's
            // start lies in the window.
            let mut buckets: BTreeMap<i64, (f64, usize)> = BTreeMap::new();
            for r in &rows {
                if let Some(&v) = r.fields.get(col.field) {
                    let b = buckets
                        .entry(r.t.div_euclid(NANOS_PER_SECOND) * NANOS_PER_SECOND)
                        .or_default();
                    b.0 += v;
                    b.1 += 1;
                }
            }
            buckets
                .into_iter()
                .filter(|(start, _)| in_window(*start))
                .map(|(_, (sum, n))| sum / n as f64)
                .collect()
        }
    };
    let n = samples.len();
    if n == 0 {
        return None;
    }
    let mean = samples.iter().sum::<f64>() / n as f64;
    let v = match col.func {
        Func::Mean => mean,
        Func::Stddev if n > 1 => {
            (samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        }
        Func::Stddev => return None,
        Func::Max => samples.iter().copied().fold(f64::MIN, f64::max),
        Func::Min => samples.iter().copied().fold(f64::MAX, f64::min),
        Func::Last => samples[n - 1],
        Func::Rms4 if n > 4 => residual_rms(&samples, 4),
        Func::Rms4 => return None,
    };
    v.is_finite().then_some(v)
}

/// RMS of the residuals of the least-squares polynomial of `degree` through `(k, y[k])`, by
/// Householder QR of the Vandermonde matrix of `k` mapped onto [-1, 1] (the same polynomial space).
fn residual_rms(y: &[f64], degree: usize) -> f64 {
    let n = y.len();
    let m = degree + 1;
    let u = |k: usize| 2.0 * k as f64 / (n - 1) as f64 - 1.0;
    // Column-major n × m matrix.
    let mut a: Vec<Vec<f64>> = (0..m)
        .map(|j| (0..n).map(|k| u(k).powi(j as i32)).collect())
        .collect();
    let mut b = y.to_vec();
    for j in 0..m {
        let norm = a[j][j..].iter().map(|x| x * x).sum::<f64>().sqrt();
        let alpha = if a[j][j] > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = a[j][j..].to_vec();
        v[0] -= alpha;
        let vv: f64 = v.iter().map(|x| x * x).sum();
        if vv == 0.0 {
            continue;
        }
        let reflect = |col: &mut [f64]| {
            let dot: f64 = v.iter().zip(col.iter()).map(|(p, q)| p * q).sum();
            let f = 2.0 * dot / vv;
            for (c, p) in col.iter_mut().zip(&v) {
                *c -= f * p;
            }
        };
        for column in a.iter_mut().skip(j) {
            reflect(&mut column[j..]);
        }
        reflect(&mut b[j..]);
    }
    // Qᵀy below the first m entries is the residual, rotated.
    (b[m..].iter().map(|x| x * x).sum::<f64>() / n as f64).sqrt()
}

/// One line of line protocol: its timestamp and numeric fields.
#[derive(Debug)]
struct Row {
    t: i64,
    fields: HashMap<String, f64>,
}

/// The rows of some topics of `efd.lp`, each topic in time order.
#[derive(Debug)]
struct LineProtocol {
    topics: HashMap<String, Vec<Row>>,
}

impl LineProtocol {
    /// Reads the lines of `topics` (plain line protocol: no escapes in these names, floats, `i`
    /// integers).
    fn read(path: &Path, topics: &HashSet<&str>) -> LineProtocol {
        let text = std::fs::read_to_string(path).unwrap();
        let mut out: HashMap<String, Vec<Row>> = HashMap::new();
        for line in text.lines() {
            let Some((measurement, rest)) = line.split_once(' ') else {
                continue;
            };
            if !topics.contains(measurement) {
                continue;
            }
            let (fields, t) = rest.rsplit_once(' ').unwrap();
            let fields = fields
                .split(',')
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    let v = v.strip_suffix('i').unwrap_or(v).parse::<f64>().ok()?;
                    Some((k.to_owned(), v))
                })
                .collect();
            out.entry(measurement.to_owned()).or_default().push(Row {
                t: t.parse().unwrap(),
                fields,
            });
        }
        for rows in out.values_mut() {
            rows.sort_by_key(|r| r.t);
        }
        LineProtocol { topics: out }
    }

    fn rows(&self, topic: &str) -> &[Row] {
        self.topics.get(topic).map_or(&[], Vec::as_slice)
    }
}

/// A ConsDB to read back.
#[derive(Debug)]
enum Db<'a> {
    Postgres {
        server: &'a Postgres,
        database: &'a str,
    },
    /// The main file; each schema is the attached file `<stem>.<schema>.sqlite3` beside it.
    Sqlite { main: &'a Path },
}

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = Text)]
    j: String,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

impl Db<'_> {
    fn describe(&self) -> &'static str {
        match self {
            Db::Postgres { .. } => "PostgreSQL",
            Db::Sqlite { .. } => "SQLite",
        }
    }

    /// Every row of `schema.table` as a JSON object, ordered by `order`.
    fn rows(&self, schema: &str, table: &str, order: &str) -> Vec<Map<String, Value>> {
        match self {
            Db::Postgres { server, database } => server
                .psql(
                    database,
                    &format!("SELECT row_to_json(t) FROM {schema}.{table} t ORDER BY {order}"),
                )
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Db::Sqlite { main } => {
                let file: PathBuf = main.with_file_name(format!(
                    "{}.{schema}.sqlite3",
                    main.file_stem().unwrap().to_string_lossy()
                ));
                assert!(file.is_file(), "{} is missing", file.display());
                let mut conn =
                    SqliteConnection::establish(&format!("file:{}?mode=ro", file.display()))
                        .unwrap();
                conn.batch_execute("PRAGMA query_only = 1").unwrap();
                let columns: Vec<String> =
                    diesel::sql_query(format!("SELECT name FROM pragma_table_info('{table}')"))
                        .load::<Name>(&mut conn)
                        .unwrap()
                        .into_iter()
                        .map(|n| n.name)
                        .collect();
                assert!(!columns.is_empty(), "{schema}.{table} does not exist");
                // json_object takes a bounded number of arguments: a few columns at a time.
                let mut rows: Vec<Map<String, Value>> = Vec::new();
                for chunk in columns.chunks(40) {
                    let pairs: Vec<String> =
                        chunk.iter().map(|c| format!("'{c}', \"{c}\"")).collect();
                    let sql = format!(
                        "SELECT json_object({}) AS j FROM \"{table}\" ORDER BY {order}",
                        pairs.join(", ")
                    );
                    let part: Vec<JsonRow> = diesel::sql_query(sql).load(&mut conn).unwrap();
                    rows.resize_with(part.len(), Map::new);
                    for (row, json) in rows.iter_mut().zip(part) {
                        let Value::Object(map) = serde_json::from_str(&json.j).unwrap() else {
                            panic!("not an object: {}", json.j)
                        };
                        row.extend(map);
                    }
                }
                rows
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of whole-second UTC ns, as `-s`/`-e` take it.
fn iso(ns: i64) -> String {
    assert_eq!(ns % NANOS_PER_SECOND, 0, "{ns} is not a whole second");
    let secs = ns / NANOS_PER_SECOND;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn iso_formats_utc_seconds() {
    assert_eq!(iso(0), "1970-01-01T00:00:00");
    assert_eq!(iso(1_759_366_800 * NANOS_PER_SECOND), "2025-10-02T01:00:00");
    assert_eq!(iso(951_825_600 * NANOS_PER_SECOND), "2000-02-29T12:00:00");
}
