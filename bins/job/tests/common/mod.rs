//! The fixture shared by `efd-job`'s tests: a one-column config (mean of ESS sensor 301, a subset
//! of `salIndex`) and 40 minutes of its telemetry from 2025-10-02T02:50:00Z, one row a second
//! alternating between sensors 301 and 302.

use std::fmt::Write as _;

pub(crate) const CONFIG: &str = r#"
version: "test"
columns:
- name: temp_mean
  tables: [exposure_efd, visit1_efd]
  function: mean
  datatype: float
  description: Mean of sensor 301.
  subset_field: salIndex
  subset_value: 301
  topics:
  - name: lsst.sal.ESS.temperature
    fields: [{name: temperatureItem0}, {name: salIndex}]
"#;

pub(crate) const S: i64 = 1_000_000_000;
pub(crate) const T0: i64 = 1_759_373_400 * S; // 2025-10-02T02:50:00Z

/// The telemetry as line protocol.
pub(crate) fn efd_lines() -> String {
    let mut s = String::new();
    for k in 0..2400i64 {
        let sal = if k % 2 == 0 { 301 } else { 302 };
        let _ = writeln!(
            s,
            "lsst.sal.ESS.temperature temperatureItem0={},salIndex={sal}i {}",
            k as f64,
            T0 + k * S
        );
    }
    s
}
