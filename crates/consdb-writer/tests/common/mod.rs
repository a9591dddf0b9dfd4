//! Helpers shared by the consdb-writer integration tests: the shipped configs in `../shared/`, a
//! small config touching every datatype, the venv's `felis`, and connection shortcuts.

#![allow(dead_code, unreachable_pub)] // Each test binary uses a different subset.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use consdb_writer::{ConsDb, EfdSchema, MigrateMode};
use db_connect::DbUrl;
use test_support::Postgres;
use transform_core::{Config, Instrument, UtcNanos};

/// The instruments with shipped configs and reference schemas.
pub const SHIPPED: [Instrument; 3] = [
    Instrument::Latiss,
    Instrument::LsstCam,
    Instrument::LsstComCam,
];

/// 2024-06-01T12:00:00Z, the `created_at` of the tests' first writes.
pub const NOW: UtcNanos = UtcNanos(1_717_243_200_000_000_000);
/// One day later.
pub const LATER: UtcNanos = UtcNanos(1_717_329_600_000_000_000);

/// The workspace root.
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The project's `shared/` directory: `$TRANSFORMED_EFD_SHARED`, else `../shared` beside the clone.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("TRANSFORMED_EFD_SHARED").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    assert!(
        dir.join("reference/consdb").is_dir(),
        "the shared reference data is missing: expected {}/reference/consdb (set \
         TRANSFORMED_EFD_SHARED to the directory that holds reference/)",
        dir.display()
    );
    dir
}

/// The shipped config of an instrument (`reference/consdb/config/config_<i>.yaml`).
pub fn shipped_config(instrument: Instrument) -> Config {
    let path = shared_dir().join(format!("reference/consdb/config/config_{instrument}.yaml"));
    Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The reference Felis schema of an instrument.
pub fn reference_schema_path(instrument: Instrument) -> PathBuf {
    shared_dir().join(format!("reference/consdb/schemas/efd_{instrument}.yaml"))
}

/// The schema of a shipped config.
pub fn shipped_schema(instrument: Instrument) -> EfdSchema {
    EfdSchema::new(&shipped_config(instrument), instrument).unwrap()
}

/// One config column in the shipped format.
pub fn column(name: &str, datatype: &str, tables: &str, unpivoted: bool) -> String {
    format!(
        "- name: {name}\n  tables: {tables}\n  function: mean\n  datatype: {datatype}\n  \
         ivoa: {{\"unit\": \"deg_C\", \"ucd\": \"meta.ucd;stat.mean\"}}\n  description: Column {name}.\n  \
         packed_series: false\n  store_unpivoted: {unpivoted}\n  topics:\n  - name: lsst.sal.ESS.temperature\n    \
         fields:\n    - name: temperatureItem0\n"
    )
}

/// A config of the given columns.
pub fn config_of(columns: &[String]) -> Config {
    let text = format!("version: \"0.1.0\"\ncolumns:\n{}", columns.join("\n"));
    Config::parse(&text, "small.yaml").unwrap_or_else(|e| panic!("{e}"))
}

/// The small test config: one column per datatype in both pivoted tables, one exposure-only column
/// and one unpivoted property.
pub fn small_columns() -> Vec<String> {
    let both = "[\"exposure_efd\", \"visit1_efd\"]";
    vec![
        column("temp_mean", "float", both, false),
        column("temp_double", "double", both, false),
        column("count_int", "int", both, false),
        column("count_long", "long", both, false),
        column("count_short", "short", both, false),
        column("count_byte", "byte", both, false),
        column("flag", "boolean", both, false),
        column("jitter", "float", "[\"exposure_efd\"]", false),
        column(
            "forces_mean",
            "float",
            "[\"exposure_efd_unpivoted\", \"visit1_efd_unpivoted\"]",
            true,
        ),
    ]
}

/// The small test config.
pub fn small_config() -> Config {
    config_of(&small_columns())
}

/// The small test config's schema, for LATISS.
pub fn small_schema() -> EfdSchema {
    EfdSchema::new(&small_config(), Instrument::Latiss).unwrap()
}

/// The venv's `felis` command; panics with the fix when it is missing.
pub fn felis() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import felis"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    let felis = repo_root().join(".venv/bin/felis");
    assert!(
        ok && felis.is_file(),
        "lsst-felis is missing from {}: run ./scripts/install-deps.sh",
        python.display()
    );
    felis
}

/// Runs `felis <args>` and returns (success, stdout + stderr).
pub fn run_felis(args: &[&str]) -> (bool, String) {
    let output = Command::new(felis())
        .args(args)
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .expect("felis runs");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// A URL of database `db` on a test server.
pub fn pg_url(pg: &Postgres, db: &str) -> DbUrl {
    DbUrl::parse(&pg.url(db)).unwrap()
}

/// A fresh database `db` on `pg`, connected for `schema`, not migrated.
pub async fn pg_consdb(pg: &Postgres, db: &str, schema: EfdSchema) -> ConsDb {
    pg.create_database(db);
    ConsDb::connect(schema, &[pg_url(pg, db)], None)
        .await
        .unwrap()
}

/// Like [`pg_consdb`], migrated.
pub async fn pg_migrated(pg: &Postgres, db: &str, schema: EfdSchema) -> ConsDb {
    let mut consdb = pg_consdb(pg, db, schema).await;
    consdb.migrate(MigrateMode::Apply).await.unwrap();
    consdb
}

/// An SQLite URL for a file.
pub fn sqlite_url(path: &Path) -> DbUrl {
    DbUrl::parse(&format!("sqlite:///{}", path.display())).unwrap()
}
