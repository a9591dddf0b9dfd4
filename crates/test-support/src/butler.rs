//! Butler registries made by the real `lsst-daf-butler`, with what daf_butler itself returns for them.
//!
//! `scripts/install-deps.sh` (run by `make test`) creates a Python venv at `<repo>/.venv` with
//! `lsst-daf-butler` and `psycopg2-binary`. [`make_registry`] runs
//! `crates/butler-reader/tests/fixtures/make_registry.py` with that venv's Python: it makes a Butler
//! repository (SQLite registry, or PostgreSQL under a chosen schema) holding a fixed data set of
//! LATISS and LSSTCam exposures and visits, and writes `expected.json`, the records
//! `butler.query_dimension_records(...)` returns for a set of timespan-overlap and day_obs queries.
//! The script's docstring describes the data and the queries; [`ExpectedRegistry`] is the typed
//! view of `expected.json`. [`make_registry_from_manifest`] registers a synthetic night's exposures
//! and visits (the `night.json` of `transformed_efd_examples::synth`) instead of the fixed data set.
//!
//! ```no_run
//! use test_support::butler::{ExpectedRegistry, make_registry};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let json = make_registry(&dir.path().join("repo"), None);
//! let expected = ExpectedRegistry::from_json(&json);
//! assert_eq!(expected.registry, "sqlite");
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde::Deserialize;

const MISSING_VENV: &str = "test-support: the Butler test venv is missing: run \
                            `./scripts/install-deps.sh` (or `make test`), which creates .venv with \
                            lsst-daf-butler";

/// The repository root: two levels above this crate's manifest directory.
fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The script that makes a registry and its `expected.json`.
pub fn make_registry_script() -> PathBuf {
    repo_root().join("crates/butler-reader/tests/fixtures/make_registry.py")
}

/// The test venv's Python, `<repo>/.venv/bin/python`.
///
/// Panics with "the Butler test venv is missing: run `./scripts/install-deps.sh` (or `make test`),
/// which creates .venv with lsst-daf-butler" if it is missing or cannot `import lsst.daf.butler`.
/// The check runs once per process.
pub fn python() -> PathBuf {
    static CHECKED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let python = repo_root().join(".venv/bin/python");
            let output = Command::new(&python)
                .args(["-c", "import lsst.daf.butler"])
                .stdin(Stdio::null())
                .output();
            match output {
                Ok(output) if output.status.success() => Ok(python),
                Ok(output) => Err(format!(
                    "{MISSING_VENV}\n({} cannot import lsst.daf.butler: {})",
                    python.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                )),
                Err(e) => Err(format!(
                    "{MISSING_VENV}\n(cannot run {}: {e})",
                    python.display()
                )),
            }
        })
        .clone()
        .unwrap_or_else(|message| panic!("{message}"))
}

/// Makes a Butler repository in `out` with the real daf_butler and returns its parsed
/// `out/expected.json` (see [`ExpectedRegistry`] for a typed view).
///
/// The registry is SQLite (`out/gen3.sqlite3`) unless `postgres` is `Some((url, namespace))`: then it
/// lives in that PostgreSQL database under schema `namespace`, and `out/butler.yaml` says so. The
/// database must exist; the script creates the `btree_gist` extension when the role may. `out` is
/// created if missing and must not hold a repository already. Takes a few seconds.
///
/// Panics with the script's output if it fails, or as [`python`] does if the venv is missing.
pub fn make_registry(out: &Path, postgres: Option<(&str, &str)>) -> serde_json::Value {
    run_script(out, None, postgres)
}

/// Makes a Butler repository in `out` with the real daf_butler holding the exposures and visits of
/// a synthetic night, and returns its parsed `out/expected.json`.
///
/// `manifest` is the `night.json` the synthetic-night generator writes
/// (`transformed_efd_examples::synth::Manifest`): its instrument, and its items, each an exposure or
/// a visit with `id`, `day_obs`, `seq_num`, UTC `begin_utc_ns`/`end_utc_ns`, `physical_filter`,
/// `observation_type` and `exposure_time`. They are registered through daf_butler's own API
/// (`registry.insertDimensionData`) instead of the fixed data set of [`make_registry`]: the
/// instrument, its physical filters (band = the filter's first letter after any `SDSS`), the
/// day_obs records, a group and an exposure per exposure item, and per visit item a visit (visit
/// system 0), its membership and its `visit_definition` to the exposure of the same id (every visit
/// needs one). Timespans are stored as TAI (UTC + 37 s; items before 2017 are refused).
///
/// `expected.json` then holds, per element (exposure, visit), what daf_butler returns for the
/// timespan-overlap query over the whole night (from the whole minute before the first item to a
/// minute after the last) and for the day_obs range of the night; parse it with
/// [`ExpectedRegistry::from_json`].
///
/// SQLite or PostgreSQL (`postgres = Some((url, namespace))`) as for [`make_registry`]; the same
/// panics, plus the script's error for a manifest it cannot use (no items, an unknown instrument,
/// a visit without an exposure of its id).
pub fn make_registry_from_manifest(
    out: &Path,
    manifest: &Path,
    postgres: Option<(&str, &str)>,
) -> serde_json::Value {
    run_script(out, Some(manifest), postgres)
}

/// Runs `make_registry.py` (with `--items` when `items` is given) and reads `out/expected.json`.
fn run_script(
    out: &Path,
    items: Option<&Path>,
    postgres: Option<(&str, &str)>,
) -> serde_json::Value {
    let python = python();
    let script = make_registry_script();
    let mut command = Command::new(&python);
    command.arg(&script).arg("--out").arg(out);
    if let Some((url, namespace)) = postgres {
        command.args(["--postgres", url, "--namespace", namespace]);
    }
    if let Some(items) = items {
        command.arg("--items").arg(items);
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("test-support: cannot run {}: {e}", python.display()));
    if !output.status.success() {
        panic!(
            "test-support: {} failed ({}) for {}:\n{}{}",
            script.display(),
            output.status,
            out.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let path = out.join("expected.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("test-support: cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("test-support: {} is not JSON: {e}", path.display()))
}

/// `expected.json`: what daf_butler returned for the registry [`make_registry`] made.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRegistry {
    /// The repository directory (absolute): holds `butler.yaml`.
    pub repo: PathBuf,
    /// `"sqlite"` or `"postgresql"`.
    pub registry: String,
    /// The PostgreSQL schema of the registry; `None` for SQLite.
    pub namespace: Option<String>,
    /// Timespan-overlap queries, as the Python service runs them.
    pub overlaps: Vec<OverlapQuery>,
    /// day_obs range queries.
    pub day_obs: Vec<DayObsQuery>,
}

impl ExpectedRegistry {
    /// Parses the value [`make_registry`] returns; panics if it does not have the expected shape.
    pub fn from_json(value: &serde_json::Value) -> ExpectedRegistry {
        ExpectedRegistry::deserialize(value)
            .unwrap_or_else(|e| panic!("test-support: unexpected expected.json shape: {e}"))
    }
}

/// `query_dimension_records(element, where="instrument=instr and <element>.timespan OVERLAPS
/// (T'<start>/utc', T'<end>/utc')", order_by="<element>.timespan.begin", limit=None)`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlapQuery {
    /// The Butler instrument name (`LATISS`, `LSSTCam`).
    pub instrument: String,
    /// `"exposure"` or `"visit"`.
    pub element: String,
    /// The start of the window: UTC nanoseconds since 1970 (the `T'...'` literal, exactly).
    pub start_utc_ns: i64,
    /// The end of the window (exclusive): UTC nanoseconds since 1970.
    pub end_utc_ns: i64,
    /// The records, in daf_butler's order (by timespan begin).
    pub records: Vec<ExpectedRecord>,
}

/// `query_dimension_records(element, where="instrument=instr and day_obs >= d0 and day_obs <= d1",
/// order_by="day_obs", limit=None)`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayObsQuery {
    /// The Butler instrument name.
    pub instrument: String,
    /// `"exposure"` or `"visit"`.
    pub element: String,
    /// The first day_obs (inclusive).
    pub day_obs_start: i64,
    /// The last day_obs (inclusive).
    pub day_obs_end: i64,
    /// The records, sorted by (day_obs, seq_num, id), since daf_butler orders ties arbitrarily.
    pub records: Vec<ExpectedRecord>,
}

/// One exposure or visit record, as daf_butler returned it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRecord {
    /// The exposure or visit id.
    pub id: i64,
    /// The day_obs (YYYYMMDD).
    pub day_obs: i64,
    /// The sequence number.
    pub seq_num: Option<i64>,
    /// The timespan's begin as stored: TAI nanoseconds since 1970; `None` for a NULL timespan.
    pub begin_tai_ns: Option<i64>,
    /// The timespan's end (exclusive) as stored: TAI nanoseconds; `None` for a NULL timespan.
    pub end_tai_ns: Option<i64>,
    /// The physical filter.
    pub physical_filter: String,
    /// The observation type (exposures only; always `None` for visits).
    pub observation_type: Option<String>,
    /// The exposure time in seconds.
    pub exposure_time: Option<f64>,
}
