//! The world of the fault-injection tests (`faults_*` binaries, run by `make test-faults`): a
//! synthetic night for the demo config (a Butler registry made by lsst-daf-butler from its
//! manifest, its telemetry in a real `influxd`), a real PostgreSQL for ConsDB and the task table,
//! and readers for what the binaries leave behind: their JSON logs, the task table, ConsDB rows.
//!
//! Shared by `bins/job/tests` and `bins/monitor/tests` (included there by path).

#![allow(dead_code, unreachable_pub)] // Each test binary uses a different subset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use test_support::butler::{ExpectedRegistry, make_registry_from_manifest};
use test_support::{Influxd, Postgres};
use transform_core::UtcNanos;
use transform_core::time::{format_isot, parse_timestamp};
use transformed_efd_examples::synth::{NANOS_PER_MINUTE, Night, NightFiles, Rates, SynthOptions};

/// The ConsDB schema of the demo config's instrument.
pub const CONSDB_SCHEMA: &str = "efd_latiss";
/// The task table.
pub const TASK_TABLE: &str = "efd_scheduler.latiss";
/// ConsDB tables, each with the columns that order its rows.
pub const CONSDB_TABLES: [&str; 4] = [
    "exposure_efd",
    "visit1_efd",
    "exposure_efd_unpivoted",
    "visit1_efd_unpivoted",
];

/// Servers and a night.
pub struct World {
    pub dir: tempfile::TempDir,
    pub pg: Postgres,
    pub influx: Influxd,
    pub config: PathBuf,
    pub repo: PathBuf,
    pub night: NightFiles,
    /// The night's first and last minute, whole minutes.
    pub start: UtcNanos,
    pub end: UtcNanos,
}

impl World {
    /// A night of `minutes` with `exposures` exposures (about as many visits) of the demo config,
    /// telemetry at `hz`, in influxd; PostgreSQL with no database yet.
    pub fn new(minutes: u32, exposures: u32, hz: f64, seed: u64) -> World {
        let dir = tempfile::tempdir().unwrap();
        let options = SynthOptions {
            minutes,
            exposures,
            rates: Rates::Uniform(hz),
            lookback_hours: 0,
            seed,
            ..SynthOptions::new(dir.path().join("night"))
        };
        let config = options.config.clone();
        let night = Night::generate(&options).unwrap();
        let repo = dir.path().join("repo");
        let registry = ExpectedRegistry::from_json(&make_registry_from_manifest(
            &repo,
            &night.manifest_path,
            None,
        ));
        assert_eq!(registry.registry, "sqlite");
        let influx = Influxd::start();
        influx.create_database("efd");
        influx.write("efd", &std::fs::read_to_string(&night.efd).unwrap());
        let start = night.manifest.night_start_utc_ns;
        let start = UtcNanos(start - start.rem_euclid(NANOS_PER_MINUTE));
        let end = UtcNanos(start.0 + i64::from(minutes) * NANOS_PER_MINUTE);
        World {
            dir,
            pg: Postgres::start(),
            influx,
            config,
            repo,
            night,
            start,
            end,
        }
    }

    /// A fresh PostgreSQL database; its URL.
    pub fn database(&self, name: &str) -> String {
        self.pg.create_database(name);
        self.pg.url(name)
    }

    /// The arguments every binary takes: config, instrument, registry, ConsDB, EFD, `--migrate`
    /// and JSON logs.
    pub fn common_args(&self, db_url: &str, efd_url: &str) -> Vec<String> {
        vec![
            "-c".into(),
            self.config.display().to_string(),
            "-i".into(),
            "latiss".into(),
            "-r".into(),
            self.repo.display().to_string(),
            "-d".into(),
            db_url.into(),
            "-E".into(),
            efd_url.into(),
            "--migrate".into(),
            "--log-format".into(),
            "json".into(),
        ]
    }

    /// `-s`, `-e` and `-t` over the whole night in tasks of `minutes`.
    pub fn range_args(&self, minutes: u32) -> Vec<String> {
        vec![
            "-s".into(),
            format_isot(self.start),
            "-e".into(),
            format_isot(self.end),
            "-t".into(),
            minutes.to_string(),
        ]
    }

    /// Task count per status in database `db` (none before the task table exists).
    pub fn task_statuses(&self, db: &str) -> BTreeMap<String, i64> {
        let exists = self.pg.psql(
            db,
            &format!("SELECT to_regclass('{TASK_TABLE}') IS NOT NULL"),
        );
        if exists.trim() != "t" {
            return BTreeMap::new();
        }
        self.pg
            .psql(
                db,
                &format!("SELECT trim(status), count(*) FROM {TASK_TABLE} GROUP BY 1"),
            )
            .lines()
            .filter_map(|l| l.split_once('|'))
            .map(|(s, n)| (s.to_owned(), n.trim().parse().unwrap()))
            .collect()
    }

    /// Every ConsDB row of database `db` as text, per table, in a fixed order, without
    /// `created_at` (which records when, not what).
    pub fn consdb_rows(&self, db: &str) -> BTreeMap<&'static str, Vec<String>> {
        CONSDB_TABLES
            .iter()
            .map(|table| {
                let columns = self.pg.psql(
                    db,
                    &format!(
                        "SELECT string_agg(quote_ident(column_name), ',' ORDER BY ordinal_position) \
                         FROM information_schema.columns WHERE table_schema = '{CONSDB_SCHEMA}' \
                         AND table_name = '{table}' AND column_name <> 'created_at'"
                    ),
                );
                let columns = columns.trim();
                assert!(!columns.is_empty(), "no table {CONSDB_SCHEMA}.{table} in {db}");
                let order: Vec<String> =
                    (1..=columns.split(',').count()).map(|i| i.to_string()).collect();
                let rows = self.pg.psql(
                    db,
                    &format!(
                        "SELECT {columns} FROM {CONSDB_SCHEMA}.{table} ORDER BY {}",
                        order.join(",")
                    ),
                );
                (*table, rows.lines().map(str::to_owned).collect())
            })
            .collect()
    }
}

/// Asserts that two databases' ConsDB rows are equal, cell for cell, and not empty.
pub fn assert_same_rows(
    a: &BTreeMap<&'static str, Vec<String>>,
    b: &BTreeMap<&'static str, Vec<String>>,
    what: &str,
) {
    for table in CONSDB_TABLES {
        let (x, y) = (&a[table], &b[table]);
        assert!(!x.is_empty(), "{what}: the reference has no {table} rows");
        if x != y {
            let first = x
                .iter()
                .zip(y)
                .position(|(p, q)| p != q)
                .unwrap_or(x.len().min(y.len()));
            panic!(
                "{what}: {table} differs: {} vs {} rows; first difference at row {first}:\n  {:?}\n  {:?}",
                x.len(),
                y.len(),
                x.get(first),
                y.get(first)
            );
        }
    }
}

/// Nanoseconds since the Unix epoch, now.
#[allow(clippy::disallowed_methods)] // Compared with the binaries' log timestamps: the wall clock.
pub fn now_ns() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

/// One line of a binary's JSON log.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub ts_ns: i64,
    pub level: String,
    pub event: String,
    pub fields: serde_json::Value,
}

impl LogEvent {
    /// The task id the event is about.
    pub fn task_id(&self) -> Option<i64> {
        self.fields.get("id").and_then(serde_json::Value::as_i64)
    }
}

/// The JSON log lines of `path` (others, e.g. a panic message, are returned as `other`).
pub fn read_log(path: &Path) -> (Vec<LogEvent>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut events = Vec::new();
    let mut other = Vec::new();
    for line in text.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            if !line.trim().is_empty() {
                other.push(line.to_owned());
            }
            continue;
        };
        let ts_ns = value
            .get("timestamp")
            .and_then(serde_json::Value::as_str)
            .and_then(parse_timestamp)
            .map_or(0, |t| t.0);
        let fields = value.get("fields").cloned().unwrap_or_default();
        events.push(LogEvent {
            ts_ns,
            level: value
                .get("level")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            event: fields
                .get("event")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            fields,
        });
    }
    (events, other)
}

/// `program` (an `efd-monitor` binary) for the world's night with `common_args` and one EFD query
/// in flight, output to `log`; `extra` flags follow.
pub fn monitor_command(
    program: &str,
    world: &World,
    db: &str,
    efd: &str,
    log: &Path,
    extra: &[&str],
) -> Command {
    let file = std::fs::File::create(log).unwrap();
    let mut c = test_support::service_command(program);
    c.env("LOG_LEVEL", "info")
        .args(world.common_args(db, efd))
        .args(["--monitor-window-days", "3650", "--efd-concurrency", "1"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    c
}

/// Waits for `child` to exit: its exit code (`None` after a signal); kills it and panics with the
/// log after `limit`.
pub fn wait_for(child: &mut Child, limit: Duration, log: &Path) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{} still running after {limit:?}:\n{}",
                log.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
