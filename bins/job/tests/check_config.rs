//! `efd-job --check-config --efd URL` against a real `influxd` and against a line-protocol file:
//! a misspelt field, a packed base used as a scalar, a missing topic, a string field under `mean`
//! and a missing subset field are each reported with the column's line and exit code 1; a sound
//! config exits 0. The real LATISS config against telemetry shaped like the EFD's (packed arrays
//! only as `<base>0..99`) reports exactly its two packed-scalar columns.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use test_support::Influxd;
use transform_core::Config;

const T: i64 = 1_759_373_400_000_000_000;

const MISTAKES: &str = r#"
version: "t"
columns:
- name: sound
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  subset_field: salIndex
  subset_value: 301
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: temperatureItem0}, {name: salIndex}]
- name: misspelt
  tables: [exposure_efd]
  function: max
  datatype: float
  description: d
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: temperatureItme1}]
- name: packed_as_scalar
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  topics:
  - name: lsst.sal.ATMCS.mount_AzEl_Encoders
    fields: [{name: azimuthCalculatedAngle}]
- name: no_such_topic
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  topics:
  - name: lsst.sal.ESS.temperatur
    fields: [{name: temperatureItem0}]
- name: string_mean
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: location}]
- name: subset_missing
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  subset_field: sensorIndex
  subset_value: 2
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: temperatureItem0}, {name: sensorIndex}]
"#;

const SOUND: &str = r#"
version: "t"
columns:
- name: sound
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: temperatureItem0}, {name: temperatureItem1}]
- name: packed
  tables: [exposure_efd]
  function: mean
  datatype: float
  description: d
  packed_series: true
  topics:
  - name: lsst.sal.ATMCS.mount_AzEl_Encoders
    fields: [{name: azimuthCalculatedAngle}]
"#;

/// Telemetry for the mistakes config: ESS with two float sensors, a string field and `salIndex`;
/// the mount encoders only as packed arrays, as in the EFD.
fn efd_lines() -> String {
    let mut s = String::new();
    for k in 0..3i64 {
        let _ = writeln!(
            s,
            "lsst.sal.ESS.temperature temperatureItem0={k}.5,temperatureItem1=2.5,location=\"dome\",salIndex=301i {}",
            T + k * 1_000_000_000
        );
        let packed: Vec<String> = (0..100)
            .map(|i| format!("azimuthCalculatedAngle{i}={i}.25,elevationCalculatedAngle{i}=45.5"))
            .collect();
        let _ = writeln!(
            s,
            "lsst.sal.ATMCS.mount_AzEl_Encoders {},cRIO_timestamp={}.0 {}",
            packed.join(","),
            1_759_373_437 + k,
            T + k * 1_000_000_000
        );
    }
    s
}

/// Runs `efd-job --check-config` with `config` against `efd`: exit code and stdout.
fn check(dir: &Path, config: &str, efd: &str) -> (Option<i32>, String) {
    let path = dir.join(format!("config-{}.yaml", config.len()));
    std::fs::write(&path, config).unwrap();
    check_file(&path, efd)
}

fn check_file(config: &Path, efd: &str) -> (Option<i32>, String) {
    let out = test_support::service_command(env!("CARGO_BIN_EXE_efd-job"))
        .arg("-c")
        .arg(config)
        .args(["-i", "latiss", "--check-config", "-E", efd])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The report line of `column`, if any.
fn line_of<'a>(report: &'a str, column: &str) -> Option<&'a str> {
    report
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(column))
}

fn assert_mistakes_reported(code: Option<i32>, report: &str, config: &Config) {
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("columns: 1 ok, 0 partial, 5 dead"),
        "{report}"
    );
    assert!(line_of(report, "sound").is_none(), "{report}");
    let expect = [
        ("misspelt", "did you mean `temperatureItem1`"),
        ("packed_as_scalar", "set `packed_series: true`"),
        ("no_such_topic", "did you mean `lsst.sal.ESS.temperature`"),
        ("string_mean", "holds string values"),
        ("subset_missing", "subset field `sensorIndex`"),
    ];
    for (column, says) in expect {
        let line = line_of(report, column).unwrap_or_else(|| panic!("{column}:\n{report}"));
        assert!(line.starts_with("dead"), "{line}");
        assert!(line.contains(says), "{line}");
        let number = config
            .columns
            .iter()
            .find(|c| c.name == column)
            .unwrap()
            .line;
        assert!(line.contains(&format!("(line {number},")), "{line}");
    }
}

#[test]
fn each_mistake_is_reported_with_its_line_against_influxd_and_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let influx = Influxd::start();
    influx.create_database("efd");
    influx.write("efd", &efd_lines());
    let file = dir.path().join("efd.lp");
    std::fs::write(&file, efd_lines()).unwrap();
    let config = Config::parse(MISTAKES, "t.yaml").unwrap();
    let file_url = format!("file://{}", file.display());
    for efd in [influx.url(), file_url.clone()] {
        let (code, report) = check(dir.path(), MISTAKES, &efd);
        assert_mistakes_reported(code, &report, &config);
        let (code, report) = check(dir.path(), SOUND, &efd);
        assert_eq!(code, Some(0), "{report}");
        assert!(
            report.contains("columns: 2 ok, 0 partial, 0 dead"),
            "{report}"
        );
    }
    // Without an EFD the check connects nowhere and passes.
    let out = test_support::service_command(env!("CARGO_BIN_EXE_efd-job"))
        .arg("-c")
        .arg(dir.path().join(format!("config-{}.yaml", MISTAKES.len())))
        .args(["-i", "latiss", "--check-config"])
        .env_remove("EFD_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("EFD"));
}

/// One row per topic of `config` with the fields the EFD has for it: each packed base as
/// `<base>0..99` with `cRIO_timestamp`, each other field as a scalar unless the topic holds it as a
/// packed array, subset fields as integers.
fn efd_shaped(config: &Config) -> String {
    let mut packed: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut scalar: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut subset: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for c in &config.columns {
        let topic = c.topic().name.as_str();
        let sub = c.subset.as_ref().map(|s| s.field.as_str());
        for f in &c.topic().fields {
            if Some(f.name.as_str()) == sub {
                subset.entry(topic).or_default().insert(&f.name);
            } else if c.packed_series {
                packed.entry(topic).or_default().insert(&f.name);
            } else {
                scalar.entry(topic).or_default().insert(&f.name);
            }
        }
    }
    let topics: BTreeSet<&str> = packed
        .keys()
        .chain(scalar.keys())
        .chain(subset.keys())
        .copied()
        .collect();
    let mut s = String::new();
    for topic in topics {
        let mut fields: Vec<String> = Vec::new();
        let bases = packed.get(topic).cloned().unwrap_or_default();
        for base in &bases {
            fields.extend((0..100).map(|i| format!("{base}{i}=1.5")));
        }
        if !bases.is_empty() {
            fields.push("cRIO_timestamp=1759373437.0".to_owned());
        }
        for f in scalar.get(topic).into_iter().flatten() {
            if !bases.contains(f) {
                fields.push(format!("{f}=2.5"));
            }
        }
        for f in subset.get(topic).into_iter().flatten() {
            fields.push(format!("{f}=1i"));
        }
        let _ = writeln!(s, "{topic} {} {T}", fields.join(","));
    }
    s
}

#[test]
fn the_real_latiss_config_has_exactly_its_two_packed_scalar_columns_dead() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/consdb/config/config_latiss.yaml");
    assert!(path.is_file(), "missing {}", path.display());
    let config = Config::load(&path).unwrap();
    let influx = Influxd::start();
    influx.create_database("efd");
    influx.write("efd", &efd_shaped(&config));
    let (code, report) = check_file(&path, &influx.url());
    assert_eq!(code, Some(1), "{report}");
    let flagged: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("dead") || l.starts_with("partial"))
        .collect();
    assert_eq!(flagged.len(), 2, "{report}");
    for column in ["at_azimuth_mean", "at_elevation_mean"] {
        let line = line_of(&report, column).unwrap_or_else(|| panic!("{column}:\n{report}"));
        assert!(line.starts_with("dead"), "{line}");
        assert!(line.contains("packed_series: true"), "{line}");
        assert!(line.contains("0`..`"), "{line}");
    }
    let total = config.columns.len();
    assert!(
        report.contains(&format!("columns: {} ok, 0 partial, 2 dead", total - 2)),
        "{report}"
    );
}
