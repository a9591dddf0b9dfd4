//! Records of what the fault-injection and fuzzing tests did, for `docs/reliability.md`.
//!
//! Each test that injects faults or fuzzes calls [`record`] once at its end (after its assertions
//! passed) with what it injected, how many times, and the outcome. Records land as one JSON file per
//! test in `<target>/faults/`; `cargo run -p xtask -- reliability` turns them into the table of
//! `docs/reliability.md`, so the document says what the last run of the suite showed.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One test's account of its faults or fuzzing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// The group in the document: `fault`, `fuzz`, `bad input` or `secrets`.
    pub kind: String,
    /// A short name of the fault or target, e.g. `crash anywhere` or `/query JSON parser`.
    pub name: String,
    /// What was injected or generated, e.g. `SIGKILL of a random worker of 3, every 1-3 s`.
    pub injected: String,
    /// How many times (kills, outages, inputs, cases).
    pub times: u64,
    /// What the test established, e.g. `200/200 tasks completed, rows equal a clean run`.
    pub outcome: String,
    /// The test that produced the record (`binary::function`).
    pub test: String,
}

/// The directory records are written to: `<target>/faults`, found from the test executable's
/// place (`<target>/<profile>/deps/<test>`), or `CARGO_TARGET_DIR`.
pub fn faults_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            // <target>/<profile>/deps/<exe> → <target>
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("faults")
}

/// Writes `record` to `<target>/faults/<test>.json` (the test name with `::` as `__`).
///
/// # Panics
///
/// If the directory or file cannot be written.
pub fn record(
    kind: &str,
    name: &str,
    injected: &str,
    times: u64,
    outcome: &str,
    test: &str,
) -> PathBuf {
    let record = FaultRecord {
        kind: kind.to_owned(),
        name: name.to_owned(),
        injected: injected.to_owned(),
        times,
        outcome: outcome.to_owned(),
        test: test.to_owned(),
    };
    let dir = faults_dir();
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("test-support: cannot create {}: {e}", dir.display()));
    let file: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{file}.json"));
    let text = serde_json::to_string_pretty(&record).expect("a record serializes");
    std::fs::write(&path, text)
        .unwrap_or_else(|e| panic!("test-support: cannot write {}: {e}", path.display()));
    path
}
