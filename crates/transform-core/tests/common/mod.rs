//! Helpers shared by the transform-core integration tests: where `../shared/` is, and building
//! columns and frames from the golden JSON.

#![allow(dead_code, unreachable_pub)] // Each test binary uses a different subset.

use std::path::PathBuf;

use serde_json::Value;
use transform_core::{
    Column, ColumnData, Datatype, Field, FitBasis, Frame, FrameColumn, Function, Subset,
    SubsetScalar, SubsetValue, Table, Topic,
};

/// The project's `shared/` directory: `$TRANSFORMED_EFD_SHARED`, else `../shared` beside the clone.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("TRANSFORMED_EFD_SHARED").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    assert!(
        dir.join("golden").is_dir(),
        "the shared reference data is missing: expected {}/golden (set TRANSFORMED_EFD_SHARED to the \
         directory that holds golden/ and reference/)",
        dir.display()
    );
    dir
}

/// Reads a JSON-lines file under `shared/`.
pub fn read_jsonl(relative: &str) -> Vec<Value> {
    let path = shared_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("golden line is JSON"))
        .collect()
}

/// A function from its golden name and args.
pub fn function(name: &str, args: &Value) -> Function {
    let uint = |key: &str, default: u32| {
        args.get(key)
            .and_then(Value::as_u64)
            .map_or(default, |v| u32::try_from(v).expect("small"))
    };
    match name {
        "mean" => Function::Mean,
        "max" => Function::Max,
        "min" => Function::Min,
        "most_recent_value" => Function::MostRecentValue,
        "stddev" => Function::Stddev {
            ddof: uint("ddof", 1),
        },
        "rms_from_polynomial_fit" => Function::RmsFromPolynomialFit {
            degree: uint("degree", 1),
            fit_basis: match args.get("fit_basis").and_then(Value::as_str) {
                Some("time") => FitBasis::Time,
                _ => FitBasis::Index,
            },
        },
        other => panic!("unknown golden function {other}"),
    }
}

/// A column over `fields` of a test topic, with an optional subset.
pub fn column(name: &str, function: Function, fields: &[String], subset: Option<Subset>) -> Column {
    Column {
        name: name.to_owned(),
        tables: Table::ALL.to_vec(),
        store_unpivoted: false,
        function,
        pre_aggregate_interval: None,
        datatype: Datatype::Float,
        ivoa: Default::default(),
        description: "golden".to_owned(),
        packed_series: false,
        subset,
        start_offset_hours: None,
        topics: vec![Topic {
            name: "lsst.sal.TEST.topic".to_owned(),
            fields: fields.iter().map(|f| Field { name: f.clone() }).collect(),
        }],
        line: 0,
    }
}

/// A subset from golden `subset_field` / `subset_value`.
pub fn subset(field: &Value, value: &Value) -> Option<Subset> {
    let field = field.as_str()?;
    let scalar = |v: &Value| match v {
        Value::Number(n) => SubsetScalar::Int(n.as_i64().expect("integer subset value")),
        Value::String(s) => SubsetScalar::Str(s.clone()),
        other => panic!("unexpected subset value {other}"),
    };
    let value = match value {
        Value::Array(vs) => SubsetValue::Any(vs.iter().map(scalar).collect()),
        v => SubsetValue::One(scalar(v)),
    };
    Some(Subset {
        field: field.to_owned(),
        value,
    })
}

/// A frame from golden `timestamps_ns` and `fields`; `salIndex` is an integer field, the rest float.
pub fn frame(timestamps: &Value, fields: &Value) -> Frame {
    let ts: Vec<i64> = timestamps
        .as_array()
        .expect("timestamps")
        .iter()
        .map(|v| v.as_i64().expect("ns"))
        .collect();
    let columns = fields
        .as_object()
        .expect("fields")
        .iter()
        .map(|(name, values)| {
            let values = values.as_array().expect("values");
            let data = if name == "salIndex" {
                ColumnData::Int(values.iter().map(Value::as_i64).collect())
            } else {
                ColumnData::Float(
                    values
                        .iter()
                        .map(|v| v.as_f64().unwrap_or(f64::NAN))
                        .collect(),
                )
            };
            FrameColumn::new(name.clone(), data)
        })
        .collect();
    Frame::new(ts, columns).expect("golden frame shape")
}

/// Relative comparison at 1e-9 (absolute below 1e-300), with `None` equal only to `None`.
pub fn same(got: Option<f64>, want: &Value) -> bool {
    match (got, want.as_f64()) {
        (None, None) => want.is_null(),
        (Some(g), Some(w)) => (g - w).abs() <= 1e-9 * w.abs().max(1e-300),
        _ => false,
    }
}
