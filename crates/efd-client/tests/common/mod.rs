//! Seed data and helpers shared by the efd-client integration tests: a synthetic EFD in line protocol
//! that exercises every shape the sources must handle, and frame comparison that treats NaN (missing)
//! as equal to NaN.

#![allow(dead_code, unreachable_pub)] // Each test binary uses a different subset.

use std::fmt::Write as _;

use efd_client::{EfdLocation, EfdOptions, HttpSource, TopicQuery};
use transform_core::{ColumnData, Frame, TimeRange, UtcNanos};

/// 2023-11-14T22:13:20Z, a whole second.
pub const T0: i64 = 1_700_000_000_000_000_000;
pub const SECOND: i64 = 1_000_000_000;

pub const ESS: &str = "lsst.sal.ESS.temperature";
pub const TAGGED: &str = "lsst.sal.TAG.topic";
pub const WIDE: &str = "lsst.sal.WIDE.topic";
pub const PACKED: &str = "lsst.sal.ATMCS.mount_AzEl_Encoders";
/// Samples per packed row.
pub const PACK_N: usize = 10;
/// TAI − UTC in 2023.
pub const LEAP: i64 = 37;

/// The seed, in line protocol with ns timestamps.
pub fn seed() -> String {
    let mut s = String::new();
    // ESS: 60 rows, one per second; odd rows 250 ms past the second (whole-second and fractional
    // timestamps mixed, which the reference loses); salIndex alternates 301/302 as a field; a string,
    // a boolean and an integer field; every 7th row lacks temperatureItem1.
    for k in 0..60i64 {
        let t = T0 + k * SECOND + if k % 2 == 1 { 250_000_000 } else { 0 };
        let sal = if k % 2 == 0 { 301 } else { 302 };
        let v0 = 10.0 + k as f64 * 0.5;
        let _ = write!(
            s,
            "{ESS} temperatureItem0={v0},salIndex={sal}i,count={k}i,ok={},status=\"s{k}\"",
            k % 3 == 0
        );
        if k % 7 != 0 {
            let _ = write!(s, ",temperatureItem1={}", 20.0 - k as f64 * 0.25);
        }
        let _ = writeln!(s, " {t}");
    }
    // salIndex as a tag: two series with identical timestamps.
    for k in 0..10i64 {
        let t = T0 + k * SECOND;
        let _ = writeln!(s, "{TAGGED},salIndex=301 value={} {t}", k as f64);
        let _ = writeln!(s, "{TAGGED},salIndex=302 value={} {t}", 100.0 + k as f64);
    }
    // 250 fields; rows 5..10 carry only fields 200..249 (absent from the first two chunks).
    for k in 0..20i64 {
        let t = T0 + k * 100_000_000 + 7; // sub-second and odd ns
        let lo = if (5..10).contains(&k) { 200 } else { 0 };
        let fields: Vec<String> = (lo..250)
            .map(|f| format!("f{f}={}", k * 1000 + f))
            .collect();
        let _ = writeln!(s, "{WIDE} {} {t}", fields.join(","));
    }
    // Packed: 5 rows of 4 bases × PACK_N samples, cRIO one second apart (TAI), published ~1 s later.
    for r in 0..5i64 {
        let crio = (T0 / SECOND + LEAP + r) as f64 + 0.5;
        let mut fields = vec![format!("cRIO_timestamp={crio}")];
        for (b, base) in [
            "azimuthCalculatedAngle",
            "elevationCalculatedAngle",
            "nasmyth1",
            "nasmyth2",
        ]
        .iter()
        .enumerate()
        {
            for i in 0..PACK_N {
                fields.push(format!(
                    "{base}{i}={}",
                    (b * 1000) as f64 + r as f64 * 10.0 + i as f64
                ));
            }
        }
        let _ = writeln!(
            s,
            "{PACKED} {} {}",
            fields.join(","),
            T0 + (r + 1) * SECOND + 123
        );
    }
    s
}

pub fn range(start: i64, end: i64) -> TimeRange {
    TimeRange::new(UtcNanos(start), UtcNanos(end)).expect("start <= end")
}

pub fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

pub fn query(topic: &str, fields: &[&str], r: TimeRange) -> TopicQuery {
    TopicQuery {
        topic: topic.to_owned(),
        fields: strings(fields),
        range: r,
        pre_aggregation: None,
        packed: false,
    }
}

/// Options for a local influxd: short timeouts and backoff so failure tests stay quick.
pub fn options(url: &str) -> EfdOptions {
    let mut o = EfdOptions::from_env(Some(url), &|_| None).expect("local URL");
    o.username = None;
    o.max_attempts = 3;
    o.backoff_base = std::time::Duration::from_millis(50);
    o.backoff_max = std::time::Duration::from_millis(200);
    o.connect_timeout = std::time::Duration::from_secs(2);
    o.request_timeout = std::time::Duration::from_secs(20);
    o
}

pub fn http(url: &str) -> HttpSource {
    HttpSource::new(options(url)).expect("http source")
}

pub fn file_options(path: &std::path::Path) -> EfdOptions {
    EfdOptions::new(EfdLocation::File(path.to_path_buf()))
}

/// Whether two frames hold the same rows, columns, types and values (NaN equal to NaN).
pub fn same_frame(a: &Frame, b: &Frame) -> Result<(), String> {
    if a.timestamps() != b.timestamps() {
        return Err(format!(
            "timestamps differ:\n{:?}\n{:?}",
            a.timestamps(),
            b.timestamps()
        ));
    }
    let names = |f: &Frame| {
        f.columns()
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    };
    if names(a) != names(b) {
        return Err(format!("columns differ: {:?} vs {:?}", names(a), names(b)));
    }
    for (x, y) in a.columns().iter().zip(b.columns()) {
        let equal = match (&x.data, &y.data) {
            (ColumnData::Float(p), ColumnData::Float(q)) => {
                p.len() == q.len()
                    && p.iter()
                        .zip(q)
                        .all(|(u, v)| u == v || (u.is_nan() && v.is_nan()))
            }
            (p, q) => p == q,
        };
        if !equal {
            return Err(format!(
                "column {} differs:\n{:?}\n{:?}",
                x.name, x.data, y.data
            ));
        }
    }
    Ok(())
}

pub fn floats(frame: &Frame, name: &str) -> Vec<f64> {
    match frame.column(name) {
        Some(ColumnData::Float(v)) => v.clone(),
        other => panic!("{name} is not a float column: {other:?}"),
    }
}
