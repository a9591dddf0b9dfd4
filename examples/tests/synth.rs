//! Tests of the synthetic-night generator (`transformed_efd_examples::synth`): the registry reads back
//! through `butler-reader` as the manifest says, every planned (topic, field) has EFD rows over the
//! night through `efd-client`'s file source, the DDL matches the real registry's, and output is
//! deterministic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use butler_reader::{ButlerReader, Element};
use efd_client::{FileSource, TopicQuery, run_query};
use transform_core::{Config, Instrument, QueryPlan, Semantics, TimeRange, UtcNanos};
use transformed_efd_examples::synth::{
    Manifest, NANOS_PER_SECOND, Night, NightFiles, SynthOptions, day_obs_of, registry,
};

fn reference_config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/consdb/config")
        .join(name)
}

fn small(out: &Path) -> SynthOptions {
    SynthOptions {
        minutes: 12,
        exposures: 10,
        ..SynthOptions::new(out)
    }
}

/// Reads the registry back and compares it with the manifest.
async fn check_registry(night: &NightFiles, instrument: Instrument) {
    let m = &night.manifest;
    let mut reader = ButlerReader::open(night.butler.to_str().unwrap(), &|_| None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A window wider than the night, and one holding only its middle.
    let whole = TimeRange::new(
        UtcNanos(m.night_start_utc_ns - 3_600 * NANOS_PER_SECOND),
        UtcNanos(m.night_end_utc_ns + 3_600 * NANOS_PER_SECOND),
    )
    .unwrap();
    let mid = (m.night_start_utc_ns + m.night_end_utc_ns) / 2;
    let middle = TimeRange::new(
        UtcNanos(mid - 60 * NANOS_PER_SECOND),
        UtcNanos(mid + 60 * NANOS_PER_SECOND),
    )
    .unwrap();
    for range in [whole, middle] {
        for (element, is_visit) in [(Element::Exposure, false), (Element::Visit, true)] {
            let got = reader
                .overlapping(element, instrument, range)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got.skipped(), 0);
            let got: Vec<_> = got
                .records
                .iter()
                .map(|r| {
                    (
                        r.id,
                        i64::from(r.day_obs),
                        i64::from(r.seq_num),
                        r.timespan.start().0,
                        r.timespan.end().0,
                        r.physical_filter.clone(),
                        r.observation_type.clone(),
                        r.exposure_time,
                    )
                })
                .collect();
            let want: Vec<_> = m
                .items
                .iter()
                .filter(|i| i.is_visit == is_visit)
                .filter(|i| i.end_utc_ns > range.start().0 && range.end().0 > i.begin_utc_ns)
                .map(|i| {
                    (
                        i.id,
                        i.day_obs,
                        i.seq_num,
                        i.begin_utc_ns,
                        i.end_utc_ns,
                        i.physical_filter.clone(),
                        i.observation_type.clone(),
                        Some(i.exposure_time),
                    )
                })
                .collect();
            assert!(!want.is_empty(), "{element:?} {range:?}");
            assert_eq!(got, want, "{element:?} over {range:?}");
        }
    }
    let day = i32::try_from(day_obs_of(UtcNanos(m.night_start_utc_ns))).unwrap();
    let by_day = reader
        .by_day_obs(Element::Exposure, instrument, day, day)
        .await
        .unwrap();
    assert_eq!(
        by_day.records.len(),
        m.items.iter().filter(|i| !i.is_visit).count()
    );
}

/// Runs every planned query over the night and checks that each field has values.
async fn check_efd(night: &NightFiles) {
    let m = &night.manifest;
    let config = Config::load(Path::new(&m.config)).unwrap();
    let plan = QueryPlan::new(&config, Semantics::Default);
    let source = FileSource::open(&night.efd).unwrap_or_else(|e| panic!("{e}"));
    for group in &plan.groups {
        let query = TopicQuery::for_group(group, m.night());
        let frame = run_query(&source, &query, Semantics::Default)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", group.topic));
        assert!(!frame.is_empty(), "{}: no rows over the night", group.topic);
        for field in &group.fields {
            let column = frame
                .column(field)
                .unwrap_or_else(|| panic!("{}: no column {field}", group.topic));
            assert!(
                (0..column.len()).any(|i| column.is_present(i)),
                "{}: {field} has no value over the night",
                group.topic
            );
        }
        // Subsets select rows.
        for &c in &group.columns {
            let column = &config.columns[c];
            if let Some(subset) = &column.subset {
                let values = subset.value.strings();
                let data = frame.column(&subset.field).unwrap();
                let matching = (0..data.len())
                    .filter(|&i| match data {
                        transform_core::ColumnData::Int(v) => {
                            v[i].is_some_and(|x| values.contains(&x.to_string()))
                        }
                        transform_core::ColumnData::Str(v) => {
                            v[i].as_ref().is_some_and(|x| values.contains(x))
                        }
                        _ => false,
                    })
                    .count();
                assert!(matching > 0, "{}: no row of its subset", column.name);
                assert!(
                    matching < data.len(),
                    "{}: only rows of its subset",
                    column.name
                );
            }
        }
        // Events: nothing inside the first exposure without the look-back, a value with it.
        if group.start_offset_nanos != 0 {
            let first = m.items.iter().find(|i| !i.is_visit).unwrap();
            let window =
                TimeRange::new(UtcNanos(first.begin_utc_ns), UtcNanos(first.end_utc_ns)).unwrap();
            let without = source
                .select(efd_client::Select {
                    topic: &group.topic,
                    fields: &group.fields,
                    range: window,
                    aggregation: None,
                })
                .await
                .unwrap();
            assert!(
                without.is_empty(),
                "{}: an event inside exposure 1",
                group.topic
            );
            let with = run_query(
                &source,
                &TopicQuery::for_group(group, window),
                Semantics::Default,
            )
            .await
            .unwrap();
            assert!(
                !with.is_empty(),
                "{}: the look-back finds nothing",
                group.topic
            );
        }
    }
    // The manifest's row counts are the file's.
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    for line in std::fs::read_to_string(&night.efd).unwrap().lines() {
        let name = line.split(' ').next().unwrap();
        *lines.entry(name.to_owned()).or_default() += 1;
    }
    let manifest: BTreeMap<String, u64> =
        m.topics.iter().map(|t| (t.name.clone(), t.rows)).collect();
    assert_eq!(lines, manifest);
}

use efd_client::EfdSource as _;

#[tokio::test]
async fn demo_night_reads_back_through_butler_reader_and_the_file_source() {
    let dir = tempfile::tempdir().unwrap();
    let night = Night::generate(&small(dir.path())).unwrap();
    let m = &night.manifest;
    assert_eq!(Manifest::load(&night.manifest_path).unwrap(), *m);
    let exposures = m.items.iter().filter(|i| !i.is_visit).count();
    let visits = m.items.len() - exposures;
    assert_eq!(exposures, 10);
    assert!(visits > 0 && visits < exposures, "{visits} visits");
    assert!(m.items.iter().all(|i| i.day_obs == 20251001));
    check_registry(&night, Instrument::Latiss).await;
    check_efd(&night).await;
}

#[tokio::test]
async fn default_demo_night_is_a_few_mb() {
    let dir = tempfile::tempdir().unwrap();
    let night = Night::generate(&SynthOptions::new(dir.path())).unwrap();
    let m = &night.manifest;
    assert_eq!(m.items.iter().filter(|i| !i.is_visit).count(), 40);
    assert!(
        m.efd_bytes > 500_000 && m.efd_bytes < 8_000_000,
        "{} bytes",
        m.efd_bytes
    );
}

#[tokio::test]
async fn realistic_rates_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let night = Night::generate(&small(dir.path()).realistic()).unwrap();
    let m = &night.manifest;
    let mount = m.topics.iter().find(|t| t.name.contains("ATMCS")).unwrap();
    assert_eq!(
        mount.interval_ns, NANOS_PER_SECOND,
        "packed rows stay 1 s apart"
    );
    let forces = m.topics.iter().find(|t| t.name.contains("MTM1M3")).unwrap();
    assert_eq!(forces.interval_ns, NANOS_PER_SECOND / 10);
    check_efd(&night).await;
}

#[tokio::test]
async fn real_lsstcam_config_generates_and_reads_back() {
    let config = reference_config("config_lsstcam.yaml");
    if !config.is_file() {
        panic!("missing {}", config.display());
    }
    let dir = tempfile::tempdir().unwrap();
    let night = Night::generate(&SynthOptions {
        instrument: Instrument::LsstCam,
        config,
        minutes: 10,
        exposures: 5,
        ..SynthOptions::new(dir.path())
    })
    .unwrap();
    assert!(night.manifest.topics.len() > 10);
    check_registry(&night, Instrument::LsstCam).await;
    check_efd(&night).await;
}

#[test]
fn real_latiss_config_generates() {
    let dir = tempfile::tempdir().unwrap();
    let night = Night::generate(&SynthOptions {
        config: reference_config("config_latiss.yaml"),
        minutes: 10,
        exposures: 5,
        ..SynthOptions::new(dir.path())
    })
    .unwrap();
    assert!(night.manifest.topics.len() > 5);
}

#[test]
fn same_seed_same_files_other_seed_other_data() {
    let files = |seed: u64| {
        let dir = tempfile::tempdir().unwrap();
        let night = Night::generate(&SynthOptions {
            seed,
            ..small(dir.path())
        })
        .unwrap();
        let read = |p: &Path| std::fs::read(p).unwrap();
        let out = (
            read(&night.efd),
            read(&night.manifest_path),
            read(&night.registry),
            read(&night.butler.join("butler.yaml")),
        );
        drop(dir);
        out
    };
    let a = files(7);
    let b = files(7);
    assert!(a == b, "same seed, different files");
    let c = files(8);
    assert_ne!(a.0, c.0);
}

#[test]
fn day_obs_rolls_over_at_noon_utc() {
    let t = |s: i64| UtcNanos(s * NANOS_PER_SECOND);
    assert_eq!(day_obs_of(t(1_759_366_800)), 20251001); // 2025-10-02T01:00Z
    assert_eq!(day_obs_of(t(1_759_406_399)), 20251001); // 11:59:59Z
    assert_eq!(day_obs_of(t(1_759_406_400)), 20251002); // 12:00Z
    assert_eq!(day_obs_of(t(951_825_600)), 20000229); // 2000-02-29T12:00Z
}

/// A table's `[(column, type)]` and table constraint lines.
type TableShape = (Vec<(String, String)>, Vec<String>);

/// The shape of each `CREATE TABLE` in `sql`, by table name.
fn tables(sql: &str) -> BTreeMap<String, TableShape> {
    let mut out = BTreeMap::new();
    let mut rest = sql;
    while let Some(at) = rest.find("CREATE TABLE ") {
        let body = &rest[at + "CREATE TABLE ".len()..];
        let open = body.find('(').unwrap();
        let name = body[..open].trim().trim_matches('"').to_owned();
        let end = body.find("\n)").unwrap();
        let mut columns = Vec::new();
        let mut constraints = Vec::new();
        for line in body[open + 1..end].lines() {
            let line = line.trim().trim_end_matches(',').trim();
            if line.is_empty() {
                continue;
            }
            let first = line.split_whitespace().next().unwrap();
            if ["PRIMARY", "CONSTRAINT", "UNIQUE", "FOREIGN", "CHECK"].contains(&first) {
                constraints.push(line.split_whitespace().collect::<Vec<_>>().join(" "));
            } else {
                let mut words = line.split_whitespace();
                let column = words.next().unwrap().trim_matches('"').to_owned();
                let ty = words.next().unwrap().to_owned();
                columns.push((column, ty));
            }
        }
        out.insert(name, (columns, constraints));
        rest = &body[end..];
    }
    out
}

#[test]
fn registry_ddl_matches_the_reference_registry() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/butler-registry/registry_sqlite.sql");
    let reference = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let reference = tables(&reference);
    let ours = tables(&registry::DDL.join(";\n\n"));
    assert_eq!(ours.len(), registry::DDL.len());
    for (name, (columns, constraints)) in &ours {
        let (want_columns, want_constraints) = reference
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not a registry table"));
        assert_eq!(columns, want_columns, "columns of {name}");
        assert_eq!(constraints, want_constraints, "constraints of {name}");
    }
    for needed in [
        "instrument",
        "physical_filter",
        "day_obs",
        "exposure",
        "visit",
    ] {
        assert!(ours.contains_key(needed), "{needed} is missing");
    }
}
