//! Parity with the Python reference: `shared/golden/kernels.jsonl` (every case, both semantics) and
//! `shared/golden/columns.jsonl` (every case, reference semantics, pivoted and unpivoted).

mod common;

use serde_json::Value;
use transform_core::{Item, ItemKind, PreparedColumn, Semantics, TimeRange, UtcNanos};

use common::{column, frame, function, read_jsonl, same, subset};

fn item(id: i64, day_obs: i64, seq_num: i64, begin: i64, end: i64) -> Item {
    Item {
        id,
        day_obs: i32::try_from(day_obs).expect("day_obs"),
        seq_num: i32::try_from(seq_num).expect("seq_num"),
        timespan: TimeRange::new(UtcNanos(begin), UtcNanos(end)).expect("begin <= end"),
    }
}

#[test]
fn kernels_match_the_reference_in_both_semantics() {
    let cases = read_jsonl("golden/kernels.jsonl");
    assert_eq!(cases.len(), 1509, "kernels.jsonl changed size");
    let mut failures = Vec::new();
    for case in &cases {
        let fields: Vec<String> = case["fields"]
            .as_object()
            .expect("fields")
            .keys()
            .cloned()
            .collect();
        let col = column(
            "k",
            function(case["function"].as_str().expect("fn"), &case["args"]),
            &fields,
            None,
        );
        let data = frame(&case["timestamps_ns"], &case["fields"]);
        let w = &case["window_ns"];
        let it = item(
            0,
            20250101,
            0,
            w[0].as_i64().expect("begin"),
            w[1].as_i64().expect("end"),
        );
        for (semantics, key) in [
            (Semantics::Reference, "reference"),
            (Semantics::Default, "default"),
        ] {
            let want = &case["expected"][key];
            assert!(
                want.get("error").is_none(),
                "refusal cases are not expected in this file"
            );
            let got = PreparedColumn::new(&col, &data, semantics).value(&it);
            // An exact fit leaves a residual RMS that is rounding noise (numpy's LAPACK and our SVD
            // leave different noise, ~1e-15 of the data). Such a value is compared absolutely, against
            // 1e-9 of the data's magnitude; every other value relatively, at 1e-9.
            let noise_floor =
                case["function"] == "rms_from_polynomial_fit" && semantics == Semantics::Default;
            let floor = if noise_floor {
                1e-9 * magnitude(&case["fields"])
            } else {
                0.0
            };
            let close = same(got, want)
                || matches!((got, want.as_f64()), (Some(g), Some(w)) if (g - w).abs() <= floor);
            if !close {
                failures.push(format!(
                    "case {} {} {} {}: got {got:?}, want {want}",
                    case["id"], case["function"], case["args"], key
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} kernel expectations differ:\n{}",
        failures.len(),
        cases.len() * 2,
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The largest absolute value among the fields of a case.
fn magnitude(fields: &Value) -> f64 {
    fields
        .as_object()
        .expect("fields")
        .values()
        .flat_map(|v| {
            v.as_array()
                .expect("values")
                .iter()
                .filter_map(Value::as_f64)
        })
        .fold(0.0, |m, v| m.max(v.abs()))
}

#[test]
fn columns_match_the_reference() {
    let cases = read_jsonl("golden/columns.jsonl");
    assert_eq!(cases.len(), 120, "columns.jsonl changed size");
    let mut failures = Vec::new();
    let mut unpivoted_rows = 0;
    for case in &cases {
        let c = &case["column"];
        let fields: Vec<String> = c["topics"][0]["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| f["name"].as_str().expect("name").to_owned())
            .collect();
        let name = c["name"].as_str().expect("name");
        let col = column(
            name,
            function(
                c["function"].as_str().expect("fn"),
                c.get("function_args").unwrap_or(&Value::Null),
            ),
            &fields,
            subset(&c["subset_field"], &c["subset_value"]),
        );
        let data = frame(&case["topic"]["timestamps_ns"], &case["topic"]["fields"]);
        let prepared = PreparedColumn::new(&col, &data, Semantics::Reference);
        let items: Vec<Item> = case["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                item(
                    i["id"].as_i64().expect("id"),
                    i["day_obs"].as_i64().expect("day_obs"),
                    i["seq_num"].as_i64().expect("seq_num"),
                    i["begin_ns"].as_i64().expect("begin"),
                    i["end_ns"].as_i64().expect("end"),
                )
            })
            .collect();
        let expected = &case["expected_reference"];
        for (table, kind, id_key) in [
            ("exposure_efd", ItemKind::Exposure, "exposure_id"),
            ("visit1_efd", ItemKind::Visit, "visit_id"),
        ] {
            for it in &items {
                let want = &expected[table][it.id.to_string()];
                let got = prepared.value(it);
                if !same(got, want) {
                    failures.push(format!(
                        "case {} {table} item {}: got {got:?}, want {want}",
                        case["id"], it.id
                    ));
                }
            }
            let got: Vec<(i64, String, Option<f64>)> = items
                .iter()
                .flat_map(|it| {
                    prepared
                        .unpivoted(it, kind)
                        .into_iter()
                        .map(move |u| (it.id, u.field, u.value))
                })
                .collect();
            let unpivoted_table = format!("{table}_unpivoted");
            let want = expected[&unpivoted_table]
                .as_array()
                .expect("unpivoted rows");
            unpivoted_rows += want.len();
            let matches = got.len() == want.len()
                && got.iter().zip(want).all(|((id, field, value), w)| {
                    w[id_key].as_i64() == Some(*id)
                        && w["property"].as_str() == Some(name)
                        && w["field"].as_str() == Some(field.as_str())
                        && same(*value, &w["value"])
                });
            if !matches {
                failures.push(format!(
                    "case {} {unpivoted_table}: got {got:?}, want {}",
                    case["id"],
                    Value::Array(want.clone())
                ));
            }
        }
    }
    assert!(
        unpivoted_rows > 0,
        "the golden file should exercise unpivoted rows"
    );
    assert!(
        failures.is_empty(),
        "{} column expectations differ:\n{}",
        failures.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
