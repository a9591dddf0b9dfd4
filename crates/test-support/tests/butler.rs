//! Integration tests for [`test_support::butler`]: registries made by the real daf_butler (SQLite and
//! PostgreSQL), from the fixed data set or from a synthetic night's manifest, and the `expected.json`
//! it answers with.

use std::collections::BTreeSet;
use std::path::Path;

use test_support::Postgres;
use test_support::butler::{
    ExpectedRecord, ExpectedRegistry, make_registry, make_registry_from_manifest, python,
};

/// TAI - UTC in 2025 (every instant of the fixture), in nanoseconds.
const TAI_MINUS_UTC_NS: i64 = 37_000_000_000;
const INSTRUMENTS: [&str; 2] = ["LATISS", "LSSTCam"];
const ELEMENTS: [&str; 2] = ["exposure", "visit"];
const NAMESPACE: &str = "butler_registry_test";

/// Whether `record` overlaps the half-open TAI window `[start, end)`.
fn overlaps(record: &ExpectedRecord, start: i64, end: i64) -> bool {
    match (record.begin_tai_ns, record.end_tai_ns) {
        (Some(begin), Some(finish)) => begin < end && start < finish,
        _ => false,
    }
}

/// Checks everything `expected.json` promises about the fixed data set, whichever the registry.
fn check(expected: &ExpectedRegistry, repo: &Path, registry: &str, namespace: Option<&str>) {
    assert_eq!(expected.repo, repo.canonicalize().unwrap());
    assert!(repo.join("butler.yaml").is_file());
    assert_eq!(expected.registry, registry);
    assert_eq!(expected.namespace.as_deref(), namespace);

    let instruments: BTreeSet<&str> = expected
        .overlaps
        .iter()
        .map(|q| q.instrument.as_str())
        .collect();
    assert_eq!(instruments, INSTRUMENTS.into_iter().collect());

    for instrument in INSTRUMENTS {
        for element in ELEMENTS {
            // Every record of both nights, from the day_obs query that spans them.
            let all = &expected
                .day_obs
                .iter()
                .find(|q| {
                    q.instrument == instrument
                        && q.element == element
                        && (q.day_obs_start, q.day_obs_end) == (20251001, 20251002)
                })
                .unwrap_or_else(|| panic!("no two-night day_obs query for {instrument} {element}"))
                .records;
            assert!(
                all.len() >= 20,
                "{instrument} {element}: {} records",
                all.len()
            );
            let seq_range = if instrument == "LATISS" {
                1..100
            } else {
                101..200
            };
            for r in all {
                assert!(seq_range.contains(&r.seq_num.unwrap()), "{r:?}");
                assert_eq!(r.id, r.day_obs * 100_000 + r.seq_num.unwrap(), "{r:?}");
                assert_eq!(r.begin_tai_ns.is_none(), r.end_tai_ns.is_none(), "{r:?}");
                if let (Some(b), Some(e)) = (r.begin_tai_ns, r.end_tai_ns) {
                    assert_eq!(e - b, 30_000_000_000, "{r:?}");
                }
                if element == "visit" {
                    assert_eq!(r.observation_type, None, "{r:?}");
                }
            }
            assert_eq!(
                all.iter().filter(|r| r.begin_tai_ns.is_none()).count(),
                1,
                "{instrument} {element}: one NULL timespan"
            );
            assert!(
                all.iter()
                    .any(|r| r.begin_tai_ns.is_some_and(|b| b % 1000 != 0)),
                "{instrument} {element}: sub-microsecond begins"
            );

            // Overlap queries: exactly the half-open overlaps, ordered by begin, NULLs never.
            let queries: Vec<_> = expected
                .overlaps
                .iter()
                .filter(|q| q.instrument == instrument && q.element == element)
                .collect();
            assert!(queries.len() >= 4);
            let (mut straddle_start, mut straddle_end, mut empty, mut sub_second) =
                (false, false, false, false);
            for q in &queries {
                let (start, end) = (
                    q.start_utc_ns + TAI_MINUS_UTC_NS,
                    q.end_utc_ns + TAI_MINUS_UTC_NS,
                );
                let mut want: Vec<&ExpectedRecord> =
                    all.iter().filter(|r| overlaps(r, start, end)).collect();
                want.sort_by_key(|r| r.begin_tai_ns);
                let got: Vec<&ExpectedRecord> = q.records.iter().collect();
                assert_eq!(got, want, "{instrument} {element} [{start}, {end}) TAI");
                straddle_start |= q
                    .records
                    .iter()
                    .any(|r| r.begin_tai_ns.unwrap() < start && r.end_tai_ns.unwrap() > start);
                straddle_end |= q
                    .records
                    .iter()
                    .any(|r| r.begin_tai_ns.unwrap() < end && r.end_tai_ns.unwrap() > end);
                empty |= q.records.is_empty();
                sub_second |= q.start_utc_ns % 1_000_000_000 != 0 && !q.records.is_empty();
            }
            assert!(straddle_start && straddle_end && empty && sub_second);
            // A window covering the whole of day_obs 20251001 returns all of its timed records.
            let night: Vec<_> = all
                .iter()
                .filter(|r| r.day_obs == 20251001 && r.begin_tai_ns.is_some())
                .map(|r| r.id)
                .collect();
            assert!(queries.iter().any(|q| {
                let ids: Vec<_> = q.records.iter().map(|r| r.id).collect();
                ids == night
            }));

            // day_obs queries: the range, sorted by (day_obs, seq_num, id); one range has nothing.
            let ranges: Vec<_> = expected
                .day_obs
                .iter()
                .filter(|q| q.instrument == instrument && q.element == element)
                .collect();
            assert!(ranges.iter().any(|q| q.records.is_empty()));
            for q in ranges {
                let range = q.day_obs_start..=q.day_obs_end;
                let want: Vec<_> = all.iter().filter(|r| range.contains(&r.day_obs)).collect();
                let got: Vec<_> = q.records.iter().collect();
                assert_eq!(got, want, "{instrument} {element} day_obs {range:?}");
            }
        }
    }
    // Instruments overlap in time, so forgetting the instrument would show.
    let latiss_ids: BTreeSet<i64> = expected
        .day_obs
        .iter()
        .filter(|q| q.instrument == "LATISS")
        .flat_map(|q| q.records.iter().map(|r| r.id))
        .collect();
    assert!(
        expected
            .day_obs
            .iter()
            .filter(|q| q.instrument == "LSSTCam")
            .flat_map(|q| &q.records)
            .all(|r| !latiss_ids.contains(&r.id))
    );
}

#[test]
fn python_has_daf_butler() {
    let python = python();
    assert!(python.ends_with(".venv/bin/python"), "{}", python.display());
}

#[test]
fn sqlite_registry() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let expected = ExpectedRegistry::from_json(&make_registry(&repo, None));
    assert!(repo.join("gen3.sqlite3").is_file());
    check(&expected, &repo, "sqlite", None);
}

#[test]
fn postgres_registry_in_a_schema_matches_sqlite() {
    let pg = Postgres::start();
    pg.create_database("butler");
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let url = pg.url("butler");
    let json = make_registry(&repo, Some((&url, NAMESPACE)));
    let expected = ExpectedRegistry::from_json(&json);
    check(&expected, &repo, "postgresql", Some(NAMESPACE));

    let butler_yaml = std::fs::read_to_string(repo.join("butler.yaml")).unwrap();
    assert!(butler_yaml.contains(&format!("db: {url}")), "{butler_yaml}");
    assert!(
        butler_yaml.contains(&format!("namespace: {NAMESPACE}")),
        "{butler_yaml}"
    );
    assert!(!repo.join("gen3.sqlite3").exists());
    assert_eq!(
        pg.psql(
            "butler",
            &format!(
                "SELECT count(*) FROM {NAMESPACE}.exposure; \
                 SELECT count(*) FROM pg_tables WHERE schemaname = 'public'; \
                 SELECT count(*) FROM pg_extension WHERE extname = 'btree_gist'"
            )
        ),
        "52\n0\n1\n"
    );

    // The same data in SQLite gives the same answers.
    let sqlite_repo = dir.path().join("sqlite");
    let sqlite = ExpectedRegistry::from_json(&make_registry(&sqlite_repo, None));
    assert_eq!(sqlite.overlaps, expected.overlaps);
    assert_eq!(sqlite.day_obs, expected.day_obs);
}

/// What is compared of a record: id, day_obs, seq_num, TAI begin and end, filter, observation type.
type RecordKey = (
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    String,
    Option<String>,
);

/// A synthetic night's manifest (`night.json`) with three LSSTCam exposures, the last spanning the
/// 12:00 UTC day_obs roll-over, and visits of the first and last.
fn manifest_json() -> serde_json::Value {
    const S: i64 = 1_000_000_000;
    let t0 = 1_759_366_800 * S; // 2025-10-02T01:00:00Z, day_obs 20251001
    let roll = 1_759_406_400 * S; // 2025-10-02T12:00:00Z
    let item = |id: i64, day_obs: i64, seq: i64, begin: i64, visit: bool, filter: &str| {
        serde_json::json!({
            "id": id, "day_obs": day_obs, "seq_num": seq,
            "begin_utc_ns": begin, "end_utc_ns": begin + 30 * S + 7,
            "is_visit": visit, "physical_filter": filter,
            "observation_type": if visit { None } else { Some(if seq == 2 { "bias" } else { "science" }) },
            "exposure_time": 30.0,
        })
    };
    serde_json::json!({
        "instrument": "LSSTCam",
        "items": [
            item(2025100100001, 20251001, 1, t0 + 3 * S + 123_456_789, false, "r_57"),
            item(2025100100002, 20251001, 2, t0 + 60 * S, false, "i_39"),
            item(2025100100003, 20251001, 3, roll - 10 * S, false, "r_57"),
            item(2025100100001, 20251001, 1, t0 + 3 * S + 123_456_789, true, "r_57"),
            item(2025100100003, 20251001, 3, roll - 10 * S, true, "r_57"),
        ],
        "topics": [],
    })
}

#[test]
fn registries_from_a_manifest_hold_its_items_in_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_json();
    let path = dir.path().join("night.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let items = manifest["items"].as_array().unwrap();

    let repo = dir.path().join("sqlite");
    let sqlite = ExpectedRegistry::from_json(&make_registry_from_manifest(&repo, &path, None));
    assert_eq!(sqlite.repo, repo.canonicalize().unwrap());
    assert_eq!(sqlite.registry, "sqlite");
    assert!(repo.join("gen3.sqlite3").is_file());
    for (element, is_visit) in [("exposure", false), ("visit", true)] {
        // daf_butler returns exactly the manifest's items, with their timespans stored as TAI.
        let want: Vec<RecordKey> = items
            .iter()
            .filter(|i| i["is_visit"] == is_visit)
            .map(|i| {
                let ns = |k: &str| i[k].as_i64().unwrap() + TAI_MINUS_UTC_NS;
                (
                    i["id"].as_i64().unwrap(),
                    i["day_obs"].as_i64().unwrap(),
                    i["seq_num"].as_i64(),
                    Some(ns("begin_utc_ns")),
                    Some(ns("end_utc_ns")),
                    i["physical_filter"].as_str().unwrap().to_owned(),
                    i["observation_type"].as_str().map(str::to_owned),
                )
            })
            .collect();
        let got = |records: &[ExpectedRecord]| -> Vec<RecordKey> {
            records
                .iter()
                .map(|r| {
                    assert_eq!(r.exposure_time, Some(30.0));
                    (
                        r.id,
                        r.day_obs,
                        r.seq_num,
                        r.begin_tai_ns,
                        r.end_tai_ns,
                        r.physical_filter.clone(),
                        r.observation_type.clone(),
                    )
                })
                .collect()
        };
        let overlap: Vec<_> = sqlite
            .overlaps
            .iter()
            .filter(|q| q.element == element)
            .collect();
        assert_eq!(overlap.len(), 1, "{element}");
        assert_eq!(overlap[0].instrument, "LSSTCam");
        assert_eq!(
            got(&overlap[0].records),
            want,
            "{element} overlapping the night"
        );
        let by_day: Vec<_> = sqlite
            .day_obs
            .iter()
            .filter(|q| q.element == element)
            .collect();
        assert_eq!(by_day.len(), 1, "{element}");
        assert_eq!(
            (by_day[0].day_obs_start, by_day[0].day_obs_end),
            (20251001, 20251001)
        );
        assert_eq!(
            got(&by_day[0].records),
            want,
            "{element} of day_obs 20251001"
        );
    }

    // The same night in a PostgreSQL namespace answers the same.
    let pg = Postgres::start();
    pg.create_database("butler");
    let url = pg.url("butler");
    let repo = dir.path().join("pg");
    let postgres = ExpectedRegistry::from_json(&make_registry_from_manifest(
        &repo,
        &path,
        Some((&url, NAMESPACE)),
    ));
    assert_eq!(postgres.registry, "postgresql");
    assert_eq!(postgres.overlaps, sqlite.overlaps);
    assert_eq!(postgres.day_obs, sqlite.day_obs);
    assert_eq!(
        pg.psql(
            "butler",
            &format!(
                "SELECT count(*) FROM {NAMESPACE}.exposure; SELECT count(*) FROM {NAMESPACE}.visit; \
                 SELECT count(*) FROM {NAMESPACE}.visit_definition"
            )
        ),
        "3\n2\n2\n"
    );
}

#[test]
fn a_manifest_visit_without_its_exposure_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = manifest_json();
    manifest["items"].as_array_mut().unwrap().remove(0);
    let path = dir.path().join("night.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let repo = dir.path().join("repo");
    let panic = std::panic::catch_unwind(|| make_registry_from_manifest(&repo, &path, None))
        .expect_err("a visit without an exposure must be refused");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("has no exposure of the same id"),
        "{message}"
    );
}
