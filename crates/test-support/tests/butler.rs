//! Integration tests for [`test_support::butler`]: registries made by the real daf_butler (SQLite and
//! PostgreSQL) and the `expected.json` it answers with.

use std::collections::BTreeSet;
use std::path::Path;

use test_support::Postgres;
use test_support::butler::{ExpectedRecord, ExpectedRegistry, make_registry, python};

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
