//! Opening the pipeline: config errors first, unusable URLs without their passwords, a missing
//! schema refused unless migrating, and everything connected when it is there.

use std::path::PathBuf;

use efd_client::{EfdLocation, EfdOptions};
use pipeline::{Pipeline, PipelineError, PipelineOptions};
use test_support::butler::{ExpectedRegistry, make_registry};
use transform_core::{Instrument, Semantics};

fn demo_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/demo-config.yaml")
}

fn options(dir: &std::path::Path, repo: &str) -> PipelineOptions {
    let efd = dir.join("efd.lp");
    std::fs::write(&efd, "").unwrap();
    PipelineOptions {
        instrument: Instrument::Latiss,
        config_path: demo_config(),
        repo: repo.to_owned(),
        db_urls: vec![format!("sqlite:///{}", dir.join("consdb.db").display())],
        efd: EfdOptions::new(EfdLocation::File(efd)),
        semantics: Semantics::Default,
        migrate: false,
    }
}

fn fail(
    result: Result<(Pipeline, scheduler_store::SchedulerStore), PipelineError>,
) -> PipelineError {
    match result {
        Ok(_) => panic!("opening must fail"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn config_and_url_errors_come_first_and_hide_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path(), "/nonexistent");
    o.config_path = dir.path().join("missing.yaml");
    let err = fail(Pipeline::open(&o, &|_| None).await).to_string();
    assert!(err.contains("missing.yaml"), "{err}");
    let mut o = options(dir.path(), "/nonexistent");
    o.db_urls = vec!["mysql://u:Hunter2-Pw@h/db".to_owned()];
    let err = fail(Pipeline::open(&o, &|_| None).await).to_string();
    assert!(
        err.contains("ConsDB URL number 1") && !err.contains("Hunter2-Pw"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_schema_is_refused_unless_migrating() {
    let dir = tempfile::tempdir().unwrap();
    let registry = ExpectedRegistry::from_json(&make_registry(&dir.path().join("repo"), None));
    let mut o = options(dir.path(), registry.repo.to_str().unwrap());
    let err = fail(Pipeline::open(&o, &|_| None).await);
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains("efd_latiss") && text.contains("exposure_efd"),
        "lists what is missing: {text}"
    );
    o.migrate = true;
    let (pipeline, _store) = Pipeline::open(&o, &|_| None).await.unwrap();
    assert_eq!(pipeline.transformer().plan().summary().groups, 5);
    // Migrated once, it opens without --migrate.
    o.migrate = false;
    Pipeline::open(&o, &|_| None).await.unwrap();
}
