//! The reader against registries made by the real `lsst-daf-butler` (SQLite, and PostgreSQL in a
//! non-default namespace): every overlap and day_obs query returns exactly what
//! `butler.query_dimension_records(...)` returned; passwords come from db-auth.yaml or PGPASSWORD
//! and never reach errors or logs.

use std::collections::HashMap;

use butler_reader::{ButlerReader, Element, RecordSet};
use test_support::Postgres;
use test_support::butler::{ExpectedRecord, ExpectedRegistry, make_registry};
use transform_core::{Instrument, TimeRange, UtcNanos};

fn element(name: &str) -> Element {
    match name {
        "exposure" => Element::Exposure,
        "visit" => Element::Visit,
        other => panic!("unknown element {other}"),
    }
}

fn check(what: &str, got: &RecordSet, want: &[ExpectedRecord], sort: bool) {
    let usable: Vec<&ExpectedRecord> = want
        .iter()
        .filter(|r| r.begin_tai_ns.is_some() && r.seq_num.is_some())
        .collect();
    assert_eq!(
        got.skipped(),
        want.len() - usable.len(),
        "{what}: skipped records"
    );
    let mut got: Vec<_> = got.records.iter().collect();
    if sort {
        got.sort_by_key(|r| (r.day_obs, r.seq_num, r.id));
    }
    let rows = |r: &ExpectedRecord| {
        (
            r.id,
            r.day_obs,
            r.seq_num,
            r.begin_tai_ns,
            r.end_tai_ns,
            r.physical_filter.clone(),
            r.observation_type.clone(),
            r.exposure_time,
        )
    };
    let want: Vec<_> = usable.into_iter().map(rows).collect();
    let got: Vec<_> = got
        .iter()
        .map(|r| {
            (
                r.id,
                i64::from(r.day_obs),
                Some(i64::from(r.seq_num)),
                Some(r.begin_tai.0),
                Some(r.end_tai.0),
                r.physical_filter.clone(),
                r.observation_type.clone(),
                r.exposure_time,
            )
        })
        .collect();
    assert_eq!(got, want, "{what}");
}

async fn compare_with_daf_butler(reader: &mut ButlerReader, expected: &ExpectedRegistry) {
    assert!(!expected.overlaps.is_empty() && !expected.day_obs.is_empty());
    for q in &expected.overlaps {
        let instrument: Instrument = q.instrument.parse().unwrap();
        let range = TimeRange::new(UtcNanos(q.start_utc_ns), UtcNanos(q.end_utc_ns)).unwrap();
        let got = reader
            .overlapping(element(&q.element), instrument, range)
            .await
            .unwrap();
        // UTC timespans are the stored TAI ones less 37 s.
        for r in &got.records {
            assert_eq!(r.timespan.start().0, r.begin_tai.0 - 37_000_000_000);
        }
        let what = format!(
            "{} {} overlapping [{}, {})",
            q.instrument, q.element, q.start_utc_ns, q.end_utc_ns
        );
        check(&what, &got, &q.records, false);
    }
    for q in &expected.day_obs {
        let instrument: Instrument = q.instrument.parse().unwrap();
        let got = reader
            .by_day_obs(
                element(&q.element),
                instrument,
                i32::try_from(q.day_obs_start).unwrap(),
                i32::try_from(q.day_obs_end).unwrap(),
            )
            .await
            .unwrap();
        let what = format!(
            "{} {} day_obs {}..={}",
            q.instrument, q.element, q.day_obs_start, q.day_obs_end
        );
        check(&what, &got, &q.records, true);
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[tokio::test]
async fn sqlite_registry_matches_daf_butler() {
    let dir = tempfile::tempdir().unwrap();
    let expected = ExpectedRegistry::from_json(&make_registry(&dir.path().join("repo"), None));
    assert_eq!(expected.registry, "sqlite");
    let mut reader = ButlerReader::open(expected.repo.to_str().unwrap(), &no_env)
        .await
        .unwrap();
    assert!(reader.describe().starts_with("sqlite:///"));
    compare_with_daf_butler(&mut reader, &expected).await;
    // The same through the butler.yaml path and a file:// URL.
    let yaml = expected.repo.join("butler.yaml");
    let mut by_file = ButlerReader::open(&format!("file://{}", yaml.display()), &no_env)
        .await
        .unwrap();
    compare_with_daf_butler(&mut by_file, &expected).await;
}

#[tokio::test]
async fn postgres_registry_in_a_namespace_matches_daf_butler() {
    let pg = Postgres::start();
    pg.create_database("butler");
    let dir = tempfile::tempdir().unwrap();
    // daf_butler reads a directory name with a dot (`.tmpXYZ`) as a file name: use a subdirectory.
    let expected = ExpectedRegistry::from_json(&make_registry(
        &dir.path().join("repo"),
        Some((&pg.url("butler"), "butler_registry_test")),
    ));
    assert_eq!(expected.namespace.as_deref(), Some("butler_registry_test"));
    let mut reader = ButlerReader::open(expected.repo.to_str().unwrap(), &no_env)
        .await
        .unwrap();
    assert!(reader.describe().starts_with("postgresql://"));
    compare_with_daf_butler(&mut reader, &expected).await;
}

#[tokio::test]
async fn passwords_from_db_auth_or_pgpassword_and_never_shown() {
    const PASSWORD: &str = "Butl3r-Reader-Pw!";
    let pg = Postgres::start();
    pg.create_database("butler");
    let dir = tempfile::tempdir().unwrap();
    // daf_butler reads a directory name with a dot (`.tmpXYZ`) as a file name: use a subdirectory.
    let expected = ExpectedRegistry::from_json(&make_registry(
        &dir.path().join("repo"),
        Some((&pg.url("butler"), "butler_registry_test")),
    ));
    pg.create_role("reader", PASSWORD, false);
    pg.psql("butler", "GRANT USAGE ON SCHEMA butler_registry_test TO reader; GRANT SELECT ON ALL TABLES IN SCHEMA butler_registry_test TO reader");
    pg.require_password_auth();
    // A repository whose butler.yaml names the reader without a password, as the deployment does.
    let repo = dir.path().join("as_reader");
    std::fs::create_dir(&repo).unwrap();
    std::fs::write(
        repo.join("butler.yaml"),
        format!(
            "registry:\n  db: postgresql://reader@127.0.0.1:{}/butler\n  namespace: butler_registry_test\n",
            pg.port()
        ),
    )
    .unwrap();
    let repo = repo.to_str().unwrap().to_owned();
    let (logs, _guard) = test_support::capture_logs();

    // No password anywhere: a clear, permanent failure.
    let err = ButlerReader::open(&repo, &no_env).await.unwrap_err();
    assert!(!err.is_transient(), "{err:?}");

    // db-auth.yaml, private, matched by glob.
    let auth = dir.path().join("db-auth.yaml");
    std::fs::write(
        &auth,
        format!("- url: postgresql://127.0.0.*/butl*\n  password: \"{PASSWORD}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&auth, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let env: HashMap<&str, String> = [("LSST_DB_AUTH", auth.to_str().unwrap().to_owned())].into();
    let mut reader = ButlerReader::open(&repo, &|k| env.get(k).cloned())
        .await
        .unwrap();
    compare_with_daf_butler(&mut reader, &expected).await;

    // PGPASSWORD, as the deployment sets it today.
    let env: HashMap<&str, String> = [("PGPASSWORD", PASSWORD.to_owned())].into();
    let mut reader = ButlerReader::open(&repo, &|k| env.get(k).cloned())
        .await
        .unwrap();
    compare_with_daf_butler(&mut reader, &expected).await;

    // A wrong password: permanent, and neither it nor the right one shows.
    let env: HashMap<&str, String> = [("PGPASSWORD", "Wrong-Pw-123".to_owned())].into();
    let err = ButlerReader::open(&repo, &|k| env.get(k).cloned())
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    let shown = format!("{err} {err:?} {reader:?}");
    assert!(shown.contains("password authentication failed"), "{shown}");
    assert!(
        !shown.contains("Wrong-Pw-123") && !shown.contains(PASSWORD),
        "{shown}"
    );
    let logged = logs.text();
    assert!(
        !logged.contains(PASSWORD) && !logged.contains("Wrong-Pw-123"),
        "{logged}"
    );
}

#[tokio::test]
async fn butler_yaml_and_index_on_s3_with_a_profile() {
    const SECRET: &str = "S3cret/Key+With=Odd";
    let dir = tempfile::tempdir().unwrap();
    let expected = ExpectedRegistry::from_json(&make_registry(&dir.path().join("repo"), None));
    let s3 = test_support::S3Server::start("embargo-key", SECRET);
    s3.create_bucket("rubin-summit-users");
    // The registry file stays local; the config on S3 names it by absolute path.
    let sqlite = expected.repo.join("gen3.sqlite3");
    s3.put(
        "rubin-summit-users",
        "repo/butler.yaml",
        format!("registry:\n  db: sqlite:///{}\n", sqlite.display()).as_bytes(),
    );
    s3.put(
        "rubin-summit-users",
        "data-repos.yaml",
        b"embargo: s3://embargo@rubin-summit-users/repo/butler.yaml\n",
    );
    let encoded: String = SECRET
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let endpoint = s3.endpoint();
    let profile = endpoint.replacen("http://", &format!("http://embargo-key:{encoded}@"), 1);
    let env: HashMap<&str, String> = [
        ("LSST_RESOURCES_S3_PROFILE_embargo", profile.clone()),
        (
            "DAF_BUTLER_REPOSITORY_INDEX",
            "s3://embargo@rubin-summit-users/data-repos.yaml".to_owned(),
        ),
    ]
    .into();
    let lookup = |k: &str| env.get(k).cloned();
    let mut reader =
        ButlerReader::open("s3://embargo@rubin-summit-users/repo/butler.yaml", &lookup)
            .await
            .unwrap();
    compare_with_daf_butler(&mut reader, &expected).await;
    // The same repository by label, through an index that is itself on S3.
    let mut by_label = ButlerReader::open("embargo", &lookup).await.unwrap();
    compare_with_daf_butler(&mut by_label, &expected).await;

    // A wrong secret: permanent, and the secret does not show.
    let wrong: HashMap<&str, String> = [(
        "LSST_RESOURCES_S3_PROFILE_embargo",
        endpoint.replacen("http://", "http://embargo-key:not-the-secret@", 1),
    )]
    .into();
    let err = ButlerReader::open("s3://embargo@rubin-summit-users/repo/butler.yaml", &|k| {
        wrong.get(k).cloned()
    })
    .await
    .unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("not-the-secret") && !shown.contains(SECRET) && !shown.contains(&encoded),
        "{shown}"
    );
    // A missing key: a clear not-found naming the object.
    let err = ButlerReader::open("s3://embargo@rubin-summit-users/nope/butler.yaml", &lookup)
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    let shown = err.to_string();
    assert!(
        shown.contains("not found") && shown.contains("nope/butler.yaml"),
        "{shown}"
    );
}
