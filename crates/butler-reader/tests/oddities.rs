//! Registry oddities, written with SQL into registries the real `lsst-daf-butler` made (SQLite, and
//! PostgreSQL in a namespace): NULL and half-NULL timespans, zero-length and empty ones, reversed
//! ones (SQLite only: an `int8range` cannot end before it begins), open-ended ones
//! (`Timespan(None, end)` and friends, and `i64` extremes), a NULL `seq_num`, and an id present
//! three times (the primary key dropped). Every query still succeeds; each odd record is left out
//! and counted under its reason in `RecordSet::skips` and in `event=butler_records_skipped`; every
//! other record is exactly what daf_butler returned before the alteration, and each id appears once.

use std::process::{Command, Stdio};

use butler_reader::{ButlerReader, Element, RecordSet, SkipCounts};
use test_support::Postgres;
use test_support::butler::{ExpectedRecord, ExpectedRegistry, make_registry, python};
use transform_core::{Instrument, TimeRange, UtcNanos};

/// daf_butler's `TimeConverter().max_nsec` (2100-01-01 TAI); checked against daf_butler itself.
const MAX_NSEC: i64 = 4_102_444_800_000_000_000;
/// The PostgreSQL schema of the registry.
const NAMESPACE: &str = "butler_registry_test";
const NIGHT1: i64 = 20_251_001;
const NIGHT2: i64 = 20_251_002;
const LATISS: &str = "LATISS";

/// The id of the LATISS exposure (and visit) `seq` of night 2 in `make_registry`'s data set.
fn night2(seq: i64) -> i64 {
    NIGHT2 * 100_000 + seq
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// Where the registry lives.
enum Backend {
    Sqlite,
    Postgres(Postgres),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgresql",
        }
    }

    /// A qualified table name.
    fn table(&self, name: &str) -> String {
        match self {
            Backend::Sqlite => name.to_owned(),
            Backend::Postgres(_) => format!("{NAMESPACE}.{name}"),
        }
    }

    /// Runs `sql` against the registry, read-write.
    fn execute(&self, registry: &ExpectedRegistry, sql: &str) {
        match self {
            // Python's sqlite3: foreign keys off, as the table rebuild needs.
            Backend::Sqlite => {
                let db = registry.repo.join("gen3.sqlite3");
                let output = Command::new(python())
                    .args([
                        "-c",
                        "import sqlite3, sys\n\
                         c = sqlite3.connect(sys.argv[1])\n\
                         c.executescript(sys.argv[2])\n\
                         c.commit()\n",
                    ])
                    .arg(&db)
                    .arg(sql)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                assert!(
                    output.status.success(),
                    "{sql}\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            Backend::Postgres(pg) => {
                pg.psql("butler", sql);
            }
        }
    }

    /// Makes the registry with daf_butler.
    fn make(&self, dir: &std::path::Path) -> ExpectedRegistry {
        // daf_butler reads a directory name with a dot (`.tmpXYZ`) as a file name: a subdirectory.
        let out = dir.join("repo");
        let registry = match self {
            Backend::Sqlite => ExpectedRegistry::from_json(&make_registry(&out, None)),
            Backend::Postgres(pg) => {
                pg.create_database("butler");
                ExpectedRegistry::from_json(&make_registry(
                    &out,
                    Some((&pg.url("butler"), NAMESPACE)),
                ))
            }
        };
        assert_eq!(registry.registry, self.name());
        registry
    }
}

/// The exposure and visit oddities, and the ids the reader must leave out.
struct Oddities {
    broken_exposures: Vec<i64>,
    broken_visits: Vec<i64>,
}

/// Alters night 2 of LATISS: exposures 2-11 and visits 4, 6 (SQLite) and 7.
fn alter(backend: &Backend, registry: &ExpectedRegistry) -> Oddities {
    let exposure = backend.table("exposure");
    let visit = backend.table("visit");
    let w = |seq: i64| format!("WHERE instrument = '{LATISS}' AND id = {}", night2(seq));
    // `-9223372036854775808` would be read as minus a too-large number on both backends.
    let (min, max) = ("(-9223372036854775807 - 1)", "9223372036854775807");
    let mut sql = String::new();
    let (broken_exposures, broken_visits) = match backend {
        Backend::Sqlite => {
            sql += &format!(
                "UPDATE {exposure} SET timespan_begin = NULL, timespan_end = NULL {};\n\
                 UPDATE {exposure} SET timespan_end = NULL {};\n\
                 UPDATE {exposure} SET timespan_end = timespan_begin {};\n\
                 UPDATE {exposure} SET timespan_begin = {MAX_NSEC}, timespan_end = 0 {};\n\
                 UPDATE {exposure} SET timespan_begin = timespan_end, timespan_end = timespan_begin {};\n\
                 UPDATE {exposure} SET timespan_begin = 0 {};\n\
                 UPDATE {exposure} SET timespan_end = {MAX_NSEC} {};\n\
                 UPDATE {exposure} SET timespan_begin = {min}, timespan_end = {max} {};\n\
                 UPDATE {exposure} SET seq_num = NULL {};\n",
                w(2),
                w(3),
                w(4),
                w(5),
                w(6),
                w(7),
                w(8),
                w(9),
                w(10)
            );
            // No constraints survive a rebuild: exposure 11 twice more, the last copy 1 s later.
            sql += &format!(
                "CREATE TABLE exposure_rebuilt AS SELECT * FROM {exposure};\n\
                 DROP TABLE {exposure};\n\
                 ALTER TABLE exposure_rebuilt RENAME TO exposure;\n\
                 CREATE TEMP TABLE later AS SELECT * FROM {exposure} {w11};\n\
                 UPDATE later SET timespan_begin = timespan_begin + 1000000000, \
                 timespan_end = timespan_end + 1000000000, obs_id = obs_id || '_again';\n\
                 INSERT INTO {exposure} SELECT * FROM {exposure} {w11};\n\
                 INSERT INTO {exposure} SELECT * FROM later;\n",
                w11 = w(11)
            );
            sql += &format!(
                "UPDATE {visit} SET timespan_end = timespan_begin {};\n\
                 UPDATE {visit} SET timespan_begin = timespan_end, timespan_end = timespan_begin {};\n\
                 UPDATE {visit} SET timespan_begin = 0 {};\n",
                w(4),
                w(6),
                w(7)
            );
            (
                (2..=10).map(night2).collect(),
                vec![night2(4), night2(6), night2(7)],
            )
        }
        Backend::Postgres(_) => {
            // 3: `Timespan(None, None)`; 4: zero length, which PostgreSQL stores as empty; 5:
            // daf_butler's empty timespan; 7, 8: `Timespan(None, end)`, `Timespan(begin, None)`.
            sql += &format!(
                "UPDATE {exposure} SET timespan = NULL {};\n\
                 UPDATE {exposure} SET timespan = '(,)'::int8range {};\n\
                 UPDATE {exposure} SET timespan = int8range(lower(timespan), lower(timespan)) {};\n\
                 UPDATE {exposure} SET timespan = 'empty'::int8range {};\n\
                 UPDATE {exposure} SET timespan = int8range(NULL, upper(timespan)) {};\n\
                 UPDATE {exposure} SET timespan = int8range(lower(timespan), NULL) {};\n\
                 UPDATE {exposure} SET timespan = int8range({min}, {max}) {};\n\
                 UPDATE {exposure} SET seq_num = NULL {};\n",
                w(2),
                w(3),
                w(4),
                w(5),
                w(7),
                w(8),
                w(9),
                w(10)
            );
            sql += &format!(
                "DO $$ DECLARE c record; BEGIN \
                 FOR c IN SELECT conname FROM pg_constraint \
                 WHERE conrelid = '{exposure}'::regclass AND contype IN ('p', 'u') LOOP \
                 EXECUTE format('ALTER TABLE {exposure} DROP CONSTRAINT %I CASCADE', c.conname); \
                 END LOOP; END $$;\n\
                 CREATE TEMP TABLE later AS SELECT * FROM {exposure} {w11};\n\
                 UPDATE later SET timespan = int8range(lower(timespan) + 1000000000, \
                 upper(timespan) + 1000000000), obs_id = obs_id || '_again';\n\
                 INSERT INTO {exposure} SELECT * FROM {exposure} {w11};\n\
                 INSERT INTO {exposure} SELECT * FROM later;\n",
                w11 = w(11)
            );
            sql += &format!(
                "UPDATE {visit} SET timespan = int8range(lower(timespan), lower(timespan)) {};\n\
                 UPDATE {visit} SET timespan = int8range(NULL, upper(timespan)) {};\n",
                w(4),
                w(7)
            );
            (
                [2, 3, 4, 5, 7, 8, 9, 10].into_iter().map(night2).collect(),
                vec![night2(4), night2(7)],
            )
        }
    };
    backend.execute(registry, &sql);
    Oddities {
        broken_exposures,
        broken_visits,
    }
}

type Key = (i64, i64, Option<i64>, Option<i64>, Option<i64>);

/// What daf_butler returned, less the records without a usable timespan or seq_num before the
/// alteration and the `broken` ones.
fn wanted(records: &[ExpectedRecord], broken: &[i64], sort: bool) -> Vec<Key> {
    let mut keys: Vec<Key> = records
        .iter()
        .filter(|r| r.begin_tai_ns.is_some() && r.seq_num.is_some() && !broken.contains(&r.id))
        .map(|r| (r.id, r.day_obs, r.seq_num, r.begin_tai_ns, r.end_tai_ns))
        .collect();
    if sort {
        keys.sort();
    }
    keys
}

fn got(set: &RecordSet, sort: bool) -> Vec<Key> {
    let mut keys: Vec<Key> = set
        .records
        .iter()
        .map(|r| {
            (
                r.id,
                i64::from(r.day_obs),
                Some(i64::from(r.seq_num)),
                Some(r.begin_tai.0),
                Some(r.end_tai.0),
            )
        })
        .collect();
    if sort {
        keys.sort();
    }
    keys
}

/// The `event=butler_records_skipped` line logged after `mark`, if any.
fn skip_line(logs: &test_support::CapturedLogs, mark: usize) -> Option<String> {
    logs.text()[mark..]
        .lines()
        .find(|l| l.contains("butler_records_skipped"))
        .map(str::to_owned)
}

/// Checks a query's records against daf_butler's, and its counts against `want`, in the result
/// and in the log line.
fn check(
    what: &str,
    set: &RecordSet,
    expected: &[ExpectedRecord],
    broken: &[i64],
    sort: bool,
    want: SkipCounts,
    line: Option<String>,
) {
    assert_eq!(got(set, sort), wanted(expected, broken, sort), "{what}");
    assert_eq!(set.skips, want, "{what}");
    assert_eq!(set.skipped(), want.total(), "{what}");
    match line {
        None => assert_eq!(want.total(), 0, "{what}: nothing logged"),
        Some(line) => {
            for part in [
                format!("skipped={}", want.total()),
                format!("null_timespan={}", want.null_timespan),
                format!("empty_timespan={}", want.empty_timespan),
                format!("reversed_timespan={}", want.reversed_timespan),
                format!("unbounded_timespan={}", want.unbounded_timespan),
                format!("no_seq_num={}", want.no_seq_num),
                format!("duplicate_id={}", want.duplicate_id),
            ] {
                assert!(line.contains(&part), "{what}: {part} missing from {line}");
            }
            assert!(line.contains("WARN"), "{what}: {line}");
        }
    }
}

/// The overlap query of `expected` over `[start, end)`.
fn overlap_entry<'a>(
    expected: &'a ExpectedRegistry,
    instrument: &str,
    element: &str,
    start: i64,
    end: i64,
) -> &'a [ExpectedRecord] {
    &expected
        .overlaps
        .iter()
        .find(|q| {
            q.instrument == instrument
                && q.element == element
                && q.start_utc_ns == start
                && q.end_utc_ns == end
        })
        .unwrap_or_else(|| panic!("no {instrument} {element} overlap [{start}, {end})"))
        .records
}

/// The day_obs query of `expected` over `first..=last`.
fn day_obs_entry<'a>(
    expected: &'a ExpectedRegistry,
    instrument: &str,
    element: &str,
    first: i64,
    last: i64,
) -> &'a [ExpectedRecord] {
    &expected
        .day_obs
        .iter()
        .find(|q| {
            q.instrument == instrument
                && q.element == element
                && q.day_obs_start == first
                && q.day_obs_end == last
        })
        .unwrap_or_else(|| panic!("no {instrument} {element} day_obs {first}..={last}"))
        .records
}

/// 12:00 UTC of `day_obs`, where it begins, in UTC nanoseconds.
fn day_obs_start(day_obs: i64) -> i64 {
    let text = format!(
        "{}-{:02}-{:02}T12:00:00",
        day_obs / 10_000,
        day_obs / 100 % 100,
        day_obs % 100
    );
    transform_core::time::parse_timestamp(&text).unwrap().0
}

/// The counts per reason (in `SkipCounts` field order).
fn counts(
    null_timespan: usize,
    empty_timespan: usize,
    reversed_timespan: usize,
    unbounded_timespan: usize,
    no_seq_num: usize,
    duplicate_id: usize,
) -> SkipCounts {
    SkipCounts {
        null_timespan,
        empty_timespan,
        reversed_timespan,
        unbounded_timespan,
        no_seq_num,
        duplicate_id,
    }
}

/// What each query must skip on `backend`, after [`alter`].
struct Want {
    exposures_by_day_obs: SkipCounts,
    exposures_night2: SkipCounts,
    exposures_night1: SkipCounts,
    visits_by_day_obs: SkipCounts,
}

fn want(backend: &Backend) -> Want {
    match backend {
        // The day_obs query sees every record; the overlap query only those whose bounds
        // overlap (not the NULL ones, nor daf_butler's empty one, which ends at 0).
        Backend::Sqlite => Want {
            // Night 1's exposure 14 has no timespan in the data set itself.
            exposures_by_day_obs: counts(3, 2, 1, 3, 1, 2),
            exposures_night2: counts(0, 1, 1, 3, 1, 2),
            // The records open towards the past (7 and 9) overlap night 1 too.
            exposures_night1: counts(0, 0, 0, 2, 0, 0),
            visits_by_day_obs: counts(1, 1, 1, 1, 0, 0),
        },
        // No reversed range can exist; empty ranges overlap nothing; 3, 7 and 9 are open towards
        // the past.
        Backend::Postgres(_) => Want {
            exposures_by_day_obs: counts(2, 2, 0, 4, 1, 2),
            exposures_night2: counts(0, 0, 0, 4, 1, 2),
            exposures_night1: counts(0, 0, 0, 3, 0, 0),
            visits_by_day_obs: counts(1, 1, 0, 1, 0, 0),
        },
    }
}

/// Runs the queries on `backend`'s altered registry; returns the number of odd records injected.
async fn oddities_are_skipped_and_counted(backend: Backend) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let expected = backend.make(dir.path());
    let odd = alter(&backend, &expected);
    let want = want(&backend);
    let (logs, _guard) = test_support::capture_logs();
    let mut reader = ButlerReader::open(expected.repo.to_str().unwrap(), &no_env)
        .await
        .unwrap();
    let what = |q: &str| format!("{}: {q}", backend.name());

    // Exposures by day_obs: every oddity is returned by the query, and skipped.
    let mark = logs.text().len();
    let set = reader
        .by_day_obs(
            Element::Exposure,
            Instrument::Latiss,
            20_251_001,
            20_251_002,
        )
        .await
        .unwrap();
    check(
        &what("exposures by day_obs"),
        &set,
        day_obs_entry(&expected, LATISS, "exposure", NIGHT1, NIGHT2),
        &odd.broken_exposures,
        true,
        want.exposures_by_day_obs,
        skip_line(&logs, mark),
    );
    let ids: Vec<i64> = set.records.iter().map(|r| r.id).collect();
    assert_eq!(
        ids.iter().filter(|&&id| id == night2(11)).count(),
        1,
        "{ids:?}"
    );

    // Exposures overlapping night 2 (as a task's interval would), and night 1.
    for (night, counts) in [
        (NIGHT2, want.exposures_night2),
        (NIGHT1, want.exposures_night1),
    ] {
        let (start, end) = (day_obs_start(night), day_obs_start(night + 1));
        let mark = logs.text().len();
        let set = reader
            .overlapping(
                Element::Exposure,
                Instrument::Latiss,
                TimeRange::new(UtcNanos(start), UtcNanos(end)).unwrap(),
            )
            .await
            .unwrap();
        check(
            &what(&format!("exposures overlapping day_obs {night}")),
            &set,
            overlap_entry(&expected, LATISS, "exposure", start, end),
            &odd.broken_exposures,
            false,
            counts,
            skip_line(&logs, mark),
        );
        // Every record kept lies within a day of the window: no open-ended one widens a task.
        for r in &set.records {
            assert!(
                r.timespan.start().0 > start - 86_400_000_000_000
                    && r.timespan.end().0 < end + 86_400_000_000_000,
                "{r:?}"
            );
        }
    }

    // Visits by day_obs.
    let mark = logs.text().len();
    let set = reader
        .by_day_obs(Element::Visit, Instrument::Latiss, 20_251_001, 20_251_002)
        .await
        .unwrap();
    check(
        &what("visits by day_obs"),
        &set,
        day_obs_entry(&expected, LATISS, "visit", NIGHT1, NIGHT2),
        &odd.broken_visits,
        true,
        want.visits_by_day_obs,
        skip_line(&logs, mark),
    );

    // The other instrument was left alone: only the data set's own NULL timespan.
    let mark = logs.text().len();
    let set = reader
        .by_day_obs(
            Element::Exposure,
            Instrument::LsstCam,
            20_251_001,
            20_251_002,
        )
        .await
        .unwrap();
    check(
        &what("LSSTCam exposures by day_obs"),
        &set,
        day_obs_entry(&expected, "LSSTCam", "exposure", NIGHT1, NIGHT2),
        &[],
        true,
        counts(1, 0, 0, 0, 0, 0),
        skip_line(&logs, mark),
    );
    // Two more copies of exposure 11.
    odd.broken_exposures.len() + 2 + odd.broken_visits.len()
}

/// daf_butler's limits are the ones the reader takes for "unbounded".
fn check_daf_butler_limits() {
    let output = Command::new(python())
        .args([
            "-c",
            "from lsst.daf.butler.time_utils import TimeConverter\n\
             t = TimeConverter()\n\
             print(t.min_nsec, t.max_nsec)",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("0 {MAX_NSEC}")
    );
}

#[tokio::test]
async fn registry_oddities_are_skipped_and_counted() {
    check_daf_butler_limits();
    let mut injected = 0;
    for backend in [Backend::Sqlite, Backend::Postgres(Postgres::start())] {
        injected += oddities_are_skipped_and_counted(backend).await;
    }
    test_support::report::record(
        "bad input",
        "Butler registry oddities",
        "registries made by lsst-daf-butler (SQLite and PostgreSQL), altered with SQL: NULL and \
         half-NULL timespans, zero-length and empty ones, reversed ones (SQLite), open-ended ones \
         and i64 extremes, a NULL seq_num, an id three times; 5 queries per registry",
        u64::try_from(injected).unwrap(),
        "every query succeeded; each odd record skipped and counted under its reason (result and \
         event=butler_records_skipped); the others equal daf_butler's records, each id once",
        "oddities::registry_oddities_are_skipped_and_counted",
    );
}
